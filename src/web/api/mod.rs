//! The JSON API under `/api/v1`, one file per resource, and the health
//! probes. Lists answer `{"items", "total"}` with `limit`/`offset`; created
//! resources answer 201 with their `id`. Handlers parse input, call the core
//! (`vigil_orchestrator`), and answer; errors become the one JSON shape in
//! [`crate::web::error`]. Access is declared in [`crate::web::routes`] only.

pub mod audit;
pub mod cases;
pub mod drafts;
pub mod evidence;
pub mod gates;
pub mod health;
pub mod ingest;
pub mod integrations;
pub mod iocs;
pub mod members;
pub mod settings;
pub mod sso;
pub mod steps;
pub mod tenants;
pub mod tokens;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use vigil_orchestrator::Role;

use crate::web::ApiError;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// `?limit=&offset=` of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    #[param(maximum = 9007199254740992_u64)]
    offset: Option<u64>,
}

/// The largest `limit` of a list.
pub const MAX_LIMIT: u64 = 500;
/// The largest `offset` (2^53: exact in every JSON number reader).
pub const MAX_OFFSET: u64 = 1 << 53;

/// Checks a list's `limit` (default 50) and `offset` (default 0).
pub(crate) fn page(limit: Option<u64>, offset: Option<u64>) -> Result<(u64, u64), ApiError> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("offset must be 0 to {MAX_OFFSET}"),
        ));
    }
    Ok((limit, offset))
}

impl Page {
    fn checked(&self) -> Result<(u64, u64), ApiError> {
        page(self.limit, self.offset)
    }
}

pub(crate) fn ip(c: &ConnectInfo<SocketAddr>) -> Option<String> {
    Some(c.0.ip().to_string())
}

pub(crate) fn parse_role(s: &str) -> Result<Role, ApiError> {
    s.parse::<Role>().map_err(ApiError::from)
}

/// A path id. A malformed id is as unknown as another tenant's.
pub(crate) fn id(s: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(s).map_err(|_| ApiError::from(vigil_orchestrator::Error::NotFound(what)))
}
