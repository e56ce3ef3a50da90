//! The one place core errors become HTTP: JSON
//! `{"error": {"code", "message"}}` with the status of PRODUCT.md. Another
//! tenant's resources answer 404, exactly like missing ones.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vigil_orchestrator::Error;

/// Errors as pages: a message page (the one template every refusal of a
/// page renders).
#[derive(Debug, Template, WebTemplate)]
#[template(path = "message.html")]
pub struct MessagePage {
    title: String,
    message: String,
}

pub fn message(status: StatusCode, title: &str, message: impl Into<String>) -> Response {
    (
        status,
        MessagePage {
            title: title.into(),
            message: message.into(),
        },
    )
        .into_response()
}

/// Core errors on pages: the same statuses as the API, as a page.
pub fn page_error(e: Error) -> Response {
    page_of(ApiError::from(e))
}

/// An API refusal as a page, with its status.
pub fn page_of(api: ApiError) -> Response {
    let title = match api.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::UNAUTHORIZED | StatusCode::GONE => "Link not valid",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid input",
        _ => "Something went wrong",
    };
    message(api.status, title, api.message)
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(operation: &str, e: &dyn std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, operation, error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (id {id})"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => Self::not_found(format!("{what} not found")),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            Error::Unauthenticated(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", m),
            Error::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            Error::KillSwitch(m) => Self::new(
                StatusCode::LOCKED,
                "kill_switch",
                format!("kill switch engaged: {m}"),
            ),
            Error::Busy(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", m),
            e @ (Error::Db(_) | Error::Hash(_) | Error::Audit(_)) => Self::internal("core", &e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        res
    }
}

/// The stable `code` of an error answer with this status.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::LOCKED => "kill_switch",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// What a refusal of a framework layer (an extractor's rejection: bad
/// JSON, wrong types, unknown or duplicate fields, a wrong Content-Type, a
/// malformed query or path, a body over its limit; a method the route does
/// not have) says, before this layer: plain text or nothing.
fn framework_refusal(res: &Response) -> bool {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    match res.headers().get(axum::http::header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.to_str().is_ok_and(|c| c.starts_with("text/plain")),
    }
}

/// The one place every error answer takes the documented shape: an API
/// path answers `{"error": {"code", "message"}}`, a page a message page,
/// whatever refused the request (a handler, an extractor, the router).
pub async fn uniform_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if !framework_refusal(&res) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let status = parts.status;
    let text = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let said = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_owned()
    } else {
        text
    };
    let mut out = if api {
        ApiError::new(status, code_for(status), said).into_response()
    } else {
        message(status, status.canonical_reason().unwrap_or("Refused"), said)
    };
    // Keep what the refusal said beyond its body (Allow, Retry-After…).
    for (k, v) in &parts.headers {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().entry(k).or_insert(v.clone());
        }
    }
    out
}

/// The most a request body may be, on any route (a route may allow less).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Reads every request body whole (up to [`MAX_BODY`]) before anything
/// answers: a refusal made before a handler reads the body (no credentials,
/// a wrong role, a bad path) would otherwise close the connection with the
/// body unread, and a client still sending it sees a reset instead of the
/// answer. A larger body is refused (413) and the connection closed.
pub async fn whole_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let msg = format!("request body larger than {MAX_BODY} bytes");
            let mut res = if parts.uri.path().starts_with("/api/") {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg).into_response()
            } else {
                message(StatusCode::PAYLOAD_TOO_LARGE, "Too large", msg)
            };
            res.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return res;
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}
