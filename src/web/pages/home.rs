//! The landing page (who is signed in, their tenants, what to do next) and
//! the not-found answer.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_orchestrator::Backend;
use vigil_orchestrator::identity::{self};

use crate::web::auth::Principal;
use crate::web::{ApiError, AppState};

use crate::web::error::{message, page_error};

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    backend: &'static str,
    needs_setup: bool,
    me: Option<Me>,
}

pub struct Me {
    email: String,
    platform_admin: bool,
    mfa_verified: bool,
    /// A role held needs a second factor (so "not verified" is news).
    needs_mfa: bool,
    csrf: String,
    memberships: Vec<crate::web::pages::session::Membership>,
}

pub async fn index(State(state): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    let me = match &p {
        Principal::Session { info, .. } => {
            match crate::web::pages::session::memberships(&state, info).await {
                Ok(memberships) => Some(Me {
                    email: info.email.clone(),
                    platform_admin: info.platform_admin,
                    mfa_verified: info.mfa_verified,
                    needs_mfa: info.platform_admin || memberships.iter().any(|m| m.role.requires_mfa()),
                    csrf: info.csrf.clone(),
                    memberships,
                }),
                Err(e) => return page_error(e),
            }
        }
        _ => None,
    };
    let needs_setup = match identity::bootstrap_needed(state.store.conn()).await {
        Ok(b) => b,
        Err(e) => return page_error(e),
    };
    let backend = match state.store.backend() {
        Backend::Sqlite => "SQLite (embedded)",
        Backend::Postgres => "PostgreSQL",
    };
    IndexPage {
        backend,
        needs_setup,
        me,
    }
    .into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::not_found("no such API endpoint").into_response();
    }
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}
