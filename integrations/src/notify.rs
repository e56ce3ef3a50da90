//! Outbound notification webhooks, signed like inbound ones: HMAC-SHA256 over
//! `timestamp.body` with the integration's secret, plus an `Idempotency-Key`
//! so the receiver can drop a repeat.

use reqwest::Method;
use serde_json::Value;

use crate::client::{ClientError, Guard, Http, Result};
use crate::signing::sign;

#[derive(Debug, Clone)]
pub struct Notifier {
    url: String,
    secret: Vec<u8>,
    http: Http,
    guard: Guard,
}

impl Notifier {
    pub fn new(config: &Value, secret: &[u8], http: Http, guard: Guard) -> Result<Self> {
        Ok(Notifier {
            url: config
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| ClientError::Garbage("config has no `url`".into()))?
                .to_owned(),
            secret: secret.to_vec(),
            http,
            guard,
        })
    }

    /// Sends one notification; `timestamp` is unix seconds from the caller's clock.
    pub async fn send(&self, event: &Value, timestamp: i64, idempotency_key: &str) -> Result<()> {
        self.guard.require("notify:send").await?;
        let body = serde_json::to_vec(event).map_err(|e| ClientError::Garbage(e.to_string()))?;
        let ts = timestamp.to_string();
        self.http
            .send(
                self.http
                    .request(Method::POST, &self.url)
                    .header("Content-Type", "application/json")
                    .header("X-Vigil-Timestamp", &ts)
                    .header("X-Vigil-Signature", sign(&self.secret, &ts, &body))
                    .header("Idempotency-Key", idempotency_key)
                    .body(body),
            )
            .await?;
        Ok(())
    }
}
