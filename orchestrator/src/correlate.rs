//! Correlation: alerts that share entities within a time window join one
//! case — union-find over the entity graph, kept in the database. A new
//! alert links to every open case holding an alert (within the window) that
//! shares a linking entity; when that is several cases, they merge into the
//! oldest. Provenance is kept: which entity joined each alert (and through
//! which alert), and where a merged case went (`merged_into`, audited).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::engine::cases;
use crate::engine::state::{CaseState, Severity};
use crate::observables::{Kind, Observable};
use crate::store::TenantTx;
use crate::store::entity::{alert, case, case_alert, case_entity, observable, tenant_control};
use crate::{Clock, Error, Result};

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

/// A tenant's correlation settings (Security Engineers tune them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Alerts further apart than this do not join one case (1 to 720 h).
    pub window_hours: i64,
    /// Entities weighing less do not link alerts (0 to 1).
    pub min_weight: f32,
    /// Weight per entity kind (0 to 1); kinds not listed keep the default.
    pub weights: BTreeMap<String, f32>,
    /// Entities that never link alerts (a shared proxy, a scanner).
    pub ignore: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignored {
    pub kind: String,
    pub value: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_hours: WINDOW.num_hours(),
            min_weight: MIN_WEIGHT,
            weights: BTreeMap::new(),
            ignore: Vec::new(),
        }
    }
}

impl Settings {
    pub fn window(&self) -> Duration {
        Duration::hours(self.window_hours)
    }
    pub fn weight(&self, kind: Kind) -> f32 {
        self.weights
            .get(kind.as_str())
            .copied()
            .unwrap_or_else(|| weight(kind))
    }
    /// Whether this entity links alerts under these settings.
    pub fn links(&self, o: &Observable) -> bool {
        self.weight(o.kind) >= self.min_weight
            && !self
                .ignore
                .iter()
                .any(|i| i.kind == o.kind.as_str() && i.value == o.value)
    }

    /// Checks ranges and normalizes the ignore list as extraction would.
    pub fn validated(mut self) -> Result<Self> {
        if !(1..=720).contains(&self.window_hours) {
            return Err(Error::Invalid("window_hours must be 1 to 720".into()));
        }
        if !(0.0..=1.0).contains(&self.min_weight) {
            return Err(Error::Invalid("min_weight must be 0 to 1".into()));
        }
        for (k, w) in &self.weights {
            k.parse::<Kind>()?;
            if !(0.0..=1.0).contains(w) {
                return Err(Error::Invalid(format!("weight of {k} must be 0 to 1")));
            }
        }
        if self.ignore.len() > 1000 {
            return Err(Error::Invalid("at most 1000 ignored entities".into()));
        }
        for i in &mut self.ignore {
            let kind: Kind = i.kind.parse()?;
            i.value = crate::observables::normalize(kind, &i.value)
                .ok_or_else(|| Error::Invalid(format!("`{}` is not a valid {kind:?} value", i.value)))?;
        }
        self.ignore
            .sort_by(|a, b| (&a.kind, &a.value).cmp(&(&b.kind, &b.value)));
        self.ignore.dedup();
        Ok(self)
    }
}

/// The tenant's settings (defaults until set).
pub async fn settings(tx: &TenantTx) -> Result<Settings> {
    let row = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    match row.and_then(|r| r.correlation) {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| Error::Invalid(format!("stored correlation settings: {e}")))
        }
        None => Ok(Settings::default()),
    }
}

/// Replaces the tenant's settings. Audited with before and after; applies
/// to alerts from now on (cases already formed stay as they are).
pub async fn set_settings(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    new: Settings,
) -> Result<Settings> {
    let new = new.validated()?;
    let before = settings(tx).await?;
    let value = serde_json::to_value(&new).map_err(|e| Error::Invalid(e.to_string()))?;
    tenant_control::Entity::insert(tenant_control::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        kill_switch_engaged_at: Set(None),
        kill_switch_engaged_by: Set(None),
        gate_quorum: Set(None),
        correlation: Set(Some(value)),
    })
    .on_conflict(
        OnConflict::column(tenant_control::Column::TenantId)
            .update_column(tenant_control::Column::Correlation)
            .to_owned(),
    )
    .exec_without_returning(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "correlation.configure",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"before": before, "after": new}),
        },
    )
    .await?;
    Ok(new)
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

/// Open cases in which a linking entity of the new alert was seen within
/// the window (one indexed lookup per entity in `case_entities`).
fn reachable(
    tx: &TenantTx,
    received_at: DateTime<Utc>,
    window: Duration,
    linking: &[&Observable],
) -> SelectStatement {
    let tenant = tx.tenant().0;
    let mut any = Cond::any();
    for o in linking {
        any = any.add(
            Cond::all()
                .add(Expr::col((case_entity::Entity, case_entity::Column::Kind)).eq(o.kind.as_str()))
                .add(Expr::col((case_entity::Entity, case_entity::Column::Value)).eq(o.value.clone())),
        );
    }
    Query::select()
        .columns([
            (case_entity::Entity, case_entity::Column::CaseId),
            (case_entity::Entity, case_entity::Column::Kind),
            (case_entity::Entity, case_entity::Column::Value),
            (case_entity::Entity, case_entity::Column::Pointer),
            (case_entity::Entity, case_entity::Column::ViaAlert),
        ])
        .from(case_entity::Entity)
        .inner_join(
            case::Entity,
            Expr::col((case::Entity, case::Column::Id))
                .equals((case_entity::Entity, case_entity::Column::CaseId)),
        )
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case::Entity, case::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::LastSeen)).gte(received_at - window))
        .and_where(Expr::col((case::Entity, case::Column::State)).eq(CaseState::Open.as_str()))
        .and_where(Expr::col((case::Entity, case::Column::MergedInto)).is_null())
        .cond_where(any)
        .to_owned()
}

/// Records that the alert's linking entities were seen in `case_id` now.
async fn index(
    tx: &TenantTx,
    case_id: Uuid,
    alert_id: Uuid,
    seen: DateTime<Utc>,
    linking: &[&Observable],
) -> Result<()> {
    let mut rows: Vec<case_entity::ActiveModel> = Vec::with_capacity(linking.len());
    for o in linking {
        // One row per (kind, value): an alert may carry an entity twice.
        if rows
            .iter()
            .any(|r| r.kind.as_ref() == o.kind.as_str() && r.value.as_ref() == &o.value)
        {
            continue;
        }
        rows.push(case_entity::ActiveModel {
            tenant_id: Set(tx.tenant().0),
            kind: Set(o.kind.as_str().to_owned()),
            value: Set(o.value.clone()),
            case_id: Set(case_id),
            last_seen: Set(seen),
            via_alert: Set(alert_id),
            pointer: Set(o.pointer.clone()),
        });
    }
    if rows.is_empty() {
        return Ok(());
    }
    case_entity::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                case_entity::Column::TenantId,
                case_entity::Column::Kind,
                case_entity::Column::Value,
                case_entity::Column::CaseId,
            ])
            .update_columns([
                case_entity::Column::LastSeen,
                case_entity::Column::ViaAlert,
                case_entity::Column::Pointer,
            ])
            // Only a later sighting rewrites the row (no new row version
            // per alert of a batch that shares the entity).
            .action_and_where(
                Expr::col((case_entity::Entity, case_entity::Column::LastSeen))
                    .lt(Expr::col((Alias::new("excluded"), case_entity::Column::LastSeen))),
            )
            .to_owned(),
        )
        .exec_without_returning(&**tx)
        .await?;
    Ok(())
}

/// Moves a merged-away case's index rows to the survivor (latest sighting wins).
async fn merge_index(tx: &TenantTx, from: Uuid, into: Uuid) -> Result<()> {
    let rows = case_entity::Entity::find()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(from))
        .all(&**tx)
        .await?;
    for r in rows {
        let existing = case_entity::Entity::find_by_id((r.tenant_id, r.kind.clone(), r.value.clone(), into))
            .one(&**tx)
            .await?;
        match existing {
            Some(e) if e.last_seen >= r.last_seen => {}
            Some(_) => {
                case_entity::Entity::update_many()
                    .col_expr(case_entity::Column::LastSeen, Expr::value(r.last_seen))
                    .col_expr(case_entity::Column::ViaAlert, Expr::value(r.via_alert))
                    .col_expr(case_entity::Column::Pointer, Expr::value(r.pointer.clone()))
                    .filter(case_entity::Column::TenantId.eq(r.tenant_id))
                    .filter(case_entity::Column::Kind.eq(r.kind.clone()))
                    .filter(case_entity::Column::Value.eq(r.value.clone()))
                    .filter(case_entity::Column::CaseId.eq(into))
                    .exec(&**tx)
                    .await?;
            }
            None => {
                case_entity::ActiveModel {
                    case_id: Set(into),
                    ..case_entity::ActiveModel::from(r.clone())
                }
                .insert(&**tx)
                .await?;
            }
        }
    }
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(from))
        .exec(&**tx)
        .await?;
    Ok(())
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

/// Places a newly stored alert in a case; returns the case id. The caller
/// marks the touched cases updated, once per batch ([`touch`]).
pub async fn correlate(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    alert_id: Uuid,
    received_at: DateTime<Utc>,
    raw: &Value,
    observables: &[Observable],
) -> Result<Uuid> {
    let now = clock.now();
    // Open cases reachable through a linking entity (one query), then one
    // link per case for provenance.
    let linking: Vec<&Observable> = observables.iter().filter(|o| settings.links(o)).collect();
    let mut found: Vec<(case::Model, Value)> = Vec::new();
    if !linking.is_empty() {
        let backend = tx.get_database_backend();
        let rows = tx
            .query_all_raw(backend.build(&reachable(tx, received_at, settings.window(), &linking)))
            .await?;
        for r in rows {
            let case_id = r.try_get::<Uuid>("", "case_id")?;
            if found.iter().any(|(f, _)| f.id == case_id) {
                continue;
            }
            let c = survivor(tx, case_id).await?;
            if c.state != CaseState::Open.as_str() || found.iter().any(|(f, _)| f.id == c.id) {
                continue;
            }
            let why = json!({
                "kind": r.try_get::<String>("", "kind")?,
                "value": r.try_get::<String>("", "value")?,
                "pointer": r.try_get::<String>("", "pointer")?,
                "via_alert": r.try_get::<Uuid>("", "via_alert")?,
            });
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
            merge_index(tx, other.id, keep.id).await?;
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
    index(tx, case_id, alert_id, received_at, &linking).await?;
    Ok(case_id)
}

/// Marks cases updated (once per batch, not once per alert: a row updated
/// thousands of times in one transaction slows every later read of it).
pub async fn touch(tx: &TenantTx, cases: &[Uuid], now: DateTime<Utc>) -> Result<()> {
    if cases.is_empty() {
        return Ok(());
    }
    case::Entity::update_many()
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .filter(case::Column::Id.is_in(cases.iter().copied()))
        .exec(&**tx)
        .await?;
    Ok(())
}

/// Rebuilds a case's entity index from its alerts (after a split).
async fn reindex(tx: &TenantTx, case_id: Uuid, settings: &Settings) -> Result<()> {
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?;
    let links = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?;
    let mut alerts = alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .filter(alert::Column::Id.is_in(links.iter().map(|l| l.alert_id)))
        .all(&**tx)
        .await?;
    alerts.sort_by_key(|a| (a.received_at, a.id));
    for a in alerts {
        let obs: Vec<Observable> = observable::Entity::find()
            .filter(observable::Column::TenantId.eq(tx.tenant().0))
            .filter(observable::Column::AlertId.eq(a.id))
            .all(&**tx)
            .await?
            .into_iter()
            .filter_map(|o| {
                Some(Observable {
                    kind: o.kind.parse().ok()?,
                    value: o.value,
                    pointer: o.pointer,
                })
            })
            .collect();
        let linking: Vec<&Observable> = obs.iter().filter(|o| settings.links(o)).collect();
        index(tx, case_id, a.id, a.received_at, &linking).await?;
    }
    Ok(())
}

fn open_case(c: &case::Model) -> Result<()> {
    if c.merged_into.is_some() {
        return Err(Error::Conflict("the case was merged into another".into()));
    }
    if c.state != CaseState::Open.as_str() {
        return Err(Error::Conflict(format!("the case is {}", c.state)));
    }
    Ok(())
}

/// A person merges case `from` into case `into`: its alerts move, its
/// entities index under `into`, and `from` records where it went. Audited.
pub async fn merge(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, from: Uuid, into: Uuid) -> Result<()> {
    if from == into {
        return Err(Error::Invalid("a case cannot be merged into itself".into()));
    }
    let (f, i) = (cases::model(tx, from).await?, cases::model(tx, into).await?);
    open_case(&f)?;
    open_case(&i)?;
    let now = clock.now();
    let moved = case_alert::Entity::update_many()
        .col_expr(case_alert::Column::CaseId, Expr::value(into))
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(from))
        .exec(&**tx)
        .await?
        .rows_affected;
    merge_index(tx, from, into).await?;
    case::Entity::update_many()
        .col_expr(case::Column::MergedInto, Expr::value(into))
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::Id.eq(from))
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    touch(tx, &[into], now).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.merge",
            target: format!("case:{from}"),
            summary: json!({"into": into, "alerts_moved": moved, "by": "person"}),
        },
    )
    .await
}

/// A person splits `alert_ids` out of a case into a new case (at least one
/// alert stays). Both cases' entity indexes are rebuilt; the moved alerts
/// record that they were split out and by whom. Audited. Returns the new case.
pub async fn split(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    case_id: Uuid,
    alert_ids: &[Uuid],
    title: Option<&str>,
) -> Result<Uuid> {
    let c = cases::model(tx, case_id).await?;
    open_case(&c)?;
    let links = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?;
    if alert_ids.is_empty() {
        return Err(Error::Invalid("name the alerts to split out".into()));
    }
    for a in alert_ids {
        if !links.iter().any(|l| l.alert_id == *a) {
            return Err(Error::Invalid(format!("alert {a} is not in this case")));
        }
    }
    if links.iter().all(|l| alert_ids.contains(&l.alert_id)) {
        return Err(Error::Invalid(
            "a split leaves at least one alert in the case".into(),
        ));
    }
    let severity: Severity = c.severity.parse()?;
    let title = title
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Split from: {}", c.title));
    let new = cases::open(tx, clock, actor, &title, severity).await?;
    let now = clock.now();
    case_alert::Entity::update_many()
        .col_expr(case_alert::Column::CaseId, Expr::value(new.id))
        .col_expr(
            case_alert::Column::JoinedBy,
            Expr::value(json!({"split_from": case_id, "by": actor.label})),
        )
        .col_expr(case_alert::Column::JoinedAt, Expr::value(now))
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .filter(case_alert::Column::AlertId.is_in(alert_ids.iter().copied()))
        .exec(&**tx)
        .await?;
    let s = settings(tx).await?;
    reindex(tx, case_id, &s).await?;
    reindex(tx, new.id, &s).await?;
    touch(tx, &[case_id], now).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.split",
            target: format!("case:{case_id}"),
            summary: json!({"new_case": new.id, "alerts": alert_ids}),
        },
    )
    .await?;
    Ok(new.id)
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
