//! The tenant's audit log: page by page, and as a streamed export with the
//! chain fields and the signed checkpoints.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use vigil_orchestrator::Error;
use vigil_orchestrator::audit::{self, Event, chain, export};

use crate::web::AppState;
use crate::web::api::{ApiResult, Page, ip};
use crate::web::auth::{Principal, TenantCtx};

pub async fn list_audit(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(page): Query<Page>,
) -> ApiResult {
    let (limit, offset) = page.checked()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = audit::list(&tx, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": total, "items": items})).into_response())
}

/// `GET /api/v1/requests`: the tenant's API request log, newest first.
pub async fn list_requests(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Query(page): Query<Page>,
) -> ApiResult {
    let (limit, offset) = page.checked()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (items, total) = audit::requests::list(&tx, limit, offset).await?;
    tx.commit().await?;
    Ok(Json(json!({"total": total, "items": items})).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    #[param(pattern = "^(jsonl|csv)$")]
    format: Option<String>,
    /// From this time (RFC 3339, or a date: its midnight, UTC).
    from: Option<String>,
    /// Until this time (RFC 3339, or a date).
    to: Option<String>,
}

/// An RFC 3339 time, or a date (its midnight, UTC).
fn instant(name: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Some(t) = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(Some(t.and_utc()));
    }
    Err(Error::Invalid(format!(
        "{name} must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"
    )))
}

/// `GET /api/v1/audit/export?format=jsonl|csv&from&to`: the tenant's chain,
/// streamed page by page (constant memory), audited as `audit.export`.
pub async fn export_audit(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Query(q): Query<ExportQuery>,
) -> ApiResult {
    let format = export::Format::parse(q.format.as_deref().unwrap_or("jsonl"))?;
    let (from, to) = (
        instant("from", q.from.as_deref())?,
        instant("to", q.to.as_deref())?,
    );
    let now = s.clock.now();
    let exporter = export::Exporter::new(s.store.clone(), chain::Scope::Tenant(ctx.tenant), from, to, now)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    audit::record(
        &tx,
        s.clock.as_ref(),
        &p.actor(Some(ctx.role), ip(&c)),
        Event {
            action: "audit.export",
            target: format!("tenant:{}", ctx.tenant),
            summary: json!({"format": format.extension(), "from": from, "to": to}),
        },
    )
    .await?;
    tx.commit().await?;
    let stream = futures_util::stream::unfold((exporter, true), move |(mut ex, first)| async move {
        match ex.next_chunk().await {
            Ok(Some(lines)) => {
                let bytes = export::render(format, &lines, first).map_err(std::io::Error::other);
                Some((bytes, (ex, false)))
            }
            Ok(None) => None,
            // The status is sent: cut the body, so the file has no end line
            // and verification says it was cut.
            Err(e) => {
                tracing::warn!(error = %e, "audit export failed midway");
                Some((Err(std::io::Error::other(e)), (ex, false)))
            }
        }
    });
    let name = format!(
        "attachment; filename=\"vigil-audit-{}-{}.{}\"",
        ctx.tenant,
        now.format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
