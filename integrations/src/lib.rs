//! Vigil's connectors: what each may do (its permission manifest), how it is
//! configured, and (with the Integrations issue) the vendor clients. This
//! crate never touches the database.
//!
//! Every integration starts read-only: its write scopes are off until a
//! Tenant Admin enables each one. The manifest names, per scope, the exact
//! vendor API calls it permits, so an admin sees what an opt-in allows.

pub mod client;
pub mod crowdstrike;
pub mod graylog;
pub mod jira;
pub mod llm;
pub mod notify;
pub mod oidc;
pub mod saml;
pub mod servicenow;
pub mod signing;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Webhook,
    Crowdstrike,
    Graylog,
    Jira,
    Servicenow,
    NotifyWebhook,
    Llm,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Webhook,
        Kind::Crowdstrike,
        Kind::Graylog,
        Kind::Jira,
        Kind::Servicenow,
        Kind::NotifyWebhook,
        Kind::Llm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Crowdstrike => "crowdstrike",
            Kind::Graylog => "graylog",
            Kind::Jira => "jira",
            Kind::Servicenow => "servicenow",
            Kind::NotifyWebhook => "notify_webhook",
            Kind::Llm => "llm",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unknown integration kind `{0}` (one of: webhook, crowdstrike, graylog, jira, servicenow, notify_webhook, llm)"
    )]
    UnknownKind(String),
    #[error("config must be a JSON object")]
    NotAnObject,
    #[error("config is missing `{0}`")]
    Missing(&'static str),
    #[error("config field `{0}` is invalid: {1}")]
    Invalid(&'static str, String),
    #[error("unknown config field `{0}` for this kind")]
    UnknownField(String),
    #[error("no scope `{0}` in this integration's manifest")]
    UnknownScope(String),
}

impl FromStr for Kind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ConfigError::UnknownKind(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

/// One scope: a name, read or write, and the vendor calls it permits.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scope {
    pub name: &'static str,
    pub access: Access,
    pub calls: &'static [&'static str],
    pub purpose: &'static str,
}

const fn read(name: &'static str, calls: &'static [&'static str], purpose: &'static str) -> Scope {
    Scope {
        name,
        access: Access::Read,
        calls,
        purpose,
    }
}

const fn write(name: &'static str, calls: &'static [&'static str], purpose: &'static str) -> Scope {
    Scope {
        name,
        access: Access::Write,
        calls,
        purpose,
    }
}

const WEBHOOK: &[Scope] = &[read(
    "alerts:receive",
    &["POST /api/v1/ingest/{integration_id} (inbound, HMAC-SHA256 signed)"],
    "receive alerts pushed by the source",
)];
const CROWDSTRIKE: &[Scope] = &[
    read(
        "oauth2:token",
        &["POST /oauth2/token"],
        "obtain an access token (client credentials)",
    ),
    read(
        "alerts:read",
        &["GET /alerts/queries/alerts/v2", "POST /alerts/entities/alerts/v2"],
        "pull alerts",
    ),
    read(
        "hosts:read",
        &[
            "GET /devices/queries/devices/v1",
            "GET /devices/entities/devices/v2",
        ],
        "look up host details for evidence",
    ),
    read(
        "identity:read",
        &["POST /identity-protection/combined/graphql/v1"],
        "look up a user's account, privileged roles and risk in Identity Protection for evidence",
    ),
    write(
        "hosts:contain",
        &["POST /devices/entities/devices-actions/v2?action_name=contain"],
        "contain a host (gated)",
    ),
];
const GRAYLOG: &[Scope] = &[
    read("events:search", &["POST /api/events/search"], "pull events"),
    read(
        "messages:search",
        &["GET /api/search/universal/absolute"],
        "search messages naming a case's hosts, users and addresses for evidence",
    ),
];
const JIRA: &[Scope] = &[
    read(
        "issue:read",
        &[
            "GET /rest/api/3/issue/{issueIdOrKey}",
            "GET /rest/api/3/search/jql",
            "GET /rest/api/3/issue/{issueIdOrKey}/comment",
        ],
        "read issues and comments Vigil created (a retried write looks for its own first)",
    ),
    write(
        "issue:create",
        &["POST /rest/api/3/issue"],
        "open an issue for a case (gated)",
    ),
    write(
        "issue:comment",
        &["POST /rest/api/3/issue/{issueIdOrKey}/comment"],
        "comment on an issue (gated)",
    ),
    write(
        "issue:transition",
        &["POST /rest/api/3/issue/{issueIdOrKey}/transitions"],
        "move an issue's status (gated)",
    ),
];
const SERVICENOW: &[Scope] = &[
    read(
        "incident:read",
        &[
            "GET /api/now/table/incident/{sys_id}",
            "GET /api/now/table/incident?sysparm_query=correlation_id={key}",
        ],
        "read incidents Vigil created (a retried create looks for its own first)",
    ),
    write(
        "incident:create",
        &["POST /api/now/table/incident"],
        "open an incident for a case (gated)",
    ),
    write(
        "incident:update",
        &["PATCH /api/now/table/incident/{sys_id}"],
        "update an incident (gated)",
    ),
];
const NOTIFY_WEBHOOK: &[Scope] = &[write(
    "notify:send",
    &["POST {url} (outbound, HMAC-SHA256 signed)"],
    "send notifications (e.g. an escalated gate)",
)];

const LLM: &[Scope] = &[write(
    "context:send",
    &[
        "POST {base_url}/v1/chat/completions (OpenAI-compatible)",
        "POST {base_url}/v1/messages (Anthropic)",
    ],
    "send a case's sanitized context to the tenant's model to draft a brief (opt-in: tenant data leaves Vigil)",
)];

/// The permission manifest of a connector kind.
pub fn manifest(kind: Kind) -> &'static [Scope] {
    match kind {
        Kind::Webhook => WEBHOOK,
        Kind::Crowdstrike => CROWDSTRIKE,
        Kind::Graylog => GRAYLOG,
        Kind::Jira => JIRA,
        Kind::Servicenow => SERVICENOW,
        Kind::NotifyWebhook => NOTIFY_WEBHOOK,
        Kind::Llm => LLM,
    }
}

/// The scope named `name` in the kind's manifest.
pub fn scope(kind: Kind, name: &str) -> Result<&'static Scope, ConfigError> {
    manifest(kind)
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ConfigError::UnknownScope(name.to_owned()))
}

/// The write scope a ticket operation needs on a ticket system.
pub fn ticket_scope(kind: Kind, operation: &str) -> Option<&'static str> {
    match (kind, operation) {
        (Kind::Jira, "create") => Some("issue:create"),
        (Kind::Jira, "comment") => Some("issue:comment"),
        (Kind::Jira, "transition" | "update") => Some("issue:transition"),
        (Kind::Servicenow, "create") => Some("incident:create"),
        (Kind::Servicenow, "update" | "comment" | "transition") => Some("incident:update"),
        _ => None,
    }
}

/// Integrations call out over TLS only; loopback (simulators, local tests)
/// is the one exception.
fn check_url(field: &'static str, v: &Value) -> Result<(), ConfigError> {
    let s = v
        .as_str()
        .ok_or(ConfigError::Invalid(field, "must be a string".into()))?;
    let rest = if let Some(r) = s.strip_prefix("https://") {
        r
    } else if let Some(r) = s.strip_prefix("http://") {
        let host = r.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(ConfigError::Invalid(
                field,
                "must be an https:// URL (plain http only to loopback)".into(),
            ));
        }
        r
    } else {
        return Err(ConfigError::Invalid(field, "must be an https:// URL".into()));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::Invalid(field, "has no host".into()));
    }
    Ok(())
}

/// Checks an integration's (non-secret) configuration for its kind.
pub fn validate_config(kind: Kind, config: &Value) -> Result<(), ConfigError> {
    let obj = config.as_object().ok_or(ConfigError::NotAnObject)?;
    let (required, optional): (&[&'static str], &[&'static str]) = match kind {
        Kind::Webhook => (&[], &["format"]),
        Kind::Crowdstrike => (&["base_url", "client_id"], &["poll_seconds"]),
        Kind::Graylog => (&["base_url"], &["poll_seconds", "query", "username"]),
        Kind::Jira => (&["base_url", "email"], &["project_key"]),
        Kind::Servicenow => (&["instance_url", "username"], &["assignment_group"]),
        Kind::NotifyWebhook => (&["url"], &["events"]),
        Kind::Llm => (&["base_url", "api", "model"], &["redact"]),
    };
    for k in obj.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(ConfigError::UnknownField(k.clone()));
        }
    }
    for r in required {
        let v = obj.get(*r).ok_or(ConfigError::Missing(r))?;
        if v.as_str().is_none_or(|s| s.trim().is_empty()) {
            return Err(ConfigError::Invalid(r, "must be a non-empty string".into()));
        }
    }
    for url in ["base_url", "instance_url", "url"] {
        if let Some(v) = obj.get(url) {
            let field = match url {
                "base_url" => "base_url",
                "instance_url" => "instance_url",
                _ => "url",
            };
            check_url(field, v)?;
        }
    }
    if obj.contains_key("redact") {
        llm::redact_patterns(config)?;
    }
    if let Some(f) = obj.get("format")
        && !matches!(
            f.as_str(),
            Some("ocsf" | "ecs" | "crowdstrike" | "graylog" | "auto")
        )
    {
        return Err(ConfigError::Invalid(
            "format",
            "must be ocsf, ecs, crowdstrike, graylog or auto".into(),
        ));
    }
    if let Some(a) = obj.get("api")
        && !matches!(a.as_str(), Some("openai" | "anthropic"))
    {
        return Err(ConfigError::Invalid("api", "must be openai or anthropic".into()));
    }
    if let Some(p) = obj.get("poll_seconds")
        && !p.as_u64().is_some_and(|n| (10..=86_400).contains(&n))
    {
        return Err(ConfigError::Invalid("poll_seconds", "must be 10 to 86400".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_has_a_manifest_with_calls() {
        for k in Kind::ALL {
            assert!(!manifest(k).is_empty(), "{k}");
            for s in manifest(k) {
                assert!(!s.calls.is_empty(), "{k} {}", s.name);
            }
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
        assert_eq!(scope(Kind::Jira, "issue:create").unwrap().access, Access::Write);
        assert!(scope(Kind::Jira, "issue:delete").is_err());
        assert_eq!(ticket_scope(Kind::Servicenow, "create"), Some("incident:create"));
        assert_eq!(ticket_scope(Kind::Graylog, "create"), None);
    }

    #[test]
    fn configs_are_checked() {
        assert!(validate_config(Kind::Webhook, &json!({})).is_ok());
        assert!(validate_config(Kind::Webhook, &json!({"format": "ecs"})).is_ok());
        assert_eq!(
            validate_config(Kind::Webhook, &json!({"format": "xml"})).unwrap_err(),
            ConfigError::Invalid("format", "must be ocsf, ecs, crowdstrike, graylog or auto".into())
        );
        assert!(
            validate_config(
                Kind::Jira,
                &json!({"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"})
            )
            .is_ok()
        );
        assert_eq!(
            validate_config(Kind::Jira, &json!({"base_url": "https://x.example"})).unwrap_err(),
            ConfigError::Missing("email")
        );
        assert!(matches!(
            validate_config(Kind::Jira, &json!({"base_url": "http://x.example", "email": "e"})),
            Err(ConfigError::Invalid("base_url", _))
        ));
        assert!(
            validate_config(
                Kind::Jira,
                &json!({"base_url": "http://127.0.0.1:9000", "email": "e"})
            )
            .is_ok(),
            "loopback simulators"
        );
        assert!(matches!(
            validate_config(Kind::Jira, &json!({"base_url": "https://", "email": "e"})),
            Err(ConfigError::Invalid(..))
        ));
        assert_eq!(
            validate_config(Kind::Graylog, &json!({"base_url": "https://g", "token": "x"})).unwrap_err(),
            ConfigError::UnknownField("token".into())
        );
        assert_eq!(
            validate_config(Kind::Graylog, &json!([])).unwrap_err(),
            ConfigError::NotAnObject
        );
        assert!(
            validate_config(
                Kind::Crowdstrike,
                &json!({"base_url": "https://api.crowdstrike.com", "client_id": "c", "poll_seconds": 5})
            )
            .is_err()
        );
        assert!("teams".parse::<Kind>().is_err());
    }
}
