//! Approval gates: request, list, read, decide (approve, reject, edit-then-approve)
//! with quorum progress.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_orchestrator::Role;
use vigil_orchestrator::engine::state::{GateKind, GateState};
use vigil_orchestrator::engine::{gates, outbox};

use crate::web::api::{ApiResult, id, page};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewGate {
    kind: String,
    payload: Value,
}

pub async fn request_gate(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
    Json(b): Json<NewGate>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let kind: GateKind = b.kind.parse()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let g = gates::request(
        &tx,
        s.clock.as_ref(),
        &actor,
        case_id,
        kind,
        b.payload,
        gates::ESCALATE_AFTER,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(gate_json(g, None))).into_response())
}

/// A gate as the API answers it: the gate, its state again as `status`,
/// and — read one at a time — what became of its approved write and how
/// many approvals its current proposal has of how many it needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GateView {
    #[serde(flatten)]
    pub gate: gates::Gate,
    pub status: GateState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<outbox::GateWrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
}

fn gate_json(g: gates::Gate, write: Option<outbox::GateWrite>) -> GateView {
    GateView {
        status: g.state,
        gate: g,
        write,
        approvals: None,
        quorum: None,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GateQuery {
    /// A gate state (`pending`, `escalated`, `approved`, `rejected`, `executed`).
    status: Option<String>,
    /// A case's id.
    #[param(format = Uuid)]
    case: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    #[param(maximum = 9007199254740992_u64)]
    offset: Option<u64>,
}

pub async fn list_gates(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<GateQuery>,
) -> ApiResult {
    let (limit, offset) = page(q.limit, q.offset)?;
    let state: Option<GateState> = q.status.as_deref().map(str::parse).transpose()?;
    let case = q.case.as_deref().map(|c| id(c, "case")).transpose()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = gates::list(&tx, state, case, limit, offset).await?;
    tx.commit().await?;
    let items: Vec<GateView> = items.into_iter().map(|g| gate_json(g, None)).collect();
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

pub async fn get_gate(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(gate_id): Path<String>,
) -> ApiResult {
    let gate_id = id(&gate_id, "gate")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let g = gates::get(&tx, gate_id).await?;
    let entry = outbox::write_of_gate(&tx, gate_id).await?;
    let progress = approval_progress(&tx, &g).await?;
    tx.commit().await?;
    Ok(Json(with_progress(gate_json(g, entry), progress)).into_response())
}

/// (approvals of the current proposal, quorum) for a gate.
async fn approval_progress(
    tx: &vigil_orchestrator::TenantTx,
    g: &gates::Gate,
) -> Result<(u32, u32), ApiError> {
    Ok((
        gates::approvals(tx, g.id, &g.payload_hash).await?,
        gates::quorum(tx, g.kind).await?,
    ))
}

fn with_progress(mut v: GateView, (approvals, quorum): (u32, u32)) -> GateView {
    v.approvals = Some(approvals);
    v.quorum = Some(quorum);
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Decision {
    #[serde(default)]
    payload_hash: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Approve,
    Reject,
    Edit,
}

async fn decide(
    s: AppState,
    p: Principal,
    ctx: TenantCtx,
    ip: String,
    gate_id: String,
    verb: Verb,
    b: Decision,
) -> ApiResult {
    let gate_id = id(&gate_id, "gate")?;
    let actor = p.actor(Some(ctx.role), Some(ip));
    let authz = &s.authz;
    let role: Role = ctx.role;
    let may = move |k: GateKind| authz.allows(role, &format!("gate:{k}"), "decide");
    let decider = gates::Decider {
        actor: &actor,
        may_decide: &may,
    };
    let missing = |f: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("`{f}` is required"),
        )
    };
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let g = match verb {
        Verb::Approve => {
            let h = b.payload_hash.ok_or_else(|| missing("payload_hash"))?;
            gates::approve(&tx, s.clock.as_ref(), &decider, gate_id, &h).await?
        }
        Verb::Reject => {
            gates::reject(
                &tx,
                s.clock.as_ref(),
                &decider,
                gate_id,
                b.reason.as_deref().unwrap_or(""),
            )
            .await?
        }
        Verb::Edit => {
            let edited = b.payload.ok_or_else(|| missing("payload"))?;
            gates::edit_and_approve(&tx, s.clock.as_ref(), &decider, gate_id, edited).await?
        }
    };
    let entry = outbox::write_of_gate(&tx, gate_id).await?;
    let progress = approval_progress(&tx, &g).await?;
    tx.commit().await?;
    Ok(Json(with_progress(gate_json(g, entry), progress)).into_response())
}

macro_rules! decision_handler {
    ($name:ident, $verb:expr) => {
        pub async fn $name(
            State(s): State<AppState>,
            Extension(p): Extension<Principal>,
            Extension(ctx): Extension<TenantCtx>,
            c: ConnectInfo<SocketAddr>,
            Path(gate_id): Path<String>,
            Json(b): Json<Decision>,
        ) -> ApiResult {
            decide(s, p, ctx, c.0.ip().to_string(), gate_id, $verb, b).await
        }
    };
}

decision_handler!(approve_gate, Verb::Approve);
decision_handler!(reject_gate, Verb::Reject);
decision_handler!(edit_gate, Verb::Edit);
