//! Graylog client: events search (read only). Access-token auth (the token
//! as the user name, the literal `token` as password) or user + password;
//! `X-Requested-By` on every call, as Graylog's API requires.

use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::client::{ClientError, Guard, Http, Result, url};

pub const PAGE: usize = 100;

#[derive(Debug, Clone)]
pub struct Graylog {
    base: String,
    user: String,
    password: String,
    query: String,
    http: Http,
    guard: Guard,
}

#[derive(Debug, Clone)]
pub struct EventPage {
    /// `{event, index_name, index_type}` objects, verbatim.
    pub events: Vec<Box<RawValue>>,
    pub cursor: Option<String>,
    pub more: bool,
}

#[derive(Deserialize)]
struct Found {
    events: Vec<Box<RawValue>>,
    total_events: u64,
}

impl Graylog {
    pub fn new(config: &Value, secret: &str, http: Http, guard: Guard) -> Result<Self> {
        let base = config
            .get("base_url")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Garbage("config has no `base_url`".into()))?
            .to_owned();
        let (user, password) = match config.get("username").and_then(Value::as_str) {
            Some(u) => (u.to_owned(), secret.to_owned()),
            None => (secret.to_owned(), "token".to_owned()),
        };
        Ok(Graylog {
            base,
            user,
            password,
            query: config
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            http,
            guard,
        })
    }

    /// Events with a timestamp in [`since`, `until`], oldest first.
    pub async fn events_since(&self, since: &str, until: &str, page: usize) -> Result<EventPage> {
        self.guard.require("events:search").await?;
        let body = json!({
            "query": self.query,
            "page": page,
            "per_page": PAGE,
            "sort_by": "timestamp",
            "sort_direction": "asc",
            "timerange": {"type": "absolute", "from": since, "to": until},
        });
        let f: Found = self
            .http
            .json(
                self.http
                    .request(Method::POST, &url(&self.base, "/api/events/search"))
                    .basic_auth(&self.user, Some(&self.password))
                    .header("X-Requested-By", "vigil")
                    .header("Accept", "application/json")
                    .json(&body),
            )
            .await?;
        let mut cursor = Some(since.to_owned());
        #[derive(Deserialize)]
        struct Inner {
            timestamp: String,
        }
        #[derive(Deserialize)]
        struct Stamp {
            event: Inner,
        }
        for e in &f.events {
            let ts = serde_json::from_str::<Stamp>(e.get())
                .map_err(|_| ClientError::Garbage("an event has no event.timestamp".into()))?
                .event
                .timestamp;
            if cursor.as_deref().is_none_or(|c| ts.as_str() > c) {
                cursor = Some(ts);
            }
        }
        let more = (page.max(1) * PAGE) < f.total_events as usize;
        Ok(EventPage {
            events: f.events,
            cursor,
            more,
        })
    }
}
