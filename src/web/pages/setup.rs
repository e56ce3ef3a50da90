//! Server-rendered pages: the landing page and the one-time setup links
//! (first Platform Admin, password set). The token in the URL is the
//! capability; it is never logged (see `access_log`) nor leaked by Referer.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil_orchestrator::Error;
use vigil_orchestrator::identity::{self, LinkPurpose};
use vigil_orchestrator::ids::Email;

use crate::web::AppState;

use crate::web::error::{message, page_error};

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
pub struct SetupPage {
    bootstrap: bool,
    email: String,
    error: Option<String>,
}

fn link_refused(reason: &str) -> Response {
    message(
        StatusCode::GONE,
        "Link not valid",
        format!("This link cannot be used: {reason}. Ask your administrator for a new one."),
    )
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    password: String,
    confirm: String,
}

async fn check(state: &AppState, purpose: LinkPurpose, token: &str) -> Result<(), Response> {
    match identity::check_link(state.store.conn(), state.clock.as_ref(), purpose, token).await {
        Ok(_) => Ok(()),
        Err(Error::Unauthenticated(reason)) => Err(link_refused(reason)),
        Err(e) => Err(page_error(e)),
    }
}

pub async fn bootstrap_form(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if let Err(r) = check(&state, LinkPurpose::Bootstrap, &token).await {
        return r;
    }
    SetupPage {
        bootstrap: true,
        email: String::new(),
        error: None,
    }
    .into_response()
}

pub async fn bootstrap_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Response {
    let retry = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SetupPage {
                bootstrap: true,
                email: form.email.clone(),
                error: Some(error),
            },
        )
            .into_response()
    };
    if form.password != form.confirm {
        return retry("The two passwords differ.".into());
    }
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(e) => return retry(e.to_string()),
    };
    let done = identity::complete_bootstrap(
        &state.store,
        state.clock.as_ref(),
        &state.password_policy,
        &token,
        &email,
        &form.password,
        Some(peer.ip().to_string()),
    )
    .await;
    match done {
        Ok(_) => message(
            StatusCode::OK,
            "Platform admin created",
            format!("{email} is now the platform admin of this installation. This link no longer works."),
        ),
        Err(Error::Invalid(m)) => retry(m),
        Err(Error::Unauthenticated(reason)) => link_refused(reason),
        Err(e) => page_error(e),
    }
}

pub async fn password_form(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if let Err(r) = check(&state, LinkPurpose::SetPassword, &token).await {
        return r;
    }
    SetupPage {
        bootstrap: false,
        email: String::new(),
        error: None,
    }
    .into_response()
}

pub async fn password_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Response {
    let retry = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SetupPage {
                bootstrap: false,
                email: String::new(),
                error: Some(error),
            },
        )
            .into_response()
    };
    if form.password != form.confirm {
        return retry("The two passwords differ.".into());
    }
    let done = identity::complete_password_link(
        &state.store,
        state.clock.as_ref(),
        &state.password_policy,
        &token,
        &form.password,
    )
    .await;
    match done {
        Ok(_) => message(
            StatusCode::OK,
            "Password set",
            "Your password is set. This link no longer works.",
        ),
        Err(Error::Invalid(m)) => retry(m),
        Err(Error::Unauthenticated(reason)) => link_refused(reason),
        Err(e) => page_error(e),
    }
}
