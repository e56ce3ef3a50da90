//! Graylog events search (`POST /api/events/search`): absolute time range,
//! sorted by timestamp, paged; message search (`GET
//! /api/search/universal/absolute`: a Lucene phrase, from/to, limit). Basic
//! auth (access token as user name, `token` as password); `X-Requested-By` required, as Graylog does.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Running, basic, serve};

#[derive(Debug, Default)]
pub struct Graylog {
    pub token: String,
    /// `{event, index_name, index_type}` rows.
    pub events: Mutex<Vec<Value>>,
    /// Stored messages (`{message: {_id, timestamp, source, message, …}, index}`).
    pub messages: Mutex<Vec<Value>>,
}

/// A stored message as the universal search returns it.
pub fn message(n: usize, ts: &str, source: &str, text: &str) -> Value {
    json!({
        "message": {
            "_id": format!("{n:08x}-0000-11ef-9a1b-0242ac120002"),
            "timestamp": ts,
            "source": source,
            "message": text,
            "gl2_source_input": "5f0c0c0c0c0c0c0c0c0c0c0d",
            "streams": ["000000000000000000000001"]
        },
        "index": "graylog_0",
        "highlight_ranges": {},
        "decoration_stats": null
    })
}

async fn universal(
    State(s): State<Arc<Graylog>>,
    h: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    match basic(&h) {
        Some((u, p)) if u == s.token && p == "token" => {}
        _ => return err(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let (Some(query), Some(from), Some(to)) = (get("query"), get("from"), get("to")) else {
        return err(StatusCode::BAD_REQUEST, "query, from and to are required");
    };
    // One quoted phrase, as Vigil sends it.
    let Some(term) = query.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return err(StatusCode::BAD_REQUEST, "unsupported query");
    };
    let term = term.replace("\\\"", "\"").replace("\\\\", "\\");
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(150);
    let norm = |t: &str| t.replace('T', " ").trim_end_matches('Z').to_owned();
    let (from, to) = (norm(&from), norm(&to));
    let mut found: Vec<Value> = s
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| {
            let t = norm(m["message"]["timestamp"].as_str().unwrap_or(""));
            t >= from && t <= to && m["message"].to_string().contains(&term)
        })
        .cloned()
        .collect();
    found.sort_by(|a, b| {
        b["message"]["timestamp"]
            .as_str()
            .cmp(&a["message"]["timestamp"].as_str())
    });
    let total = found.len();
    found.truncate(limit);
    axum::Json(json!({
        "query": query,
        "built_query": "{}",
        "used_indices": [{"index_name": "graylog_0", "begin": null, "end": null, "calculated_at": null, "took_ms": 0}],
        "messages": found,
        "fields": ["source", "message", "timestamp"],
        "time": 3,
        "total_results": total,
        "from": get("from"),
        "to": get("to"),
        "decoration_stats": null
    }))
    .into_response()
}

pub fn event(n: usize, ts: &str, host: &str, ip: &str) -> Value {
    json!({
        "event": {
            "id": format!("01GLEVENT{n:017}"),
            "event_definition_type": "aggregation-v1",
            "event_definition_id": "5f0c0c0c0c0c0c0c0c0c0c0c",
            "origin_context": format!("urn:graylog:message:es:graylog_0:{n}"),
            "timestamp": ts,
            "timestamp_processing": ts,
            "source": host,
            "message": format!("Multiple failed logins for admin from {ip}"),
            "key_tuple": [],
            "priority": 2,
            "alert": true,
            "fields": {"src_ip": ip, "user": "admin", "host": host}
        },
        "index_name": "gl-events_0",
        "index_type": "message"
    })
}

fn err(s: StatusCode, msg: &str) -> Response {
    (s, axum::Json(json!({"type": "ApiError", "message": msg}))).into_response()
}

async fn search(State(s): State<Arc<Graylog>>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    match basic(&h) {
        Some((u, p)) if u == s.token && p == "token" => {}
        _ => return err(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
    if !h.contains_key("x-requested-by") {
        return err(
            StatusCode::BAD_REQUEST,
            "CSRF protection: X-Requested-By header required",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Unable to map request body");
    };
    let (Some(from), Some(to)) = (v["timerange"]["from"].as_str(), v["timerange"]["to"].as_str()) else {
        return err(StatusCode::BAD_REQUEST, "timerange from/to required");
    };
    let page = v["page"].as_u64().unwrap_or(1).max(1) as usize;
    let per = v["per_page"].as_u64().unwrap_or(10).clamp(1, 10_000) as usize;
    let mut rows: Vec<Value> = s
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            let t = e["event"]["timestamp"].as_str().unwrap_or("");
            t >= from && t <= to
        })
        .cloned()
        .collect();
    rows.sort_by(|a, b| {
        a["event"]["timestamp"]
            .as_str()
            .cmp(&b["event"]["timestamp"].as_str())
    });
    let total = rows.len();
    let events: Vec<Value> = rows.into_iter().skip((page - 1) * per).take(per).collect();
    axum::Json(json!({
        "events": events,
        "used_indices": ["gl-events_0"],
        "parameters": v,
        "total_events": total,
        "duration": 3,
        "context": {"event_definitions": {}, "streams": {}}
    }))
    .into_response()
}

pub async fn start(token: &str) -> (Running, Arc<Graylog>) {
    let s = Arc::new(Graylog {
        token: token.into(),
        ..Default::default()
    });
    let app = Router::new()
        .route("/api/events/search", post(search))
        .route("/api/search/universal/absolute", axum::routing::get(universal))
        .with_state(s.clone());
    (serve(app).await, s)
}
