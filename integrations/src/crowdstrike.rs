//! CrowdStrike Falcon client: OAuth2 client credentials, alerts pull (Alerts
//! API v2: query ids, then fetch entities), host containment (the one write).
//! The token is cached until shortly before it expires; a 401 on a call
//! drops it, fetches a new one and tries the call once more.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{ClientError, Guard, Http, Result, url};

/// A token is refreshed this long before the vendor's expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Ids per entities request (the API's documented maximum is 1,000).
pub const PAGE: usize = 100;

#[derive(Debug)]
pub struct Falcon {
    base: String,
    client_id: String,
    client_secret: String,
    http: Http,
    guard: Guard,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct Resources<T> {
    resources: Vec<T>,
    #[serde(default)]
    meta: Value,
}

/// One page of alerts and where the next poll starts.
#[derive(Debug, Clone)]
pub struct AlertPage {
    /// The alert objects, verbatim (the exact JSON text the vendor sent).
    pub alerts: Vec<Box<RawValue>>,
    /// The newest `updated_timestamp` seen (the next poll's lower bound).
    pub cursor: Option<String>,
    /// More alerts wait beyond this page.
    pub more: bool,
}

impl Falcon {
    pub fn new(config: &Value, client_secret: &str, http: Http, guard: Guard) -> Result<Self> {
        let field = |k: &str| crate::client::config_str(config, k);
        Ok(Falcon {
            base: field("base_url")?,
            client_id: field("client_id")?,
            client_secret: client_secret.to_owned(),
            http,
            guard,
            token: Mutex::new(None),
        })
    }

    async fn token(&self) -> Result<String> {
        let mut t = self.token.lock().await;
        if let Some((tok, until)) = t.as_ref()
            && Instant::now() < *until
        {
            return Ok(tok.clone());
        }
        self.guard.require("oauth2:token").await?;
        let got: Token = self
            .http
            .json(
                self.http
                    .request(Method::POST, &url(&self.base, "/oauth2/token"))
                    .header("Accept", "application/json")
                    .form(&[
                        ("client_id", self.client_id.as_str()),
                        ("client_secret", self.client_secret.as_str()),
                    ]),
            )
            .await?;
        let life = Duration::from_secs(got.expires_in).saturating_sub(REFRESH_MARGIN);
        *t = Some((got.access_token.clone(), Instant::now() + life));
        Ok(got.access_token)
    }

    /// A call with the bearer token; on 401 a fresh token and one more try.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let tok = self.token().await?;
        match self.http.json(build(&tok)).await {
            Err(ClientError::Unauthorized(_)) => {
                *self.token.lock().await = None;
                let tok = self.token().await?;
                self.http.json(build(&tok)).await
            }
            r => r,
        }
    }

    fn req(&self, m: Method, path: &str, tok: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, &url(&self.base, path))
            .bearer_auth(tok)
            .header("Accept", "application/json")
    }

    /// Alerts updated at or after `since` (oldest first), up to `limit`.
    /// Alerts at exactly `since` come again: the ingest drops them as
    /// duplicates, so nothing between two polls is missed.
    pub async fn alerts_since(&self, since: Option<&str>, offset: usize, limit: usize) -> Result<AlertPage> {
        self.guard.require("alerts:read").await?;
        let filter = since.map(|s| format!("updated_timestamp:>='{s}'"));
        let (limit_s, offset_s) = (limit.min(PAGE).to_string(), offset.to_string());
        let ids: Resources<String> = self
            .call(|tok| {
                let mut q = vec![
                    ("sort", "updated_timestamp.asc"),
                    ("limit", limit_s.as_str()),
                    ("offset", offset_s.as_str()),
                ];
                if let Some(f) = &filter {
                    q.push(("filter", f.as_str()));
                }
                self.req(Method::GET, "/alerts/queries/alerts/v2", tok).query(&q)
            })
            .await?;
        let total = ids
            .meta
            .pointer("/pagination/total")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let more = offset + ids.resources.len() < total;
        if ids.resources.is_empty() {
            return Ok(AlertPage {
                alerts: vec![],
                cursor: since.map(str::to_owned),
                more: false,
            });
        }
        let body = json!({"composite_ids": ids.resources});
        let found: Resources<Box<RawValue>> = self
            .call(|tok| {
                self.req(Method::POST, "/alerts/entities/alerts/v2", tok)
                    .json(&body)
            })
            .await?;
        #[derive(Deserialize)]
        struct Stamp {
            updated_timestamp: String,
        }
        let mut cursor = since.map(str::to_owned);
        for a in &found.resources {
            let ts = serde_json::from_str::<Stamp>(a.get())
                .map_err(|_| ClientError::Garbage("an alert has no updated_timestamp".into()))?
                .updated_timestamp;
            if cursor.as_deref().is_none_or(|c| ts.as_str() > c) {
                cursor = Some(ts);
            }
        }
        Ok(AlertPage {
            alerts: found.resources,
            cursor,
            more,
        })
    }

    /// Network-contains a host (`hosts:contain`, a gated write). Containing
    /// a contained host is harmless, so a retry needs no key.
    pub async fn contain(&self, device_id: &str) -> Result<Value> {
        crate::jira::seg(device_id)?;
        self.guard.require("hosts:contain").await?;
        let body = json!({"ids": [device_id]});
        let r: Resources<Value> = self
            .call(|tok| {
                self.req(Method::POST, "/devices/entities/devices-actions/v2", tok)
                    .query(&[("action_name", "contain")])
                    .json(&body)
            })
            .await?;
        Ok(json!({"contained": device_id, "resources": r.resources}))
    }
}
