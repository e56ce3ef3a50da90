//! The outbox: approved external writes, executed exactly once.
//!
//! The one place an external write happens is [`run_due`], after one guard
//! check made immediately before claiming each entry: the gate is approved,
//! the write scope is enabled, and no kill switch (tenant or platform) is
//! engaged. An entry whose guard fails stays pending, untouched, and runs
//! when the guard passes again (release, scope re-enabled). A claim is a
//! conditional update (one worker wins) with a lease; a worker that dies
//! mid-write leaves the entry to be re-claimed after the lease and re-sent
//! with the same idempotency key, so the vendor can drop the duplicate.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use super::kill;
use super::state::{GateEvent, GateState, OutboxEvent, OutboxState};
use crate::audit::{self, Actor, Event};
use crate::store::entity::{gate, outbox};
use crate::store::{Backend, Store, TenantTx};
use crate::{Clock, Result, TenantId};

/// How long a claim holds an entry before another worker may retry it.
pub const LEASE: Duration = Duration::seconds(60);
/// Attempts before an entry is dead-lettered.
pub const MAX_ATTEMPTS: i32 = 8;

/// A failed write: transient ones are retried with backoff.
#[derive(Debug, Clone)]
pub struct WriteError {
    pub transient: bool,
    /// When the vendor asked to be called again (429 `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
    pub message: String,
}

impl WriteError {
    pub fn transient(message: impl Into<String>) -> Self {
        WriteError {
            transient: true,
            retry_after: None,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        WriteError {
            transient: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// The side that talks to vendors (the integrations implement it).
#[async_trait::async_trait]
pub trait Writer: Send + Sync + std::fmt::Debug {
    /// Whether the write scope `action` needs is enabled now (read in the
    /// guard's own transaction).
    async fn scope_enabled(&self, tx: &TenantTx, action: &str, payload: &Value) -> Result<bool>;
    /// Performs the write, sending `idempotency_key` where the vendor allows.
    async fn write(
        &self,
        tenant: TenantId,
        action: &str,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<Value, WriteError>;
}

/// No integration can write yet: every scope reads as disabled, so approved
/// writes wait in the outbox (visible) rather than going anywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWriter;

#[async_trait::async_trait]
impl Writer for NoWriter {
    async fn scope_enabled(&self, _: &TenantTx, _: &str, _: &Value) -> Result<bool> {
        Ok(false)
    }
    async fn write(&self, _: TenantId, _: &str, _: &Value, _: &str) -> Result<Value, WriteError> {
        Err(WriteError::permanent("no integration can write"))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub executed: usize,
    pub held: usize,
    pub retried: usize,
    pub dead: usize,
}

fn backoff(attempts: i32) -> Duration {
    Duration::seconds(5 * (1i64 << attempts.clamp(0, 10))).min(Duration::hours(1))
}

/// Entries due now, across tenants (ids only). On PostgreSQL through the
/// `vigil_due_outbox` SECURITY DEFINER function: the engine's one
/// cross-tenant read; each entry is then handled under its tenant's RLS.
async fn due(store: &Store, now: DateTime<Utc>, limit: u32) -> Result<Vec<(Uuid, TenantId)>> {
    match store.backend() {
        Backend::Postgres => store.pg_due("vigil_due_outbox", now, limit).await,
        Backend::Sqlite => Ok(outbox::Entity::find()
            .filter(
                outbox::Column::State.is_in([OutboxState::Pending.as_str(), OutboxState::Executing.as_str()]),
            )
            .filter(outbox::Column::RunAfter.lte(now))
            .all(store.conn())
            .await?
            .into_iter()
            .take(limit as usize)
            .map(|o| (o.id, TenantId(o.tenant_id)))
            .collect()),
    }
}

/// Executes every due outbox entry whose guard passes.
pub async fn run_due(store: &Store, clock: &dyn Clock, writer: &dyn Writer, limit: u32) -> Result<RunReport> {
    let mut report = RunReport::default();
    if kill::platform(store.conn()).await?.is_some() {
        return Ok(report);
    }
    for (id, tenant) in due(store, clock.now(), limit).await? {
        match run_one(store, clock, writer, tenant, id).await? {
            Outcome::Executed => report.executed += 1,
            Outcome::Held | Outcome::Lost => report.held += 1,
            Outcome::Retry => report.retried += 1,
            Outcome::Dead => report.dead += 1,
        }
    }
    Ok(report)
}

enum Outcome {
    Executed,
    Held,
    Lost,
    Retry,
    Dead,
}

async fn hold(store: &Store, tenant: TenantId, id: Uuid, why: String) -> Result<Outcome> {
    let tx = store.begin_tenant(tenant).await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LastError, Expr::value(format!("held: {why}")))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::TenantId.eq(tenant.0))
        .exec(&*tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Held)
}

async fn run_one(
    store: &Store,
    clock: &dyn Clock,
    writer: &dyn Writer,
    tenant: TenantId,
    id: Uuid,
) -> Result<Outcome> {
    let now = clock.now();
    // 1. The guard, then the claim, in one transaction.
    let tx = store.begin_tenant(tenant).await?;
    let Some(entry) = outbox::Entity::find_by_id(id)
        .filter(outbox::Column::TenantId.eq(tenant.0))
        .one(&*tx)
        .await?
    else {
        return Ok(Outcome::Lost);
    };
    // The due list was read before this transaction: another node may have
    // claimed (or finished) the entry since. Only a pending entry that is
    // due, or an executing one whose lease has run out, may be claimed.
    let open = [OutboxState::Pending.as_str(), OutboxState::Executing.as_str()];
    if !open.contains(&entry.state.as_str()) || entry.run_after > now {
        return Ok(Outcome::Lost);
    }
    let g = gate::Entity::find_by_id(entry.gate_id)
        .filter(gate::Column::TenantId.eq(tenant.0))
        .one(&*tx)
        .await?;
    let gate_ok = g
        .as_ref()
        .is_some_and(|g| g.state == GateState::Approved.as_str());
    let ks = kill::state(&tx).await?;
    let why = if !gate_ok {
        Some("the gate is not approved".to_owned())
    } else if ks.engaged() {
        Some(ks.describe())
    } else if !writer.scope_enabled(&tx, &entry.action, &entry.payload).await? {
        Some("the integration's write scope is disabled".to_owned())
    } else {
        None
    };
    if let Some(why) = why {
        drop(tx);
        return hold(store, tenant, id, why).await;
    }
    let from: OutboxState = entry.state.parse()?;
    let claimed_from = if from == OutboxState::Executing {
        from.on(OutboxEvent::LeaseExpired)?
    } else {
        from
    };
    claimed_from.on(OutboxEvent::Claim)?;
    let claim = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::State,
            Expr::value(OutboxState::Executing.as_str()),
        )
        .col_expr(outbox::Column::Attempts, Expr::value(entry.attempts + 1))
        .col_expr(outbox::Column::RunAfter, Expr::value(now + LEASE))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::State.eq(entry.state.clone()))
        .filter(outbox::Column::RunAfter.eq(entry.run_after))
        .exec(&*tx)
        .await?;
    tx.commit().await?;
    if claim.rows_affected != 1 {
        return Ok(Outcome::Lost); // another worker has it
    }
    let attempts = entry.attempts + 1;

    // 2. The write, outside any transaction.
    let result = writer
        .write(tenant, &entry.action, &entry.payload, &entry.idempotency_key)
        .await;

    // 3. Record the outcome.
    let done_at = clock.now();
    let tx = store.begin_tenant(tenant).await?;
    let (outcome, event, state, run_after, last_error, res) = match result {
        Ok(v) => (
            Outcome::Executed,
            OutboxEvent::Succeed,
            OutboxState::Done,
            done_at,
            None,
            Some(v),
        ),
        Err(e) if e.transient && attempts < MAX_ATTEMPTS => (
            Outcome::Retry,
            OutboxEvent::RetryLater,
            OutboxState::Pending,
            done_at
                + backoff(attempts).max(
                    e.retry_after
                        .and_then(|d| Duration::from_std(d).ok())
                        .unwrap_or_default(),
                ),
            Some(e.message),
            None,
        ),
        Err(e) => (
            Outcome::Dead,
            OutboxEvent::GiveUp,
            OutboxState::Dead,
            done_at,
            Some(e.message),
            None,
        ),
    };
    OutboxState::Executing.on(event)?;
    let mut upd = outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(state.as_str()))
        .col_expr(outbox::Column::RunAfter, Expr::value(run_after))
        .col_expr(outbox::Column::LastError, Expr::value(last_error.clone()))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::State.eq(OutboxState::Executing.as_str()));
    if let Some(v) = &res {
        upd = upd
            .col_expr(outbox::Column::Result, Expr::value(v.clone()))
            .col_expr(outbox::Column::ExecutedAt, Expr::value(done_at));
    }
    let recorded = upd.exec(&*tx).await?;
    if recorded.rows_affected != 1 {
        // Our lease ran out and another worker took over: it records.
        return Ok(Outcome::Lost);
    }
    if matches!(outcome, Outcome::Executed) {
        GateState::Approved.on(GateEvent::Execute)?;
        gate::Entity::update_many()
            .col_expr(gate::Column::State, Expr::value(GateState::Executed.as_str()))
            .filter(gate::Column::Id.eq(entry.gate_id))
            .filter(gate::Column::State.eq(GateState::Approved.as_str()))
            .exec(&*tx)
            .await?;
    }
    if !matches!(outcome, Outcome::Retry) {
        audit::record(
            &tx,
            clock,
            &Actor::system(),
            Event {
                action: if matches!(outcome, Outcome::Executed) { "outbox.executed" } else { "outbox.dead" },
                target: format!("gate:{}", entry.gate_id),
                summary: json!({"idempotency_key": entry.idempotency_key, "attempts": attempts, "error": last_error, "result": res}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// What became of a gate's approved write, as callers outside the core see
/// it (state, attempts, idempotency key, last error, vendor result).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GateWrite {
    pub state: String,
    pub attempts: i32,
    pub idempotency_key: String,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub executed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The write of a gate, if it has one.
pub async fn write_of_gate(tx: &crate::store::TenantTx, gate_id: Uuid) -> Result<Option<GateWrite>> {
    Ok(of_gate(tx, gate_id).await?.map(|o| GateWrite {
        state: o.state,
        attempts: o.attempts,
        idempotency_key: o.idempotency_key,
        last_error: o.last_error,
        result: o.result,
        executed_at: o.executed_at,
    }))
}

/// The outbox entry of a gate, if it has one.
pub async fn of_gate(tx: &crate::store::TenantTx, gate_id: Uuid) -> Result<Option<outbox::Model>> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::TenantId.eq(tx.tenant().0))
        .filter(outbox::Column::GateId.eq(gate_id))
        .one(&**tx)
        .await?)
}

/// Approved writes of the tenant still waiting to be sent (held by a
/// disabled write scope, a kill switch, or a retry), by integration: what
/// turning a scope on will release.
pub async fn waiting_by_integration(tx: &TenantTx) -> Result<std::collections::HashMap<Uuid, u64>> {
    let mut out = std::collections::HashMap::new();
    for o in outbox::Entity::find()
        .filter(outbox::Column::TenantId.eq(tx.tenant().0))
        .filter(outbox::Column::State.eq(OutboxState::Pending.as_str()))
        .all(&**tx)
        .await?
    {
        if let Some(id) = o
            .payload
            .get("integration_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
        {
            *out.entry(id).or_default() += 1;
        }
    }
    Ok(out)
}
