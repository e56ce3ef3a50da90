//! Loopback vendor simulators, written from each vendor's published API
//! contract: the endpoints Vigil's clients call, their authentication and
//! their error responses (401, 403, 429 with `Retry-After`, 5xx, slow or
//! garbage answers, oversized bodies). Tests and benchmarks run the real
//! clients against them; they count what was written, so a duplicate write
//! is visible. `vigil demo` (only) starts CrowdStrike and Graylog ones as its
//! estate, so its investigations collect evidence; `vigil serve` never does.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::result_large_err
)]

pub mod crowdstrike;
pub mod graylog;
pub mod jira;
pub mod llm;
pub mod notify;
pub mod oidc;
pub mod servicenow;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// One injected misbehaviour, used by the next request that reaches it.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds, for 429).
    Status(u16, Option<u64>),
    /// Wait this long before handling the request.
    Slow(Duration),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with a 10 MB body.
    Huge,
    /// Handle the request (the write happens), then wait this long before
    /// answering: a client killed meanwhile never learns the outcome.
    HangAfter(Duration),
}

/// A fault for any request (`None`) or for one `METHOD /path`.
type Targeted = (Option<String>, Fault);

/// Faults waiting for requests, and a log of every request seen.
#[derive(Debug, Clone, Default)]
pub struct Control {
    faults: Arc<Mutex<VecDeque<Targeted>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Control {
    /// The next request, whatever it is, meets `f`.
    pub fn push(&self, f: Fault) {
        self.faults.lock().unwrap().push_back((None, f));
    }
    /// The next request to `METHOD /path` (e.g. `POST /rest/api/3/issue`) meets `f`.
    pub fn push_on(&self, route: &str, f: Fault) {
        self.faults.lock().unwrap().push_back((Some(route.to_owned()), f));
    }
    /// How many requests went to `METHOD /path`.
    pub fn count(&self, route: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|r| *r == route).count()
    }
    /// Every request so far, as `METHOD /path`.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn faults(State(c): State<Control>, req: Request, next: Next) -> Response {
    let route = format!("{} {}", req.method(), req.uri().path());
    c.log.lock().unwrap().push(route.clone());
    let fault = {
        let mut q = c.faults.lock().unwrap();
        q.iter()
            .position(|(on, _)| on.as_ref().is_none_or(|r| *r == route))
            .and_then(|i| q.remove(i))
            .map(|(_, f)| f)
    };
    match fault {
        None => next.run(req).await,
        Some(Fault::Status(s, retry)) => {
            let mut r = (
                StatusCode::from_u16(s).unwrap(),
                axum::Json(serde_json::json!({"errors": [{"code": s, "message": "injected"}]})),
            )
                .into_response();
            if let Some(secs) = retry {
                r.headers_mut()
                    .insert("Retry-After", secs.to_string().parse().unwrap());
            }
            r
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::Garbage) => (StatusCode::OK, "<html>maintenance</html>").into_response(),
        Some(Fault::Huge) => (StatusCode::OK, Body::from(vec![b' '; 10 * 1024 * 1024])).into_response(),
        Some(Fault::HangAfter(d)) => {
            let r = next.run(req).await;
            tokio::time::sleep(d).await;
            r
        }
    }
}

/// A running simulator on 127.0.0.1.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub control: Control,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` (with fault injection and a request log) on a free port.
pub async fn serve(app: Router) -> Running {
    let control = Control::default();
    let app = app.layer(middleware::from_fn_with_state(control.clone(), faults));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Running { addr, control, task }
}

/// The user and password of a Basic `Authorization` header.
pub fn basic(h: &HeaderMap) -> Option<(String, String)> {
    let v = h.get("authorization")?.to_str().ok()?;
    let b = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The token of a Bearer `Authorization` header.
pub fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

pub fn status(s: StatusCode, msg: &str) -> Response {
    (
        s,
        axum::Json(serde_json::json!({"errorMessages": [msg], "errors": {}})),
    )
        .into_response()
}
