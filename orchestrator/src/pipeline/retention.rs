//! Retention: what a tenant keeps, and for how long. A scheduled run
//! hard-deletes what expired — rows, not flags — in bounded batches, and
//! records itself in the audit log with its counts:
//!
//! * raw telemetry (alerts, their observables and case links, evidence
//!   items collected through integrations, entity
//!   sightings): `telemetry_days` after receipt (default 30), except the
//!   alerts of a case still open (an investigation keeps its evidence);
//! * narratives (drafts never approved, comments): `narratives_days`
//!   (default 90);
//! * briefs (approved drafts): `briefs_days` after approval (default 365);
//! * the audit chain: `audit_days` (default 180), pruned from the front up
//!   to the last signed checkpoint before the cutoff, so it still verifies.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Actor, Event};
use crate::store::entity::{
    alert, case, case_alert, case_comment, draft, entity_host, evidence, tenant_control,
};
use crate::{Clock, Error, Result, Store, TenantId, TenantTx};

/// A tenant's windows, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
#[schema(as = RetentionWindows)]
pub struct Windows {
    pub telemetry_days: u32,
    pub narratives_days: u32,
    pub briefs_days: u32,
    pub audit_days: u32,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            telemetry_days: 30,
            narratives_days: 90,
            briefs_days: 365,
            audit_days: 180,
        }
    }
}

/// (name, lowest, highest) of each window.
pub const BOUNDS: [(&str, u32, u32); 4] = [
    ("telemetry_days", 7, 365),
    ("narratives_days", 30, 730),
    ("briefs_days", 90, 3_650),
    // The database itself refuses to prune audit events younger than 90
    // days (migration 30).
    ("audit_days", 90, 3_650),
];

impl Windows {
    pub fn validated(self) -> Result<Self> {
        let values = [
            self.telemetry_days,
            self.narratives_days,
            self.briefs_days,
            self.audit_days,
        ];
        for ((name, lo, hi), v) in BOUNDS.iter().zip(values) {
            if v < *lo || v > *hi {
                return Err(Error::Invalid(format!(
                    "{name} must be between {lo} and {hi} days, not {v}"
                )));
            }
        }
        Ok(self)
    }
}

pub async fn windows(tx: &TenantTx) -> Result<Windows> {
    crate::store::controls::read(tx, tenant_control::Column::Retention, "retention").await
}

/// Sets the tenant's windows; audited with before and after.
pub async fn set_windows(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, new: Windows) -> Result<Windows> {
    let new = new.validated()?;
    let before = windows(tx).await?;
    crate::store::controls::write(
        tx,
        clock,
        actor,
        tenant_control::Column::Retention,
        "retention.configure",
        &before,
        &new,
    )
    .await?;
    Ok(new)
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub alerts: u64,
    pub observables: u64,
    pub case_links: u64,
    pub sightings: u64,
    pub evidence: u64,
    pub narratives: u64,
    pub comments: u64,
    pub briefs: u64,
    pub audit_events: u64,
}

/// Rows per DELETE statement.
pub const BATCH: u64 = 1_000;
/// Batches of alerts per run (the rest waits for the next run).
pub const MAX_BATCHES: u64 = 100;

/// One retention run for one tenant, in one transaction (bounded: at most
/// `MAX_BATCHES` batches of alerts), audited as `retention.run`.
pub async fn run(store: &Store, clock: &dyn Clock, tenant: TenantId) -> Result<Deleted> {
    let tx = store.begin_tenant(tenant).await?;
    let w = windows(&tx).await?;
    let now = clock.now();
    let days = |d: u32| now - Duration::days(i64::from(d));
    let mut out = Deleted::default();
    telemetry(&tx, days(w.telemetry_days), &mut out).await?;
    let t = tenant.0;
    out.narratives = draft::Entity::delete_many()
        .filter(draft::Column::TenantId.eq(t))
        .filter(draft::Column::State.ne("approved"))
        .filter(draft::Column::CreatedAt.lt(days(w.narratives_days)))
        .exec(&*tx)
        .await?
        .rows_affected;
    out.comments = case_comment::Entity::delete_many()
        .filter(case_comment::Column::TenantId.eq(t))
        .filter(case_comment::Column::CreatedAt.lt(days(w.narratives_days)))
        .exec(&*tx)
        .await?
        .rows_affected;
    out.briefs = draft::Entity::delete_many()
        .filter(draft::Column::TenantId.eq(t))
        .filter(draft::Column::State.eq("approved"))
        .filter(
            Condition::any()
                .add(draft::Column::DecidedAt.lt(days(w.briefs_days)))
                .add(
                    Condition::all()
                        .add(draft::Column::DecidedAt.is_null())
                        .add(draft::Column::CreatedAt.lt(days(w.briefs_days))),
                ),
        )
        .exec(&*tx)
        .await?
        .rows_affected;
    out.audit_events = audit::chain::prune_front(
        &*tx,
        &audit::chain::chain_of(Some(tenant)),
        days(w.audit_days),
        BATCH,
    )
    .await?;
    audit::record(
        &tx,
        clock,
        &Actor::system(),
        Event {
            action: "retention.run",
            target: format!("tenant:{tenant}"),
            summary: json!({"windows": w, "deleted": out}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Alerts received before `cutoff` and in no open case, with what hangs
/// off them; then entity sightings last seen before it.
async fn telemetry(tx: &TenantTx, cutoff: DateTime<Utc>, out: &mut Deleted) -> Result<()> {
    let t = tx.tenant().0;
    let in_open_case = Query::select()
        .column(case_alert::Column::AlertId)
        .from(case_alert::Entity)
        .inner_join(
            case::Entity,
            Expr::col((case::Entity, case::Column::Id))
                .equals((case_alert::Entity, case_alert::Column::CaseId)),
        )
        .and_where(Expr::col((case::Entity, case::Column::State)).ne("closed"))
        .to_owned();
    for _ in 0..MAX_BATCHES {
        let ids: Vec<uuid::Uuid> = alert::Entity::find()
            .filter(alert::Column::TenantId.eq(t))
            .filter(alert::Column::ReceivedAt.lt(cutoff))
            .filter(alert::Column::Id.not_in_subquery(in_open_case.clone()))
            .order_by_asc(alert::Column::ReceivedAt)
            .limit(BATCH)
            .select_only()
            .column(alert::Column::Id)
            .into_tuple()
            .all(&**tx)
            .await?;
        if ids.is_empty() {
            break;
        }
        let mut dropped = crate::pipeline::purge::Purged::default();
        crate::pipeline::purge::drop_alerts(tx, ids, &mut dropped).await?;
        out.alerts += dropped.alerts;
        out.observables += dropped.observables;
        out.case_links += dropped.case_links;
    }
    out.sightings = entity_host::Entity::delete_many()
        .filter(entity_host::Column::TenantId.eq(t))
        .filter(entity_host::Column::LastSeen.lt(cutoff))
        .exec(&**tx)
        .await?
        .rows_affected;
    // Evidence items are raw telemetry too (kept while their case is open).
    let open_cases = Query::select()
        .column(case::Column::Id)
        .from(case::Entity)
        .and_where(Expr::col((case::Entity, case::Column::State)).ne("closed"))
        .to_owned();
    out.evidence = evidence::Entity::delete_many()
        .filter(evidence::Column::TenantId.eq(t))
        .filter(evidence::Column::CollectedAt.lt(cutoff))
        .filter(evidence::Column::CaseId.not_in_subquery(open_cases))
        .exec(&**tx)
        .await?
        .rows_affected;
    Ok(())
}

/// A run for every tenant; failures are logged and the others go on.
pub async fn run_all(store: &Store, clock: &dyn Clock) -> Result<Deleted> {
    let mut total = Deleted::default();
    for scope in audit::chain::scopes(store).await? {
        let Some(t) = scope.tenant() else { continue };
        match run(store, clock, t).await {
            Ok(d) => {
                total.alerts += d.alerts;
                total.observables += d.observables;
                total.case_links += d.case_links;
                total.sightings += d.sightings;
                total.evidence += d.evidence;
                total.narratives += d.narratives;
                total.comments += d.comments;
                total.briefs += d.briefs;
                total.audit_events += d.audit_events;
            }
            Err(e) => tracing::warn!(tenant = %t, error = %e, "retention run failed"),
        }
    }
    Ok(total)
}
