//! The outbox's [`Writer`] over the real vendor clients: the one place an
//! approved external write leaves Vigil. It resolves the integration a gate's
//! payload names, decrypts its credential for this one use, and builds the
//! client with a scope source that asks the database at every vendor call, so
//! a write scope disabled mid-flight stops the next call.
//!
//! Client timeouts (30 s) stay well inside the outbox lease (60 s): a write
//! is finished or failed before another worker may re-claim its entry.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_integrations::client::{ClientError, Guard, Http, Scopes};
use vigil_integrations::{Kind, crowdstrike, jira, servicenow, ticket_scope};

use crate::connect::integrations;
use crate::engine::outbox::{WriteError, Writer};
use crate::secrets::credentials::Kms;
use crate::secrets::vault;
use crate::store::{Store, TenantTx};
use crate::{Clock, Error, Result, TenantId};

/// Every vendor call is bounded by this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What an outbox entry writes to: the integration, its kind, the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub integration: Uuid,
    pub kind: Kind,
    pub scope: &'static str,
}

fn field<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The target of a gated write: a ticket write or a host containment.
pub fn target(action: &str, payload: &Value) -> Result<Target> {
    let integration = field(payload, "integration_id")
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(|| Error::Invalid(format!("{action} needs an `integration_id`")))?;
    if action == "contain_host" {
        return Ok(Target {
            integration,
            kind: Kind::Crowdstrike,
            scope: "hosts:contain",
        });
    }
    if action != "ticket_write" {
        return Err(Error::Invalid(format!("no connector performs `{action}`")));
    }
    let kind: Kind = field(payload, "system")
        .unwrap_or_default()
        .parse()
        .map_err(|e: vigil_integrations::ConfigError| Error::Invalid(e.to_string()))?;
    let op = field(payload, "operation").unwrap_or_default();
    let scope = ticket_scope(kind, op)
        .ok_or_else(|| Error::Invalid(format!("{kind} has no ticket operation `{op}`")))?;
    Ok(Target {
        integration,
        kind,
        scope,
    })
}

/// Checks, in the requester's transaction, that the integration a gated
/// write names exists in this tenant and is of the right kind.
pub async fn check_target(tx: &TenantTx, action: &str, payload: &Value) -> Result<Target> {
    let t = target(action, payload)?;
    let i = integrations::get(tx, t.integration).await.map_err(|_| {
        Error::Invalid(format!(
            "integration_id names no {} integration of this tenant",
            t.kind
        ))
    })?;
    if i.kind != t.kind {
        return Err(Error::Invalid(format!(
            "integration `{}` is {}, not {}",
            i.name, i.kind, t.kind
        )));
    }
    Ok(t)
}

/// Write scopes as they are in the database at the moment of each call.
#[derive(Debug)]
struct LiveScopes {
    store: Store,
    tenant: TenantId,
    integration: Uuid,
}

#[async_trait::async_trait]
impl Scopes for LiveScopes {
    async fn enabled(&self, scope: &'static str) -> std::result::Result<bool, String> {
        let r = async {
            let tx = self.store.begin_tenant(self.tenant).await?;
            let on = integrations::scope_enabled(&tx, self.integration, scope).await?;
            tx.commit().await?;
            Ok::<bool, Error>(on)
        }
        .await;
        // A scope that cannot be read allows nothing (fail closed), and
        // says so: the write waits and is tried again, it is not refused.
        r.map_err(|e| {
            tracing::warn!(error = %e, scope, "cannot read write scope; the call waits");
            e.to_string()
        })
    }
}

/// The real writer.
#[derive(Debug, Clone)]
pub struct Connectors {
    store: Store,
    master: Arc<dyn Kms>,
    clock: Arc<dyn Clock>,
    http: Http,
}

impl Connectors {
    pub fn new(store: Store, master: Arc<dyn Kms>, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::with_timeout(store, master, clock, CALL_TIMEOUT)
    }

    pub fn with_timeout(
        store: Store,
        master: Arc<dyn Kms>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self> {
        let http = Http::new(timeout).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Connectors {
            store,
            master,
            clock,
            http,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The integration's config and decrypted credential, for one use.
    pub async fn open(&self, tenant: TenantId, integration: Uuid) -> Result<(Value, Kind, String)> {
        let tx = self.store.begin_tenant(tenant).await?;
        let i = integrations::get(&tx, integration).await?;
        let secret = vault::open(&tx, self.clock.as_ref(), self.master.as_ref(), integration).await?;
        tx.commit().await?;
        let s = String::from_utf8(secret.expose_secret().clone())
            .map_err(|_| Error::Invalid("the credential is not UTF-8".into()))?;
        Ok((i.config, i.kind, s))
    }

    /// A guard over the live write scopes of one integration.
    pub fn guard(&self, tenant: TenantId, kind: Kind, integration: Uuid) -> Guard {
        Guard::new(
            kind,
            Arc::new(LiveScopes {
                store: self.store.clone(),
                tenant,
                integration,
            }),
        )
    }

    async fn perform(
        &self,
        tenant: TenantId,
        t: &Target,
        payload: &Value,
        key: &str,
    ) -> Result<Value, WriteError> {
        let (config, kind, secret) = self.open(tenant, t.integration).await.map_err(|e| match e {
            Error::NotFound("credential") => {
                WriteError::permanent("the integration has no credential: set one")
            }
            Error::Db(_) => WriteError::transient(e.to_string()),
            e => WriteError::permanent(e.to_string()),
        })?;
        if kind != t.kind {
            return Err(WriteError::permanent(format!(
                "the integration is {kind}, not {}",
                t.kind
            )));
        }
        let guard = self.guard(tenant, kind, t.integration);
        let fields = payload.get("fields").cloned().unwrap_or_else(|| json!({}));
        let ticket = field(payload, "ticket").unwrap_or_default();
        let op = field(payload, "operation").unwrap_or_default();
        let r: Result<Value, ClientError> = match kind {
            Kind::Jira => {
                let c = jira::Jira::new(&config, &secret, self.http.clone(), guard)?;
                match op {
                    "create" => {
                        let project = field(&fields, "project_key")
                            .or_else(|| field(&config, "project_key"))
                            .ok_or_else(|| {
                                WriteError::permanent("no project_key in the payload or the integration")
                            })?;
                        let summary = field(&fields, "summary")
                            .ok_or_else(|| WriteError::permanent("a Jira issue needs fields.summary"))?;
                        c.create_issue(
                            project,
                            summary,
                            field(&fields, "description").unwrap_or(""),
                            field(&fields, "issue_type").unwrap_or("Task"),
                            key,
                        )
                        .await
                        .map(|i| json!({"system": "jira", "ticket": i.key, "id": i.id}))
                    }
                    "comment" => {
                        let body = field(&fields, "body")
                            .ok_or_else(|| WriteError::permanent("a Jira comment needs fields.body"))?;
                        c.comment(ticket, body, key).await
                    }
                    _ => {
                        let tr = field(&fields, "transition_id").ok_or_else(|| {
                            WriteError::permanent("a Jira transition needs fields.transition_id")
                        })?;
                        c.transition(ticket, tr).await
                    }
                }
            }
            Kind::Servicenow => {
                let c = servicenow::ServiceNow::new(&config, &secret, self.http.clone(), guard)?;
                match op {
                    "create" => c
                        .create(&fields, key)
                        .await
                        .map(|i| json!({"system": "servicenow", "ticket": i.number, "sys_id": i.sys_id})),
                    "comment" => {
                        let body = field(&fields, "body")
                            .ok_or_else(|| WriteError::permanent("a ServiceNow comment needs fields.body"))?;
                        c.update(ticket, &json!({"work_notes": format!("{body}\n[{key}]")}))
                            .await
                            .map(|i| json!({"system": "servicenow", "ticket": i.number, "sys_id": i.sys_id}))
                    }
                    _ => c
                        .update(ticket, &fields)
                        .await
                        .map(|i| json!({"system": "servicenow", "ticket": i.number, "sys_id": i.sys_id})),
                }
            }
            Kind::Crowdstrike => {
                let c = crowdstrike::Falcon::new(&config, &secret, self.http.clone(), guard)?;
                let device = field(payload, "device_id")
                    .ok_or_else(|| WriteError::permanent("contain_host needs a device_id"))?;
                c.contain(device).await
            }
            k => return Err(WriteError::permanent(format!("{k} performs no gated writes"))),
        };
        r.map_err(WriteError::from)
    }
}

impl From<ClientError> for WriteError {
    fn from(e: ClientError) -> Self {
        WriteError {
            transient: e.transient(),
            retry_after: e.retry_after(),
            message: e.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Writer for Connectors {
    async fn scope_enabled(&self, tx: &TenantTx, action: &str, payload: &Value) -> Result<bool> {
        let Ok(t) = target(action, payload) else {
            // A payload that names no target (say, a gate requested before
            // targets were required) would otherwise wait forever: let
            // `write` refuse it, so the entry is dead-lettered with the
            // reason. Nothing is sent.
            return Ok(true);
        };
        integrations::scope_enabled(tx, t.integration, t.scope).await
    }

    async fn write(
        &self,
        tenant: TenantId,
        action: &str,
        payload: &Value,
        key: &str,
    ) -> Result<Value, WriteError> {
        let t = target(action, payload).map_err(|e| WriteError::permanent(e.to_string()))?;
        self.perform(tenant, &t, payload, key).await
    }
}
