//! Single sign-on, per tenant (OpenID Connect; the protocol itself is
//! `vigil_integrations::oidc`). This module keeps what the protocol needs
//! between requests and decides who the person is in Vigil:
//!
//! * providers: issuer, client, pinned algorithms, the group claim, the
//!   group → role mapping, and whether the IdP's MFA claim is trusted; the
//!   client secret sealed by the master key;
//! * logins in flight: the SHA-256 of the `state`, bound to the provider and
//!   to the browser that started it (a cookie's hash), with nonce and PKCE
//!   verifier; one-time and short-lived;
//! * identities: (provider, subject) → user. A first login links an existing
//!   account with the same e-mail only when the IdP asserts the address as
//!   verified (OIDC `email_verified`; SAML: the provider is configured as
//!   authoritative for e-mail), the address's domain is one the tenant admin
//!   listed as owned by this provider, the account is not a platform admin
//!   and has no other identity at this provider. Otherwise the person gets a
//!   new, separate account (never a silent merge): its e-mail is the claimed
//!   one only when verified and owned, else a name of its own that no person
//!   can hold (the claimed address is kept as the display name). Linking and
//!   refusing to link are audited with both identities.
//!
//! The role comes from the IdP's groups through the mapping on every login
//! (no mapped group → no access); a mapped change of a member's role is
//! audited with before and after, and never demotes the tenant's last
//! tenant admin (the role is kept, and that is audited). An SSO session is
//! bound to the provider's tenant: it cannot switch tenants nor act as a
//! platform admin, so a tenant's IdP can never reach beyond its tenant.
//! Disabling or removing a provider ends its sessions.

use chrono::Duration;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_integrations::oidc::{Identity, ProviderConfig};

use crate::audit::{self, Actor, Event};
use crate::ids::Email;
use crate::secrets::credentials::{MasterKey, token_hash};
use crate::store::entity::{membership, sso_identity, sso_login, sso_provider, user};
use crate::store::{Store, TenantTx};
use crate::{Clock, Error, Result, Role, TenantId, UserId};

/// How long a login may stay at the IdP.
pub const LOGIN_TTL: Duration = Duration::minutes(10);

/// `amr` values (RFC 8176) that say a second factor was used.
pub const MFA_AMR: [&str; 5] = ["mfa", "otp", "hwk", "sc", "swk"];

/// SAML AuthnContextClassRef values that say a second factor was used.
pub const SAML_MFA_CONTEXTS: [&str; 4] = [
    "https://refeds.org/profile/mfa",
    "http://schemas.microsoft.com/claims/multipleauthn",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
];

/// A provider as a tenant admin configures it.
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub algorithms: Vec<String>,
    pub group_claim: String,
    /// IdP group → tenant role.
    pub role_map: Vec<(String, Role)>,
    pub trust_idp_mfa: bool,
    /// Scopes asked for besides openid, email and the group claim.
    pub scopes: Vec<String>,
    /// E-mail domains this provider owns (verified addresses there may link).
    pub domains: Vec<String>,
}

/// A provider as listed (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    pub id: Uuid,
    pub protocol: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub algorithms: Value,
    pub group_claim: String,
    pub role_map: Value,
    pub trust_idp_mfa: bool,
    pub domains: Vec<String>,
    /// SAML: the IdP's e-mail attribute counts as verified.
    pub email_authoritative: bool,
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn info(m: &sso_provider::Model) -> ProviderInfo {
    ProviderInfo {
        id: m.id,
        protocol: m.protocol.clone(),
        name: m.name.clone(),
        issuer: m.issuer.clone(),
        client_id: m.client_id.clone(),
        has_client_secret: m.client_secret.is_some(),
        algorithms: m.algorithms.clone(),
        group_claim: m.group_claim.clone(),
        role_map: m.role_map.clone(),
        trust_idp_mfa: m.trust_idp_mfa,
        domains: strings(m.domains.as_ref()),
        email_authoritative: m.email_authoritative,
        scopes: strings(m.scopes.as_ref()),
        enabled: m.disabled_at.is_none(),
        created_at: m.created_at,
        created_by: m.created_by.clone(),
    }
}

/// Most domains one provider may own.
pub const MAX_DOMAINS: usize = 50;

/// Validates the e-mail domains a provider owns: lower-cased host names,
/// no wildcards, at most [`MAX_DOMAINS`].
pub fn domains_json(domains: &[String]) -> Result<Value> {
    if domains.len() > MAX_DOMAINS {
        return Err(Error::Invalid(format!("domains: at most {MAX_DOMAINS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for d in domains {
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
            return Err(Error::Invalid(format!(
                "domains: `{}` is not a domain name (e.g. example.com; no wildcards)",
                d.escape_debug()
            )));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(json!(out))
}

/// Whether the provider owns the e-mail's domain (exactly, not a parent).
fn owns_domain(provider: &ProviderInfo, email: &Email) -> bool {
    email
        .as_str()
        .rsplit_once('@')
        .is_some_and(|(_, d)| provider.domains.iter().any(|o| o.eq_ignore_ascii_case(d)))
}

fn secret_aad(provider: Uuid) -> String {
    format!("sso:{provider}")
}

/// Adds an OIDC provider to the transaction's tenant. Audited.
/// Checks a new OIDC provider as entered (no network): its name, its
/// configuration, role map and domains; what a caller may check before it
/// asks the provider itself (see `oidc::RelyingParty::check`).
pub fn check_new(p: &NewProvider) -> Result<ProviderConfig> {
    checked(p)?;
    Ok(config_of(p))
}

fn config_of(p: &NewProvider) -> ProviderConfig {
    ProviderConfig {
        issuer: p.issuer.clone(),
        client_id: p.client_id.clone(),
        client_secret: p.client_secret.clone(),
        algorithms: p.algorithms.clone(),
        group_claim: p.group_claim.clone(),
        scopes: p.scopes.clone(),
    }
}

fn checked(p: &NewProvider) -> Result<(String, Value, Value)> {
    let name = check_name(&p.name)?;
    config_of(p)
        .validate()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((name, role_map_json(&p.role_map)?, domains_json(&p.domains)?))
}

pub async fn create_provider(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &MasterKey,
    actor: &Actor,
    p: NewProvider,
) -> Result<ProviderInfo> {
    let (name, map, domains) = checked(&p)?;
    let id = Uuid::now_v7();
    let sealed = p
        .client_secret
        .as_deref()
        .map(|s| master.seal(&secret_aad(id), s.as_bytes()))
        .transpose()?;
    let m = sso_provider::ActiveModel {
        id: Set(id),
        tenant_id: Set(tx.tenant().0),
        protocol: Set("oidc".into()),
        name: Set(name.clone()),
        issuer: Set(p.issuer),
        client_id: Set(p.client_id),
        client_secret: Set(sealed),
        algorithms: Set(json!(p.algorithms)),
        group_claim: Set(p.group_claim),
        role_map: Set(map),
        trust_idp_mfa: Set(p.trust_idp_mfa),
        created_at: Set(clock.now()),
        created_by: Set(actor.label.clone()),
        idp_metadata: Set(None),
        domains: Set(Some(domains)),
        email_authoritative: Set(false),
        scopes: Set(Some(json!(p.scopes))),
        disabled_at: Set(None),
    }
    .insert(&**tx)
    .await?;
    provider_created(tx, clock, actor, &m).await?;
    Ok(info(&m))
}

async fn provider_created(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    m: &sso_provider::Model,
) -> Result<()> {
    let id = m.id;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "sso.provider_created",
            target: format!("sso_provider:{id}"),
            summary: json!({"name": m.name, "issuer": m.issuer, "role_map": m.role_map,
                            "trust_idp_mfa": m.trust_idp_mfa, "algorithms": m.algorithms,
                            "protocol": m.protocol, "domains": m.domains,
                            "email_authoritative": m.email_authoritative, "scopes": m.scopes}),
        },
    )
    .await
}

pub async fn list_providers(tx: &TenantTx) -> Result<Vec<ProviderInfo>> {
    use sea_orm::QueryOrder;
    Ok(sso_provider::Entity::find()
        .filter(sso_provider::Column::TenantId.eq(tx.tenant().0))
        .order_by_asc(sso_provider::Column::CreatedAt)
        .all(&**tx)
        .await?
        .iter()
        .map(info)
        .collect())
}

/// A SAML provider as a tenant admin configures it.
#[derive(Debug, Clone)]
pub struct NewSamlProvider {
    pub name: String,
    /// The IdP's metadata XML (entity id, signing certificate, SSO URL).
    pub idp_metadata: String,
    /// The attribute carrying the user's groups.
    pub group_attribute: String,
    pub role_map: Vec<(String, Role)>,
    pub trust_idp_mfa: bool,
    /// Which IdP of an `EntitiesDescriptor` (optional for a single one).
    pub entity_id: Option<String>,
    pub domains: Vec<String>,
    /// The IdP's e-mail attribute is verified by the IdP (it may then link
    /// existing accounts in the owned domains).
    pub email_authoritative: bool,
}

fn role_map_json(role_map: &[(String, Role)]) -> Result<Value> {
    if role_map.is_empty() || role_map.len() > 200 {
        return Err(Error::Invalid(
            "role_map needs 1 to 200 group → role entries".into(),
        ));
    }
    let mut map = serde_json::Map::new();
    for (group, role) in role_map {
        if group.is_empty() || group.len() > 256 {
            return Err(Error::Invalid("a group name must be 1 to 256 characters".into()));
        }
        if !role.is_tenant_role() {
            return Err(Error::Invalid(format!("`{role}` is not a tenant role")));
        }
        if map.insert(group.clone(), json!(role.as_str())).is_some() {
            return Err(Error::Invalid(format!("group `{group}` is mapped twice")));
        }
    }
    Ok(Value::Object(map))
}

/// Adds a SAML 2.0 IdP to the transaction's tenant (its metadata must name
/// a signing certificate and an HTTP-Redirect SSO service). Audited.
pub async fn create_saml_provider(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    p: NewSamlProvider,
) -> Result<ProviderInfo> {
    let name = check_name(&p.name)?;
    check_group_attribute(&p.group_attribute)?;
    let (_, idp) = vigil_integrations::saml::parse_metadata(&p.idp_metadata, p.entity_id.as_deref())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let domains = domains_json(&p.domains)?;
    let m = sso_provider::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        protocol: Set("saml".into()),
        name: Set(name.clone()),
        issuer: Set(idp.entity_id),
        client_id: Set(String::new()),
        client_secret: Set(None),
        algorithms: Set(json!([
            "RSA-SHA256",
            "RSA-SHA384",
            "RSA-SHA512",
            "ECDSA-SHA256",
            "ECDSA-SHA384",
            "ECDSA-SHA512"
        ])),
        group_claim: Set(p.group_attribute),
        role_map: Set(role_map_json(&p.role_map)?),
        trust_idp_mfa: Set(p.trust_idp_mfa),
        created_at: Set(clock.now()),
        created_by: Set(actor.label.clone()),
        idp_metadata: Set(Some(p.idp_metadata)),
        domains: Set(Some(domains)),
        email_authoritative: Set(p.email_authoritative),
        scopes: Set(None),
        disabled_at: Set(None),
    }
    .insert(&**tx)
    .await?;
    provider_created(tx, clock, actor, &m).await?;
    Ok(info(&m))
}

fn check_group_attribute(a: &str) -> Result<()> {
    if a.is_empty() || a.len() > 200 || a.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "group_claim must be 1 to 200 characters (the SAML attribute carrying groups)".into(),
        ));
    }
    Ok(())
}

/// A change to a provider: each field `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct ProviderUpdate {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub role_map: Option<Vec<(String, Role)>>,
    pub group_claim: Option<String>,
    pub trust_idp_mfa: Option<bool>,
    pub domains: Option<Vec<String>>,
    pub email_authoritative: Option<bool>,
    /// OIDC only.
    pub scopes: Option<Vec<String>>,
    pub algorithms: Option<Vec<String>>,
    pub client_secret: Option<String>,
    /// SAML only: new IdP metadata (e.g. a rotated signing certificate).
    /// Its entity id must stay the provider's.
    pub idp_metadata: Option<String>,
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name must be 1 to 100 characters, no control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

async fn find_provider(tx: &TenantTx, id: Uuid) -> Result<sso_provider::Model> {
    sso_provider::Entity::find_by_id(id)
        .filter(sso_provider::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("identity provider"))
}

/// Ends every session the provider opened; returns how many.
async fn end_sessions(tx: &TenantTx, provider: Uuid) -> Result<u64> {
    use crate::store::entity::session;
    Ok(session::Entity::delete_many()
        .filter(session::Column::SsoProviderId.eq(provider))
        .exec(&**tx)
        .await?
        .rows_affected)
}

/// Changes a provider (tenant admin). Disabling it ends its sessions.
/// Audited with before and after (never the secret).
pub async fn update_provider(
    tx: &TenantTx,
    clock: &dyn Clock,
    master: &MasterKey,
    actor: &Actor,
    id: Uuid,
    u: ProviderUpdate,
) -> Result<ProviderInfo> {
    let before = find_provider(tx, id).await?;
    let saml = before.protocol == "saml";
    let mut am: sso_provider::ActiveModel = before.clone().into();
    if let Some(n) = &u.name {
        am.name = Set(check_name(n)?);
    }
    if let Some(map) = &u.role_map {
        am.role_map = Set(role_map_json(map)?);
    }
    if let Some(d) = &u.domains {
        am.domains = Set(Some(domains_json(d)?));
    }
    if let Some(t) = u.trust_idp_mfa {
        am.trust_idp_mfa = Set(t);
    }
    if let Some(e) = u.email_authoritative {
        if !saml {
            return Err(Error::Invalid(
                "email_authoritative is for SAML providers (OIDC sends email_verified)".into(),
            ));
        }
        am.email_authoritative = Set(e);
    }
    if saml {
        if u.scopes.is_some() || u.algorithms.is_some() || u.client_secret.is_some() {
            return Err(Error::Invalid(
                "scopes, algorithms and client_secret are for OIDC providers".into(),
            ));
        }
        if let Some(g) = &u.group_claim {
            check_group_attribute(g)?;
            am.group_claim = Set(g.clone());
        }
        if let Some(md) = &u.idp_metadata {
            vigil_integrations::saml::parse_metadata(md, Some(&before.issuer))
                .map_err(|e| Error::Invalid(e.to_string()))?;
            am.idp_metadata = Set(Some(md.clone()));
        }
    } else {
        if u.idp_metadata.is_some() {
            return Err(Error::Invalid("idp_metadata is for SAML providers".into()));
        }
        let cfg = ProviderConfig {
            issuer: before.issuer.clone(),
            client_id: before.client_id.clone(),
            client_secret: None,
            algorithms: match &u.algorithms {
                Some(a) => a.clone(),
                None => serde_json::from_value(before.algorithms.clone()).unwrap_or_default(),
            },
            group_claim: u
                .group_claim
                .clone()
                .unwrap_or_else(|| before.group_claim.clone()),
            scopes: u
                .scopes
                .clone()
                .unwrap_or_else(|| strings(before.scopes.as_ref())),
        };
        cfg.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        am.algorithms = Set(json!(cfg.algorithms));
        am.group_claim = Set(cfg.group_claim);
        am.scopes = Set(Some(json!(cfg.scopes)));
        if let Some(secret) = &u.client_secret {
            am.client_secret = Set(Some(master.seal(&secret_aad(id), secret.as_bytes())?));
        }
    }
    let mut ended = 0;
    match u.enabled {
        Some(false) if before.disabled_at.is_none() => {
            am.disabled_at = Set(Some(clock.now()));
            ended = end_sessions(tx, id).await?;
        }
        Some(true) => am.disabled_at = Set(None),
        _ => {}
    }
    let after = am.update(&**tx).await?;
    let view = |m: &sso_provider::Model| {
        json!({"name": m.name, "enabled": m.disabled_at.is_none(), "role_map": m.role_map,
               "group_claim": m.group_claim, "trust_idp_mfa": m.trust_idp_mfa, "domains": m.domains,
               "email_authoritative": m.email_authoritative, "scopes": m.scopes,
               "algorithms": m.algorithms,
               "metadata_sha256": m.idp_metadata.as_deref().map(token_hash)})
    };
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "sso.provider_changed",
            target: format!("sso_provider:{id}"),
            summary: json!({"before": view(&before), "after": view(&after),
                            "client_secret_changed": u.client_secret.is_some(),
                            "sessions_ended": ended}),
        },
    )
    .await?;
    Ok(info(&after))
}

/// Removes a provider (tenant admin): its logins in flight, identity links
/// and replay cache go with it, and its sessions end. Accounts it created
/// stay (with their memberships) but can no longer sign in through it.
/// Audited.
pub async fn delete_provider(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, id: Uuid) -> Result<()> {
    let m = find_provider(tx, id).await?;
    let ended = end_sessions(tx, id).await?;
    sso_provider::Entity::delete_by_id(id).exec(&**tx).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "sso.provider_deleted",
            target: format!("sso_provider:{id}"),
            summary: json!({"name": m.name, "issuer": m.issuer, "protocol": m.protocol,
                            "sessions_ended": ended}),
        },
    )
    .await
}

/// A SAML provider's IdP metadata.
pub async fn saml_metadata(tx: &TenantTx, id: Uuid) -> Result<String> {
    sso_provider::Entity::find_by_id(id)
        .filter(sso_provider::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .and_then(|m| m.idp_metadata)
        .ok_or(Error::NotFound("SAML identity provider"))
}

/// Accepts an assertion id once (the replay cache); kept until the
/// assertion expires (at least a day).
pub async fn first_use_of_assertion(
    tx: &TenantTx,
    clock: &dyn Clock,
    provider: Uuid,
    assertion_id: &str,
    not_on_or_after: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    use crate::store::entity::sso_assertion;
    let now = clock.now();
    sso_assertion::Entity::delete_many()
        .filter(sso_assertion::Column::TenantId.eq(tx.tenant().0))
        .filter(sso_assertion::Column::ExpiresAt.lte(now))
        .exec(&**tx)
        .await?;
    let keep = not_on_or_after.unwrap_or(now).max(now + Duration::days(1));
    sso_assertion::ActiveModel {
        provider_id: Set(provider),
        assertion_id: Set(assertion_id.to_owned()),
        tenant_id: Set(tx.tenant().0),
        expires_at: Set(keep),
    }
    .insert(&**tx)
    .await
    .map_err(|e| match Error::from_insert(e, "assertion") {
        Error::Conflict(_) => Error::Unauthenticated("this assertion was already used (replay)"),
        e => e,
    })?;
    Ok(())
}

/// The enabled providers that own `email`'s domain (id, display name),
/// before any tenant is known: what the login page offers. Nothing for an
/// address that does not parse.
pub async fn providers_for_email(store: &Store, email: &str) -> Result<Vec<(Uuid, String)>> {
    let Ok(email) = Email::parse(email) else {
        return Ok(Vec::new());
    };
    let Some((_, domain)) = email.as_str().rsplit_once('@') else {
        return Ok(Vec::new());
    };
    Ok(store.sso_for_domain(domain).await?)
}

/// The tenant of a provider, before any tenant is known (a callback).
pub async fn provider_tenant(store: &Store, provider: Uuid) -> Result<TenantId> {
    store
        .owner_tenant("vigil_sso_provider_tenant", "sso_providers", provider)
        .await?
        .ok_or(Error::NotFound("identity provider"))
}

/// A provider of the transaction's tenant and its protocol configuration
/// (the client secret opened).
pub async fn provider(tx: &TenantTx, master: &MasterKey, id: Uuid) -> Result<(ProviderInfo, ProviderConfig)> {
    let m = sso_provider::Entity::find_by_id(id)
        .filter(sso_provider::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("identity provider"))?;
    let secret = m
        .client_secret
        .as_deref()
        .map(|s| master.open(&secret_aad(id), s))
        .transpose()?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let algorithms: Vec<String> = serde_json::from_value(m.algorithms.clone())
        .map_err(|_| Error::Invalid("stored algorithms are malformed".into()))?;
    let cfg = ProviderConfig {
        issuer: m.issuer.clone(),
        client_id: m.client_id.clone(),
        client_secret: secret,
        algorithms,
        group_claim: m.group_claim.clone(),
        scopes: strings(m.scopes.as_ref()),
    };
    Ok((info(&m), cfg))
}

/// Records a login that went to the IdP: `state` (its hash), the browser
/// binding (its hash), nonce and PKCE verifier.
pub async fn remember_login(
    tx: &TenantTx,
    clock: &dyn Clock,
    provider: Uuid,
    state: &str,
    browser: &str,
    nonce: &str,
    pkce_verifier: &str,
) -> Result<()> {
    let now = clock.now();
    // Old logins nobody finished.
    sso_login::Entity::delete_many()
        .filter(sso_login::Column::TenantId.eq(tx.tenant().0))
        .filter(sso_login::Column::ExpiresAt.lte(now))
        .exec(&**tx)
        .await?;
    sso_login::ActiveModel {
        state_hash: Set(token_hash(state)),
        tenant_id: Set(tx.tenant().0),
        provider_id: Set(provider),
        browser_hash: Set(token_hash(browser)),
        nonce: Set(nonce.to_owned()),
        pkce_verifier: Set(pkce_verifier.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + LOGIN_TTL),
    }
    .insert(&**tx)
    .await?;
    Ok(())
}

/// What was kept for a login in flight.
#[derive(Debug, Clone)]
pub struct Pending {
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A login in flight, taken out of the table (commit before checking it:
/// a state is used up even by a refused attempt).
#[derive(Debug)]
pub struct Taken(sso_login::Model);

/// Takes (once) the login in flight that `state` names; refused if there
/// is none (unknown or already used).
pub async fn take_login(tx: &TenantTx, state: &str) -> Result<Taken> {
    let hash = token_hash(state);
    let row = sso_login::Entity::find_by_id(hash.clone())
        .filter(sso_login::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::Unauthenticated("unknown or already used state"))?;
    let deleted = sso_login::Entity::delete_many()
        .filter(sso_login::Column::StateHash.eq(hash))
        .exec(&**tx)
        .await?;
    if deleted.rows_affected != 1 {
        return Err(Error::Unauthenticated("unknown or already used state"));
    }
    Ok(Taken(row))
}

impl Taken {
    /// Refused: a login started at another provider, in another browser,
    /// or too long ago.
    pub fn check(self, clock: &dyn Clock, provider: Uuid, browser: Option<&str>) -> Result<Pending> {
        self.check_bound(clock, provider, Some(browser))
    }

    /// As [`Taken::check`]; `browser: None` skips the browser binding (a
    /// SAML POST arrives cross-site, where a SameSite=Lax cookie is not
    /// sent: the one-time RelayState and InResponseTo bind it instead).
    pub fn check_bound(
        self,
        clock: &dyn Clock,
        provider: Uuid,
        browser: Option<Option<&str>>,
    ) -> Result<Pending> {
        let row = self.0;
        if row.provider_id != provider {
            return Err(Error::Unauthenticated(
                "this response answers a login started at another identity provider",
            ));
        }
        if let Some(browser) = browser
            && browser.map(token_hash).as_deref() != Some(row.browser_hash.as_str())
        {
            return Err(Error::Unauthenticated(
                "this login was started in another browser",
            ));
        }
        if row.expires_at <= clock.now() {
            return Err(Error::Unauthenticated("the login took too long; start again"));
        }
        Ok(Pending {
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
        })
    }
}

/// The tenant role the IdP's groups map to: the most privileged match.
pub fn mapped_role(role_map: &Value, groups: &[String]) -> Option<Role> {
    let map = role_map.as_object()?;
    groups
        .iter()
        .filter_map(|g| map.get(g)?.as_str()?.parse::<Role>().ok())
        .filter(|r| r.is_tenant_role())
        .max_by_key(|r| rank(*r))
}

fn rank(r: Role) -> u8 {
    match r {
        Role::TenantAdmin => 5,
        Role::SecurityEngineer => 4,
        Role::AnalystEdit => 3,
        Role::AnalystRead => 2,
        Role::Executive => 1,
        Role::PlatformAdmin => 0,
    }
}

/// Who signed in, in Vigil's terms.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: UserId,
    pub role: Role,
    /// The IdP asserted a second factor and the provider trusts it.
    pub idp_mfa: bool,
}

/// Decides who a verified identity is in the transaction's tenant:
/// the mapped role (none → Forbidden), the linked or provisioned user (see
/// the module doc for when an existing account is linked), the membership
/// brought to the mapped role. Audited (`login.sso`).
pub async fn admit(
    tx: &TenantTx,
    clock: &dyn Clock,
    provider: &ProviderInfo,
    who: &Identity,
    source_ip: Option<String>,
) -> Result<SignedIn> {
    let now = clock.now();
    let actor = Actor {
        label: format!("sso:{}", provider.id),
        role: None,
        source_ip,
    };
    if !provider.enabled {
        return Err(Error::Forbidden("this identity provider is disabled".into()));
    }
    let mapped = mapped_role(&provider.role_map, &who.groups).ok_or_else(|| {
        Error::Forbidden(format!(
            "none of your groups ({}) is mapped to a role in this tenant; ask its admin",
            if who.groups.is_empty() {
                "none sent".to_owned()
            } else {
                who.groups.join(", ")
            }
        ))
    })?;
    let linked = sso_identity::Entity::find()
        .filter(sso_identity::Column::TenantId.eq(tx.tenant().0))
        .filter(sso_identity::Column::ProviderId.eq(provider.id))
        .filter(sso_identity::Column::Subject.eq(who.subject.as_str()))
        .one(&**tx)
        .await?;
    let user_id = match linked {
        Some(l) => {
            let mut am: sso_identity::ActiveModel = l.clone().into();
            am.last_login_at = Set(now);
            am.update(&**tx).await?;
            l.user_id
        }
        None => {
            let user_id = link_or_provision(tx, clock, &actor, provider, who).await?;
            sso_identity::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tx.tenant().0),
                provider_id: Set(provider.id),
                subject: Set(who.subject.clone()),
                user_id: Set(user_id),
                created_at: Set(now),
                last_login_at: Set(now),
            }
            .insert(&**tx)
            .await
            .map_err(|e| Error::from_insert(e, "identity link"))?;
            user_id
        }
    };
    let u = user::Entity::find_by_id(user_id)
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("user"))?;
    if u.disabled_at.is_some() {
        return Err(Error::Forbidden("this account is disabled".into()));
    }
    if u.is_platform_admin {
        return Err(Error::Forbidden(
            "a platform admin signs in with a password, not through a tenant's identity provider".into(),
        ));
    }
    let current = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tx.tenant().0))
        .filter(membership::Column::UserId.eq(user_id))
        .one(&**tx)
        .await?;
    let role = match current {
        None => {
            let email = Email::parse(&u.email)?;
            crate::identity::add_member(tx, clock, &actor, &email, mapped).await?;
            mapped
        }
        Some(m) if m.role != mapped.as_str() => {
            // Audited with before and after; the last tenant admin stays.
            match crate::identity::set_member_role(tx, clock, &actor, UserId(user_id), Some(mapped)).await {
                Ok(_) => mapped,
                Err(Error::Conflict(why)) => {
                    let kept: Role = m.role.parse()?;
                    audit::record(
                        tx,
                        clock,
                        &actor,
                        Event {
                            action: "sso.role_kept",
                            target: format!("user:{user_id}"),
                            summary: json!({"role": kept.as_str(), "mapped": mapped.as_str(),
                                            "groups": who.groups, "reason": why}),
                        },
                    )
                    .await?;
                    kept
                }
                Err(e) => return Err(e),
            }
        }
        Some(m) => m.role.parse()?,
    };
    let idp_mfa = provider.trust_idp_mfa
        && who
            .amr
            .iter()
            .any(|a| MFA_AMR.contains(&a.as_str()) || SAML_MFA_CONTEXTS.contains(&a.as_str()));
    audit::record(
        tx,
        clock,
        &actor,
        Event {
            action: "login.sso",
            target: format!("user:{user_id}"),
            summary: json!({"provider": provider.id, "subject": who.subject, "groups": who.groups,
                            "role": role.as_str(), "amr": who.amr, "idp_mfa_trusted": idp_mfa}),
        },
    )
    .await?;
    Ok(SignedIn {
        user: UserId(user_id),
        role,
        idp_mfa,
    })
}

/// A name of its own for an SSO account whose claimed e-mail it may not
/// hold (`.invalid` is reserved: no person can receive mail there).
fn own_address(provider: &ProviderInfo, who: &Identity) -> Result<Email> {
    let h = token_hash(&format!("{}|{}", provider.id, who.subject));
    Email::parse(&format!("sso-{}@{}.sso.invalid", &h[..16], &provider.id.simple()))
}

/// A new account for an identity (JIT) with `email`, the claimed address as
/// its display name when it is not the account's e-mail.
async fn provision(
    tx: &TenantTx,
    clock: &dyn Clock,
    email: &Email,
    claimed: Option<&str>,
    provider: &ProviderInfo,
) -> Result<Uuid> {
    let u = crate::identity::create_user(&**tx, clock, email).await?;
    if let Some(c) = claimed.filter(|c| *c != email.as_str()) {
        let shown: String = c.chars().filter(|ch| !ch.is_control()).take(200).collect();
        let mut am: user::ActiveModel = u.clone().into();
        am.display_name = Set(Some(format!("{shown} (via {})", provider.name)));
        am.update(&**tx).await?;
    }
    Ok(u.id)
}

/// The account a first login of an identity reaches (see the module doc).
async fn link_or_provision(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    provider: &ProviderInfo,
    who: &Identity,
) -> Result<Uuid> {
    let Some(email) = who.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        // No usable e-mail.
        return provision(
            tx,
            clock,
            &own_address(provider, who)?,
            who.email.as_deref(),
            provider,
        )
        .await;
    };
    let owned = owns_domain(provider, &email);
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&**tx)
        .await?;
    let Some(existing) = existing else {
        let address = if who.email_verified && owned {
            email.clone()
        } else {
            own_address(provider, who)?
        };
        return provision(tx, clock, &address, Some(email.as_str()), provider).await;
    };
    let other_subject = sso_identity::Entity::find()
        .filter(sso_identity::Column::TenantId.eq(tx.tenant().0))
        .filter(sso_identity::Column::ProviderId.eq(provider.id))
        .filter(sso_identity::Column::UserId.eq(existing.id))
        .one(&**tx)
        .await?;
    let refusal = if existing.is_platform_admin {
        Some("a platform admin is never linked to an identity provider")
    } else if !who.email_verified {
        Some("the identity provider does not assert the e-mail as verified")
    } else if !owned {
        Some("the e-mail's domain is not one this provider owns")
    } else if other_subject.is_some() {
        Some("the account is already linked to another identity of this provider")
    } else {
        None
    };
    let summary = |outcome: &str, user: Uuid| {
        json!({"provider": provider.id, "subject": who.subject, "email": email.as_str(),
               "email_verified": who.email_verified, "domain_owned": owned,
               "existing_user": existing.id, "user": user, "outcome": outcome})
    };
    match refusal {
        None => {
            audit::record(
                tx,
                clock,
                actor,
                Event {
                    action: "sso.linked",
                    target: format!("user:{}", existing.id),
                    summary: summary("linked", existing.id),
                },
            )
            .await?;
            Ok(existing.id)
        }
        Some(why) => {
            let id = provision(
                tx,
                clock,
                &own_address(provider, who)?,
                Some(email.as_str()),
                provider,
            )
            .await?;
            let mut s = summary("separate account", id);
            s["reason"] = json!(why);
            audit::record(
                tx,
                clock,
                actor,
                Event {
                    action: "sso.link_refused",
                    target: format!("user:{}", existing.id),
                    summary: s,
                },
            )
            .await?;
            Ok(id)
        }
    }
}

/// Audits a refused SSO login in the provider's tenant (its own
/// transaction, so the refusal is kept though the login's work is not).
pub async fn record_refusal(
    store: &Store,
    clock: &dyn Clock,
    tenant: TenantId,
    provider: Uuid,
    reason: &str,
    source_ip: Option<String>,
) -> Result<()> {
    let tx = store.begin_tenant(tenant).await?;
    audit::record(
        &tx,
        clock,
        &Actor {
            label: format!("sso:{provider}"),
            role: None,
            source_ip,
        },
        Event {
            action: "login.sso_refused",
            target: format!("sso_provider:{provider}"),
            summary: json!({"reason": reason}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_privileged_mapped_group_wins() {
        let map = json!({"soc": "analyst_edit", "soc-leads": "tenant_admin", "execs": "executive", "root": "platform_admin"});
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(mapped_role(&map, &g(&["execs", "soc"])), Some(Role::AnalystEdit));
        assert_eq!(
            mapped_role(&map, &g(&["soc-leads", "soc"])),
            Some(Role::TenantAdmin)
        );
        assert_eq!(mapped_role(&map, &g(&["root"])), None, "never a platform role");
        assert_eq!(mapped_role(&map, &g(&["other"])), None);
        assert_eq!(mapped_role(&map, &[]), None);
    }
}
