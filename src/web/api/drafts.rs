//! Drafts: generate, list, decide; approved briefs for readers.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::web::AppState;
use crate::web::api::{ApiResult, id};
use crate::web::auth::{Principal, TenantCtx};

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
            let conn = vigil_orchestrator::connect::connectors::Connectors::new(
                s.store.clone(),
                s.master_key.clone(),
                s.clock.clone(),
            )?;
            vigil_orchestrator::pipeline::drafts::generate_with_model(
                &conn,
                s.clock.as_ref(),
                ctx.tenant,
                case_id,
                m,
            )
            .await?
        }
        None => {
            let tx = s.store.begin_tenant(ctx.tenant).await?;
            let d = vigil_orchestrator::pipeline::drafts::generate(&tx, s.clock.as_ref(), case_id).await?;
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
    let v = vigil_orchestrator::pipeline::drafts::list(&tx, case_id, false).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": v.len(), "items": v})).into_response())
}

/// Approved briefs only (what executives see).
pub async fn approved_briefs(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(case_id): Path<String>,
) -> ApiResult {
    let case_id = id(&case_id, "case")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let v = vigil_orchestrator::pipeline::drafts::list(&tx, case_id, true).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": v.len(), "items": v})).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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
    let d = vigil_orchestrator::pipeline::drafts::decide(
        &tx,
        s.clock.as_ref(),
        &actor,
        draft,
        approve,
        reason.as_deref(),
    )
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct DraftEdit {
    body: vigil_orchestrator::pipeline::drafts::Body,
}

/// Edit-then-approve: the edited body becomes the case's next version,
/// approved, with the diff kept; the draft it came from is `edited`.
pub async fn edit_draft(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(draft): Path<String>,
    Json(b): Json<DraftEdit>,
) -> ApiResult {
    let draft = id(&draft, "draft")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), Some(c.0.ip().to_string()));
    let d =
        vigil_orchestrator::pipeline::drafts::edit_and_approve(&tx, s.clock.as_ref(), &actor, draft, &b.body)
            .await?;
    tx.commit().await?;
    Ok(Json(d).into_response())
}
