//! The engine's API: cases, gates (request, approvals inbox, decisions) and
//! the kill switches.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_orchestrator::engine::state::{CaseState, GateKind, GateState, Severity};
use vigil_orchestrator::engine::{cases, gates, kill, outbox, steps};
use vigil_orchestrator::{Error, Role};

use super::auth::{Principal, TenantCtx};
use super::{ApiError, AppState};

type ApiResult = Result<Response, ApiError>;

fn id(s: &str, what: &'static str) -> Result<Uuid, ApiError> {
    // A malformed id is as unknown as another tenant's.
    Uuid::try_parse(s).map_err(|_| ApiError::from(Error::NotFound(what)))
}

use super::api::page;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    title: String,
    #[serde(default)]
    severity: Option<String>,
}

pub async fn open_case(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<NewCase>,
) -> ApiResult {
    let severity: Severity = b.severity.as_deref().unwrap_or("medium").parse()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let case = cases::open(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        &b.title,
        severity,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(case)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    state: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

pub async fn list_cases(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<CaseQuery>,
) -> ApiResult {
    let (limit, offset) = page(q.limit, q.offset)?;
    let state: Option<CaseState> = q.state.as_deref().map(str::parse).transpose()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = cases::list(&tx, state, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

pub async fn get_case(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let case = cases::get(&tx, case_id).await?;
    let (g, _) = gates::list(&tx, None, Some(case_id), 500, 0).await?;
    let st = steps::list(&tx, Some(case_id), None, 500).await?;
    let alerts: Vec<Value> = vigil_orchestrator::correlate::alerts_of(&tx, case_id)
        .await?
        .into_iter()
        .map(|(alert, joined_by)| json!({"alert_id": alert, "joined_by": joined_by}))
        .collect();
    tx.commit().await?;
    let mut v = serde_json::to_value(case).map_err(|e| ApiError::internal("case", &e))?;
    v["gates"] = serde_json::to_value(g).map_err(|e| ApiError::internal("case", &e))?;
    v["steps"] = serde_json::to_value(st).map_err(|e| ApiError::internal("case", &e))?;
    v["alerts"] = Value::Array(alerts);
    Ok(Json(v).into_response())
}

/// The case's timeline: its alerts in event-time order, each with the
/// pointer to the field that placed it.
pub async fn case_timeline(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let rows = vigil_orchestrator::timeline::of_case(&tx, case_id).await?;
    tx.commit().await?;
    Ok(Json(json!({"case": case_id, "events": rows})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

fn gate_json(g: gates::Gate, entry: Option<vigil_orchestrator::store::entity::outbox::Model>) -> Value {
    let mut v = serde_json::to_value(&g).unwrap_or(Value::Null);
    v["status"] = json!(g.state);
    if let Some(o) = entry {
        v["write"] = json!({
            "state": o.state, "attempts": o.attempts, "idempotency_key": o.idempotency_key,
            "last_error": o.last_error, "result": o.result, "executed_at": o.executed_at,
        });
    }
    v
}

#[derive(Debug, Deserialize)]
pub struct GateQuery {
    status: Option<String>,
    case: Option<String>,
    limit: Option<u64>,
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
    let items: Vec<Value> = items.into_iter().map(|g| gate_json(g, None)).collect();
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
    let entry = outbox::of_gate(&tx, gate_id).await?;
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

fn with_progress(mut v: Value, (approvals, quorum): (u32, u32)) -> Value {
    v["approvals"] = json!(approvals);
    v["quorum"] = json!(quorum);
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let entry = outbox::of_gate(&tx, gate_id).await?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    engaged: bool,
}

pub async fn get_kill_switch(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let k = kill::state(&tx).await?;
    tx.commit().await?;
    Ok(Json(json!({"engaged": k.engaged(), "tenant": k.tenant, "platform": k.platform})).into_response())
}

/// Engage: tenant admin or security engineer. Release: only a tenant admin,
/// in an MFA-verified session (never a token).
pub async fn set_kill_switch(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<KillSwitch>,
) -> ApiResult {
    if !b.engaged {
        let person_with_mfa = matches!(&p, Principal::Session { info, .. } if info.mfa_verified);
        if !s.authz.allows(ctx.role, "kill_switch", "release") || !person_with_mfa {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only a tenant admin, signed in with MFA, may release the kill switch",
            ));
        }
    }
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let k = kill::set_tenant(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        b.engaged,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"engaged": k.engaged(), "tenant": k.tenant, "platform": k.platform})).into_response())
}

pub async fn set_platform_kill_switch(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<KillSwitch>,
) -> ApiResult {
    let tx = s.store.begin_platform().await?;
    let e = kill::set_platform(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(Role::PlatformAdmin), Some(c.0.ip().to_string())),
        b.engaged,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"engaged": e.is_some(), "platform": e})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct StepQuery {
    state: Option<String>,
    case: Option<String>,
    limit: Option<u64>,
}

/// Steps (e.g. `?state=dead`: the dead-letter queue).
pub async fn list_steps(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<StepQuery>,
) -> ApiResult {
    let (limit, _) = page(q.limit, None)?;
    let state = q.state.as_deref().map(str::parse).transpose()?;
    let case = q.case.as_deref().map(|c| id(c, "case")).transpose()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = steps::list(&tx, case, state, limit).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}

/// An engineer retries a dead-lettered step.
pub async fn retry_step(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(step_id): Path<String>,
) -> ApiResult {
    let step_id = id(&step_id, "step")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = steps::retry_dead(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        step_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

fn quorum_json(q: &[(GateKind, u32)]) -> Value {
    Value::Object(q.iter().map(|(k, n)| (k.as_str().to_owned(), json!(n))).collect())
}

/// How many distinct people must approve each gate kind.
pub async fn get_quorum(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let mut q = Vec::new();
    for k in GateKind::ALL {
        q.push((*k, gates::quorum(&tx, *k).await?));
    }
    tx.commit().await?;
    Ok(Json(quorum_json(&q)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuorum {
    kind: String,
    quorum: u32,
}

pub async fn set_quorum(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<SetQuorum>,
) -> ApiResult {
    let kind: GateKind = b.kind.parse()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    gates::set_quorum(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        kind,
        b.quorum,
    )
    .await?;
    let mut q = Vec::new();
    for k in GateKind::ALL {
        q.push((*k, gates::quorum(&tx, *k).await?));
    }
    tx.commit().await?;
    Ok(Json(quorum_json(&q)).into_response())
}

/// The tenant's correlation settings (window, weights, threshold, ignore list).
pub async fn get_correlation(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::correlate::settings(&tx).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

pub async fn set_correlation(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<vigil_orchestrator::correlate::Settings>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::correlate::set_settings(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), Some(c.0.ip().to_string())),
        b,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeCase {
    into: String,
}

/// Merges this case into another (its alerts move; provenance kept).
pub async fn merge_case(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
    Json(b): Json<MergeCase>,
) -> ApiResult {
    let from = id(&case_id, "case")?;
    let into = id(&b.into, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    vigil_orchestrator::correlate::merge(&tx, s.clock.as_ref(), &actor, from, into).await?;
    let v = cases::get(&tx, into).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitCase {
    alert_ids: Vec<String>,
    #[serde(default)]
    title: Option<String>,
}

/// Splits alerts out of this case into a new one; answers the new case (201).
pub async fn split_case(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
    Json(b): Json<SplitCase>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let alerts = b
        .alert_ids
        .iter()
        .map(|a| id(a, "alert"))
        .collect::<Result<Vec<_>, _>>()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let new = vigil_orchestrator::correlate::split(
        &tx,
        s.clock.as_ref(),
        &actor,
        case_id,
        &alerts,
        b.title.as_deref(),
    )
    .await?;
    let v = cases::get(&tx, new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// IOC matches among the case's alerts, each with its evidence pointer.
pub async fn case_signals(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::iocs::signals(&tx, case_id).await?;
    tx.commit().await?;
    Ok(Json(json!({"case": case_id, "signals": v})).into_response())
}

pub async fn list_iocs(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v: Vec<Value> = vigil_orchestrator::iocs::list(&tx, 10_000)
        .await?
        .into_iter()
        .map(|i| json!({"kind": i.kind, "value": i.value, "source": i.source, "description": i.description, "created_at": i.created_at, "created_by": i.created_by}))
        .collect();
    tx.commit().await?;
    Ok(Json(json!({"items": v})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IocImport {
    format: String,
    content: String,
}

/// Imports indicators (CSV or a STIX 2.1 bundle), all or nothing.
pub async fn import_iocs(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<IocImport>,
) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let r = vigil_orchestrator::iocs::import(&tx, s.clock.as_ref(), &actor, &b.format, &b.content).await?;
    tx.commit().await?;
    Ok(Json(r).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    /// An `llm` integration of the tenant to draft with (else the
    /// deterministic drafter).
    #[serde(default)]
    model: Option<String>,
}

/// Drafts the case (deterministic drafter, or the tenant's model; either
/// way validated before it is stored). Body optional: `{"model": id}`.
pub async fn generate_draft(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let req: DraftRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DraftRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| vigil_orchestrator::Error::Invalid(format!("body: {e}")))?
    };
    let d = match req.model {
        Some(m) => {
            let m = id(&m, "integration")?;
            let conn = vigil_orchestrator::connectors::Connectors::new(
                s.store.clone(),
                s.master_key.clone(),
                s.clock.clone(),
            )?;
            vigil_orchestrator::drafts::generate_with_model(&conn, s.clock.as_ref(), ctx.tenant, case_id, m)
                .await?
        }
        None => {
            let tx = s.store.begin_tenant(ctx.tenant).await?;
            let d = vigil_orchestrator::drafts::generate(&tx, s.clock.as_ref(), case_id).await?;
            tx.commit().await?;
            d
        }
    };
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

pub async fn list_drafts(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::drafts::list(&tx, case_id, false).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": v})).into_response())
}

/// Approved briefs only (what executives see).
pub async fn approved_briefs(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::drafts::list(&tx, case_id, true).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": v})).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftDecision {
    #[serde(default)]
    reason: Option<String>,
}

async fn decide_draft(
    s: AppState,
    p: Principal,
    ctx: TenantCtx,
    ip: String,
    draft: String,
    approve: bool,
    reason: Option<String>,
) -> ApiResult {
    let draft = id(&draft, "draft")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(ip));
    let d =
        vigil_orchestrator::drafts::decide(&tx, s.clock.as_ref(), &actor, draft, approve, reason.as_deref())
            .await?;
    tx.commit().await?;
    Ok(Json(d).into_response())
}

pub async fn approve_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(draft): Path<String>,
) -> ApiResult {
    decide_draft(s, p, ctx, c.0.ip().to_string(), draft, true, None).await
}

pub async fn reject_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(draft): Path<String>,
    Json(b): Json<DraftDecision>,
) -> ApiResult {
    decide_draft(s, p, ctx, c.0.ip().to_string(), draft, false, b.reason).await
}
