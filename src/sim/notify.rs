//! A receiver of Vigil's outbound notification webhooks: checks the
//! HMAC-SHA256 signature and timestamp, records each delivery, and drops a
//! repeated `Idempotency-Key` (counted, not stored twice).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use vigil_integrations::signing::verify_signature;

use super::{Running, serve};

#[derive(Debug, Default)]
pub struct Receiver {
    pub secret: Vec<u8>,
    pub received: Mutex<Vec<(String, Value)>>,
    pub repeats: Mutex<usize>,
    pub refused: Mutex<usize>,
}

async fn hook(State(s): State<Arc<Receiver>>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !verify_signature(
        &s.secret,
        &get("x-vigil-timestamp"),
        &body,
        &get("x-vigil-signature"),
    ) {
        *s.refused.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let key = get("idempotency-key");
    let mut r = s.received.lock().unwrap();
    if r.iter().any(|(k, _)| *k == key) {
        *s.repeats.lock().unwrap() += 1;
    } else {
        r.push((key, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn start(secret: &[u8]) -> (Running, Arc<Receiver>) {
    let s = Arc::new(Receiver {
        secret: secret.to_vec(),
        ..Default::default()
    });
    let app = Router::new().route("/hook", post(hook)).with_state(s.clone());
    (serve(app).await, s)
}
