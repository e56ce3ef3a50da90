//! Approval gates. A gate holds the exact proposed change; approval must
//! quote the hash of its canonical payload (a changed payload → 409).
//! Decisions: approve, reject (reason required), edit-then-approve (diff
//! kept). Nobody decides a gate they requested. Gates never auto-approve; an
//! unanswered gate escalates (state and audit event) after a set time.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::state::{CaseEvent, CaseState, GateEvent, GateKind, GateState, OutboxState, Severity};
use super::{cases, hash_json, json_diff, kill};
use crate::audit::{self, Actor, Event};
use crate::store::entity::{case, gate, gate_approval, outbox, tenant_control};
use crate::store::{Store, TenantTx};
use crate::{Clock, Error, Result, Role, identity};

/// Default time before an unanswered gate escalates.
pub const ESCALATE_AFTER: Duration = Duration::hours(4);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Gate {
    pub id: Uuid,
    pub case_id: Uuid,
    pub kind: GateKind,
    pub state: GateState,
    pub payload: Value,
    pub payload_hash: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub escalate_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub edit_diff: Option<Value>,
}

impl TryFrom<gate::Model> for Gate {
    type Error = Error;
    fn try_from(m: gate::Model) -> Result<Self> {
        Ok(Gate {
            id: m.id,
            case_id: m.case_id,
            kind: m.kind.parse()?,
            state: m.state.parse()?,
            payload: m.payload,
            payload_hash: m.payload_hash,
            requested_by: m.requested_by,
            requested_at: m.requested_at,
            escalate_at: m.escalate_at,
            escalated_at: m.escalated_at,
            decided_by: m.decided_by,
            decided_role: m.decided_role,
            decided_at: m.decided_at,
            reason: m.reason,
            edit_diff: m.edit_diff,
        })
    }
}

/// Who decides, and which gate kinds their role may decide (from the role
/// policies; the caller passes the check in).
pub struct Decider<'a> {
    pub actor: &'a Actor,
    pub may_decide: &'a (dyn Fn(GateKind) -> bool + Sync),
}

impl std::fmt::Debug for Decider<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("actor", &self.actor.label)
            .finish_non_exhaustive()
    }
}

fn str_field<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Checks a proposed change for its kind.
pub fn validate(kind: GateKind, payload: &Value) -> Result<()> {
    if !payload.is_object() {
        return Err(Error::Invalid("payload must be a JSON object".into()));
    }
    if super::canonical_json(payload).len() > 64 * 1024 {
        return Err(Error::Invalid("payload must be at most 64 KiB".into()));
    }
    match kind {
        GateKind::EscalateCritical => {
            str_field(payload, "reason")
                .ok_or_else(|| Error::Invalid("escalate_critical needs a `reason`".into()))?;
        }
        GateKind::CloseCase => {
            let r = str_field(payload, "resolution")
                .ok_or_else(|| Error::Invalid("close_case needs a `resolution`".into()))?;
            if !["benign", "false_positive", "true_positive", "duplicate"].contains(&r) {
                return Err(Error::Invalid(
                    "resolution must be benign, false_positive, true_positive or duplicate".into(),
                ));
            }
        }
        GateKind::TicketWrite => {
            let system = str_field(payload, "system")
                .ok_or_else(|| Error::Invalid("ticket_write needs a `system`".into()))?;
            if !["jira", "servicenow"].contains(&system) {
                return Err(Error::Invalid("system must be jira or servicenow".into()));
            }
            let op = str_field(payload, "operation")
                .ok_or_else(|| Error::Invalid("ticket_write needs an `operation`".into()))?;
            if !["create", "update", "comment", "transition"].contains(&op) {
                return Err(Error::Invalid(
                    "operation must be create, update, comment or transition".into(),
                ));
            }
            if str_field(payload, "integration_id")
                .and_then(|s| s.parse::<Uuid>().ok())
                .is_none()
            {
                return Err(Error::Invalid(
                    "ticket_write needs the `integration_id` of the ticket system".into(),
                ));
            }
            if op != "create" && str_field(payload, "ticket").is_none() {
                return Err(Error::Invalid(format!(
                    "a ticket {op} needs the `ticket` (issue key or sys_id) it applies to"
                )));
            }
        }
        GateKind::ContainHost => {
            if str_field(payload, "integration_id")
                .and_then(|s| s.parse::<Uuid>().ok())
                .is_none()
            {
                return Err(Error::Invalid(
                    "contain_host needs the `integration_id` of the EDR".into(),
                ));
            }
            str_field(payload, "device_id")
                .ok_or_else(|| Error::Invalid("contain_host needs the EDR's `device_id`".into()))?;
        }
    }
    Ok(())
}

/// What the approval binds to: the kind, the case and the exact payload.
pub fn payload_hash(kind: GateKind, case_id: Uuid, payload: &Value) -> String {
    hash_json(&json!({"kind": kind, "case": case_id, "payload": payload}))
}

async fn model(tx: &TenantTx, id: Uuid) -> Result<gate::Model> {
    gate::Entity::find_by_id(id)
        .filter(gate::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("gate"))
}

pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Gate> {
    model(tx, id).await?.try_into()
}

pub async fn list(
    tx: &TenantTx,
    state: Option<GateState>,
    case: Option<Uuid>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Gate>, u64)> {
    let mut q = gate::Entity::find().filter(gate::Column::TenantId.eq(tx.tenant().0));
    if let Some(s) = state {
        q = q.filter(gate::Column::State.eq(s.as_str()));
    }
    if let Some(c) = case {
        q = q.filter(gate::Column::CaseId.eq(c));
    }
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_asc(gate::Column::RequestedAt)
        .order_by_asc(gate::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((
        rows.into_iter().map(Gate::try_from).collect::<Result<_>>()?,
        total,
    ))
}

/// Requests a gate on an open case. Audited.
pub async fn request(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    case_id: Uuid,
    kind: GateKind,
    payload: Value,
    escalate_after: Duration,
) -> Result<Gate> {
    validate(kind, &payload)?;
    if kind.is_external() {
        crate::connect::connectors::check_target(tx, kind.as_str(), &payload).await?;
    }
    let c: cases::Case = cases::model(tx, case_id).await?.try_into()?;
    if c.state != CaseState::Open {
        return Err(Error::Conflict(format!("case is {}", c.state)));
    }
    if kind == GateKind::EscalateCritical && c.severity == Severity::Critical {
        return Err(Error::Conflict("case is already critical".into()));
    }
    let open = gate::Entity::find()
        .filter(gate::Column::TenantId.eq(tx.tenant().0))
        .filter(gate::Column::CaseId.eq(case_id))
        .filter(gate::Column::Kind.eq(kind.as_str()))
        .filter(gate::Column::State.is_in([GateState::Pending.as_str(), GateState::Escalated.as_str()]))
        .count(&**tx)
        .await?;
    if open > 0 && !kind.is_external() {
        return Err(Error::Conflict(format!(
            "a {kind} gate is already waiting on this case"
        )));
    }
    let now = clock.now();
    let hash = payload_hash(kind, case_id, &payload);
    let m = gate::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(case_id),
        kind: Set(kind.as_str().to_owned()),
        state: Set(GateState::Pending.as_str().to_owned()),
        payload: Set(payload.clone()),
        payload_hash: Set(hash.clone()),
        requested_by: Set(actor.label.clone()),
        requested_at: Set(now),
        escalate_at: Set(now + escalate_after),
        escalated_at: Set(None),
        decided_by: Set(None),
        decided_role: Set(None),
        decided_at: Set(None),
        reason: Set(None),
        edit_diff: Set(None),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "gate.request",
            target: format!("gate:{}", m.id),
            summary: json!({"after": {"case": case_id, "kind": kind, "payload_hash": hash}}),
        },
    )
    .await?;
    m.try_into()
}

/// The checks every decision makes before changing anything.
fn check_decider(g: &gate::Model, kind: GateKind, decider: &Decider<'_>) -> Result<()> {
    if !(decider.may_decide)(kind) {
        return Err(Error::Forbidden(format!("your role may not decide {kind} gates")));
    }
    if g.requested_by == decider.actor.label {
        return Err(Error::Forbidden(
            "you requested this gate: someone else must decide it".into(),
        ));
    }
    Ok(())
}

/// Approves a gate whose current payload hashes to `quoted_hash`, and
/// carries out what it authorizes: internal changes at once (in this
/// transaction), external writes through the outbox (exactly once).
pub async fn approve(
    tx: &TenantTx,
    clock: &dyn Clock,
    decider: &Decider<'_>,
    id: Uuid,
    quoted_hash: &str,
) -> Result<Gate> {
    let g = model(tx, id).await?;
    let kind: GateKind = g.kind.parse()?;
    check_decider(&g, kind, decider)?;
    let state: GateState = g.state.parse()?;
    let next = state.on(GateEvent::Approve)?;
    if g.payload_hash != quoted_hash.trim() {
        return Err(Error::Conflict(
            "payload hash mismatch: the proposal is not the one you approved".into(),
        ));
    }
    // Every check that can refuse comes before anything is recorded.
    if kind.is_external() {
        let ks = kill::state(tx).await?;
        if ks.engaged() {
            return Err(Error::KillSwitch(ks.describe()));
        }
    }
    let now = clock.now();
    // N-of-M: every approval is recorded, bound to the hash it approved; the
    // gate takes effect when the quorum of distinct approvers is reached.
    gate_approval::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        gate_id: Set(g.id),
        approver: Set(decider.actor.label.clone()),
        approver_role: Set(decider.actor.role.map(|r| r.as_str().to_owned())),
        payload_hash: Set(g.payload_hash.clone()),
        at: Set(now),
    }
    .insert(&**tx)
    .await
    .map_err(|e| match Error::from_insert(e, "your approval") {
        Error::Conflict(_) => Error::Conflict("you already approved this proposal".into()),
        other => other,
    })?;
    let need = quorum(tx, kind).await?;
    let have = approvals(tx, g.id, &g.payload_hash).await?;
    if have < need {
        audit::record(
            tx,
            clock,
            decider.actor,
            Event {
                action: "gate.approval_recorded",
                target: format!("gate:{}", g.id),
                summary: json!({"payload_hash": g.payload_hash, "approvals": have, "quorum": need}),
            },
        )
        .await?;
        return get(tx, id).await;
    }
    let mut c = cases::model(tx, g.case_id).await?;
    let mut effect = json!(null);
    let final_state = match kind {
        GateKind::EscalateCritical => {
            let before = c.severity.clone();
            c.severity = Severity::Critical.as_str().to_owned();
            effect = json!({"case": c.id, "severity": {"before": before, "after": "critical"}});
            next.on(GateEvent::Execute)?
        }
        GateKind::CloseCase => {
            let cs: CaseState = c.state.parse()?;
            c.state = cs.on(CaseEvent::Close)?.as_str().to_owned();
            effect = json!({"case": c.id, "state": {"before": cs, "after": c.state}});
            next.on(GateEvent::Execute)?
        }
        GateKind::TicketWrite | GateKind::ContainHost => {
            outbox::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tx.tenant().0),
                gate_id: Set(g.id),
                action: Set(kind.as_str().to_owned()),
                payload: Set(g.payload.clone()),
                idempotency_key: Set(format!("vigil-gate-{}", g.id)),
                state: Set(OutboxState::Pending.as_str().to_owned()),
                attempts: Set(0),
                run_after: Set(now),
                last_error: Set(None),
                result: Set(None),
                created_at: Set(now),
                executed_at: Set(None),
            }
            .insert(&**tx)
            .await
            .map_err(|e| Error::from_insert(e, "an outbox entry for this gate"))?;
            super::steps::notify(tx).await?;
            next
        }
    };
    if !kind.is_external() {
        let cam = case::ActiveModel {
            id: Set(c.id),
            severity: Set(c.severity.clone()),
            state: Set(c.state.clone()),
            updated_at: Set(now),
            ..Default::default()
        };
        cam.update(&**tx).await?;
    }
    record_decision(tx, clock, g.id, state, final_state, decider, None).await?;
    audit::record(
        tx,
        clock,
        decider.actor,
        Event {
            action: "gate.approve",
            target: format!("gate:{}", g.id),
            summary: json!({"before": {"state": state}, "after": {"state": final_state, "payload_hash": g.payload_hash, "effect": effect}}),
        },
    )
    .await?;
    get(tx, id).await
}

/// Distinct approvals of the gate's current proposal (`payload_hash`).
pub async fn approvals(tx: &TenantTx, gate: Uuid, payload_hash: &str) -> Result<u32> {
    let n = gate_approval::Entity::find()
        .filter(gate_approval::Column::TenantId.eq(tx.tenant().0))
        .filter(gate_approval::Column::GateId.eq(gate))
        .filter(gate_approval::Column::PayloadHash.eq(payload_hash))
        .count(&**tx)
        .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Most approvers a quorum may require.
pub const MAX_QUORUM: u32 = 5;

/// The tenant's quorum for a gate kind (default 1).
pub async fn quorum(tx: &TenantTx, kind: GateKind) -> Result<u32> {
    let row = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    Ok(row
        .and_then(|r| r.gate_quorum)
        .and_then(|q| q.get(kind.as_str()).and_then(Value::as_u64))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1))
}

/// Sets how many distinct people must approve gates of `kind` (1 to 5).
/// Audited with before and after.
pub async fn set_quorum(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    kind: GateKind,
    n: u32,
) -> Result<u32> {
    if !(1..=MAX_QUORUM).contains(&n) {
        return Err(Error::Invalid(format!("a quorum is 1 to {MAX_QUORUM} approvers")));
    }
    let before = quorum(tx, kind).await?;
    let existing = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    let mut map = existing
        .as_ref()
        .and_then(|r| r.gate_quorum.clone())
        .unwrap_or_else(|| json!({}));
    map[kind.as_str()] = json!(n);
    let am = tenant_control::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        gate_quorum: Set(Some(map)),
        ..Default::default()
    };
    if existing.is_some() {
        am.update(&**tx).await?;
    } else {
        am.insert(&**tx).await?;
    }
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "gate.quorum_set",
            target: format!("gate_kind:{kind}"),
            summary: json!({"before": before, "after": n}),
        },
    )
    .await?;
    Ok(n)
}

/// Records a decision, conditional on the state read before it (a
/// concurrent decision loses with a 409), then starts (approved) or cancels
/// (rejected) the steps waiting on the gate.
async fn record_decision(
    tx: &TenantTx,
    clock: &dyn Clock,
    gate_id: Uuid,
    from: GateState,
    to: GateState,
    decider: &Decider<'_>,
    reason: Option<&str>,
) -> Result<()> {
    let mut update = gate::Entity::update_many()
        .col_expr(gate::Column::State, Expr::value(to.as_str()))
        .col_expr(gate::Column::DecidedBy, Expr::value(decider.actor.label.clone()))
        .col_expr(
            gate::Column::DecidedRole,
            Expr::value(decider.actor.role.map(Role::as_str)),
        )
        .col_expr(gate::Column::DecidedAt, Expr::value(clock.now()))
        .filter(gate::Column::Id.eq(gate_id))
        .filter(gate::Column::State.eq(from.as_str()));
    if let Some(r) = reason {
        update = update.col_expr(gate::Column::Reason, Expr::value(r));
    }
    if update.exec(&**tx).await?.rows_affected != 1 {
        return Err(Error::Conflict("the gate was decided concurrently".into()));
    }
    super::steps::on_gate_decided(tx, clock, gate_id, to != GateState::Rejected).await?;
    Ok(())
}

/// Rejects a gate; a reason is required. Audited.
pub async fn reject(
    tx: &TenantTx,
    clock: &dyn Clock,
    decider: &Decider<'_>,
    id: Uuid,
    reason: &str,
) -> Result<Gate> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("a reason is required to reject".into()));
    }
    let g = model(tx, id).await?;
    let kind: GateKind = g.kind.parse()?;
    check_decider(&g, kind, decider)?;
    let state: GateState = g.state.parse()?;
    let next = state.on(GateEvent::Reject)?;
    record_decision(tx, clock, g.id, state, next, decider, Some(reason)).await?;
    audit::record(
        tx,
        clock,
        decider.actor,
        Event {
            action: "gate.reject",
            target: format!("gate:{}", g.id),
            summary: json!({"before": {"state": state}, "after": {"state": next, "reason": reason}}),
        },
    )
    .await?;
    get(tx, id).await
}

/// Replaces the proposal with the decider's edit (the diff is kept), then
/// approves exactly that edit.
pub async fn edit_and_approve(
    tx: &TenantTx,
    clock: &dyn Clock,
    decider: &Decider<'_>,
    id: Uuid,
    edited: Value,
) -> Result<Gate> {
    let g = model(tx, id).await?;
    let kind: GateKind = g.kind.parse()?;
    check_decider(&g, kind, decider)?;
    let state: GateState = g.state.parse()?;
    state.on(GateEvent::Approve)?;
    validate(kind, &edited)?;
    if kind.is_external() {
        crate::connect::connectors::check_target(tx, kind.as_str(), &edited).await?;
    }
    let diff = json_diff(&g.payload, &edited);
    if diff.is_empty() {
        return Err(Error::Invalid(
            "the edit changes nothing: approve the proposal instead".into(),
        ));
    }
    let hash = payload_hash(kind, g.case_id, &edited);
    let res = gate::Entity::update_many()
        .col_expr(gate::Column::Payload, Expr::value(edited.clone()))
        .col_expr(gate::Column::PayloadHash, Expr::value(hash.clone()))
        .col_expr(gate::Column::EditDiff, Expr::value(Value::Array(diff.clone())))
        .filter(gate::Column::Id.eq(g.id))
        .filter(gate::Column::PayloadHash.eq(g.payload_hash.clone()))
        .exec(&**tx)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Conflict("the gate changed concurrently".into()));
    }
    audit::record(
        tx,
        clock,
        decider.actor,
        Event {
            action: "gate.edit",
            target: format!("gate:{}", g.id),
            summary: json!({"before": {"payload_hash": g.payload_hash}, "after": {"payload_hash": hash}, "diff": diff}),
        },
    )
    .await?;
    approve(tx, clock, decider, id, &hash).await
}

/// Marks every gate unanswered past its escalation time as escalated, in
/// every tenant, with an audit event (the notification record). Returns how
/// many escalated.
pub async fn escalate_overdue(store: &Store, clock: &dyn Clock) -> Result<usize> {
    let now = clock.now();
    let mut n = 0;
    for t in identity::list_tenants(store.conn()).await? {
        let tx = store.begin_tenant(t.id).await?;
        let due = gate::Entity::find()
            .filter(gate::Column::TenantId.eq(t.id.0))
            .filter(gate::Column::State.eq(GateState::Pending.as_str()))
            .filter(gate::Column::EscalateAt.lte(now))
            .all(&*tx)
            .await?;
        for g in due {
            let next = GateState::Pending.on(GateEvent::Escalate)?;
            let res = gate::Entity::update_many()
                .col_expr(gate::Column::State, Expr::value(next.as_str()))
                .col_expr(gate::Column::EscalatedAt, Expr::value(now))
                .filter(gate::Column::Id.eq(g.id))
                .filter(gate::Column::State.eq(GateState::Pending.as_str()))
                .exec(&*tx)
                .await?;
            if res.rows_affected == 1 {
                audit::record(
                    &tx,
                    clock,
                    &Actor::system(),
                    Event {
                        action: "gate.escalated",
                        target: format!("gate:{}", g.id),
                        summary: json!({"kind": g.kind, "case": g.case_id, "waiting_since": g.requested_at}),
                    },
                )
                .await?;
                crate::connect::notifications::enqueue(
                    &tx,
                    clock,
                    "gate.escalated",
                    &g.id.to_string(),
                    json!({"gate": g.id, "kind": g.kind, "case": g.case_id, "waiting_since": g.requested_at, "escalated_at": now}),
                )
                .await?;
                n += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(n)
}
