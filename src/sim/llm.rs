//! A loopback model server speaking the OpenAI chat completions API and the
//! Anthropic Messages API: checks each API's authentication, records the
//! requests, and answers with the text the test scripts.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Running, bearer, serve};

#[derive(Debug, Default)]
pub struct Model {
    pub key: String,
    /// What the model answers next.
    pub answer: Mutex<String>,
    /// Request bodies received.
    pub requests: Mutex<Vec<String>>,
}

async fn openai(State(s): State<Arc<Model>>, h: HeaderMap, body: String) -> Response {
    if bearer(&h).as_deref() != Some(s.key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
            ),
        )
            .into_response();
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    if v["messages"].as_array().is_none_or(|m| m.is_empty()) || v["model"].as_str().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "messages and model are required"}})),
        )
            .into_response();
    }
    s.requests.lock().unwrap().push(body);
    let answer = s.answer.lock().unwrap().clone();
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": v["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

async fn anthropic(State(s): State<Arc<Model>>, h: HeaderMap, body: String) -> Response {
    let key = h.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(s.key.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))).into_response();
    }
    if !h.contains_key("anthropic-version") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header is required"}}))).into_response();
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    if v["max_tokens"].as_u64().is_none() {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: field required"}}))).into_response();
    }
    s.requests.lock().unwrap().push(body);
    let answer = s.answer.lock().unwrap().clone();
    axum::Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": v["model"],
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}
    }))
    .into_response()
}

pub async fn start(key: &str) -> (Running, Arc<Model>) {
    let s = Arc::new(Model {
        key: key.into(),
        ..Default::default()
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .with_state(s.clone());
    (serve(app).await, s)
}
