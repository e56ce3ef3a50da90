//! The audit seam: every change a human causes records its event in the same
//! transaction as the change. (The table refuses UPDATE and DELETE on both
//! backends; hash chaining, export and verify come with the Audit issue.)

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::Value;

use crate::store::entity::audit_event;
use crate::store::{PlatformTx, TenantTx};
use crate::{Clock, Result, Role, TenantId};

/// Who did it, with the role they held at that moment.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user:<id>`, `token:<id>`, `cli:<os user>`, `anonymous`, …
    pub label: String,
    pub role: Option<Role>,
    pub source_ip: Option<String>,
}

impl Actor {
    /// The operator's local CLI.
    pub fn cli() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self {
            label: format!("cli:{who}"),
            role: None,
            source_ip: None,
        }
    }

    pub fn system() -> Self {
        Self {
            label: "system".into(),
            role: None,
            source_ip: None,
        }
    }
}

/// One event: what happened to what, with a before/after summary.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub target: String,
    pub summary: Value,
}

async fn insert(
    conn: &impl ConnectionTrait,
    tenant: Option<TenantId>,
    clock: &dyn Clock,
    actor: &Actor,
    event: Event<'_>,
) -> Result<()> {
    audit_event::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(tenant.map(|t| t.0)),
        at: Set(clock.now()),
        actor: Set(actor.label.clone()),
        actor_role: Set(actor.role.map(|r| r.as_str().to_owned())),
        action: Set(event.action.to_owned()),
        target: Set(event.target),
        summary: Set(event.summary),
        source_ip: Set(actor.source_ip.clone()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Records a tenant event inside the tenant's transaction.
pub async fn record(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, event: Event<'_>) -> Result<()> {
    insert(&**tx, Some(tx.tenant()), clock, actor, event).await
}

/// Records a platform event (no tenant) inside a platform transaction.
pub async fn record_platform(
    tx: &PlatformTx,
    clock: &dyn Clock,
    actor: &Actor,
    event: Event<'_>,
) -> Result<()> {
    insert(&**tx, None, clock, actor, event).await
}

/// An audit event as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    pub id: uuid::Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: Value,
    pub source_ip: Option<String>,
}

/// The tenant's events, newest first, with the total count.
pub async fn list(tx: &TenantTx, limit: u64, offset: u64) -> Result<(Vec<Recorded>, u64)> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
    let q = audit_event::Entity::find().filter(audit_event::Column::TenantId.eq(tx.tenant().0));
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_desc(audit_event::Column::At)
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((
        rows.into_iter()
            .map(|r| Recorded {
                id: r.id,
                at: r.at,
                actor: r.actor,
                actor_role: r.actor_role,
                action: r.action,
                target: r.target,
                summary: r.summary,
                source_ip: r.source_ip,
            })
            .collect(),
        total,
    ))
}
