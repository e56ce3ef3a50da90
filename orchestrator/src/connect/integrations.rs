//! A tenant's integrations: created read-only; each write scope of the
//! connector's permission manifest is enabled or disabled by a Tenant Admin,
//! audited with before and after. Disabling takes effect at once, also for
//! approved writes still waiting in the outbox (the outbox guard asks here).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_integrations::{Access, Kind, manifest, scope, validate_config};

use crate::audit::{self, Actor, Event};
use crate::store::TenantTx;
use crate::store::entity::{integration, integration_scope, integration_status};
use crate::{Clock, Error, Result};

fn invalid(e: vigil_integrations::ConfigError) -> Error {
    Error::Invalid(e.to_string())
}

/// One scope of the manifest and whether it is on.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScopeState {
    pub scope: &'static str,
    /// `read` or `write`.
    #[schema(value_type = String)]
    pub access: Access,
    /// The exact vendor calls the scope permits.
    #[schema(value_type = Vec<String>)]
    pub calls: &'static [&'static str],
    pub purpose: &'static str,
    /// Read scopes are always on; write scopes only after an opt-in.
    pub enabled: bool,
    pub enabled_by: Option<String>,
    pub enabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Integration {
    pub id: Uuid,
    /// `webhook`, `crowdstrike`, `graylog`, `jira`, `servicenow`,
    /// `notify_webhook` or `llm`.
    #[schema(value_type = String)]
    pub kind: Kind,
    pub name: String,
    pub config: Value,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The permission manifest with each scope's state.
    pub manifest: Vec<ScopeState>,
    /// The poller's and the connector's last outcome.
    pub status: Status,
}

/// What the integration did last: shown to admins, never a secret.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Where the next poll starts (pollable kinds).
    pub cursor: Option<String>,
    pub next_poll_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Consecutive failures.
    pub failures: i32,
    /// Alerts pulled and stored so far.
    pub pulled: i64,
}

impl From<integration_status::Model> for Status {
    fn from(m: integration_status::Model) -> Self {
        Status {
            cursor: m.cursor,
            next_poll_at: m.next_poll_at,
            last_ok_at: m.last_ok_at,
            last_error: m.last_error,
            last_error_at: m.last_error_at,
            failures: m.failures,
            pulled: m.pulled,
        }
    }
}

/// Kinds that pull alerts on a schedule.
pub fn pollable(kind: Kind) -> bool {
    matches!(kind, Kind::Crowdstrike | Kind::Graylog)
}

async fn model(tx: &TenantTx, id: Uuid) -> Result<integration::Model> {
    integration::Entity::find_by_id(id)
        .filter(integration::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("integration"))
}

async fn view(tx: &TenantTx, m: integration::Model) -> Result<Integration> {
    let kind: Kind = m.kind.parse().map_err(invalid)?;
    let enabled = integration_scope::Entity::find()
        .filter(integration_scope::Column::TenantId.eq(tx.tenant().0))
        .filter(integration_scope::Column::IntegrationId.eq(m.id))
        .all(&**tx)
        .await?;
    let manifest = manifest(kind)
        .iter()
        .map(|s| {
            let on = enabled.iter().find(|e| e.scope == s.name);
            ScopeState {
                scope: s.name,
                access: s.access,
                calls: s.calls,
                purpose: s.purpose,
                enabled: s.access == Access::Read || on.is_some(),
                enabled_by: on.map(|e| e.enabled_by.clone()),
                enabled_at: on.map(|e| e.enabled_at),
            }
        })
        .collect();
    let status = integration_status::Entity::find_by_id(m.id)
        .filter(integration_status::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .map(Status::from)
        .unwrap_or_default();
    Ok(Integration {
        id: m.id,
        kind,
        name: m.name,
        config: m.config,
        created_at: m.created_at,
        created_by: m.created_by,
        manifest,
        status,
    })
}

/// Creates an integration, read-only. Audited.
pub async fn create(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    kind: &str,
    name: &str,
    config: Value,
) -> Result<Integration> {
    let kind: Kind = kind.parse().map_err(invalid)?;
    validate_config(kind, &config).map_err(invalid)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name must be 1 to 100 printable characters".into(),
        ));
    }
    let m = integration::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        kind: Set(kind.as_str().to_owned()),
        name: Set(name.to_owned()),
        config: Set(config.clone()),
        created_at: Set(clock.now()),
        created_by: Set(actor.label.clone()),
    }
    .insert(&**tx)
    .await
    .map_err(|e| Error::from_insert(e, &format!("an integration named `{name}`")))?;
    integration_status::ActiveModel {
        integration_id: Set(m.id),
        tenant_id: Set(tx.tenant().0),
        cursor: Set(None),
        next_poll_at: Set(pollable(kind).then(|| clock.now())),
        last_ok_at: Set(None),
        last_error: Set(None),
        last_error_at: Set(None),
        failures: Set(0),
        pulled: Set(0),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "integration.create",
            target: format!("integration:{}", m.id),
            summary: json!({"after": {"kind": kind, "name": name, "write_scopes_enabled": []}}),
        },
    )
    .await?;
    view(tx, m).await
}

/// Replaces an integration's configuration, validated as at creation (its
/// scopes and credential stay). Audited with the keys that changed.
pub async fn set_config(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    id: Uuid,
    config: Value,
) -> Result<Integration> {
    let m = model(tx, id).await?;
    let kind: Kind = m.kind.parse().map_err(invalid)?;
    validate_config(kind, &config).map_err(invalid)?;
    let mut changed: Vec<String> = Vec::new();
    if let (Some(old), Some(new)) = (m.config.as_object(), config.as_object()) {
        for k in old.keys().chain(new.keys()) {
            if old.get(k) != new.get(k) && !changed.contains(k) {
                changed.push(k.clone());
            }
        }
    }
    let mut am: integration::ActiveModel = m.into();
    am.config = Set(config);
    let m = am.update(&**tx).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "integration.configure",
            target: format!("integration:{id}"),
            summary: json!({"changed": changed}),
        },
    )
    .await?;
    view(tx, m).await
}

pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Integration> {
    let m = model(tx, id).await?;
    view(tx, m).await
}

pub async fn list(tx: &TenantTx) -> Result<(Vec<Integration>, u64)> {
    let q = integration::Entity::find().filter(integration::Column::TenantId.eq(tx.tenant().0));
    let total = q.clone().count(&**tx).await?;
    let mut out = Vec::new();
    for m in q.order_by_asc(integration::Column::Name).all(&**tx).await? {
        out.push(view(tx, m).await?);
    }
    Ok((out, total))
}

/// Enables or disables one write scope. Idempotent; audited on change with
/// before and after.
pub async fn set_scope(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    id: Uuid,
    scope_name: &str,
    enabled: bool,
) -> Result<Integration> {
    let m = model(tx, id).await?;
    let kind: Kind = m.kind.parse().map_err(invalid)?;
    let s = scope(kind, scope_name).map_err(invalid)?;
    if s.access == Access::Read {
        return Err(Error::Invalid(format!(
            "`{scope_name}` is a read scope: read scopes are always on"
        )));
    }
    let before = scope_enabled(tx, id, scope_name).await?;
    if before != enabled {
        if enabled {
            integration_scope::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tx.tenant().0),
                integration_id: Set(id),
                scope: Set(scope_name.to_owned()),
                enabled_at: Set(clock.now()),
                enabled_by: Set(actor.label.clone()),
            }
            .insert(&**tx)
            .await
            .map_err(|e| Error::from_insert(e, "this scope"))?;
        } else {
            integration_scope::Entity::delete_many()
                .filter(integration_scope::Column::TenantId.eq(tx.tenant().0))
                .filter(integration_scope::Column::IntegrationId.eq(id))
                .filter(integration_scope::Column::Scope.eq(scope_name))
                .exec(&**tx)
                .await?;
        }
        audit::record(
            tx,
            clock,
            actor,
            Event {
                action: "integration.scope",
                target: format!("integration:{id}"),
                summary: json!({"scope": scope_name, "calls": s.calls, "before": {"enabled": before}, "after": {"enabled": enabled}}),
            },
        )
        .await?;
    }
    view(tx, m).await
}

/// Whether a write scope is enabled right now (read scopes: always).
pub async fn scope_enabled(tx: &TenantTx, id: Uuid, scope_name: &str) -> Result<bool> {
    let n = integration_scope::Entity::find()
        .filter(integration_scope::Column::TenantId.eq(tx.tenant().0))
        .filter(integration_scope::Column::IntegrationId.eq(id))
        .filter(integration_scope::Column::Scope.eq(scope_name))
        .count(&**tx)
        .await?;
    Ok(n > 0)
}

/// Creates an integration and, for kinds that need one, its first secret:
/// a webhook gets a signing secret (HMAC-SHA256 key), returned once and
/// stored only encrypted.
pub async fn create_with_secret(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &crate::secrets::credentials::MasterKey,
    actor: &Actor,
    kind: &str,
    name: &str,
    config: Value,
) -> Result<(Integration, Option<String>)> {
    let i = create(tx, clock, actor, kind, name, config).await?;
    // Webhooks in and out sign with a secret Vigil makes (shown once).
    if !matches!(i.kind, Kind::Webhook | Kind::NotifyWebhook) {
        return Ok((i, None));
    }
    let secret = format!("whsec_{}", crate::secrets::credentials::random_secret());
    crate::secrets::vault::set(tx, clock, master, actor, i.id, secret.as_bytes()).await?;
    Ok((i, Some(secret)))
}
