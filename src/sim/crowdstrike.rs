//! CrowdStrike Falcon: OAuth2 client credentials (`POST /oauth2/token`,
//! form-encoded, 201 with `expires_in`), Alerts API v2 (query ids with FQL
//! `updated_timestamp:>='…'`, sort, offset/limit; fetch entities by
//! composite id), hosts (query device ids with FQL `hostname:'…'`, device
//! entities v2 by `ids`), the device action `contain`, and Identity
//! Protection's GraphQL endpoint for the one query Vigil asks (`entities` of
//! type USER by `primaryDisplayNames` or `secondaryDisplayNames`, names as a
//! variable; anything else is answered with a GraphQL error, as the vendor
//! does, on HTTP 200). Tokens can be expired and the client secret revoked
//! from the test.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{Value, json};

use super::{Running, bearer, serve};

#[derive(Debug, Default)]
pub struct Falcon {
    pub client_id: String,
    pub secret: Mutex<String>,
    pub tokens: Mutex<HashSet<String>>,
    pub tokens_issued: Mutex<usize>,
    pub expires_in: Mutex<u64>,
    /// Alerts, kept sorted by `updated_timestamp`.
    pub alerts: Mutex<Vec<Value>>,
    pub contained: Mutex<Vec<String>>,
    /// Device records (`device_id`, `hostname`, `status`, …).
    pub devices: Mutex<Vec<Value>>,
    /// Identity Protection entities (`primaryDisplayName`,
    /// `secondaryDisplayName`, `roles`, `riskScore`, `accounts`, …).
    pub identities: Mutex<Vec<Value>>,
}

impl Falcon {
    /// Every token issued so far stops working (they expired).
    pub fn expire_tokens(&self) {
        self.tokens.lock().unwrap().clear();
    }
    /// The client secret no longer works, nor any token.
    pub fn revoke(&self) {
        *self.secret.lock().unwrap() = String::new();
        self.expire_tokens();
    }
    pub fn add_alerts(&self, alerts: impl IntoIterator<Item = Value>) {
        let mut a = self.alerts.lock().unwrap();
        a.extend(alerts);
        a.sort_by(|x, y| {
            x["updated_timestamp"]
                .as_str()
                .cmp(&y["updated_timestamp"].as_str())
        });
    }
    fn auth(&self, h: &HeaderMap) -> Result<(), Response> {
        match bearer(h) {
            Some(t) if self.tokens.lock().unwrap().contains(&t) => Ok(()),
            _ => Err(err(
                StatusCode::UNAUTHORIZED,
                "access denied, invalid bearer token",
            )),
        }
    }
}

/// A device record as `GET /devices/entities/devices/v2` returns it (the
/// documented fields Vigil reads, and a few it does not).
pub fn device(id: &str, host: &str, status: &str) -> Value {
    json!({
        "device_id": id,
        "cid": "0123456789abcdef0123456789abcdef",
        "agent_version": "7.16.18605.0",
        "hostname": host,
        "local_ip": "10.1.2.42",
        "external_ip": "203.0.113.7",
        "mac_address": "00-50-56-aa-bb-cc",
        "platform_name": "Windows",
        "os_version": "Windows 11",
        "product_type_desc": "Workstation",
        "first_seen": "2026-01-12T08:00:00Z",
        "last_seen": "2026-11-22T09:20:00Z",
        "status": status,
        "groups": [],
        "tags": ["FalconGroupingTags/Finance"]
    })
}

async fn device_ids(State(s): State<S>, h: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let filter = q.iter().find(|(k, _)| k == "filter").map(|(_, v)| v.clone());
    let Some(host) = filter
        .as_deref()
        .and_then(|f| f.strip_prefix("hostname:'"))
        .and_then(|r| r.strip_suffix('\''))
    else {
        return err(StatusCode::BAD_REQUEST, "invalid filter");
    };
    let ids: Vec<Value> = s
        .devices
        .lock()
        .unwrap()
        .iter()
        .filter(|d| {
            d["hostname"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(host))
        })
        .map(|d| d["device_id"].clone())
        .collect();
    axum::Json(json!({
        "meta": {"query_time": 0.004, "pagination": {"offset": 0, "limit": 10, "total": ids.len()}, "powered_by": "device-api", "trace_id": "sim"},
        "resources": ids,
        "errors": []
    }))
    .into_response()
}

async fn device_entities(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let ids: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() {
        return err(StatusCode::BAD_REQUEST, "ids is required");
    }
    let found: Vec<Value> = s
        .devices
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d["device_id"].as_str().is_some_and(|i| ids.contains(&i)))
        .cloned()
        .collect();
    axum::Json(json!({"meta": {"query_time": 0.002, "powered_by": "device-api", "trace_id": "sim"}, "resources": found, "errors": []}))
        .into_response()
}

/// A user as Identity Protection's `entities` query returns it.
pub fn identity(name: &str, domain: &str, roles: &[&str], risk: f64) -> Value {
    let severity = if risk >= 0.7 {
        "HIGH"
    } else if risk >= 0.4 {
        "MEDIUM"
    } else {
        "NORMAL"
    };
    json!({
        "entityId": format!("ent-{name}"),
        "type": "USER",
        "primaryDisplayName": name,
        "secondaryDisplayName": format!("{}\\{name}", domain.to_uppercase()),
        "riskScore": risk,
        "riskScoreSeverity": severity,
        "roles": roles.iter().map(|r| json!({"type": r})).collect::<Vec<_>>(),
        "accounts": [{"domain": domain, "samAccountName": name, "ou": format!("{domain}/Users")}]
    })
}

fn gql_error(msg: &str) -> Response {
    axum::Json(json!({"data": null, "errors": [{"message": msg}]})).into_response()
}

async fn graphql(State(s): State<S>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(q) = v["query"].as_str() else {
        return gql_error("a query is required");
    };
    if !q.contains("entities(types: [USER]") {
        return gql_error("the simulator answers only entities(types: [USER], …)");
    }
    let field = if q.contains("primaryDisplayNames: $names") {
        "primaryDisplayName"
    } else if q.contains("secondaryDisplayNames: $names") {
        "secondaryDisplayName"
    } else {
        return gql_error("Variable \"$names\" is never used");
    };
    let Some(names) = v.pointer("/variables/names").and_then(Value::as_array) else {
        return gql_error("Variable \"$names\" of required type \"[String!]\" was not provided.");
    };
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    let nodes: Vec<Value> = s
        .identities
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            e[field]
                .as_str()
                .is_some_and(|n| names.iter().any(|x| x.eq_ignore_ascii_case(n)))
        })
        .take(5)
        .cloned()
        .collect();
    axum::Json(json!({"data": {"entities": {"nodes": nodes}}, "extensions": {"remainingPoints": 499_000, "reset": 9000, "consumedPoints": 1}}))
        .into_response()
}

fn err(s: StatusCode, msg: &str) -> Response {
    (
        s,
        axum::Json(json!({"meta": {}, "resources": [], "errors": [{"code": s.as_u16(), "message": msg}]})),
    )
        .into_response()
}

/// A Falcon alert as the entities endpoint returns it (the fields Vigil reads).
pub fn alert(n: usize, ts: &str, host: &str, sha256: &str) -> Value {
    json!({
        "composite_id": format!("cid:ind:{n:08x}-{}", host),
        "id": format!("ind:{n:08x}"),
        "created_timestamp": ts,
        "updated_timestamp": ts,
        "timestamp": ts,
        "severity": 70,
        "severity_name": "High",
        "tactic": "Execution",
        "technique": "PowerShell",
        "description": "Suspicious PowerShell execution",
        "device": {"device_id": format!("dev{n:04}"), "hostname": host, "local_ip": "10.0.0.7"},
        "user_name": "jdoe",
        "sha256": sha256,
        "cmdline": "powershell.exe -enc SQBFAFgA",
        "filename": "powershell.exe",
        "product": "epp",
        "status": "new"
    })
}

async fn token(State(s): State<S>, Form(f): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let secret = s.secret.lock().unwrap().clone();
    if get("client_id").as_deref() != Some(s.client_id.as_str())
        || secret.is_empty()
        || get("client_secret").as_deref() != Some(secret.as_str())
    {
        return err(StatusCode::UNAUTHORIZED, "access denied, invalid client");
    }
    let mut issued = s.tokens_issued.lock().unwrap();
    *issued += 1;
    let t = format!("tok-{}-{}", *issued, uuid::Uuid::new_v4().simple());
    s.tokens.lock().unwrap().insert(t.clone());
    let exp = *s.expires_in.lock().unwrap();
    (
        StatusCode::CREATED,
        axum::Json(json!({"access_token": t, "token_type": "bearer", "expires_in": exp})),
    )
        .into_response()
}

type S = Arc<Falcon>;

async fn query(State(s): State<S>, h: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let since = match get("filter") {
        None => None,
        Some(f) => match f
            .strip_prefix("updated_timestamp:>='")
            .and_then(|r| r.strip_suffix('\''))
        {
            Some(ts) => Some(ts.to_owned()),
            None => return err(StatusCode::BAD_REQUEST, "invalid filter"),
        },
    };
    if get("sort").is_some_and(|s| s != "updated_timestamp.asc") {
        return err(StatusCode::BAD_REQUEST, "invalid sort");
    }
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    if limit > 10_000 {
        return err(StatusCode::BAD_REQUEST, "limit too large");
    }
    let offset: usize = get("offset").and_then(|l| l.parse().ok()).unwrap_or(0);
    let all = s.alerts.lock().unwrap();
    let matching: Vec<&Value> = all
        .iter()
        .filter(|a| {
            since
                .as_deref()
                .is_none_or(|t| a["updated_timestamp"].as_str().unwrap_or("") >= t)
        })
        .collect();
    let ids: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|a| a["composite_id"].clone())
        .collect();
    axum::Json(json!({
        "meta": {"pagination": {"offset": offset, "limit": limit, "total": matching.len()}},
        "resources": ids,
        "errors": []
    }))
    .into_response()
}

async fn entities(State(s): State<S>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(ids) = v["composite_ids"].as_array() else {
        return err(StatusCode::BAD_REQUEST, "composite_ids is required");
    };
    let all = s.alerts.lock().unwrap();
    let found: Vec<Value> = ids
        .iter()
        .filter_map(|id| all.iter().find(|a| a["composite_id"] == *id).cloned())
        .collect();
    axum::Json(json!({"meta": {}, "resources": found, "errors": []})).into_response()
}

async fn action(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = s.auth(&h) {
        return r;
    }
    if !q.iter().any(|(k, v)| k == "action_name" && v == "contain") {
        return err(StatusCode::BAD_REQUEST, "unsupported action_name");
    }
    let Some(ids) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["ids"].as_array().cloned())
    else {
        return err(StatusCode::BAD_REQUEST, "ids is required");
    };
    let mut c = s.contained.lock().unwrap();
    let mut res = vec![];
    for id in ids {
        let id = id.as_str().unwrap_or_default().to_owned();
        res.push(json!({"id": id, "path": format!("/devices/entities/devices/v1?ids={id}")}));
        c.push(id);
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"meta": {}, "resources": res, "errors": []})),
    )
        .into_response()
}

pub async fn start(client_id: &str, secret: &str) -> (Running, Arc<Falcon>) {
    let s = Arc::new(Falcon {
        client_id: client_id.into(),
        secret: Mutex::new(secret.into()),
        expires_in: Mutex::new(1799),
        ..Default::default()
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/alerts/queries/alerts/v2", get(query))
        .route("/alerts/entities/alerts/v2", post(entities))
        .route("/devices/entities/devices-actions/v2", post(action))
        .route("/devices/queries/devices/v1", get(device_ids))
        .route("/devices/entities/devices/v2", get(device_entities))
        .route("/identity-protection/combined/graphql/v1", post(graphql))
        .with_state(s.clone());
    (serve(app).await, s)
}
