//! Tenant deletion: the platform admin schedules it; during the grace
//! period it can be cancelled; once due, one run removes every row of the
//! tenant from every tenant table (the schema's own list — a table added
//! without being listed here fails the test that compares them), its data
//! key first (crypto-shredding: what the key sealed cannot be opened from
//! any copy that lacks it), then the tenant itself. Scheduling, cancelling
//! and the deletion are platform audit events.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
};
use serde_json::json;

use crate::audit::{self, Actor, Event};
use crate::store::entity::tenant;
use crate::{Clock, Error, PlatformTx, Result, Store, TenantId};

/// Every tenant table, children before parents.
pub const ORDER: [&str; 32] = [
    "tenant_keys",
    "credentials",
    "evidence",
    "case_comments",
    "saved_views",
    "observables",
    "case_alerts",
    "case_entities",
    "drafts",
    "gate_approvals",
    "outbox",
    "steps",
    "gates",
    "cases",
    "alerts",
    "integration_scopes",
    "integration_status",
    "notifications",
    "integrations",
    "sso_assertions",
    "sso_identities",
    "sso_logins",
    "sso_providers",
    "iocs",
    "entity_hosts",
    "api_requests",
    "api_tokens",
    "memberships",
    "tenant_controls",
    "audit_checkpoints",
    "audit_heads",
    "audit_events",
];

/// The grace period's bounds.
pub fn grace_bounds() -> (Duration, Duration) {
    (Duration::days(1), Duration::days(90))
}

/// Schedules the tenant's deletion `grace` from now; when it is due.
pub async fn schedule(
    tx: &PlatformTx,
    clock: &dyn Clock,
    actor: &Actor,
    id: TenantId,
    grace: Duration,
) -> Result<DateTime<Utc>> {
    let (lo, hi) = grace_bounds();
    if grace < lo || grace > hi {
        return Err(Error::Invalid(format!(
            "the grace period must be between {} and {} days",
            lo.num_days(),
            hi.num_days()
        )));
    }
    let t = tenant::Entity::find_by_id(id.0)
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    if t.deletion_due_at.is_some() {
        return Err(Error::Conflict(
            "the tenant's deletion is already scheduled".into(),
        ));
    }
    let due = clock.now() + grace;
    let mut am: tenant::ActiveModel = t.into();
    am.status = Set("deleting".into());
    am.deletion_due_at = Set(Some(due));
    am.update(&**tx).await?;
    audit::record_platform(
        tx,
        clock,
        actor,
        Event {
            action: "tenant.deletion_scheduled",
            target: format!("tenant:{id}"),
            summary: json!({"due_at": due}),
        },
    )
    .await?;
    Ok(due)
}

/// Cancels a scheduled deletion (during the grace period).
pub async fn cancel(tx: &PlatformTx, clock: &dyn Clock, actor: &Actor, id: TenantId) -> Result<()> {
    let t = tenant::Entity::find_by_id(id.0)
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let Some(due) = t.deletion_due_at else {
        return Err(Error::Conflict("no deletion is scheduled for this tenant".into()));
    };
    let mut am: tenant::ActiveModel = t.into();
    am.status = Set("active".into());
    am.deletion_due_at = Set(None);
    am.update(&**tx).await?;
    audit::record_platform(
        tx,
        clock,
        actor,
        Event {
            action: "tenant.deletion_cancelled",
            target: format!("tenant:{id}"),
            summary: json!({"was_due_at": due}),
        },
    )
    .await?;
    Ok(())
}

/// Removes every row of the tenant; how many.
async fn erase(store: &Store, clock: &dyn Clock, id: TenantId) -> Result<u64> {
    let tx = store.begin_tenant(id).await?;
    let backend = tx.get_database_backend();
    let p = if backend == sea_orm::DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let mut rows = 0;
    for table in ORDER {
        rows += tx
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM {table} WHERE tenant_id = {p}"),
                [id.0.into()],
            ))
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    let tx = store.begin_platform().await?;
    tx.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("UPDATE sessions SET active_tenant_id = NULL WHERE active_tenant_id = {p}"),
        [id.0.into()],
    ))
    .await?;
    tenant::Entity::delete_by_id(id.0).exec(&*tx).await?;
    audit::record_platform(
        &tx,
        clock,
        &Actor::system(),
        Event {
            action: "tenant.deleted",
            target: format!("tenant:{id}"),
            summary: json!({"rows": rows, "tables": ORDER.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Deletes every tenant whose deletion is due; (tenant, rows) of each.
pub async fn run_due(store: &Store, clock: &dyn Clock) -> Result<Vec<(TenantId, u64)>> {
    let due: Vec<TenantId> = tenant::Entity::find()
        .filter(tenant::Column::DeletionDueAt.lte(clock.now()))
        .all(store.conn())
        .await?
        .into_iter()
        .map(|t| TenantId(t.id))
        .collect();
    let mut out = Vec::new();
    for t in due {
        match erase(store, clock, t).await {
            Ok(n) => out.push((t, n)),
            Err(e) => tracing::warn!(tenant = %t, error = %e, "tenant deletion failed; retried next run"),
        }
    }
    Ok(out)
}
