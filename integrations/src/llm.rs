//! Language-model providers for drafts: the OpenAI-compatible chat
//! completions API (which self-hosted servers also speak) and the Anthropic
//! Messages API. Sending a case's context is the write scope `context:send`
//! (tenant data leaves Vigil), asked at every call.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ClientError, Guard, Http, Result, url};

#[derive(Debug, Clone)]
pub struct Llm {
    api: String,
    base: String,
    model: String,
    key: String,
    http: Http,
    guard: Guard,
}

impl Llm {
    pub fn new(config: &Value, api_key: &str, http: Http, guard: Guard) -> Result<Self> {
        let field = |k: &str| crate::client::config_str(config, k);
        Ok(Llm {
            api: field("api")?,
            base: field("base_url")?,
            model: field("model")?,
            key: api_key.to_owned(),
            http,
            guard,
        })
    }

    pub fn name(&self) -> String {
        format!("{}:{}", self.api, self.model)
    }

    /// One completion: `system` instructions, `user` content; the text answered.
    pub async fn complete(&self, system: &str, user: &str) -> Result<String> {
        self.guard.require("context:send").await?;
        let text = if self.api == "anthropic" {
            let v: Value = self
                .http
                .json(
                    self.http
                        .request(Method::POST, &url(&self.base, "/v1/messages"))
                        .header("x-api-key", &self.key)
                        .header("anthropic-version", "2023-06-01")
                        .json(&json!({
                            "model": self.model,
                            "max_tokens": 4096,
                            "temperature": 0,
                            "system": system,
                            "messages": [{"role": "user", "content": user}],
                        })),
                )
                .await?;
            v.pointer("/content/0/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            let v: Value = self
                .http
                .json(
                    self.http
                        .request(Method::POST, &url(&self.base, "/v1/chat/completions"))
                        .bearer_auth(&self.key)
                        .json(&json!({
                            "model": self.model,
                            "temperature": 0,
                            "response_format": {"type": "json_object"},
                            "messages": [
                                {"role": "system", "content": system},
                                {"role": "user", "content": user},
                            ],
                        })),
                )
                .await?;
            v.pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        text.ok_or_else(|| ClientError::Garbage("no completion text in the answer".into()))
    }
}
