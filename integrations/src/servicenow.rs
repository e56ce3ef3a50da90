//! ServiceNow Table API client for the `incident` table: create and update.
//! Basic auth. ServiceNow takes no idempotency key, so a created incident
//! carries Vigil's key in `correlation_id`, and a create first looks that up:
//! a retry after a crash finds the incident the first attempt made.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{ClientError, Guard, Http, Result, url};
use crate::jira::seg;

#[derive(Debug, Clone)]
pub struct ServiceNow {
    base: String,
    username: String,
    password: String,
    assignment_group: Option<String>,
    http: Http,
    guard: Guard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub sys_id: String,
    pub number: String,
}

#[derive(Deserialize)]
struct One<T> {
    result: T,
}

/// Fields a write may set (the incident table's own fields Vigil uses).
const WRITABLE: &[&str] = &[
    "short_description",
    "description",
    "urgency",
    "impact",
    "category",
    "state",
    "work_notes",
    "comments",
    "close_code",
    "close_notes",
    "assignment_group",
];

fn fields(v: &Value) -> Result<Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| ClientError::Rejected(400, "fields must be an object".into()))?;
    for k in obj.keys() {
        if !WRITABLE.contains(&k.as_str()) {
            return Err(ClientError::Rejected(
                400,
                format!("field `{k}` is not one Vigil writes"),
            ));
        }
    }
    Ok(obj.clone())
}

impl ServiceNow {
    pub fn new(config: &Value, password: &str, http: Http, guard: Guard) -> Result<Self> {
        let field = |k: &str| crate::client::config_str(config, k);
        Ok(ServiceNow {
            base: field("instance_url")?,
            username: field("username")?,
            password: password.to_owned(),
            assignment_group: config
                .get("assignment_group")
                .and_then(Value::as_str)
                .map(str::to_owned),
            http,
            guard,
        })
    }

    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, &url(&self.base, path))
            .basic_auth(&self.username, Some(&self.password))
            .header("Accept", "application/json")
    }

    /// The incident created under `correlation_id`, if any.
    pub async fn find_by_correlation(&self, correlation_id: &str) -> Result<Option<Incident>> {
        self.guard.require("incident:read").await?;
        let q = format!("correlation_id={correlation_id}");
        let r: One<Vec<Incident>> = self
            .http
            .json(self.req(Method::GET, "/api/now/table/incident").query(&[
                ("sysparm_query", q.as_str()),
                ("sysparm_limit", "1"),
                ("sysparm_fields", "sys_id,number"),
            ]))
            .await?;
        Ok(r.result.into_iter().next())
    }

    pub async fn get(&self, sys_id: &str) -> Result<Value> {
        self.guard.require("incident:read").await?;
        let r: One<Value> = self
            .http
            .json(self.req(Method::GET, &format!("/api/now/table/incident/{}", seg(sys_id)?)))
            .await?;
        Ok(r.result)
    }

    /// Creates an incident tagged with `idempotency_key`, unless one exists.
    pub async fn create(&self, fields_in: &Value, idempotency_key: &str) -> Result<Incident> {
        self.guard.require("incident:create").await?;
        let mut body = fields(fields_in)?;
        if !body.contains_key("short_description") {
            return Err(ClientError::Rejected(
                400,
                "an incident needs a short_description".into(),
            ));
        }
        if let Some(found) = self.find_by_correlation(idempotency_key).await? {
            return Ok(found);
        }
        if let Some(g) = &self.assignment_group {
            body.entry("assignment_group")
                .or_insert_with(|| Value::String(g.clone()));
        }
        body.insert("correlation_id".into(), json!(idempotency_key));
        body.insert("correlation_display".into(), json!("Vigil"));
        self.guard.require("incident:create").await?;
        let r: One<Incident> = self
            .http
            .json(
                self.req(Method::POST, "/api/now/table/incident")
                    .json(&Value::Object(body)),
            )
            .await?;
        Ok(r.result)
    }

    /// Updates fields of an incident (setting values: a repeat is harmless).
    pub async fn update(&self, sys_id: &str, fields_in: &Value) -> Result<Incident> {
        let body = fields(fields_in)?;
        self.guard.require("incident:update").await?;
        let r: One<Incident> = self
            .http
            .json(
                self.req(
                    Method::PATCH,
                    &format!("/api/now/table/incident/{}", seg(sys_id)?),
                )
                .json(&Value::Object(body)),
            )
            .await?;
        Ok(r.result)
    }
}
