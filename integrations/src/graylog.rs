//! Graylog client: events search and message search (read only). Access-token auth (the token
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

    /// Messages naming `term` in [`from`, `to`] (`messages:search`), for
    /// evidence: the universal absolute search, newest first, at most
    /// `limit`. The term is searched as one quoted phrase (Lucene-escaped).
    pub async fn search_messages(
        &self,
        term: &str,
        from: &str,
        to: &str,
        limit: usize,
    ) -> Result<crate::client::Lookup> {
        self.guard.require("messages:search").await?;
        let query = phrase(term);
        let limit_s = limit.clamp(1, 1000).to_string();
        let q = [
            ("query", query.as_str()),
            ("from", from),
            ("to", to),
            ("limit", limit_s.as_str()),
            ("sort", "timestamp:desc"),
        ];
        let (_, body) = self
            .http
            .send(
                self.http
                    .request(Method::GET, &url(&self.base, "/api/search/universal/absolute"))
                    .basic_auth(&self.user, Some(&self.password))
                    .header("X-Requested-By", "vigil")
                    .header("Accept", "application/json")
                    .query(&q),
            )
            .await?;
        #[derive(Deserialize)]
        struct Messages {
            #[allow(dead_code)]
            messages: Vec<Value>,
        }
        crate::client::parse::<Messages>(&body)?;
        let text = String::from_utf8(body).map_err(|_| ClientError::Garbage("not UTF-8".into()))?;
        Ok(crate::client::Lookup {
            request: format!(
                "GET /api/search/universal/absolute?query={query}&from={from}&to={to}&limit={limit_s}"
            ),
            body: text,
        })
    }
}

/// `term` as one Lucene phrase: quotes and backslashes escaped.
pub fn phrase(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('"');
    for c in term.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_term_is_one_phrase() {
        assert_eq!(super::phrase("ws-042"), "\"ws-042\"");
        assert_eq!(super::phrase("a\"b OR c\\"), "\"a\\\"b OR c\\\\\"");
        assert_eq!(super::phrase("x\ny"), "\"xy\"");
    }
}
