//! Jira Cloud REST API v3, the part Vigil calls: create issue, search by JQL
//! (`labels = "x"` only), get issue, list/add comments, transition.
//! Basic auth with e-mail + API token; 401 otherwise, 403 when the account
//! may not write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Running, basic, serve, status};

#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub key: String,
    pub fields: Value,
    pub comments: Vec<Value>,
    pub status: String,
}

#[derive(Debug, Default)]
pub struct Jira {
    pub email: String,
    pub token: Mutex<String>,
    pub read_only: AtomicBool,
    pub issues: Mutex<Vec<Issue>>,
    /// When each create arrived (benchmarks: approval → receipt).
    pub created_at: Mutex<Vec<std::time::Instant>>,
}

impl Jira {
    pub fn issues(&self) -> Vec<Issue> {
        self.issues.lock().unwrap().clone()
    }
    fn auth(&self, h: &HeaderMap, write: bool) -> Result<(), Response> {
        match basic(h) {
            Some((u, p)) if u == self.email && p == *self.token.lock().unwrap() => {}
            _ => return Err(status(StatusCode::UNAUTHORIZED, "Client must be authenticated")),
        }
        if write && self.read_only.load(Ordering::SeqCst) {
            return Err(status(StatusCode::FORBIDDEN, "You do not have permission"));
        }
        Ok(())
    }
}

type S = Arc<Jira>;

async fn create(State(s): State<S>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = s.auth(&h, true) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "Unexpected character");
    };
    let f = &v["fields"];
    if f["project"]["key"].as_str().is_none()
        || f["summary"].as_str().is_none()
        || f["issuetype"]["name"].as_str().is_none()
    {
        return status(
            StatusCode::BAD_REQUEST,
            "project, summary and issuetype are required",
        );
    }
    s.created_at.lock().unwrap().push(std::time::Instant::now());
    let mut issues = s.issues.lock().unwrap();
    let n = issues.len() + 1;
    let key = format!("{}-{n}", f["project"]["key"].as_str().unwrap());
    let id = (10_000 + n).to_string();
    issues.push(Issue {
        id: id.clone(),
        key: key.clone(),
        fields: f.clone(),
        comments: vec![],
        status: "To Do".into(),
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "key": key, "self": format!("/rest/api/3/issue/{id}")})),
    )
        .into_response()
}

async fn search(State(s): State<S>, h: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Err(r) = s.auth(&h, false) {
        return r;
    }
    let jql = q
        .iter()
        .find(|(k, _)| k == "jql")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some(label) = jql.strip_prefix("labels = \"").and_then(|r| r.strip_suffix('"')) else {
        return status(
            StatusCode::BAD_REQUEST,
            "The simulator understands only labels = \"x\"",
        );
    };
    let found: Vec<Value> = s
        .issues
        .lock()
        .unwrap()
        .iter()
        .filter(|i| {
            i.fields["labels"]
                .as_array()
                .is_some_and(|ls| ls.iter().any(|l| l == label))
        })
        .map(|i| json!({"id": i.id, "key": i.key}))
        .collect();
    axum::Json(json!({"issues": found, "isLast": true})).into_response()
}

fn find<'a>(issues: &'a mut [Issue], key: &str) -> Option<&'a mut Issue> {
    issues.iter_mut().find(|i| i.key == key || i.id == key)
}

async fn get_issue(State(s): State<S>, h: HeaderMap, Path(key): Path<String>) -> Response {
    if let Err(r) = s.auth(&h, false) {
        return r;
    }
    let mut issues = s.issues.lock().unwrap();
    match find(&mut issues, &key) {
        Some(i) => axum::Json(json!({"id": i.id, "key": i.key, "fields": {"summary": i.fields["summary"], "labels": i.fields["labels"], "status": {"name": i.status}}})).into_response(),
        None => status(StatusCode::NOT_FOUND, "Issue does not exist or you do not have permission to see it."),
    }
}

async fn comments(State(s): State<S>, h: HeaderMap, Path(key): Path<String>) -> Response {
    if let Err(r) = s.auth(&h, false) {
        return r;
    }
    let mut issues = s.issues.lock().unwrap();
    match find(&mut issues, &key) {
        Some(i) => axum::Json(json!({"comments": i.comments, "total": i.comments.len(), "startAt": 0}))
            .into_response(),
        None => status(StatusCode::NOT_FOUND, "Issue does not exist"),
    }
}

async fn add_comment(
    State(s): State<S>,
    h: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = s.auth(&h, true) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "Unexpected character");
    };
    if v["body"]["type"] != "doc" {
        return status(StatusCode::BAD_REQUEST, "Comment body is not valid!");
    }
    let mut issues = s.issues.lock().unwrap();
    match find(&mut issues, &key) {
        Some(i) => {
            let c = json!({"id": (i.comments.len() + 1).to_string(), "body": v["body"]});
            i.comments.push(c.clone());
            (StatusCode::CREATED, axum::Json(c)).into_response()
        }
        None => status(StatusCode::NOT_FOUND, "Issue does not exist"),
    }
}

async fn transition(
    State(s): State<S>,
    h: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = s.auth(&h, true) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "Unexpected character");
    };
    let to = match v["transition"]["id"].as_str() {
        Some("11") => "To Do",
        Some("21") => "In Progress",
        Some("31") => "Done",
        _ => {
            return status(
                StatusCode::BAD_REQUEST,
                "Transition id is not valid for this issue.",
            );
        }
    };
    let mut issues = s.issues.lock().unwrap();
    match find(&mut issues, &key) {
        Some(i) => {
            i.status = to.into();
            StatusCode::NO_CONTENT.into_response()
        }
        None => status(StatusCode::NOT_FOUND, "Issue does not exist"),
    }
}

/// Starts a Jira simulator accepting `email` + `token`.
pub async fn start(email: &str, token: &str) -> (Running, Arc<Jira>) {
    let s = Arc::new(Jira {
        email: email.into(),
        token: Mutex::new(token.into()),
        ..Default::default()
    });
    let app = Router::new()
        .route("/rest/api/3/issue", post(create))
        .route("/rest/api/3/search/jql", get(search))
        .route("/rest/api/3/issue/{key}", get(get_issue))
        .route("/rest/api/3/issue/{key}/comment", get(comments).post(add_comment))
        .route("/rest/api/3/issue/{key}/transitions", post(transition))
        .with_state(s.clone());
    (serve(app).await, s)
}
