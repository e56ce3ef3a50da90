//! What every vendor client shares: one HTTP client with timeouts on every
//! call, no redirects, a cap on response bodies; one error type that says
//! whether a failure is worth retrying (and when, from `Retry-After`); and the
//! scope guard that makes a client refuse any call outside the scopes
//! enabled at the moment of the call.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::{Access, Kind, manifest};

/// Responses larger than this are refused (a vendor returning garbage).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Every call is bounded by this unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `Retry-After` values are honoured up to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("scope `{0}` is not enabled for this integration")]
    ScopeDisabled(&'static str),
    /// The scope's state could not be read (the database away): no call is
    /// made, and the write is tried again later.
    #[error("scope `{0}` could not be read, the call waits: {1}")]
    ScopeUnreadable(&'static str, String),
    #[error("`{0}` is not a scope of this connector's manifest")]
    NotInManifest(&'static str),
    #[error("the integration has no credential")]
    NoCredential,
    #[error("the vendor refused the credential (HTTP {0})")]
    Unauthorized(u16),
    #[error("the vendor denied the call (HTTP 403): the credential lacks a permission")]
    Forbidden,
    #[error("not found at the vendor (HTTP 404)")]
    NotFound,
    #[error("rate limited by the vendor (HTTP 429), retry after {}s", .0.as_secs())]
    RateLimited(Duration),
    #[error("the vendor failed (HTTP {0})")]
    Server(u16),
    #[error("the vendor rejected the request (HTTP {0}): {1}")]
    Rejected(u16, String),
    #[error("the vendor did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("could not reach the vendor: {0}")]
    Transport(String),
    #[error("the vendor's response is larger than {} bytes", MAX_BODY)]
    TooLarge,
    #[error("the vendor's response is not what its API documents: {0}")]
    Garbage(String),
}

impl ClientError {
    /// Worth retrying later: rate limits, 5xx, timeouts, connection errors.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            ClientError::RateLimited(_)
                | ClientError::Server(_)
                | ClientError::Timeout(_)
                | ClientError::Transport(_)
                | ClientError::ScopeUnreadable(..)
        )
    }

    /// When the vendor said to come back (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited(d) => Some(*d),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Which write scopes are enabled right now. Asked immediately before every
/// write call, so a scope disabled mid-flight stops the next call. `Err`:
/// the state could not be read — no call is made (fail closed), and the
/// caller tries again later (it is not a "disabled").
#[async_trait::async_trait]
pub trait Scopes: Send + Sync + std::fmt::Debug {
    async fn enabled(&self, scope: &'static str) -> std::result::Result<bool, String>;
}

/// A fixed set of enabled write scopes.
#[derive(Debug, Clone, Default)]
pub struct FixedScopes(pub Vec<&'static str>);

#[async_trait::async_trait]
impl Scopes for FixedScopes {
    async fn enabled(&self, scope: &'static str) -> std::result::Result<bool, String> {
        Ok(self.0.contains(&scope))
    }
}

/// The guard every client call goes through.
#[derive(Debug, Clone)]
pub struct Guard {
    kind: Kind,
    scopes: Arc<dyn Scopes>,
}

impl Guard {
    pub fn new(kind: Kind, scopes: Arc<dyn Scopes>) -> Self {
        Guard { kind, scopes }
    }

    /// Allows a call under `scope`: it must be in the kind's manifest; a
    /// write scope must be enabled now.
    pub async fn require(&self, scope: &'static str) -> Result<()> {
        let s = manifest(self.kind)
            .iter()
            .find(|s| s.name == scope)
            .ok_or(ClientError::NotInManifest(scope))?;
        if s.access == Access::Write {
            match self.scopes.enabled(scope).await {
                Ok(true) => {}
                Ok(false) => return Err(ClientError::ScopeDisabled(scope)),
                Err(e) => return Err(ClientError::ScopeUnreadable(scope, e)),
            }
        }
        Ok(())
    }
}

/// The HTTP side: timeouts on every call, no redirects, capped bodies.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Http { client, timeout })
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends, reads at most [`MAX_BODY`] bytes, and maps HTTP errors.
    pub async fn send(&self, rb: RequestBuilder) -> Result<(StatusCode, Vec<u8>)> {
        let mut resp = rb.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if let Some(len) = resp.content_length()
            && len > MAX_BODY as u64
        {
            return Err(ClientError::TooLarge);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ClientError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        match status.as_u16() {
            200..=299 => Ok((status, body)),
            401 => Err(ClientError::Unauthorized(401)),
            403 => Err(ClientError::Forbidden),
            404 => Err(ClientError::NotFound),
            429 => Err(ClientError::RateLimited(
                retry_after
                    .unwrap_or(Duration::from_secs(60))
                    .min(MAX_RETRY_AFTER),
            )),
            s @ 500..=599 => Err(ClientError::Server(s)),
            s => Err(ClientError::Rejected(s, snippet(&body))),
        }
    }

    /// Sends and parses a JSON body.
    pub async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let (_, body) = self.send(rb).await?;
        parse(&body)
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout(self.timeout)
        } else {
            ClientError::Transport(e.to_string())
        }
    }
}

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ClientError::Garbage(e.to_string()))
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    s
}

/// One read for evidence: what was asked (one line) and the vendor's
/// answer, verbatim.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub request: String,
    pub body: String,
}

/// A required string field of an integration's config.
pub fn config_str(config: &serde_json::Value, key: &str) -> Result<String> {
    config
        .get(key)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Garbage(format!("config has no `{key}`")))
}

/// Joins a configured base URL and a path.
pub fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
