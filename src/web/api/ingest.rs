//! Signed webhook ingest and the alert list. Ingest needs no session or
//! token: the HMAC signature over `timestamp.body` is the credential.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_orchestrator::{Error, pipeline::ingest};

use crate::web::auth::TenantCtx;
use crate::web::{ApiError, AppState};

/// Default ingest body limit (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

pub async fn receive(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(integration): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid"
        };
        ApiError::new(status, code, format!("request body refused: {}", r.body_text()))
    })?;
    let integration =
        Uuid::try_parse(&integration).map_err(|_| ApiError::from(Error::NotFound("integration")))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = ingest::Delivery {
        integration,
        timestamp: header("x-vigil-timestamp"),
        signature: header("x-vigil-signature"),
        body: &body,
        source_ip: Some(peer.ip().to_string()),
    };
    // An address that keeps sending bad signatures is refused before its
    // deliveries are checked (and audited): see `web::limits`.
    let kind = crate::web::limits::Kind::BadSignature;
    if let Err(wait) = s.limits.penalized(kind, peer.ip()) {
        return Ok(crate::web::limits::too_many("/api/", wait));
    }
    let (tenant, checked) = match ingest::verify(&s.store, s.clock.as_ref(), &s.master_key, &delivery).await {
        Ok(v) => v,
        Err(e @ Error::Unauthenticated(_)) => {
            if let Err(wait) = s.limits.failure(kind, peer.ip()) {
                return Ok(crate::web::limits::too_many("/api/", wait));
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let accepted = s.ingest.submit(tenant, integration, checked).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    #[param(maximum = 9007199254740992_u64)]
    offset: Option<u64>,
}

/// A stored alert: verbatim as received, with its observables.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: uuid::Uuid,
    pub integration_id: uuid::Uuid,
    /// `ocsf`, `ecs`, `crowdstrike` or `graylog`.
    pub format: String,
    pub source_id: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// The alert as its sender sent it (the JSON text, verbatim).
    pub raw: String,
    pub observables: Vec<vigil_orchestrator::pipeline::observables::Observable>,
    /// Observables beyond the per-alert bound, counted, not kept.
    pub observables_truncated: i64,
    /// One alert (not in a list): when it happened and how that was read
    /// (`event`, `received`, `out_of_bounds`), and its case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<uuid::Uuid>,
}

/// A page of alerts, bounded in bytes: `next_offset` continues it (null at
/// the end).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertView>,
    pub total: usize,
    pub next_offset: Option<u64>,
}

pub async fn list(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<AlertQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = crate::web::api::page(q.limit, q.offset)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let rows = ingest::list(&tx, limit, offset).await?;
    let fetched = rows.len();
    let mut items = Vec::with_capacity(rows.len());
    let mut bytes = 0usize;
    for a in rows {
        let observables = ingest::observables_of(&tx, a.id).await?;
        let item = AlertView {
            id: a.id,
            integration_id: a.integration_id,
            format: a.format,
            source_id: a.source_id,
            received_at: a.received_at,
            raw: a.raw,
            observables,
            observables_truncated: a.observables_truncated.into(),
            event_at: None,
            placed_by: None,
            case_id: None,
        };
        let size = serde_json::to_vec(&item).map_or(0, |v| v.len());
        if !items.is_empty() && bytes + size > crate::web::limits::MAX_ALERT_PAGE_BYTES {
            break;
        }
        bytes += size;
        items.push(item);
    }
    tx.commit().await?;
    let more = items.len() < fetched || fetched as u64 == limit;
    let next = more.then(|| offset + items.len() as u64);
    Ok(Json(AlertPage {
        total: items.len(),
        items,
        next_offset: next,
    })
    .into_response())
}

/// One alert, as a citation opens it: raw as received, its placement in
/// time, its observables (with roles) and its case.
pub async fn get(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(alert): Path<String>,
) -> Result<Response, ApiError> {
    let alert = crate::web::api::id(&alert, "alert")?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (a, case) = ingest::get(&tx, alert).await?;
    let observables = ingest::observables_of(&tx, a.id).await?;
    tx.commit().await?;
    Ok(Json(AlertView {
        id: a.id,
        integration_id: a.integration_id,
        format: a.format,
        source_id: a.source_id,
        received_at: a.received_at,
        event_at: Some(a.event_at.unwrap_or(a.received_at)),
        placed_by: Some(a.placed_by),
        raw: a.raw,
        observables,
        observables_truncated: a.observables_truncated.into(),
        case_id: case,
    })
    .into_response())
}
