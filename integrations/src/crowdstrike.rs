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

use crate::client::{ClientError, Guard, Http, Lookup, Result, url};

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

    /// The device record of a host, for evidence (`hosts:read`): the ids
    /// whose `hostname` is `host` (FQL), then their entities. Returns the
    /// request as one line and the entities response verbatim (an unknown
    /// host: the query's own answer, with no resources).
    pub async fn device_details(&self, host: &str) -> Result<Lookup> {
        self.guard.require("hosts:read").await?;
        if host.is_empty()
            || host.len() > 255
            || host.chars().any(|c| c.is_control() || c == '\'' || c == '\\')
        {
            return Err(ClientError::Garbage(format!("not a host name for FQL: {host:?}")));
        }
        let filter = format!("hostname:'{host}'");
        let ids: Box<RawValue> = self
            .call(|tok| {
                self.req(Method::GET, "/devices/queries/devices/v1", tok)
                    .query(&[("filter", filter.as_str()), ("limit", "10")])
            })
            .await?;
        let parsed: Resources<String> = serde_json::from_str(ids.get())
            .map_err(|e| ClientError::Garbage(format!("device query: {e}")))?;
        let mut request = format!("GET /devices/queries/devices/v1?filter={filter}");
        if parsed.resources.is_empty() {
            return Ok(Lookup {
                request,
                body: ids.get().to_owned(),
            });
        }
        let q: Vec<(&str, &str)> = parsed.resources.iter().map(|id| ("ids", id.as_str())).collect();
        let found: Box<RawValue> = self
            .call(|tok| {
                self.req(Method::GET, "/devices/entities/devices/v2", tok)
                    .query(&q)
            })
            .await?;
        serde_json::from_str::<Resources<Value>>(found.get())
            .map_err(|e| ClientError::Garbage(format!("device entities: {e}")))?;
        request.push_str(&format!(
            "; GET /devices/entities/devices/v2?ids={}",
            parsed.resources.join("&ids=")
        ));
        Ok(Lookup {
            request,
            body: found.get().to_owned(),
        })
    }

    /// A user's identity record, for evidence (`identity:read`): Identity
    /// Protection's GraphQL `entities` of type USER whose display name, or
    /// (for an e-mail address or `DOMAIN\\name`) secondary display name, is
    /// `user`, with their roles (privileged groups such as Domain Admins),
    /// risk score and Active Directory account. The name travels as a
    /// GraphQL variable, never inside the query text. Returns the request
    /// as one line and the response verbatim; a GraphQL error (HTTP 200
    /// with `errors`) is a refusal, not evidence.
    pub async fn identity_entity(&self, user: &str) -> Result<Lookup> {
        self.guard.require("identity:read").await?;
        if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
            return Err(ClientError::Garbage(format!("not a user name: {user:?}")));
        }
        let by = if user.contains('@') || user.contains('\\') {
            "secondaryDisplayNames"
        } else {
            "primaryDisplayNames"
        };
        let query = format!(
            "query ($names: [String!]) {{ entities(types: [USER], {by}: $names, first: 5) {{ nodes {{ \
             entityId primaryDisplayName secondaryDisplayName riskScore riskScoreSeverity \
             roles {{ type }} \
             accounts {{ ... on ActiveDirectoryAccountDescriptor {{ domain samAccountName ou }} }} }} }} }}"
        );
        let body = json!({"query": query, "variables": {"names": [user]}});
        let found: Box<RawValue> = self
            .call(|tok| {
                self.req(Method::POST, "/identity-protection/combined/graphql/v1", tok)
                    .json(&body)
            })
            .await?;
        #[derive(Deserialize)]
        struct Answer {
            data: Option<Value>,
            #[serde(default)]
            errors: Vec<Value>,
        }
        let a: Answer = serde_json::from_str(found.get())
            .map_err(|e| ClientError::Garbage(format!("identity entities: {e}")))?;
        if !a.errors.is_empty() {
            let msg: Vec<&str> = a
                .errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect();
            return Err(ClientError::Garbage(format!("GraphQL error: {}", msg.join("; "))));
        }
        if a.data
            .as_ref()
            .and_then(|d| d.pointer("/entities/nodes"))
            .is_none_or(|n| !n.is_array())
        {
            return Err(ClientError::Garbage(
                "identity entities: no data.entities.nodes".into(),
            ));
        }
        Ok(Lookup {
            request: format!(
                "POST /identity-protection/combined/graphql/v1 entities(types: [USER], {by}: [{user:?}])"
            ),
            body: found.get().to_owned(),
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
