//! Correlation: alerts that share entities within a time window join one
//! case — union-find over the entity graph, kept in the database. A new
//! alert links to every open case holding an alert (within the window) that
//! shares a linking entity; when that is several cases, they merge into the
//! oldest. Provenance is kept: which entity joined each alert (and through
//! which alert), and where a merged case went (`merged_into`, audited).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::engine::cases;
use crate::engine::state::{CaseState, Severity};
use crate::observables::{Kind, Observable};
use crate::store::TenantTx;
use crate::store::entity::{alert, case, case_alert, observable};
use crate::{Clock, Result};

/// Alerts further apart than this do not join the same case.
pub const WINDOW: Duration = Duration::hours(24);
/// Entities weighing less do not link alerts on their own.
pub const MIN_WEIGHT: f32 = 0.5;

/// How strongly a shared entity says "same incident".
pub fn weight(kind: Kind) -> f32 {
    match kind {
        Kind::Host | Kind::Domain | Kind::Url | Kind::FileHash => 1.0,
        Kind::User | Kind::Email => 0.8,
        Kind::Ip => 0.6,
        // Process names (svchost.exe, bash) are shared by unrelated alerts.
        Kind::Process => 0.3,
    }
}

/// A case title from the alert itself.
pub fn title(raw: &Value) -> String {
    let pick = [
        "/finding_info/title",
        "/description",
        "/message",
        "/event/message",
        "/rule/name",
    ]
    .iter()
    .find_map(|p| {
        raw.pointer(p)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    });
    let t = pick.unwrap_or("Alert").chars().take(200).collect::<String>();
    t.trim().to_owned()
}

/// Observables of other alerts of this tenant, received within the window,
/// that share a linking entity with the new alert and sit in an open case.
fn reachable(
    tx: &TenantTx,
    alert_id: Uuid,
    received_at: DateTime<Utc>,
    linking: &[&Observable],
) -> SelectStatement {
    let tenant = tx.tenant().0;
    let mut any = Cond::any();
    for o in linking {
        any = any.add(
            Cond::all()
                .add(Expr::col((observable::Entity, observable::Column::Kind)).eq(o.kind.as_str()))
                .add(Expr::col((observable::Entity, observable::Column::Value)).eq(o.value.clone())),
        );
    }
    Query::select()
        .from(observable::Entity)
        .inner_join(
            alert::Entity,
            Expr::col((alert::Entity, alert::Column::Id))
                .equals((observable::Entity, observable::Column::AlertId)),
        )
        .inner_join(
            case_alert::Entity,
            Expr::col((case_alert::Entity, case_alert::Column::AlertId))
                .equals((observable::Entity, observable::Column::AlertId)),
        )
        .inner_join(
            case::Entity,
            Expr::col((case::Entity, case::Column::Id))
                .equals((case_alert::Entity, case_alert::Column::CaseId)),
        )
        .and_where(Expr::col((observable::Entity, observable::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((alert::Entity, alert::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case_alert::Entity, case_alert::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case::Entity, case::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((observable::Entity, observable::Column::AlertId)).ne(alert_id))
        .and_where(Expr::col((alert::Entity, alert::Column::ReceivedAt)).gte(received_at - WINDOW))
        .and_where(Expr::col((alert::Entity, alert::Column::ReceivedAt)).lte(received_at + WINDOW))
        .and_where(Expr::col((case::Entity, case::Column::State)).eq(CaseState::Open.as_str()))
        .and_where(Expr::col((case::Entity, case::Column::MergedInto)).is_null())
        .cond_where(any)
        .to_owned()
}

/// Follows `merged_into` to the surviving case.
async fn survivor(tx: &TenantTx, mut id: Uuid) -> Result<case::Model> {
    for _ in 0..32 {
        let c = cases::model(tx, id).await?;
        match c.merged_into {
            Some(next) => id = next,
            None => return Ok(c),
        }
    }
    cases::model(tx, id).await
}

/// Places a newly stored alert in a case; returns the case id.
pub async fn correlate(
    tx: &TenantTx,
    clock: &dyn Clock,
    alert_id: Uuid,
    received_at: DateTime<Utc>,
    raw: &Value,
    observables: &[Observable],
) -> Result<Uuid> {
    let now = clock.now();
    // Open cases reachable through a linking entity (one query), then one
    // link per case for provenance.
    let linking: Vec<&Observable> = observables
        .iter()
        .filter(|o| weight(o.kind) >= MIN_WEIGHT)
        .collect();
    let mut found: Vec<(case::Model, Value)> = Vec::new();
    if !linking.is_empty() {
        let backend = tx.get_database_backend();
        let base = reachable(tx, alert_id, received_at, &linking);
        let cases: Vec<Uuid> = tx
            .query_all_raw(
                backend.build(
                    base.clone()
                        .distinct()
                        .column((case_alert::Entity, case_alert::Column::CaseId)),
                ),
            )
            .await?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "case_id"))
            .collect::<std::result::Result<_, _>>()?;
        for case_id in cases {
            let c = survivor(tx, case_id).await?;
            if c.state != CaseState::Open.as_str() || found.iter().any(|(f, _)| f.id == c.id) {
                continue;
            }
            let link = tx
                .query_one_raw(
                    backend.build(
                        base.clone()
                            .columns([
                                (observable::Entity, observable::Column::Kind),
                                (observable::Entity, observable::Column::Value),
                                (observable::Entity, observable::Column::Pointer),
                                (observable::Entity, observable::Column::AlertId),
                            ])
                            .and_where(
                                Expr::col((case_alert::Entity, case_alert::Column::CaseId)).eq(case_id),
                            )
                            .limit(1),
                    ),
                )
                .await?;
            let why = match link {
                Some(r) => json!({
                    "kind": r.try_get::<String>("", "kind")?,
                    "value": r.try_get::<String>("", "value")?,
                    "pointer": r.try_get::<String>("", "pointer")?,
                    "via_alert": r.try_get::<Uuid>("", "alert_id")?,
                }),
                None => Value::Null,
            };
            found.push((c, why));
        }
    }
    let system = Actor {
        label: "system:correlation".into(),
        role: None,
        source_ip: None,
    };
    let (case_id, joined_by) = if found.is_empty() {
        let c = cases::open(tx, clock, &system, &title(raw), Severity::Medium).await?;
        (c.id, None)
    } else {
        // Union: the oldest case survives; the others merge into it.
        found.sort_by_key(|(c, _)| (c.created_at, c.id));
        let (keep, why) = found[0].clone();
        for (other, link) in found.iter().skip(1) {
            case_alert::Entity::update_many()
                .col_expr(case_alert::Column::CaseId, Expr::value(keep.id))
                .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
                .filter(case_alert::Column::CaseId.eq(other.id))
                .exec(&**tx)
                .await?;
            case::Entity::update_many()
                .col_expr(case::Column::MergedInto, Expr::value(keep.id))
                .col_expr(case::Column::UpdatedAt, Expr::value(now))
                .filter(case::Column::Id.eq(other.id))
                .filter(case::Column::TenantId.eq(tx.tenant().0))
                .exec(&**tx)
                .await?;
            audit::record(
                tx,
                clock,
                &system,
                Event {
                    action: "case.merge",
                    target: format!("case:{}", other.id),
                    summary: json!({"into": keep.id, "because": {"alert": alert_id, "shares": link}}),
                },
            )
            .await?;
        }
        (keep.id, Some(why))
    };
    case_alert::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(case_id),
        alert_id: Set(alert_id),
        joined_at: Set(now),
        joined_by: Set(joined_by),
    }
    .insert(&**tx)
    .await?;
    case::Entity::update_many()
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::Id.eq(case_id))
        .exec(&**tx)
        .await?;
    Ok(case_id)
}

/// A case's alerts with why each joined (None: it opened the case).
pub async fn alerts_of(tx: &TenantTx, case_id: Uuid) -> Result<Vec<(Uuid, Option<Value>)>> {
    Ok(case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?
        .into_iter()
        .map(|r| (r.alert_id, r.joined_by))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_weights() {
        assert_eq!(title(&json!({"finding_info": {"title": " Malware "}})), "Malware");
        assert_eq!(
            title(&json!({"event": {"message": "ssh brute force"}})),
            "ssh brute force"
        );
        assert_eq!(title(&json!({})), "Alert");
        assert!(weight(Kind::Process) < MIN_WEIGHT && weight(Kind::Ip) >= MIN_WEIGHT);
    }
}
