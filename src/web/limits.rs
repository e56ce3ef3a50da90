//! Rate limits at the edge, per source IP (governor's keyed GCRA limiters):
//!
//! * sign-in: every attempt at a sign-in route (password login, second
//!   factor, the SSO legs) counts; beyond the quota the answer is 429 with
//!   `Retry-After` and nothing runs;
//! * failures: a wrong API token or a bad webhook signature counts; the
//!   failure that crosses the quota puts the address in a penalty box for
//!   the time the limiter names, during which every such request from it is
//!   answered 429 before it is checked (so before it can write an audit row).
//!
//! Refusals are not audited one by one: they are counted per (kind,
//! address) and [`RateLimits::flush`] writes one platform audit row per
//! pair (`ratelimit.refused`, with the count), which `vigil serve` does
//! every minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde_json::json;
use vigil_orchestrator::audit::{self, Actor, Event};
use vigil_orchestrator::store::Store;
use vigil_orchestrator::{Clock, Result};

/// The most one page of `GET /api/v1/alerts` carries (raw alerts and their
/// observables, as JSON): a page ends early rather than pass it (it always
/// holds at least one alert), and says where the next starts (`next_offset`).
pub const MAX_ALERT_PAGE_BYTES: usize = 2 * 1024 * 1024;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// What is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    SignIn,
    BadToken,
    BadSignature,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::BadToken => "bad_api_token",
            Kind::BadSignature => "bad_webhook_signature",
        }
    }
}

/// Quotas per source IP and minute (0: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub sign_in_per_minute: u32,
    pub failures_per_minute: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            sign_in_per_minute: 60,
            failures_per_minute: 30,
        }
    }
}

#[derive(Debug)]
pub struct RateLimits {
    quotas: Quotas,
    sign_in: Option<Keyed<IpAddr>>,
    failures: Option<Keyed<(Kind, IpAddr)>>,
    penalty: Mutex<HashMap<(Kind, IpAddr), Instant>>,
    refused: Mutex<HashMap<(Kind, IpAddr), u64>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<Keyed<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// Seconds to announce in `Retry-After` (at least 1).
fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimits {
    pub fn new(quotas: Quotas) -> Self {
        RateLimits {
            quotas,
            sign_in: limiter(quotas.sign_in_per_minute),
            failures: limiter(quotas.failures_per_minute),
            penalty: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    fn refuse(&self, kind: Kind, ip: IpAddr, wait: Duration) -> u64 {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry((kind, ip)).or_default() += 1;
        }
        secs(wait).max(1)
    }

    /// A sign-in attempt: `Err(retry_after_secs)` beyond the quota.
    pub fn sign_in(&self, ip: IpAddr) -> std::result::Result<(), u64> {
        let Some(l) = &self.sign_in else { return Ok(()) };
        l.check_key(&ip)
            .map_err(|n| self.refuse(Kind::SignIn, ip, n.wait_time_from(DefaultClock::default().now())))
    }

    /// Before checking a credential of `kind`: `Err(retry_after_secs)`
    /// while the address is in the penalty box.
    pub fn penalized(&self, kind: Kind, ip: IpAddr) -> std::result::Result<(), u64> {
        let now = Instant::now();
        let until = self
            .penalty
            .lock()
            .ok()
            .and_then(|mut m| match m.get(&(kind, ip)).copied() {
                Some(u) if u > now => Some(u),
                Some(_) => {
                    m.remove(&(kind, ip));
                    None
                }
                None => None,
            });
        match until {
            Some(u) => Err(self.refuse(kind, ip, u - now)),
            None => Ok(()),
        }
    }

    /// A failed credential of `kind`: `Err(retry_after_secs)` when it is one
    /// too many (the address is in the penalty box from now on).
    pub fn failure(&self, kind: Kind, ip: IpAddr) -> std::result::Result<(), u64> {
        let Some(l) = &self.failures else { return Ok(()) };
        match l.check_key(&(kind, ip)) {
            Ok(()) => Ok(()),
            Err(n) => {
                let wait = n
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1));
                if let Ok(mut m) = self.penalty.lock() {
                    m.retain(|_, u| *u > Instant::now());
                    m.insert((kind, ip), Instant::now() + wait);
                }
                Err(self.refuse(kind, ip, wait))
            }
        }
    }

    /// Writes one platform audit row per (kind, address) refused since the
    /// last flush, with the count; returns how many rows.
    pub async fn flush(&self, store: &Store, clock: &dyn Clock) -> Result<usize> {
        let counts: Vec<((Kind, IpAddr), u64)> = match self.refused.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => Vec::new(),
        };
        if counts.is_empty() {
            return Ok(0);
        }
        let tx = store.begin_platform().await?;
        for ((kind, ip), n) in &counts {
            audit::record_platform(
                &tx,
                clock,
                &Actor {
                    label: "anonymous".into(),
                    role: None,
                    source_ip: Some(ip.to_string()),
                },
                Event {
                    action: "ratelimit.refused",
                    target: format!("ip:{ip}"),
                    summary: json!({"kind": kind.as_str(), "refused": n}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counts.len())
    }

    /// Forgets idle limiter state (call now and then).
    pub fn shrink(&self) {
        if let Some(l) = &self.sign_in {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.failures {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The 429 every limit answers, in the documented error shape.
pub fn too_many(path: &str, retry_after: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message = format!("too many requests from your address; retry in {retry_after} s");
    let mut res = if path.starts_with("/api/") {
        super::ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .into_response()
    } else {
        super::error::message(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            message,
        )
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    res
}
