//! Identity providers (Tenant Admin): create (an OIDC issuer must answer
//! discovery with a usable signing key first), list, update, disable,
//! delete, test.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::{Error, identity::sso};

use crate::web::api::{ApiResult, ip, parse_role};
use crate::web::auth::{Principal, TenantCtx};
use crate::web::urls::{login_url, redirect_uri, sp};
use crate::web::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewProviderBody {
    /// `oidc` (default) or `saml`.
    #[serde(default = "default_protocol")]
    pub(crate) protocol: String,
    pub(crate) name: String,
    /// OIDC: the issuer URL. SAML: optional, the IdP's entity id (to pick it
    /// out of an `EntitiesDescriptor`).
    #[serde(default)]
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) client_id: String,
    /// SAML: the IdP's metadata XML.
    pub(crate) idp_metadata: Option<String>,
    pub(crate) client_secret: Option<String>,
    #[serde(default = "default_algorithms")]
    pub(crate) algorithms: Vec<String>,
    /// OIDC: the claim carrying groups; SAML: the attribute.
    #[serde(default = "default_group_claim")]
    pub(crate) group_claim: String,
    /// IdP group → tenant role.
    pub(crate) role_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) trust_idp_mfa: bool,
    /// OIDC: scopes asked for besides openid, email and the group claim.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// E-mail domains the provider owns: an IdP-verified address there may
    /// link an existing account.
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    /// SAML: the IdP's e-mail attribute counts as verified.
    #[serde(default)]
    pub(crate) email_authoritative: bool,
}

/// `PUT /api/v1/sso/providers/{id}`: each field left out stays.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct UpdateProviderBody {
    name: Option<String>,
    enabled: Option<bool>,
    role_map: Option<std::collections::BTreeMap<String, String>>,
    group_claim: Option<String>,
    trust_idp_mfa: Option<bool>,
    domains: Option<Vec<String>>,
    email_authoritative: Option<bool>,
    scopes: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    client_secret: Option<String>,
    idp_metadata: Option<String>,
}

fn role_map(
    map: std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, vigil_orchestrator::Role)>, ApiError> {
    let mut out = Vec::with_capacity(map.len());
    for (group, role) in map {
        out.push((group, parse_role(&role)?));
    }
    Ok(out)
}

fn default_protocol() -> String {
    "oidc".into()
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_group_claim() -> String {
    "groups".into()
}

pub async fn create_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Json(b): Json<NewProviderBody>,
) -> ApiResult {
    let actor = p.actor(Some(ctx.role), ip(&c));
    let info = create(&s, ctx, &actor, b).await?;
    Ok((StatusCode::CREATED, Json(provider_view(&s, &info)?)).into_response())
}

impl NewProviderBody {
    /// A body with the API's defaults (what the pages' forms start from).
    pub(crate) fn new(protocol: &str, name: String) -> Self {
        Self {
            protocol: protocol.to_owned(),
            name,
            issuer: String::new(),
            client_id: String::new(),
            idp_metadata: None,
            client_secret: None,
            algorithms: default_algorithms(),
            group_claim: default_group_claim(),
            role_map: Default::default(),
            trust_idp_mfa: false,
            scopes: Vec::new(),
            domains: Vec::new(),
            email_authoritative: false,
        }
    }
}

/// Creates a provider: what was entered is checked first, then an OIDC
/// issuer must answer now (not at the first sign-in); SAML metadata must
/// parse with a signing certificate and a sign-in URL. The API and the
/// page both create through here.
pub(crate) async fn create(
    s: &AppState,
    ctx: TenantCtx,
    actor: &vigil_orchestrator::audit::Actor,
    b: NewProviderBody,
) -> Result<sso::ProviderInfo, ApiError> {
    let role_map = role_map(b.role_map)?;
    let actor = actor.clone();
    let info = match b.protocol.as_str() {
        "oidc" => {
            let new = sso::NewProvider {
                name: b.name,
                issuer: b.issuer,
                client_id: b.client_id,
                client_secret: b.client_secret,
                algorithms: b.algorithms,
                group_claim: b.group_claim,
                role_map,
                trust_idp_mfa: b.trust_idp_mfa,
                scopes: b.scopes,
                domains: b.domains,
            };
            // What was entered first, then the provider must answer now, not
            // at the first sign-in: its discovery document (naming exactly
            // this issuer) and a signing key for a pinned algorithm. No
            // transaction is open while it is asked.
            let cfg = sso::check_new(&new)?;
            s.oidc
                .check(&cfg)
                .await
                .map_err(|e| Error::Invalid(format!("issuer: {e}")))?;
            let tx = s.store.begin_tenant(ctx.tenant).await?;
            let info = sso::create_provider(&tx, s.clock.as_ref(), &s.master_key, &actor, new).await?;
            tx.commit().await?;
            info
        }
        "saml" => {
            let tx = s.store.begin_tenant(ctx.tenant).await?;
            let idp_metadata = b.idp_metadata.ok_or_else(|| {
                Error::Invalid("idp_metadata: a SAML provider needs the IdP's metadata XML".into())
            })?;
            let info = sso::create_saml_provider(
                &tx,
                s.clock.as_ref(),
                &actor,
                sso::NewSamlProvider {
                    name: b.name,
                    idp_metadata,
                    group_attribute: b.group_claim,
                    role_map,
                    trust_idp_mfa: b.trust_idp_mfa,
                    entity_id: Some(b.issuer).filter(|i| !i.is_empty()),
                    domains: b.domains,
                    email_authoritative: b.email_authoritative,
                },
            )
            .await?;
            tx.commit().await?;
            info
        }
        other => {
            return Err(Error::Invalid(format!(
                "protocol: `{}` is not oidc or saml",
                other.escape_debug()
            ))
            .into());
        }
    };
    Ok(info)
}

/// An identity provider with what its IdP must be told: OIDC, the redirect
/// URI; SAML, the SP's entity id (its metadata URL) and ACS URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    #[serde(flatten)]
    pub provider: sso::ProviderInfo,
    pub login_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sp_entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acs_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sp_metadata_url: Option<String>,
}

pub(crate) fn provider_view(s: &AppState, info: &sso::ProviderInfo) -> Result<ProviderView, ApiError> {
    let mut v = ProviderView {
        provider: info.clone(),
        login_url: login_url(s, info.id),
        redirect_uri: None,
        sp_entity_id: None,
        acs_url: None,
        sp_metadata_url: None,
    };
    if info.protocol == "saml" {
        let sp = sp(s, info.id);
        v.sp_metadata_url = Some(sp.entity_id.clone());
        v.sp_entity_id = Some(sp.entity_id);
        v.acs_url = Some(sp.acs_url);
    } else {
        v.redirect_uri = Some(redirect_uri(s, info.id));
    }
    Ok(v)
}

fn provider_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::from(Error::NotFound("identity provider")))
}

pub async fn update_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Json(b): Json<UpdateProviderBody>,
) -> ApiResult {
    let id = provider_id(&id)?;
    let role_map = b.role_map.map(role_map).transpose()?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), ip(&c));
    let info = sso::update_provider(
        &tx,
        s.clock.as_ref(),
        &s.master_key,
        &actor,
        id,
        sso::ProviderUpdate {
            name: b.name,
            enabled: b.enabled,
            role_map,
            group_claim: b.group_claim,
            trust_idp_mfa: b.trust_idp_mfa,
            domains: b.domains,
            email_authoritative: b.email_authoritative,
            scopes: b.scopes,
            algorithms: b.algorithms,
            client_secret: b.client_secret,
            idp_metadata: b.idp_metadata,
        },
    )
    .await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(Json(provider_view(&s, &info)?).into_response())
}

pub async fn delete_provider(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    c: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = provider_id(&id)?;
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let actor = p.actor(Some(ctx.role), ip(&c));
    sso::delete_provider(&tx, s.clock.as_ref(), &actor, id).await?;
    tx.commit().await?;
    s.auth_cache.invalidate();
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_providers(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> ApiResult {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let items = sso::list_providers(&tx).await?;
    tx.commit().await?;
    let total = items.len();
    Ok(Json(json!({"items": items, "total": total})).into_response())
}

/// `POST /api/v1/sso/providers/{id}/test`: whether the provider still
/// loads — OIDC: its discovery document and signing keys, fetched afresh;
/// SAML: its stored metadata (a signing certificate and a sign-in URL).
/// 200 `{ok, protocol, …}` either way; `problem` says what failed.
pub async fn test_provider(
    State(s): State<AppState>,
    Extension(ctx): Extension<TenantCtx>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = provider_id(&id)?;
    Ok(Json(check(&s, ctx, id).await?).into_response())
}

/// Whether a provider still loads: `problem` says what failed; `idp`
/// (SAML) or `discovery` (OIDC) what was found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderCheck {
    pub ok: bool,
    /// `oidc` or `saml`.
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<serde_json::Value>,
}

/// Whether the provider still loads (what `test` answers).
pub(crate) async fn check(s: &AppState, ctx: TenantCtx, id: Uuid) -> Result<ProviderCheck, ApiError> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let (info, cfg) = sso::provider(&tx, &s.master_key, id).await?;
    let metadata = if info.protocol == "saml" {
        Some(sso::saml_metadata(&tx, id).await?)
    } else {
        None
    };
    tx.commit().await?;
    let out = match metadata {
        Some(xml) => {
            let entity = Some(cfg.issuer.as_str()).filter(|i| !i.is_empty());
            match vigil_integrations::saml::parse_metadata(&xml, entity) {
                Ok((_, idp)) => ProviderCheck {
                    ok: true,
                    protocol: "saml".into(),
                    problem: None,
                    idp: Some(json!({"entity_id": idp.entity_id, "sso_url": idp.sso_url})),
                    discovery: None,
                },
                Err(e) => ProviderCheck {
                    ok: false,
                    protocol: "saml".into(),
                    problem: Some(e.to_string()),
                    idp: None,
                    discovery: None,
                },
            }
        }
        None => match s.oidc.check(&cfg).await {
            Ok(c) => ProviderCheck {
                ok: true,
                protocol: "oidc".into(),
                problem: None,
                idp: None,
                discovery: serde_json::to_value(c).ok(),
            },
            Err(e) => ProviderCheck {
                ok: false,
                protocol: "oidc".into(),
                problem: Some(e.to_string()),
                idp: None,
                discovery: None,
            },
        },
    };
    Ok(out)
}
