//! Signed webhook ingest and the alert list. Ingest needs no session or
//! token: the HMAC signature over `timestamp.body` is the credential.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::{Error, ingest};

use super::auth::TenantCtx;
use super::{ApiError, AppState};

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
    let (tenant, checked) = ingest::verify(&s.store, s.clock.as_ref(), &s.master_key, &delivery).await?;
    let accepted = s.ingest.submit(tenant, integration, checked).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    limit: Option<u64>,
}

pub async fn list(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(q): Query<AlertQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "limit must be 1 to 500",
        ));
    }
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let rows = ingest::list(&tx, limit).await?;
    let mut items = Vec::with_capacity(rows.len());
    for a in rows {
        let observables = ingest::observables_of(&tx, a.id).await?;
        items.push(json!({"id": a.id, "integration_id": a.integration_id, "format": a.format, "source_id": a.source_id,
                          "received_at": a.received_at, "raw": a.raw, "observables": observables}));
    }
    tx.commit().await?;
    Ok(Json(json!({"total": items.len(), "items": items})).into_response())
}
