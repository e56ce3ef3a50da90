//! The approvals inbox page: gates waiting for a person, with approve and
//! reject forms (plain HTML forms; htmx boosts them when loaded). The page
//! shows the buttons a person may use; the domain re-checks every rule.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::engine::state::{GateKind, GateState};
use vigil_orchestrator::engine::{cases, gates};
use vigil_orchestrator::{Error, Role};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::{message, page_error};

pub struct GateRow {
    id: Uuid,
    kind_label: &'static str,
    state: &'static str,
    case_title: String,
    case_severity: &'static str,
    requested_by: String,
    requested_at: String,
    payload: String,
    payload_hash: String,
    approvals: u32,
    quorum: u32,
    can_decide: bool,
    why_not: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "gates.html")]
pub struct GatesPage {
    gates: Vec<GateRow>,
    csrf: String,
}

fn label(k: GateKind) -> &'static str {
    match k {
        GateKind::EscalateCritical => "Escalate to Critical",
        GateKind::TicketWrite => "Write to the ticket system",
        GateKind::CloseCase => "Close the case",
        GateKind::ContainHost => "Contain a host (EDR)",
    }
}

fn may_decide(s: &AppState, role: Role, k: GateKind) -> bool {
    s.authz.allows(role, "gate", "decide") && s.authz.allows(role, &format!("gate:{k}"), "decide")
}

pub async fn inbox(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    let me = p.actor(Some(ctx.role), None).label;
    let csrf = match &p {
        Principal::Session { info, .. } => info.csrf.clone(),
        _ => String::new(),
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let mut rows = Vec::new();
        for state in [GateState::Escalated, GateState::Pending] {
            let (items, _) = gates::list(&tx, Some(state), None, 200, 0).await?;
            for g in items {
                let case = cases::get(&tx, g.case_id).await?;
                let approvals = gates::approvals(&tx, g.id, &g.payload_hash).await?;
                let quorum = gates::quorum(&tx, g.kind).await?;
                let (can_decide, why_not) = if g.requested_by == me {
                    (false, "You requested this: someone else decides it.")
                } else if !may_decide(&s, ctx.role, g.kind) {
                    (false, "Your role does not decide this kind of gate.")
                } else {
                    (true, "")
                };
                rows.push(GateRow {
                    id: g.id,
                    kind_label: label(g.kind),
                    state: g.state.as_str(),
                    case_title: case.title,
                    case_severity: case.severity.as_str(),
                    requested_by: g.requested_by,
                    requested_at: g.requested_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    payload: serde_json::to_string_pretty(&g.payload).unwrap_or_default(),
                    payload_hash: g.payload_hash,
                    approvals,
                    quorum,
                    can_decide,
                    why_not,
                });
            }
        }
        tx.commit().await?;
        Ok::<_, Error>(rows)
    }
    .await;
    match result {
        Ok(gates) => GatesPage { gates, csrf }.into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    payload_hash: String,
    #[serde(default)]
    reason: String,
}

async fn decide(
    s: AppState,
    p: Principal,
    ctx: TenantCtx,
    ip: String,
    id: String,
    approve: bool,
    f: DecisionForm,
) -> Response {
    let Ok(id) = Uuid::try_parse(&id) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such gate.");
    };
    let actor = p.actor(Some(ctx.role), Some(ip));
    let role = ctx.role;
    let authz = &s.authz;
    let may = move |k: GateKind| authz.allows(role, &format!("gate:{k}"), "decide");
    let decider = gates::Decider {
        actor: &actor,
        may_decide: &may,
    };
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        if approve {
            gates::approve(&tx, s.clock.as_ref(), &decider, id, &f.payload_hash).await?;
        } else {
            gates::reject(&tx, s.clock.as_ref(), &decider, id, &f.reason).await?;
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/gates").into_response(),
        Err(e) => page_error(e),
    }
}

pub async fn approve(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(s, p, ctx, peer.ip().to_string(), id, true, f).await
}

pub async fn reject(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(s, p, ctx, peer.ip().to_string(), id, false, f).await
}
