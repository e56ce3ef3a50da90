//! Cases: open, list, read, timeline, merge, split, correlation signals.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_orchestrator::engine::state::{CaseState, Severity};
use vigil_orchestrator::engine::{cases, gates, steps};

use crate::web::api::{ApiResult, id, ip, page};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// `open` or `closed`.
    #[param(pattern = "^(open|closed)$")]
    state: Option<String>,
    /// Whose cases: `me` (the caller's), `none` (nobody's), or a member's
    /// user id.
    #[param(
        pattern = "^(me|none|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$"
    )]
    assignee: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    #[param(maximum = 9007199254740992_u64)]
    offset: Option<u64>,
}

pub async fn list_cases(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<CaseQuery>,
) -> ApiResult {
    let (limit, offset) = page(q.limit, q.offset)?;
    let state: Option<CaseState> = q.state.as_deref().map(str::parse).transpose()?;
    let assignee = match q.assignee.as_deref() {
        None => None,
        Some("none") => Some(cases::Assignee::Nobody),
        // An API token is nobody's assignee: "me" finds nothing for it.
        Some("me") => Some(cases::Assignee::User(
            p.user_id().map_or(uuid::Uuid::nil(), |u| u.0),
        )),
        Some(u) => Some(cases::Assignee::User(uuid::Uuid::try_parse(u).map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "assignee must be me, none or a member's user id",
            )
        })?)),
    };
    let f = cases::Filter {
        state,
        assignee,
        ..cases::Filter::default()
    };
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = cases::search(&tx, &f, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

/// One alert of a case and how it came in (`joined_by`: null for the alert
/// that opened the case; else the shared entities, a merge or a split).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaseAlert {
    pub alert_id: uuid::Uuid,
    pub joined_by: Option<Value>,
}

/// An evidence item of a case, without the vendor's answer
/// (`GET /api/v1/evidence/{id}` has it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvidenceSummary {
    pub id: uuid::Uuid,
    pub round: i64,
    pub integration_id: uuid::Uuid,
    pub source: String,
    pub subject: String,
    /// `collected` or `not_collected`.
    pub status: String,
    pub error: Option<String>,
    pub collected_at: chrono::DateTime<chrono::Utc>,
}

/// A case with everything about it: its gates, steps, alerts, evidence and
/// investigation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: cases::Case,
    pub evidence: Vec<EvidenceSummary>,
    pub gates: Vec<gates::Gate>,
    pub steps: Vec<steps::StepView>,
    pub alerts: Vec<CaseAlert>,
    pub investigation: vigil_orchestrator::pipeline::investigation::Progress,
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
    let investigation = vigil_orchestrator::pipeline::investigation::progress(&tx, case_id).await?;
    let alerts = vigil_orchestrator::pipeline::correlate::alerts_of(&tx, case_id)
        .await?
        .into_iter()
        .map(|(alert_id, joined_by)| CaseAlert { alert_id, joined_by })
        .collect();
    let evidence = vigil_orchestrator::pipeline::evidence::of_case(&tx, case_id)
        .await?
        .into_iter()
        .map(|e| EvidenceSummary {
            id: e.id,
            round: e.round,
            integration_id: e.integration_id,
            source: e.source,
            subject: e.subject,
            status: e.status,
            error: e.error,
            collected_at: e.collected_at,
        })
        .collect();
    tx.commit().await?;
    Ok(Json(CaseDetail {
        case,
        evidence,
        gates: g,
        steps: st,
        alerts,
        investigation,
    })
    .into_response())
}

/// A case's timeline: its alerts (`events`) and what its evidence logged
/// (`enrichment`), each in event-time order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub case: uuid::Uuid,
    pub events: Vec<vigil_orchestrator::pipeline::timeline::Row>,
    pub enrichment: Vec<vigil_orchestrator::pipeline::evidence::Event>,
}

/// The indicator matches among a case's alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Signals {
    pub case: uuid::Uuid,
    pub signals: Vec<vigil_orchestrator::pipeline::iocs::Signal>,
}

/// A round asked for: `queued` false when one was already waiting to start.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Investigating {
    pub case: uuid::Uuid,
    pub queued: bool,
}

/// The case's timeline: its alerts in event-time order, each with the
/// pointer to the field that placed it (`events`), and the events its
/// evidence items tell of (`enrichment`: Graylog messages, each with its
/// evidence item and pointer), in event-time order.
pub async fn case_timeline(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let rows = vigil_orchestrator::pipeline::timeline::of_case(&tx, case_id).await?;
    let items = vigil_orchestrator::pipeline::evidence::newest(&tx, case_id).await?;
    tx.commit().await?;
    let enrichment = vigil_orchestrator::pipeline::evidence::events(&items);
    Ok(Json(Timeline {
        case: case_id,
        events: rows,
        enrichment,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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
    vigil_orchestrator::pipeline::correlate::merge(&tx, s.clock.as_ref(), &actor, from, into).await?;
    let v = cases::get(&tx, into).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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
    let new = vigil_orchestrator::pipeline::correlate::split(
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
    let v = vigil_orchestrator::pipeline::iocs::signals(&tx, case_id).await?;
    tx.commit().await?;
    Ok(Json(Signals {
        case: case_id,
        signals: v,
    })
    .into_response())
}

/// Why a case's alerts are together: each alert's provenance and, per
/// entity, whether it links and why (weight by kind and role, prevalence).
pub async fn case_correlation(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::correlate::explain(&tx, case_id).await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

/// A person starts a new investigation round now (202; `queued: false`
/// when a round is already waiting to start, which will see everything).
pub async fn investigate(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), ip(&c));
    let queued =
        vigil_orchestrator::pipeline::investigation::rerun(&tx, s.clock.as_ref(), &actor, case_id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Investigating {
            case: case_id,
            queued,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Assignment {
    /// The member to assign the case to (a user id), or `null` for nobody.
    #[schema(format = Uuid)]
    user_id: Option<String>,
}

/// Assigns the case to a member who works cases, or to nobody; answers the
/// case.
pub async fn assign_case(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
    Json(b): Json<Assignment>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let user = b
        .user_id
        .as_deref()
        .map(|u| id(u, "member"))
        .transpose()?
        .map(vigil_orchestrator::ids::UserId);
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), ip(&c));
    let authz = &s.authz;
    let v = cases::assign(&tx, s.clock.as_ref(), &actor, case_id, user, &|r| {
        authz.allows(r, "case", "write")
    })
    .await?;
    tx.commit().await?;
    Ok(Json(v).into_response())
}

/// The case's comments, oldest first (with those of cases merged into it).
pub async fn list_comments(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
    Query(q): Query<crate::web::api::Page>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let (limit, offset) = q.checked()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = cases::comments(&tx, case_id, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewComment {
    /// 1 to 10,000 characters; line breaks and tabs allowed.
    #[schema(min_length = 1, max_length = 10000)]
    body: String,
}

/// Adds a comment (201 with the comment).
pub async fn add_comment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(case_id): Path<String>,
    Json(b): Json<NewComment>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), ip(&c));
    let v = cases::comment(&tx, s.clock.as_ref(), &actor, case_id, &b.body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}
