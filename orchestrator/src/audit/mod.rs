//! The audit seam: every change a human causes records its event in the same
//! transaction as the change. The table refuses UPDATE and DELETE on both
//! backends, and every event is a link of a hash chain (one per tenant, one
//! for platform events; see [`chain`]): its sequence number, the previous
//! event's hash and its own are assigned just before the transaction
//! commits, under the chain head's row lock, so the numbers have no gaps
//! under concurrent writers on every node and follow commit order. An event
//! that cannot be written fails the commit: the change does not happen.

pub mod chain;
pub mod export;
pub mod requests;

use chrono::SubsecRound;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbBackend, Statement,
};
use serde_json::Value;

use crate::store::entity::audit_event;
use crate::store::{BeforeCommit, PlatformTx, TenantTx};
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

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` as the handling of one request: events it records carry `id`
/// (the web layer's request id, also in the response and the access log).
pub async fn in_request<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The request id of the request being handled, if any.
pub fn current_request() -> Option<String> {
    REQUEST_ID.try_with(|r| r.clone()).ok()
}

/// An event waiting for its transaction's commit to take its place in the
/// chain.
struct Pending(Recorded);

#[async_trait::async_trait]
impl BeforeCommit for Pending {
    async fn run(self: Box<Self>, tx: &DatabaseTransaction) -> Result<()> {
        append(tx, self.0).await
    }
}

/// Takes the next place in the event's chain (locking the chain's head row
/// until commit), hashes the event over it and stores both.
async fn append(conn: &impl ConnectionTrait, mut e: Recorded) -> Result<()> {
    let tenant = e.tenant_id.map(TenantId);
    let name = chain::chain_of(tenant);
    let backend = conn.get_database_backend();
    let p = |i: usize| match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO audit_heads (chain, tenant_id, seq, hash) VALUES ({}, {}, 1, {}) \
                 ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq + 1 RETURNING seq, hash",
                p(1),
                p(2),
                p(3)
            ),
            [
                name.clone().into(),
                e.tenant_id.into(),
                chain::GENESIS.to_owned().into(),
            ],
        ))
        .await?
        .ok_or_else(|| crate::Error::Audit("the chain head returned no row".into()))?;
    let seq: i64 = row.try_get("", "seq")?;
    let prev: String = row.try_get("", "hash")?;
    let hash = chain::event_hash(&name, seq, &prev, &e);
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("UPDATE audit_heads SET hash = {} WHERE chain = {}", p(1), p(2)),
        [hash.clone().into(), name.clone().into()],
    ))
    .await?;
    e.chain = Some(name);
    e.seq = Some(seq);
    e.prev_hash = Some(prev);
    e.hash = Some(hash);
    audit_event::ActiveModel {
        id: Set(e.id),
        tenant_id: Set(e.tenant_id),
        at: Set(e.at),
        actor: Set(e.actor),
        actor_role: Set(e.actor_role),
        action: Set(e.action),
        target: Set(e.target),
        summary: Set(e.summary),
        source_ip: Set(e.source_ip),
        chain: Set(e.chain),
        seq: Set(e.seq),
        prev_hash: Set(e.prev_hash),
        hash: Set(e.hash),
        request_id: Set(e.request_id),
    }
    .insert(conn)
    .await?;
    Ok(())
}

fn pending(tenant: Option<TenantId>, clock: &dyn Clock, actor: &Actor, event: Event<'_>) -> Box<Pending> {
    Box::new(Pending(Recorded {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant.map(|t| t.0),
        // Microseconds: what PostgreSQL keeps, so the hash reads back alike.
        at: clock.now().trunc_subsecs(6),
        actor: actor.label.clone(),
        actor_role: actor.role.map(|r| r.as_str().to_owned()),
        action: event.action.to_owned(),
        target: event.target,
        summary: event.summary,
        source_ip: actor.source_ip.clone(),
        request_id: current_request(),
        chain: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }))
}

/// Records a tenant event inside the tenant's transaction (written into the
/// tenant's chain when the transaction commits; a failure fails the commit).
pub async fn record(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, event: Event<'_>) -> Result<()> {
    tx.before_commit(pending(Some(tx.tenant()), clock, actor, event));
    Ok(())
}

/// Records a platform event (no tenant) inside a platform transaction.
pub async fn record_platform(
    tx: &PlatformTx,
    clock: &dyn Clock,
    actor: &Actor,
    event: Event<'_>,
) -> Result<()> {
    tx.before_commit(pending(None, clock, actor, event));
    Ok(())
}

/// An audit event as read back: the event and its place in its chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = AuditEvent)]
pub struct Recorded {
    pub id: uuid::Uuid,
    pub tenant_id: Option<uuid::Uuid>,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: Value,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    /// `tenant:<id>` or `platform`; none for events from before the chain.
    pub chain: Option<String>,
    pub seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl From<audit_event::Model> for Recorded {
    fn from(r: audit_event::Model) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            at: r.at,
            actor: r.actor,
            actor_role: r.actor_role,
            action: r.action,
            target: r.target,
            summary: r.summary,
            source_ip: r.source_ip,
            request_id: r.request_id,
            chain: r.chain,
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The tenant's events, newest first, with the total count.
pub async fn list(tx: &TenantTx, limit: u64, offset: u64) -> Result<(Vec<Recorded>, u64)> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
    let q = audit_event::Entity::find().filter(audit_event::Column::TenantId.eq(tx.tenant().0));
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_desc(audit_event::Column::Seq)
        .order_by_desc(audit_event::Column::At)
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((rows.into_iter().map(Recorded::from).collect(), total))
}
