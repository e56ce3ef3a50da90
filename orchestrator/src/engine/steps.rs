//! Durable steps: every step is a row. Workers claim due steps under a
//! lease (PostgreSQL: `vigil_claim_steps`, FOR UPDATE SKIP LOCKED, deadline
//! on the database clock; SQLite: one node). A worker that dies mid-step
//! loses nothing: when the lease expires another worker takes the step.
//! Completion is fenced by the lease owner, so a worker that lost its lease
//! cannot record a result. Failures retry with backoff, then dead-letter;
//! an engineer can retry a dead step. Kill switches stop claims. Handlers
//! must be idempotent (a step may run again after a crash).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::kill;
use super::state::{StepEvent, StepState};
use crate::audit::{self, Actor, Event};
use crate::store::entity::{step, tenant_control};
use crate::store::{Backend, Store, TenantTx};
use crate::{Clock, Error, Result, TenantId};

pub const DEFAULT_LEASE: Duration = Duration::seconds(30);
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;
/// The PostgreSQL channel a new due step is announced on.
pub const NOTIFY_CHANNEL: &str = "vigil_steps";

/// A step to enqueue.
#[derive(Debug, Clone)]
pub struct NewStep {
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub input: Value,
    /// Wait for this gate's approval before becoming due.
    pub after_gate: Option<Uuid>,
    pub max_attempts: i32,
    /// Not due before this time (a debounce); `None`: at once.
    pub not_before: Option<DateTime<Utc>>,
}

impl NewStep {
    /// A step needs a kind and at least one attempt.
    fn check(&self) -> Result<()> {
        if self.kind.trim().is_empty() || self.max_attempts < 1 {
            return Err(Error::Invalid(
                "a step needs a kind and at least one attempt".into(),
            ));
        }
        Ok(())
    }

    pub fn new(kind: &str, case_id: Option<Uuid>, input: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            case_id,
            input,
            after_gate: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            not_before: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub id: Uuid,
    pub case_id: Option<Uuid>,
    pub kind: String,
    pub state: StepState,
    pub input: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub after_gate_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub output: Option<Value>,
}

impl TryFrom<step::Model> for StepView {
    type Error = Error;
    fn try_from(m: step::Model) -> Result<Self> {
        Ok(StepView {
            id: m.id,
            case_id: m.case_id,
            kind: m.kind,
            state: m.state.parse()?,
            input: m.input,
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            run_after: m.run_after,
            after_gate_id: m.after_gate_id,
            last_error: m.last_error,
            output: m.output,
        })
    }
}

/// Announces due work on commit: this node's worker in-process, every node
/// by `NOTIFY` on PostgreSQL.
pub(crate) async fn notify(tx: &TenantTx) -> Result<()> {
    tx.announce_work();
    if tx.get_database_backend() == DbBackend::Postgres {
        tx.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')"),
        ))
        .await?;
    }
    Ok(())
}

/// Enqueues a step in the transaction's tenant (announced on commit).
pub async fn enqueue(tx: &TenantTx, clock: &dyn Clock, new: NewStep) -> Result<Uuid> {
    new.check()?;
    let now = clock.now();
    let id = Uuid::now_v7();
    let state = if new.after_gate.is_some() {
        StepState::Waiting
    } else {
        StepState::Pending
    };
    step::ActiveModel {
        id: Set(id),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(new.case_id),
        kind: Set(new.kind),
        state: Set(state.as_str().to_owned()),
        input: Set(new.input),
        output: Set(None),
        attempts: Set(0),
        max_attempts: Set(new.max_attempts),
        run_after: Set(new.not_before.map_or(now, |t| std::cmp::max(t, now))),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        after_gate_id: Set(new.after_gate),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&**tx)
    .await?;
    if state == StepState::Pending {
        notify(tx).await?;
    }
    Ok(id)
}

/// A gate was decided: its waiting steps start (approved) or are cancelled.
pub(crate) async fn on_gate_decided(
    tx: &TenantTx,
    clock: &dyn Clock,
    gate: Uuid,
    approved: bool,
) -> Result<u64> {
    let ev = if approved {
        StepEvent::GateApproved
    } else {
        StepEvent::GateRejected
    };
    let next = StepState::Waiting.on(ev)?;
    let now = clock.now();
    let res = step::Entity::update_many()
        .col_expr(step::Column::State, Expr::value(next.as_str()))
        .col_expr(step::Column::RunAfter, Expr::value(now))
        .col_expr(step::Column::UpdatedAt, Expr::value(now))
        .filter(step::Column::TenantId.eq(tx.tenant().0))
        .filter(step::Column::AfterGateId.eq(gate))
        .filter(step::Column::State.eq(StepState::Waiting.as_str()))
        .exec(&**tx)
        .await?;
    if approved && res.rows_affected > 0 {
        notify(tx).await?;
    }
    Ok(res.rows_affected)
}

pub async fn list(
    tx: &TenantTx,
    case: Option<Uuid>,
    state: Option<StepState>,
    limit: u64,
) -> Result<Vec<StepView>> {
    let mut q = step::Entity::find().filter(step::Column::TenantId.eq(tx.tenant().0));
    if let Some(c) = case {
        q = q.filter(step::Column::CaseId.eq(c));
    }
    if let Some(s) = state {
        q = q.filter(step::Column::State.eq(s.as_str()));
    }
    q.order_by_asc(step::Column::CreatedAt)
        .limit(limit)
        .all(&**tx)
        .await?
        .into_iter()
        .map(StepView::try_from)
        .collect()
}

pub async fn get(tx: &TenantTx, id: Uuid) -> Result<StepView> {
    step::Entity::find_by_id(id)
        .filter(step::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("step"))?
        .try_into()
}

/// A person retries a dead-lettered step. Audited.
pub async fn retry_dead(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, id: Uuid) -> Result<StepView> {
    let s = get(tx, id).await?;
    let next = s.state.on(StepEvent::ManualRetry)?;
    let now = clock.now();
    step::Entity::update_many()
        .col_expr(step::Column::State, Expr::value(next.as_str()))
        .col_expr(step::Column::Attempts, Expr::value(0))
        .col_expr(step::Column::RunAfter, Expr::value(now))
        .col_expr(step::Column::UpdatedAt, Expr::value(now))
        .filter(step::Column::Id.eq(id))
        .filter(step::Column::State.eq(StepState::Dead.as_str()))
        .exec(&**tx)
        .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "step.retry",
            target: format!("step:{id}"),
            summary: json!({"kind": s.kind, "last_error": s.last_error}),
        },
    )
    .await?;
    notify(tx).await?;
    get(tx, id).await
}

// ---------------------------------------------------------------- running

/// What a handler sees.
#[derive(Debug)]
pub struct StepContext<'a> {
    pub store: &'a Store,
    pub clock: &'a dyn Clock,
    pub tenant: TenantId,
    pub step_id: Uuid,
    pub case_id: Option<Uuid>,
    pub input: &'a Value,
    pub attempt: i32,
}

/// A step's result: its output and the steps that follow it (enqueued in
/// the same transaction that records the success).
#[derive(Debug, Default)]
pub struct StepDone {
    pub output: Value,
    pub next: Vec<NewStep>,
}

#[derive(Debug, Clone)]
pub struct StepFailure {
    pub transient: bool,
    pub message: String,
}

#[async_trait::async_trait]
pub trait StepHandler: Send + Sync {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure>;
}

/// Step kind → handler.
#[derive(Clone, Default)]
pub struct Registry(HashMap<String, Arc<dyn StepHandler>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Registry {
    pub fn with(mut self, kind: &str, h: Arc<dyn StepHandler>) -> Self {
        self.0.insert(kind.to_owned(), h);
        self
    }

    /// The handler registered for `kind` (to wrap it, e.g. in a benchmark).
    pub fn handler(&self, kind: &str) -> Option<Arc<dyn StepHandler>> {
        self.0.get(kind).cloned()
    }
}

/// How a worker claims.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Unique per process (fences completions).
    pub owner: String,
    pub lease: Duration,
    pub batch: u32,
    /// PostgreSQL: take "now" from the database (production). Tests pass
    /// `false` to use their clock.
    pub db_clock: bool,
}

impl Worker {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            lease: DEFAULT_LEASE,
            batch: 16,
            db_clock: true,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub succeeded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Results refused because the lease had passed to another worker.
    pub fenced: usize,
}

impl StepReport {
    pub fn claimed(&self) -> usize {
        self.succeeded + self.retried + self.dead + self.fenced
    }
}

#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub tenant: TenantId,
    pub attempts: i32,
}

/// Claims up to `batch` due steps for `worker`.
pub async fn claim(store: &Store, clock: &dyn Clock, worker: &Worker) -> Result<Vec<Claimed>> {
    match store.backend() {
        Backend::Postgres => {
            let at: Option<DateTime<Utc>> = if worker.db_clock { None } else { Some(clock.now()) };
            let rows = store
                .conn()
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT id, tenant_id, attempts FROM vigil_claim_steps($1, $2, $3, $4)",
                    [
                        worker.owner.clone().into(),
                        (worker.batch as i32).into(),
                        (worker.lease.num_seconds() as i32).into(),
                        at.into(),
                    ],
                ))
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Claimed {
                        id: r.try_get("", "id")?,
                        tenant: TenantId(r.try_get("", "tenant_id")?),
                        attempts: r.try_get("", "attempts")?,
                    })
                })
                .collect()
        }
        Backend::Sqlite => claim_sqlite(store, clock, worker).await,
    }
}

/// SQLite runs one node: a write transaction serialises claims.
async fn claim_sqlite(store: &Store, clock: &dyn Clock, worker: &Worker) -> Result<Vec<Claimed>> {
    if kill::platform(store.conn()).await?.is_some() {
        return Ok(Vec::new());
    }
    let now = clock.now();
    let tx = store.begin_raw().await?;
    let stopped: Vec<Uuid> = tenant_control::Entity::find()
        .filter(tenant_control::Column::KillSwitchEngagedAt.is_not_null())
        .all(&*tx)
        .await?
        .into_iter()
        .map(|c| c.tenant_id)
        .collect();
    let due = step::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(
                    step::Column::State
                        .eq(StepState::Pending.as_str())
                        .and(step::Column::RunAfter.lte(now)),
                )
                .add(
                    step::Column::State
                        .eq(StepState::Running.as_str())
                        .and(step::Column::LeaseExpiresAt.lte(now)),
                ),
        )
        .filter(step::Column::TenantId.is_not_in(stopped))
        .order_by_asc(step::Column::RunAfter)
        .limit(u64::from(worker.batch))
        .all(&*tx)
        .await?;
    let mut out = Vec::new();
    for s in due {
        let res = step::Entity::update_many()
            .col_expr(step::Column::State, Expr::value(StepState::Running.as_str()))
            .col_expr(step::Column::LeaseOwner, Expr::value(worker.owner.clone()))
            .col_expr(step::Column::LeaseExpiresAt, Expr::value(now + worker.lease))
            .col_expr(step::Column::Attempts, Expr::value(s.attempts + 1))
            .col_expr(step::Column::UpdatedAt, Expr::value(now))
            .filter(step::Column::Id.eq(s.id))
            .filter(step::Column::State.eq(s.state.clone()))
            .filter(step::Column::Attempts.eq(s.attempts))
            .exec(&*tx)
            .await?;
        if res.rows_affected == 1 {
            out.push(Claimed {
                id: s.id,
                tenant: TenantId(s.tenant_id),
                attempts: s.attempts + 1,
            });
        }
    }
    tx.commit().await?;
    Ok(out)
}

fn backoff(attempts: i32) -> Duration {
    Duration::seconds(1i64 << attempts.clamp(0, 8)).min(Duration::minutes(5))
}

/// Claims due steps and runs them. A step that succeeds with follow-ups
/// continues in place: its first successor is inserted already claimed by
/// this worker, in the transaction that records the success, and runs next
/// (one durable commit per transition). A continuation is an ordinary leased
/// row: if this worker dies, the lease expires and another takes it.
pub async fn run_once(
    store: &Store,
    clock: &dyn Clock,
    registry: &Registry,
    worker: &Worker,
) -> Result<StepReport> {
    let mut report = StepReport::default();
    for c in claim(store, clock, worker).await? {
        let mut next = load(store, &c).await?;
        let mut chained = 0;
        while let Some(step) = next.take() {
            let (ran, cont) = execute(store, clock, registry, worker, step).await?;
            match ran {
                Ran::Succeeded => report.succeeded += 1,
                Ran::Retried => report.retried += 1,
                Ran::Dead => report.dead += 1,
                Ran::Fenced => report.fenced += 1,
            }
            chained += 1;
            // Bounded, so one long chain cannot starve other due steps; an
            // unfinished continuation stays leased and is run after expiry
            // by whoever claims it (or by this worker's next round).
            if chained < MAX_CHAIN {
                next = cont;
            } else if let Some(c) = cont {
                release(store, clock, &c).await?;
            }
        }
    }
    Ok(report)
}

/// Continuations run back to back before the worker claims again.
const MAX_CHAIN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Succeeded,
    Retried,
    Dead,
    Fenced,
}

/// A claimed step with what running it needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Uuid,
    pub tenant: TenantId,
    pub attempts: i32,
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub input: Value,
    pub max_attempts: i32,
}

async fn load(store: &Store, c: &Claimed) -> Result<Option<Loaded>> {
    let tx = store.begin_tenant(c.tenant).await?;
    let s = step::Entity::find_by_id(c.id)
        .filter(step::Column::TenantId.eq(c.tenant.0))
        .one(&*tx)
        .await?;
    tx.commit().await?;
    Ok(s.map(|s| Loaded {
        id: s.id,
        tenant: c.tenant,
        attempts: c.attempts,
        kind: s.kind,
        case_id: s.case_id,
        input: s.input,
        max_attempts: s.max_attempts,
    }))
}

/// Hands an unstarted continuation back to the queue (pending, unleased).
async fn release(store: &Store, clock: &dyn Clock, c: &Loaded) -> Result<()> {
    let tx = store.begin_tenant(c.tenant).await?;
    step::Entity::update_many()
        .col_expr(step::Column::State, Expr::value(StepState::Pending.as_str()))
        .col_expr(step::Column::Attempts, Expr::value(c.attempts - 1))
        .col_expr(step::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(step::Column::RunAfter, Expr::value(clock.now()))
        .filter(step::Column::Id.eq(c.id))
        .filter(step::Column::State.eq(StepState::Running.as_str()))
        .exec(&*tx)
        .await?;
    notify(&tx).await?;
    tx.commit().await
}

/// Runs one claimed step (loaded) and records the outcome.
pub async fn run_claimed(
    store: &Store,
    clock: &dyn Clock,
    registry: &Registry,
    worker: &Worker,
    c: &Claimed,
) -> Result<Ran> {
    match load(store, c).await? {
        Some(step) => Ok(execute(store, clock, registry, worker, step).await?.0),
        None => Ok(Ran::Fenced),
    }
}

/// Runs a step and records the outcome, fenced by the lease (owner and
/// attempt). On success the follow-ups are enqueued in the same
/// transaction; the first is returned claimed, as a continuation.
async fn execute(
    store: &Store,
    clock: &dyn Clock,
    registry: &Registry,
    worker: &Worker,
    s: Loaded,
) -> Result<(Ran, Option<Loaded>)> {
    let outcome = match registry.0.get(&s.kind) {
        Some(h) => {
            let ctx = StepContext {
                store,
                clock,
                tenant: s.tenant,
                step_id: s.id,
                case_id: s.case_id,
                input: &s.input,
                attempt: s.attempts,
            };
            h.run(&ctx).await
        }
        None => Err(StepFailure {
            transient: false,
            message: format!("no handler for step kind `{}`", s.kind),
        }),
    };
    let outcome = match outcome {
        Ok(mut done)
            if store.backend() == Backend::Postgres
                && done.next.len() == 1
                && done.next[0].after_gate.is_none() =>
        {
            let cont = done.next.remove(0);
            return transition_pg(store, clock, worker, &s, done.output, cont).await;
        }
        other => other,
    };
    let now = clock.now();
    let tx = store.begin_tenant(s.tenant).await?;
    let fence = |u: sea_orm::UpdateMany<step::Entity>| {
        u.filter(step::Column::Id.eq(s.id))
            .filter(step::Column::State.eq(StepState::Running.as_str()))
            .filter(step::Column::LeaseOwner.eq(worker.owner.clone()))
            .filter(step::Column::Attempts.eq(s.attempts))
    };
    let mut continuation = None;
    let (ran, affected) = match outcome {
        Ok(done) => {
            StepState::Running.on(StepEvent::Succeed)?;
            let r = fence(step::Entity::update_many())
                .col_expr(step::Column::State, Expr::value(StepState::Succeeded.as_str()))
                .col_expr(step::Column::Output, Expr::value(done.output))
                .col_expr(step::Column::LeaseOwner, Expr::value(Option::<String>::None))
                .col_expr(step::Column::UpdatedAt, Expr::value(now))
                .exec(&*tx)
                .await?;
            if r.rows_affected == 1 && !done.next.is_empty() {
                // No automatic step starts under a kill switch: then the
                // follow-ups are only enqueued (claims hold them).
                let mut may_continue = !kill::engaged(&tx).await?;
                for n in done.next {
                    if may_continue && n.after_gate.is_none() {
                        continuation = Some(insert_claimed(&tx, clock, worker, n).await?);
                        may_continue = false;
                    } else {
                        enqueue(&tx, clock, n).await?;
                    }
                }
            }
            (Ran::Succeeded, r.rows_affected)
        }
        Err(f) => {
            let give_up = !f.transient || s.attempts >= s.max_attempts;
            let (ran, next) = if give_up {
                (Ran::Dead, StepEvent::GiveUp)
            } else {
                (Ran::Retried, StepEvent::RetryLater)
            };
            let to = StepState::Running.on(next)?;
            let r = fence(step::Entity::update_many())
                .col_expr(step::Column::State, Expr::value(to.as_str()))
                .col_expr(step::Column::RunAfter, Expr::value(now + backoff(s.attempts)))
                .col_expr(step::Column::LastError, Expr::value(f.message.clone()))
                .col_expr(step::Column::LeaseOwner, Expr::value(Option::<String>::None))
                .col_expr(step::Column::UpdatedAt, Expr::value(now))
                .exec(&*tx)
                .await?;
            if give_up && r.rows_affected == 1 {
                audit::record(
                    &tx,
                    clock,
                    &Actor::system(),
                    Event {
                        action: "step.dead",
                        target: format!("step:{}", s.id),
                        summary: json!({"kind": s.kind, "attempts": s.attempts, "error": f.message}),
                    },
                )
                .await?;
            }
            (ran, r.rows_affected)
        }
    };
    tx.commit().await?;
    if affected == 1 {
        Ok((ran, continuation))
    } else {
        Ok((Ran::Fenced, None))
    }
}

/// PostgreSQL, a step that succeeded with exactly one ungated follow-up (a
/// chain, the common case): the transition is three round trips. The
/// transaction opens already bound to the tenant (`BEGIN` and the RLS
/// setting in one message), then ONE statement records the fenced success,
/// checks both kill switches and inserts the follow-up (claimed by this
/// worker, or pending under a kill switch), then `COMMIT`.
async fn transition_pg(
    store: &Store,
    clock: &dyn Clock,
    worker: &Worker,
    s: &Loaded,
    output: Value,
    cont: NewStep,
) -> Result<(Ran, Option<Loaded>)> {
    use sea_orm::sqlx::{self, Row};
    cont.check()?;
    StepState::Running.on(StepEvent::Succeed)?;
    let now = clock.now();
    let id = Uuid::now_v7();
    let mut tx = store.pg_begin_tenant_sqlx(s.tenant).await?;
    let row = sqlx::query(
        "WITH k AS ( \
           SELECT (EXISTS (SELECT 1 FROM tenant_controls c WHERE c.tenant_id = $4 AND c.kill_switch_engaged_at IS NOT NULL) \
                OR EXISTS (SELECT 1 FROM platform_controls p WHERE p.kill_switch_engaged_at IS NOT NULL)) AS stop), \
         done AS ( \
           UPDATE steps SET state = 'succeeded', output = $1::json, lease_owner = NULL, updated_at = $2 \
           WHERE id = $3 AND tenant_id = $4 AND state = 'running' AND lease_owner = $5 AND attempts = $6 \
           RETURNING id), \
         ins AS ( \
           INSERT INTO steps (id, tenant_id, case_id, kind, state, input, output, attempts, max_attempts, \
                              run_after, lease_owner, lease_expires_at, after_gate_id, last_error, created_at, updated_at) \
           SELECT $7, $4, $8, $9, CASE WHEN k.stop THEN 'pending' ELSE 'running' END, $10::json, NULL, \
                  CASE WHEN k.stop THEN 0 ELSE 1 END, $11, $2, CASE WHEN k.stop THEN NULL ELSE $5 END, \
                  CASE WHEN k.stop THEN NULL ELSE $12::timestamptz END, NULL, NULL, $2, $2 \
           FROM done, k \
           RETURNING state) \
         SELECT (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM ins WHERE state = 'running') AS continued",
    )
    .bind(sqlx::types::Json(&output))
    .bind(now)
    .bind(s.id)
    .bind(s.tenant.0)
    .bind(&worker.owner)
    .bind(s.attempts)
    .bind(id)
    .bind(cont.case_id)
    .bind(&cont.kind)
    .bind(sqlx::types::Json(&cont.input))
    .bind(cont.max_attempts)
    .bind(now + worker.lease)
    .fetch_one(&mut *tx)
    .await
    .map_err(crate::store::sqlx_error)?;
    let done: i64 = row.try_get("done").map_err(crate::store::sqlx_error)?;
    let continued: i64 = row.try_get("continued").map_err(crate::store::sqlx_error)?;
    tx.commit().await.map_err(crate::store::sqlx_error)?;
    if done != 1 {
        return Ok((Ran::Fenced, None));
    }
    let continuation = (continued == 1).then_some(Loaded {
        id,
        tenant: s.tenant,
        attempts: 1,
        kind: cont.kind,
        case_id: cont.case_id,
        input: cont.input,
        max_attempts: cont.max_attempts,
    });
    Ok((Ran::Succeeded, continuation))
}

/// Inserts an (ungated) follow-up step already claimed by `worker`
/// (running, leased, attempt 1).
async fn insert_claimed(tx: &TenantTx, clock: &dyn Clock, worker: &Worker, new: NewStep) -> Result<Loaded> {
    let now = clock.now();
    let id = Uuid::now_v7();
    step::ActiveModel {
        id: Set(id),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(new.case_id),
        kind: Set(new.kind.clone()),
        state: Set(StepState::Running.as_str().to_owned()),
        input: Set(new.input.clone()),
        output: Set(None),
        attempts: Set(1),
        max_attempts: Set(new.max_attempts),
        run_after: Set(new.not_before.map_or(now, |t| std::cmp::max(t, now))),
        lease_owner: Set(Some(worker.owner.clone())),
        lease_expires_at: Set(Some(now + worker.lease)),
        after_gate_id: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&**tx)
    .await?;
    Ok(Loaded {
        id,
        tenant: tx.tenant(),
        attempts: 1,
        kind: new.kind,
        case_id: new.case_id,
        input: new.input,
        max_attempts: new.max_attempts,
    })
}
