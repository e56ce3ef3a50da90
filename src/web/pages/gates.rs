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
    pub id: Uuid,
    pub kind_label: &'static str,
    pub state: &'static str,
    pub case_id: Uuid,
    pub case_title: String,
    pub readable: Readable,
    pub case_severity: &'static str,
    pub requested_by: String,
    pub requested_at: String,
    pub payload: String,
    pub payload_hash: String,
    pub approvals: u32,
    pub quorum: u32,
    pub can_decide: bool,
    pub why_not: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "gates.html")]
pub struct GatesPage {
    gates: Vec<GateRow>,
    csrf: String,
    /// The approver may open the case behind a gate.
    case_links: bool,
}

pub fn label(k: GateKind) -> &'static str {
    match k {
        GateKind::EscalateCritical => "Escalate to Critical",
        GateKind::TicketWrite => "Write to the ticket system",
        GateKind::CloseCase => "Close the case",
        GateKind::ContainHost => "Contain a host (EDR)",
    }
}

pub fn may_decide(s: &AppState, role: Role, k: GateKind) -> bool {
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
        let people = crate::web::pages::people::People::load(&tx).await?;
        let mut rows = Vec::new();
        for state in [GateState::Escalated, GateState::Pending] {
            let (items, _) = gates::list(&tx, Some(state), None, 200, 0).await?;
            for g in items {
                let case = cases::get(&tx, g.case_id).await?;
                rows.push(
                    row(
                        &s,
                        &tx,
                        &people,
                        ctx.role,
                        &me,
                        g,
                        &case.title,
                        case.severity.as_str(),
                    )
                    .await?,
                );
            }
        }
        tx.commit().await?;
        Ok::<_, Error>(rows)
    }
    .await;
    match result {
        Ok(gates) => GatesPage {
            gates,
            csrf,
            case_links: s.authz.allows(ctx.role, "case", "read"),
        }
        .into_response(),
        Err(e) => page_error(e),
    }
}

/// One gate as the inbox and the case page show it.
#[allow(clippy::too_many_arguments)]
pub async fn row(
    s: &AppState,
    tx: &vigil_orchestrator::store::TenantTx,
    people: &crate::web::pages::people::People,
    role: Role,
    me: &str,
    g: gates::Gate,
    case_title: &str,
    case_severity: &'static str,
) -> Result<GateRow, Error> {
    let approvals = gates::approvals(tx, g.id, &g.payload_hash).await?;
    let quorum = gates::quorum(tx, g.kind).await?;
    let (can_decide, why_not) = if !g.state.is_open() {
        (false, "")
    } else if g.requested_by == me {
        (false, "You requested this: someone else decides it.")
    } else if !may_decide(s, role, g.kind) {
        (false, "Your role does not decide this kind of gate.")
    } else {
        (true, "")
    };
    Ok(GateRow {
        id: g.id,
        kind_label: label(g.kind),
        state: g.state.as_str(),
        case_id: g.case_id,
        case_title: case_title.to_owned(),
        readable: readable(g.kind, &g.payload),
        case_severity,
        requested_by: people.name(&g.requested_by),
        requested_at: g.requested_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        payload: serde_json::to_string_pretty(&g.payload).unwrap_or_default(),
        payload_hash: g.payload_hash,
        approvals,
        quorum,
        can_decide,
        why_not,
    })
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    payload_hash: String,
    #[serde(default)]
    reason: String,
    /// Where the form was (`case`: back to the case page).
    #[serde(default)]
    from: String,
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
        let g = if approve {
            gates::approve(&tx, s.clock.as_ref(), &decider, id, &f.payload_hash).await?
        } else {
            gates::reject(&tx, s.clock.as_ref(), &decider, id, &f.reason).await?
        };
        tx.commit().await?;
        Ok::<_, Error>(g.case_id)
    }
    .await;
    match result {
        Ok(case) if f.from == "case" => Redirect::to(&format!("/cases/{case}#gates")).into_response(),
        Ok(_) => Redirect::to("/gates").into_response(),
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

/// A gate's payload as a person reads it: what will happen, its fields by
/// name, and (for Vigil's own proposals) the signals behind it with their
/// citations. The exact JSON and its hash stay beside it.
#[derive(Debug, Default)]
pub struct Readable {
    pub headline: String,
    pub fields: Vec<(String, String)>,
    pub signals: Vec<ReadableSignal>,
}

#[derive(Debug)]
pub struct ReadableSignal {
    pub name: String,
    pub weight: String,
    pub cites: Vec<crate::web::pages::cases::CiteLink>,
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn readable(kind: GateKind, p: &serde_json::Value) -> Readable {
    let get = |k: &str| p.get(k).map(text_of).unwrap_or_default();
    let mut r = Readable::default();
    let mut shown: Vec<&str> = vec!["signals", "total", "proposed_by", "draft"];
    match kind {
        GateKind::EscalateCritical => {
            r.headline = "Raise the case's severity to Critical".into();
            r.fields.push(("Reason".into(), get("reason")));
            shown.push("reason");
        }
        GateKind::CloseCase => {
            r.headline = format!("Close the case as {}", get("resolution").replace('_', " "));
            shown.push("resolution");
        }
        GateKind::ContainHost => {
            r.headline = format!("Contain host {} through the EDR", get("host"));
            shown.push("host");
        }
        GateKind::TicketWrite => {
            let system = match get("system").as_str() {
                "jira" => "Jira issue",
                "servicenow" => "ServiceNow incident",
                _ => "ticket",
            };
            r.headline = match get("operation").as_str() {
                "create" => format!("Create a {system}"),
                "update" => format!("Update a {system}"),
                "comment" => format!("Comment on a {system}"),
                "transition" => format!("Move a {system} to another state"),
                other => format!("{other} a {system}"),
            };
            shown.extend(["system", "operation", "integration_id"]);
            if let Some(fields) = p.get("fields").and_then(serde_json::Value::as_object) {
                shown.push("fields");
                for (k, v) in fields {
                    let label = match k.as_str() {
                        "summary" => "Summary".to_owned(),
                        "short_description" => "Short description".to_owned(),
                        "description" => "Description".to_owned(),
                        other => other.replace('_', " "),
                    };
                    r.fields.push((label, text_of(v)));
                }
            }
        }
    }
    if let Some(obj) = p.as_object() {
        for (k, v) in obj {
            if !shown.contains(&k.as_str()) {
                r.fields.push((k.replace('_', " "), text_of(v)));
            }
        }
    }
    if let Some(signals) = p.get("signals").and_then(serde_json::Value::as_array) {
        for s in signals {
            let cites = s
                .get("cites")
                .cloned()
                .and_then(|c| {
                    serde_json::from_value::<Vec<vigil_orchestrator::pipeline::drafts::Citation>>(c).ok()
                })
                .unwrap_or_default();
            r.signals.push(ReadableSignal {
                name: s.get("name").map(text_of).unwrap_or_default(),
                weight: s
                    .get("weight")
                    .and_then(serde_json::Value::as_f64)
                    .map(|w| format!("{w:.1}"))
                    .unwrap_or_default(),
                cites: crate::web::pages::cases::cite_links(&cites),
            });
        }
    }
    r
}
