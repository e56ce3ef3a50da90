//! ServiceNow Table API for `incident`: list with `sysparm_query`
//! (`field=value` only), get, create (201), update (PATCH). Basic auth.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Running, basic, serve};

#[derive(Debug, Default)]
pub struct ServiceNow {
    pub user: String,
    pub password: Mutex<String>,
    pub incidents: Mutex<Vec<Map<String, Value>>>,
}

fn err(s: StatusCode, msg: &str) -> Response {
    (
        s,
        axum::Json(json!({"error": {"message": msg, "detail": ""}, "status": "failure"})),
    )
        .into_response()
}

impl ServiceNow {
    pub fn incidents(&self) -> Vec<Map<String, Value>> {
        self.incidents.lock().unwrap().clone()
    }
    fn auth(&self, h: &HeaderMap) -> Result<(), Response> {
        match basic(h) {
            Some((u, p)) if u == self.user && p == *self.password.lock().unwrap() => Ok(()),
            _ => Err(err(StatusCode::UNAUTHORIZED, "User Not Authenticated")),
        }
    }
}

type S = Arc<ServiceNow>;

async fn list(State(s): State<S>, h: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let query = q
        .iter()
        .find(|(k, _)| k == "sysparm_query")
        .map(|(_, v)| v.clone());
    let limit: usize = q
        .iter()
        .find(|(k, _)| k == "sysparm_limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(10_000);
    let cond = match query.as_deref().map(|c| c.split_once('=')) {
        None => None,
        Some(Some((f, v))) => Some((f.to_owned(), v.to_owned())),
        Some(None) => {
            return err(
                StatusCode::BAD_REQUEST,
                "The simulator understands only field=value",
            );
        }
    };
    let rows: Vec<Value> = s
        .incidents
        .lock()
        .unwrap()
        .iter()
        .filter(|i| {
            cond.as_ref()
                .is_none_or(|(f, v)| i.get(f).and_then(Value::as_str) == Some(v))
        })
        .take(limit)
        .map(|i| Value::Object(i.clone()))
        .collect();
    axum::Json(json!({"result": rows})).into_response()
}

async fn create(State(s): State<S>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Exception while reading request");
    };
    let mut all = s.incidents.lock().unwrap();
    let n = all.len() + 1;
    v.insert("sys_id".into(), json!(format!("{n:032x}")));
    v.insert("number".into(), json!(format!("INC{:07}", 10_000 + n)));
    v.entry("state").or_insert(json!("1"));
    all.push(v.clone());
    (StatusCode::CREATED, axum::Json(json!({"result": v}))).into_response()
}

async fn get_one(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    match s
        .incidents
        .lock()
        .unwrap()
        .iter()
        .find(|i| i["sys_id"] == id.as_str())
    {
        Some(i) => axum::Json(json!({"result": i})).into_response(),
        None => err(StatusCode::NOT_FOUND, "No Record found"),
    }
}

async fn update(
    State(s): State<S>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Exception while reading request");
    };
    let mut all = s.incidents.lock().unwrap();
    match all.iter_mut().find(|i| i["sys_id"] == id.as_str()) {
        Some(i) => {
            for (k, x) in v {
                i.insert(k, x);
            }
            axum::Json(json!({"result": i})).into_response()
        }
        None => err(StatusCode::NOT_FOUND, "No Record found"),
    }
}

pub async fn start(user: &str, password: &str) -> (Running, Arc<ServiceNow>) {
    let s = Arc::new(ServiceNow {
        user: user.into(),
        password: Mutex::new(password.into()),
        ..Default::default()
    });
    let app = Router::new()
        .route("/api/now/table/incident", get(list).post(create))
        .route("/api/now/table/incident/{id}", get(get_one).patch(update))
        .with_state(s.clone());
    (serve(app).await, s)
}
