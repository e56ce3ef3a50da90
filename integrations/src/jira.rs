//! Jira Cloud REST API v3 client: create an issue, comment, transition.
//! Basic auth with the account e-mail and an API token. Jira takes no
//! idempotency key, so each write carries Vigil's key (a label on issues, a
//! marker in comments) and a retried write first looks it up: a retry after
//! a crash finds the issue the first attempt made instead of making a second.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Kind;
use crate::client::{ClientError, Guard, Http, Result, url};

#[derive(Debug, Clone)]
pub struct Jira {
    base: String,
    email: String,
    token: String,
    http: Http,
    guard: Guard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub id: String,
    pub key: String,
}

/// Plain text as an Atlassian Document Format document (one paragraph per line).
pub fn adf(text: &str) -> Value {
    let paras: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| json!({"type": "paragraph", "content": [{"type": "text", "text": l}]}))
        .collect();
    json!({"type": "doc", "version": 1, "content": paras})
}

/// The text of an ADF document (for finding Vigil's marker).
pub fn adf_text(doc: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        if let Some(t) = v.get("text").and_then(Value::as_str) {
            out.push_str(t);
            out.push('\n');
        }
        if let Some(c) = v.get("content").and_then(Value::as_array) {
            for x in c {
                walk(x, out);
            }
        }
    }
    walk(doc, &mut out);
    out
}

impl Jira {
    pub fn new(config: &Value, api_token: &str, http: Http, guard: Guard) -> Result<Self> {
        let field = |k: &str| crate::client::config_str(config, k);
        Ok(Jira {
            base: field("base_url")?,
            email: field("email")?,
            token: api_token.to_owned(),
            http,
            guard,
        })
    }

    pub const KIND: Kind = Kind::Jira;

    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, &url(&self.base, path))
            .basic_auth(&self.email, Some(&self.token))
            .header("Accept", "application/json")
    }

    /// The issue carrying `label`, if any (`issue:read`).
    pub async fn find_by_label(&self, label: &str) -> Result<Option<Issue>> {
        self.guard.require("issue:read").await?;
        #[derive(Deserialize)]
        struct Found {
            issues: Vec<Issue>,
        }
        let jql = format!("labels = \"{label}\"");
        let f: Found = self
            .http
            .json(self.req(Method::GET, "/rest/api/3/search/jql").query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ]))
            .await?;
        Ok(f.issues.into_iter().next())
    }

    pub async fn get_issue(&self, key: &str) -> Result<Value> {
        self.guard.require("issue:read").await?;
        self.http
            .json(self.req(Method::GET, &format!("/rest/api/3/issue/{}", seg(key)?)))
            .await
    }

    /// Creates an issue labelled with `idempotency_key`, unless one exists.
    pub async fn create_issue(
        &self,
        project_key: &str,
        summary: &str,
        description: &str,
        issue_type: &str,
        idempotency_key: &str,
    ) -> Result<Issue> {
        self.guard.require("issue:create").await?;
        if let Some(found) = self.find_by_label(idempotency_key).await? {
            return Ok(found);
        }
        self.guard.require("issue:create").await?;
        let body = json!({"fields": {
            "project": {"key": project_key},
            "summary": summary,
            "issuetype": {"name": issue_type},
            "description": adf(description),
            "labels": ["vigil", idempotency_key],
        }});
        self.http
            .json(self.req(Method::POST, "/rest/api/3/issue").json(&body))
            .await
    }

    /// Comments on an issue, unless a comment with the key's marker exists.
    pub async fn comment(&self, key: &str, text: &str, idempotency_key: &str) -> Result<Value> {
        self.guard.require("issue:comment").await?;
        let marker = format!("[{idempotency_key}]");
        self.guard.require("issue:read").await?;
        let existing: Value = self
            .http
            .json(self.req(Method::GET, &format!("/rest/api/3/issue/{}/comment", seg(key)?)))
            .await?;
        if let Some(c) = existing.get("comments").and_then(Value::as_array).and_then(|cs| {
            cs.iter()
                .find(|c| c.get("body").is_some_and(|b| adf_text(b).contains(&marker)))
        }) {
            return Ok(json!({"comment_id": c.get("id"), "issue": key}));
        }
        self.guard.require("issue:comment").await?;
        let body = json!({"body": adf(&format!("{text}\n{marker}"))});
        let c: Value = self
            .http
            .json(
                self.req(Method::POST, &format!("/rest/api/3/issue/{}/comment", seg(key)?))
                    .json(&body),
            )
            .await?;
        Ok(json!({"comment_id": c.get("id"), "issue": key}))
    }

    /// Moves an issue through a workflow transition (setting a state: a
    /// repeat is harmless).
    pub async fn transition(&self, key: &str, transition_id: &str) -> Result<Value> {
        self.guard.require("issue:transition").await?;
        self.http
            .send(
                self.req(
                    Method::POST,
                    &format!("/rest/api/3/issue/{}/transitions", seg(key)?),
                )
                .json(&json!({"transition": {"id": transition_id}})),
            )
            .await?;
        Ok(json!({"issue": key, "transition": transition_id}))
    }
}

/// A path segment from the payload: issue keys and ids only.
pub(crate) fn seg(s: &str) -> Result<&str> {
    if !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s)
    } else {
        Err(ClientError::Rejected(400, format!("`{s}` is not a ticket key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_round_trip_and_keys() {
        let d = adf("line one\n\nline two [vigil-gate-x]");
        assert_eq!(adf_text(&d), "line one\nline two [vigil-gate-x]\n");
        assert!(seg("SOC-12").is_ok());
        assert!(seg("../../admin").is_err());
        assert!(seg("").is_err());
    }
}
