//! Who a request acts as, once resolved: a person's session or an API
//! token. Plain types, shared by the modules that resolve them (`auth`,
//! `accounts`) and the cache that keeps them (`authcache`), so the cache
//! needs neither.

use uuid::Uuid;

use crate::{Role, TenantId, UserId};

/// A service account's credential, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPrincipal {
    pub token_id: Uuid,
    pub tenant: TenantId,
    pub role: Role,
    pub name: String,
}

/// What a valid session resolves to on each request.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub user: UserId,
    pub email: String,
    pub platform_admin: bool,
    pub active_tenant: Option<TenantId>,
    /// An SSO session's one tenant.
    pub bound_tenant: Option<TenantId>,
    pub mfa_verified: bool,
    pub totp_enabled: bool,
    pub csrf: String,
}
