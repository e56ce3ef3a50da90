//! Integration credentials, encrypted at rest by envelope encryption: each
//! tenant has a 256-bit data key, stored only wrapped (AES-256-GCM) by the
//! master key; each credential version is sealed (AES-256-GCM) under the
//! tenant's data key, bound to its integration and version. Rotating a
//! credential creates a new version and destroys the old one (ciphertext
//! wiped); revoking wipes it in one action. Secrets are never returned: only
//! a fingerprint. Every change is audited (fingerprints only).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::SecretBox;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::secrets::credentials::{Kms, MasterKey};
use crate::store::TenantTx;
use crate::store::entity::{credential, integration, tenant_key};
use crate::{Clock, Error, Result};

/// The integration must be the transaction's tenant's (the vault reads the
/// row itself: it needs nothing else of `connect`).
async fn integration_of_tenant(tx: &TenantTx, id: Uuid) -> Result<()> {
    integration::Entity::find_by_id(id)
        .filter(integration::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("integration"))
}

/// What may be shown of a credential.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CredentialInfo {
    pub version: i32,
    /// First 16 hex characters of the secret's SHA-256.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

fn fingerprint(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))[..16].to_owned()
}

fn wrap_aad(tx: &TenantTx) -> String {
    format!("dek:{}", tx.tenant())
}

/// The tenant's data key, created (and stored wrapped) on first use.
async fn data_key(tx: &TenantTx, clock: &dyn Clock, master: &dyn Kms) -> Result<MasterKey> {
    if let Some(row) = tenant_key::Entity::find_by_id(tx.tenant().0).one(&**tx).await? {
        let raw = master.unwrap_key(&wrap_aad(tx), &row.wrapped_key).await?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::Invalid("tenant data key is malformed".into()))?;
        return Ok(MasterKey::from_bytes(bytes));
    }
    let dek = MasterKey::generate();
    tenant_key::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        wrapped_key: Set(master.wrap_key(&wrap_aad(tx), dek.expose()).await?),
        created_at: Set(clock.now()),
        rotated_at: Set(None),
    }
    .insert(&**tx)
    .await?;
    Ok(dek)
}

fn cred_aad(integration: Uuid, version: i32) -> String {
    format!("cred:{integration}:{version}")
}

async fn live(tx: &TenantTx, integration: Uuid) -> Result<Option<credential::Model>> {
    Ok(credential::Entity::find()
        .filter(credential::Column::TenantId.eq(tx.tenant().0))
        .filter(credential::Column::IntegrationId.eq(integration))
        .filter(credential::Column::DestroyedAt.is_null())
        .order_by_desc(credential::Column::Version)
        .one(&**tx)
        .await?)
}

async fn destroy_live(tx: &TenantTx, clock: &dyn Clock, integration: Uuid) -> Result<u64> {
    Ok(credential::Entity::update_many()
        .col_expr(
            credential::Column::Ciphertext,
            Expr::value(Option::<String>::None),
        )
        .col_expr(credential::Column::DestroyedAt, Expr::value(clock.now()))
        .filter(credential::Column::TenantId.eq(tx.tenant().0))
        .filter(credential::Column::IntegrationId.eq(integration))
        .filter(credential::Column::DestroyedAt.is_null())
        .exec(&**tx)
        .await?
        .rows_affected)
}

fn info(m: &credential::Model) -> CredentialInfo {
    CredentialInfo {
        version: m.version,
        fingerprint: m.fingerprint.clone(),
        created_at: m.created_at,
        created_by: m.created_by.clone(),
    }
}

/// Sets (or rotates) the integration's credential. Audited.
pub async fn set(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &dyn Kms,
    actor: &Actor,
    integration: Uuid,
    secret: &[u8],
) -> Result<CredentialInfo> {
    if secret.is_empty() || secret.len() > 16 * 1024 {
        return Err(Error::Invalid("a credential is 1 byte to 16 KiB".into()));
    }
    integration_of_tenant(tx, integration).await?;
    let before = live(tx, integration).await?;
    let last = credential::Entity::find()
        .filter(credential::Column::TenantId.eq(tx.tenant().0))
        .filter(credential::Column::IntegrationId.eq(integration))
        .order_by_desc(credential::Column::Version)
        .one(&**tx)
        .await?;
    let version = last.map_or(1, |c| c.version + 1);
    let dek = data_key(tx, clock, master).await?;
    destroy_live(tx, clock, integration).await?;
    let m = credential::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        integration_id: Set(integration),
        version: Set(version),
        ciphertext: Set(Some(dek.seal(&cred_aad(integration, version), secret)?)),
        fingerprint: Set(fingerprint(secret)),
        created_at: Set(clock.now()),
        created_by: Set(actor.label.clone()),
        destroyed_at: Set(None),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: if before.is_some() {
                "credential.rotate"
            } else {
                "credential.set"
            },
            target: format!("integration:{integration}"),
            summary: json!({"before": before.as_ref().map(info), "after": info(&m)}),
        },
    )
    .await?;
    Ok(info(&m))
}

/// Revokes: the live credential is wiped at once. Audited.
pub async fn revoke(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, integration: Uuid) -> Result<()> {
    integration_of_tenant(tx, integration).await?;
    let before = live(tx, integration)
        .await?
        .ok_or(Error::NotFound("credential"))?;
    destroy_live(tx, clock, integration).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "credential.revoke",
            target: format!("integration:{integration}"),
            summary: json!({"before": info(&before), "after": null}),
        },
    )
    .await
}

/// The fingerprint and version of the live credential, if any.
pub async fn current(tx: &TenantTx, integration: Uuid) -> Result<Option<CredentialInfo>> {
    Ok(live(tx, integration).await?.as_ref().map(info))
}

/// Decrypts the live credential for use by a connector.
pub async fn open(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &dyn Kms,
    integration: Uuid,
) -> Result<SecretBox<Vec<u8>>> {
    let c = live(tx, integration)
        .await?
        .ok_or(Error::NotFound("credential"))?;
    let sealed = c.ciphertext.ok_or(Error::NotFound("credential"))?;
    let dek = data_key(tx, clock, master).await?;
    Ok(SecretBox::new(Box::new(
        dek.open(&cred_aad(integration, c.version), &sealed)?,
    )))
}

/// Rotates the tenant's data key online: a new key, every live credential
/// re-sealed under it, the new key wrapped by the current master key — all
/// in the caller's transaction, so a reader sees the old set or the new
/// one. Audited. Returns how many credentials were re-sealed.
pub async fn rotate_data_key(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &dyn Kms,
    actor: &Actor,
) -> Result<usize> {
    let old = data_key(tx, clock, master).await?;
    let new = MasterKey::generate();
    let live = credential::Entity::find()
        .filter(credential::Column::TenantId.eq(tx.tenant().0))
        .filter(credential::Column::DestroyedAt.is_null())
        .all(&**tx)
        .await?;
    let mut n = 0;
    for c in live {
        let Some(sealed) = c.ciphertext else { continue };
        let aad = cred_aad(c.integration_id, c.version);
        let plain = old.open(&aad, &sealed)?;
        credential::Entity::update_many()
            .col_expr(
                credential::Column::Ciphertext,
                Expr::value(new.seal(&aad, &plain)?),
            )
            .filter(credential::Column::Id.eq(c.id))
            .filter(credential::Column::TenantId.eq(tx.tenant().0))
            .exec(&**tx)
            .await?;
        n += 1;
    }
    tenant_key::Entity::update_many()
        .col_expr(
            tenant_key::Column::WrappedKey,
            Expr::value(master.wrap_key(&wrap_aad(tx), new.expose()).await?),
        )
        .col_expr(tenant_key::Column::RotatedAt, Expr::value(Some(clock.now())))
        .filter(tenant_key::Column::TenantId.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "data_key.rotate",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"credentials_resealed": n}),
        },
    )
    .await?;
    Ok(n)
}

/// Re-wraps the tenant's data key under the current master key (after a
/// master-key rotation; the previous key opens the old wrapping). Returns
/// whether the tenant has a data key.
pub async fn rewrap_data_key(tx: &TenantTx, master: &dyn Kms) -> Result<bool> {
    let Some(row) = tenant_key::Entity::find_by_id(tx.tenant().0).one(&**tx).await? else {
        return Ok(false);
    };
    let raw = master.unwrap_key(&wrap_aad(tx), &row.wrapped_key).await?;
    tenant_key::Entity::update_many()
        .col_expr(
            tenant_key::Column::WrappedKey,
            Expr::value(master.wrap_key(&wrap_aad(tx), &raw).await?),
        )
        .filter(tenant_key::Column::TenantId.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    Ok(true)
}
