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

/// Most patterns a tenant may configure, and the longest one.
pub const MAX_REDACT_PATTERNS: usize = 32;
pub const MAX_PATTERN_LEN: usize = 500;

/// A tenant's own redaction pattern: what matches is replaced by
/// `[redacted-<name>]` in everything sent to the model.
#[derive(Debug, Clone)]
pub struct RedactPattern {
    pub name: String,
    pub regex: regex::Regex,
}

/// The `redact` field of an llm integration's config:
/// `[{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}, ...]`. Patterns are
/// Rust regexes (linear time, no backtracking: a pattern cannot stall the
/// drafter), compiled with a size limit; names are 1–40 of `a-z 0-9 _ -`.
pub fn redact_patterns(config: &serde_json::Value) -> Result<Vec<RedactPattern>, crate::ConfigError> {
    use crate::ConfigError::Invalid;
    let Some(v) = config.get("redact") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| Invalid("redact", "must be an array of {name, pattern}".into()))?;
    if list.len() > MAX_REDACT_PATTERNS {
        return Err(Invalid(
            "redact",
            format!("at most {MAX_REDACT_PATTERNS} patterns"),
        ));
    }
    let mut out: Vec<RedactPattern> = Vec::with_capacity(list.len());
    for (n, item) in list.iter().enumerate() {
        let (Some(name), Some(pattern)) = (
            item.get("name").and_then(serde_json::Value::as_str),
            item.get("pattern").and_then(serde_json::Value::as_str),
        ) else {
            return Err(Invalid(
                "redact",
                format!("pattern {n}: needs a string `name` and a string `pattern`"),
            ));
        };
        if name.is_empty()
            || name.len() > 40
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(Invalid(
                "redact",
                format!("pattern {n}: name must be 1-40 of a-z, 0-9, _ and -"),
            ));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(Invalid("redact", format!("pattern name `{name}` is used twice")));
        }
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            return Err(Invalid(
                "redact",
                format!("pattern `{name}` must be 1 to {MAX_PATTERN_LEN} characters"),
            ));
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Invalid("redact", format!("pattern `{name}` does not compile: {e}")))?;
        if regex.is_match("") {
            return Err(Invalid(
                "redact",
                format!("pattern `{name}` matches the empty string"),
            ));
        }
        out.push(RedactPattern {
            name: name.to_owned(),
            regex,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod redact_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_are_checked_whole() {
        let ok = json!({"redact": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]});
        let p = redact_patterns(&ok).unwrap();
        assert_eq!(p[0].name, "employee_id");
        assert!(p[0].regex.is_match("badge EMP-123456"));
        for bad in [
            json!({"redact": "EMP"}),
            json!({"redact": [{"name": "x"}]}),
            json!({"redact": [{"name": "Bad Name", "pattern": "a"}]}),
            json!({"redact": [{"name": "a", "pattern": "("}]}),
            json!({"redact": [{"name": "a", "pattern": "x*"}]}),
            json!({"redact": [{"name": "a", "pattern": "a"}, {"name": "a", "pattern": "b"}]}),
            json!({"redact": [{"name": "a", "pattern": "a{1000}{1000}"}]}),
            json!({"redact": (0..33).map(|n| json!({"name": format!("p{n}"), "pattern": "a"})).collect::<Vec<_>>()}),
        ] {
            assert!(redact_patterns(&bad).is_err(), "{bad}");
        }
    }
}
