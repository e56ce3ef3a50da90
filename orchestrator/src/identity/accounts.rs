//! Tenants, users, memberships (user × tenant × role), API tokens and
//! one-time password links. Login, sessions and MFA build on these.

use chrono::Duration;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::ids::Email;
use crate::secrets::credentials::{PasswordPolicy, random_secret, token_hash};
use crate::store::entity::{api_token, membership, password_token, tenant, user};
use crate::store::{PlatformTx, Store, TenantTx};
use crate::{Clock, Error, Result, Role, TenantId, UserId};

/// How long a password-set link stays valid.
pub const PASSWORD_LINK_TTL: Duration = Duration::hours(72);
/// How long a first-run bootstrap link stays valid.
pub const BOOTSTRAP_LINK_TTL: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub status: String,
    /// While a deletion is scheduled: when it is due.
    pub deletion_due_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<tenant::Model> for Tenant {
    fn from(m: tenant::Model) -> Self {
        Self {
            id: TenantId(m.id),
            name: m.name,
            status: m.status,
            deletion_due_at: m.deletion_due_at,
        }
    }
}

fn validate_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{what} must be 1 to 100 printable characters"
        )));
    }
    Ok(name.to_owned())
}

// ---------------------------------------------------------------- tenants

pub async fn create_tenant(tx: &PlatformTx, clock: &dyn Clock, actor: &Actor, name: &str) -> Result<Tenant> {
    let name = validate_name("tenant name", name)?;
    let id = TenantId::new();
    let model = tenant::ActiveModel {
        id: Set(id.0),
        name: Set(name.clone()),
        status: Set("active".into()),
        created_at: Set(clock.now()),
        session_idle_secs: Set(None),
        session_absolute_secs: Set(None),
        deletion_due_at: Set(None),
    }
    .insert(&**tx)
    .await
    .map_err(|e| Error::from_insert(e, &format!("a tenant named `{name}`")))?;
    audit::record_platform(
        tx,
        clock,
        actor,
        Event {
            action: "tenant.create",
            target: format!("tenant:{id}"),
            summary: json!({"after": {"name": name}}),
        },
    )
    .await?;
    Ok(model.into())
}

pub async fn get_tenant(conn: &impl ConnectionTrait, id: TenantId) -> Result<Tenant> {
    tenant::Entity::find_by_id(id.0)
        .one(conn)
        .await?
        .map(Into::into)
        .ok_or(Error::NotFound("tenant"))
}

pub async fn find_tenant_by_name(conn: &impl ConnectionTrait, name: &str) -> Result<Option<Tenant>> {
    Ok(tenant::Entity::find()
        .filter(tenant::Column::Name.eq(name.trim()))
        .one(conn)
        .await?
        .map(Into::into))
}

pub async fn list_tenants(conn: &impl ConnectionTrait) -> Result<Vec<Tenant>> {
    Ok(tenant::Entity::find()
        .order_by_asc(tenant::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

// ---------------------------------------------------------------- users & memberships

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
}

async fn find_or_create_user(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    email: &Email,
) -> Result<user::Model> {
    if let Some(u) = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(conn)
        .await?
    {
        return Ok(u);
    }
    create_user(conn, clock, email).await
}

/// A new user with this e-mail (no password, no platform role).
pub(crate) async fn create_user(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    email: &Email,
) -> Result<user::Model> {
    user::ActiveModel {
        id: Set(UserId::new().0),
        email: Set(email.as_str().to_owned()),
        display_name: Set(None),
        password_hash: Set(None),
        is_platform_admin: Set(false),
        created_at: Set(clock.now()),
        disabled_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
    .map_err(|e| Error::from_insert(e, "user"))
}

/// Invites a member: grants `role` (as [`add_member`]) and issues the
/// one-time link with which they set a password (valid
/// [`PASSWORD_LINK_TTL`]); answers the member and the link's token.
pub async fn invite_member(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    email: &Email,
    role: Role,
) -> Result<(Member, String)> {
    let m = add_member(tx, clock, actor, email, role).await?;
    let token = issue_link(
        &**tx,
        clock,
        LinkPurpose::SetPassword,
        Some(m.user_id),
        PASSWORD_LINK_TTL,
    )
    .await?;
    Ok((m, token))
}

/// Grants `role` in the transaction's tenant to the user with `email`,
/// creating the user (without a password) if needed. Audited.
pub async fn add_member(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    email: &Email,
    role: Role,
) -> Result<Member> {
    if !role.is_tenant_role() {
        return Err(Error::Invalid(format!("`{role}` is not a tenant role")));
    }
    get_tenant(&**tx, tx.tenant()).await?;
    let user = find_or_create_user(&**tx, clock, email).await?;
    membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        user_id: Set(user.id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(clock.now()),
    }
    .insert(&**tx)
    .await
    .map_err(|e| Error::from_insert(e, &format!("a membership for {email} in this tenant")))?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "membership.grant",
            target: format!("user:{}", user.id),
            summary: json!({"before": null, "after": {"email": email.as_str(), "role": role.as_str()}}),
        },
    )
    .await?;
    Ok(Member {
        user_id: UserId(user.id),
        email: user.email,
        role,
    })
}

/// Changes a member's role in the transaction's tenant, or (with `None`)
/// removes the membership. Takes effect on the member's next request.
/// The tenant's last tenant admin stays one (409): nobody could manage the
/// tenant after. Audited with before and after.
pub async fn set_member_role(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    user: UserId,
    role: Option<Role>,
) -> Result<Option<Member>> {
    if let Some(r) = role
        && !r.is_tenant_role()
    {
        return Err(Error::Invalid(format!("`{r}` is not a tenant role")));
    }
    let m = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tx.tenant().0))
        .filter(membership::Column::UserId.eq(user.0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("member"))?;
    let before: Role = m.role.parse()?;
    if before == Role::TenantAdmin && role != Some(Role::TenantAdmin) {
        let admins = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tx.tenant().0))
            .filter(membership::Column::Role.eq(Role::TenantAdmin.as_str()))
            .count(&**tx)
            .await?;
        if admins <= 1 {
            return Err(Error::Conflict(
                "this is the tenant's last tenant admin; make another member tenant admin first".into(),
            ));
        }
    }
    let email = user::Entity::find_by_id(user.0)
        .one(&**tx)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    match role {
        Some(r) => {
            membership::Entity::update_many()
                .col_expr(membership::Column::Role, Expr::value(r.as_str()))
                .filter(membership::Column::Id.eq(m.id))
                .exec(&**tx)
                .await?;
        }
        None => {
            membership::Entity::delete_by_id(m.id).exec(&**tx).await?;
        }
    }
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: if role.is_some() { "membership.change" } else { "membership.revoke" },
            target: format!("user:{}", user.0),
            summary: json!({"before": {"role": before.as_str()}, "after": role.map(|r| json!({"role": r.as_str()}))}),
        },
    )
    .await?;
    Ok(role.map(|role| Member {
        user_id: user,
        email,
        role,
    }))
}

/// The tenant's members, by e-mail (two queries, however many members).
pub async fn list_members(tx: &TenantTx) -> Result<Vec<Member>> {
    let rows = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tx.tenant().0))
        .all(&**tx)
        .await?;
    let mut emails = std::collections::HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        let ids: Vec<Uuid> = chunk.iter().map(|m| m.user_id).collect();
        for u in user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(&**tx)
            .await?
        {
            emails.insert(u.id, u.email);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        out.push(Member {
            user_id: UserId(m.user_id),
            email: emails.remove(&m.user_id).ok_or(Error::NotFound("user"))?,
            role: m.role.parse()?,
        });
    }
    out.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(out)
}

/// A person's memberships across tenants (tenant picker at login).
pub async fn memberships_of(store: &Store, user: UserId) -> Result<Vec<(TenantId, Role)>> {
    let tx = store.begin_user(user).await?;
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.0))
        .all(&*tx)
        .await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|m| Ok((TenantId(m.tenant_id), m.role.parse()?)))
        .collect()
}

pub async fn find_user_by_email(conn: &impl ConnectionTrait, email: &Email) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(conn)
        .await?)
}

// ---------------------------------------------------------------- one-time password links

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// First run: creates the first Platform Admin.
    Bootstrap,
    /// Sets (or resets) an existing user's password.
    SetPassword,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Bootstrap => "bootstrap",
            LinkPurpose::SetPassword => "set_password",
        }
    }
}

/// Issues a one-time link token (returned once; stored as a hash).
pub async fn issue_link(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    purpose: LinkPurpose,
    user: Option<UserId>,
    ttl: Duration,
) -> Result<String> {
    let token = random_secret();
    let now = clock.now();
    password_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.map(|u| u.0)),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(token_hash(&token)),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// Looks up a link that is unused and unexpired, for the given purpose.
pub async fn check_link(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    purpose: LinkPurpose,
    token: &str,
) -> Result<password_token::Model> {
    let row = password_token::Entity::find()
        .filter(password_token::Column::TokenHash.eq(token_hash(token)))
        .filter(password_token::Column::Purpose.eq(purpose.as_str()))
        .one(conn)
        .await?
        .ok_or(Error::Unauthenticated("unknown link"))?;
    if row.used_at.is_some() {
        return Err(Error::Unauthenticated("this link was already used"));
    }
    if row.expires_at <= clock.now() {
        return Err(Error::Unauthenticated("this link has expired"));
    }
    Ok(row)
}

/// Marks a link used; fails if a concurrent request used it first.
async fn consume_link(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    link: &password_token::Model,
) -> Result<()> {
    let res = password_token::Entity::update_many()
        .col_expr(password_token::Column::UsedAt, Expr::value(clock.now()))
        .filter(password_token::Column::Id.eq(link.id))
        .filter(password_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Unauthenticated("this link was already used"));
    }
    Ok(())
}

/// Whether the installation still needs its first Platform Admin.
pub async fn bootstrap_needed(conn: &impl ConnectionTrait) -> Result<bool> {
    let admins = user::Entity::find()
        .filter(user::Column::IsPlatformAdmin.eq(true))
        .filter(user::Column::PasswordHash.is_not_null())
        .count(conn)
        .await?;
    Ok(admins == 0)
}

/// Redeems a bootstrap link: creates the first Platform Admin. Refused once
/// any Platform Admin exists.
pub async fn complete_bootstrap(
    store: &Store,
    clock: &dyn Clock,
    policy: &PasswordPolicy,
    token: &str,
    email: &Email,
    password: &str,
    source_ip: Option<String>,
) -> Result<UserId> {
    let hash = policy.hash(password)?;
    let tx = store.begin_platform().await?;
    let link = check_link(&*tx, clock, LinkPurpose::Bootstrap, token).await?;
    if !bootstrap_needed(&*tx).await? {
        return Err(Error::Conflict("a platform admin already exists".into()));
    }
    consume_link(&*tx, clock, &link).await?;
    let id = UserId::new();
    user::ActiveModel {
        id: Set(id.0),
        email: Set(email.as_str().to_owned()),
        display_name: Set(None),
        password_hash: Set(Some(hash)),
        is_platform_admin: Set(true),
        created_at: Set(clock.now()),
        disabled_at: Set(None),
        ..Default::default()
    }
    .insert(&*tx)
    .await
    .map_err(|e| Error::from_insert(e, "a user with this e-mail"))?;
    let actor = Actor {
        label: format!("user:{id}"),
        role: Some(Role::PlatformAdmin),
        source_ip,
    };
    audit::record_platform(
        &tx,
        clock,
        &actor,
        Event {
            action: "platform_admin.bootstrap",
            target: format!("user:{id}"),
            summary: json!({"after": {"email": email.as_str(), "role": "platform_admin"}}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Redeems a password-set link: sets the user's password (Argon2id).
pub async fn complete_password_link(
    store: &Store,
    clock: &dyn Clock,
    policy: &PasswordPolicy,
    token: &str,
    password: &str,
) -> Result<UserId> {
    let hash = policy.hash(password)?;
    let tx = store.begin_platform().await?;
    let link = check_link(&*tx, clock, LinkPurpose::SetPassword, token).await?;
    let user_id = link.user_id.ok_or(Error::Unauthenticated("unknown link"))?;
    consume_link(&*tx, clock, &link).await?;
    let res = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(user_id))
        .exec(&*tx)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::NotFound("user"));
    }
    let actor = Actor {
        label: format!("user:{user_id}"),
        role: None,
        source_ip: None,
    };
    audit::record_platform(
        &tx,
        clock,
        &actor,
        Event {
            action: "user.password_set",
            target: format!("user:{user_id}"),
            summary: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(UserId(user_id))
}

// ---------------------------------------------------------------- API tokens

pub use super::principal::ApiPrincipal;

const TOKEN_PREFIX: &str = "vgl_";

/// Issues an API token bound to the transaction's tenant and one role. The
/// token is returned once; the database keeps its SHA-256. Audited.
pub async fn issue_api_token(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    name: &str,
    role: Role,
) -> Result<(Uuid, String)> {
    if !role.is_tenant_role() {
        return Err(Error::Invalid(format!("`{role}` is not a tenant role")));
    }
    let name = validate_name("token name", name)?;
    get_tenant(&**tx, tx.tenant()).await?;
    // The tenant id travels in the token so it can be checked under that
    // tenant's row level security.
    let token = format!("{TOKEN_PREFIX}{}_{}", tx.tenant().0.simple(), random_secret());
    let id = Uuid::now_v7();
    api_token::ActiveModel {
        id: Set(id),
        tenant_id: Set(tx.tenant().0),
        name: Set(name.clone()),
        role: Set(role.as_str().to_owned()),
        token_hash: Set(token_hash(&token)),
        created_at: Set(clock.now()),
        created_by: Set(actor.label.clone()),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "api_token.issue",
            target: format!("api_token:{id}"),
            summary: json!({"after": {"name": name, "role": role.as_str()}}),
        },
    )
    .await?;
    Ok((id, token))
}

/// Resolves a bearer token; unknown, malformed and revoked tokens are all
/// refused alike.
pub async fn authenticate_api_token(store: &Store, token: &str) -> Result<ApiPrincipal> {
    let refused = Error::Unauthenticated("invalid API token");
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(Error::Unauthenticated("invalid API token"))?;
    let (tenant_hex, _) = rest
        .split_once('_')
        .ok_or(Error::Unauthenticated("invalid API token"))?;
    let tenant = Uuid::try_parse(tenant_hex)
        .map(TenantId)
        .map_err(|_| Error::Unauthenticated("invalid API token"))?;
    let tx = store.begin_tenant(tenant).await?;
    let row = api_token::Entity::find()
        .filter(api_token::Column::TenantId.eq(tenant.0))
        .filter(api_token::Column::TokenHash.eq(token_hash(token)))
        .one(&*tx)
        .await?;
    tx.commit().await?;
    match row {
        Some(t) if t.revoked_at.is_none() => Ok(ApiPrincipal {
            token_id: t.id,
            tenant,
            role: t.role.parse()?,
            name: t.name,
        }),
        _ => Err(refused),
    }
}

/// [`authenticate_api_token`] through the node's guard cache (valid
/// tokens only; a revocation drops the cache on every node).
pub async fn authenticate_api_token_cached(
    store: &Store,
    cache: &crate::identity::authcache::AuthCache,
    token: &str,
) -> Result<ApiPrincipal> {
    let hash = token_hash(token);
    if let Some(p) = cache.token(&hash) {
        return Ok(p);
    }
    let ticket = cache.ticket();
    let p = authenticate_api_token(store, token).await?;
    cache.store_token(ticket, hash, p.clone());
    Ok(p)
}

/// Revokes a token of the transaction's tenant. Audited.
pub async fn revoke_api_token(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, id: Uuid) -> Result<()> {
    let res = api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::value(clock.now()))
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::TenantId.eq(tx.tenant().0))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(&**tx)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::NotFound("api token"));
    }
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "api_token.revoke",
            target: format!("api_token:{id}"),
            summary: json!({}),
        },
    )
    .await
}

/// Creates or updates a local account with a password hash (operator and
/// demo use). `platform_admin` grants (never revokes) the platform role.
/// Audited as a platform event.
pub async fn upsert_local_user(
    tx: &PlatformTx,
    clock: &dyn Clock,
    actor: &Actor,
    email: &Email,
    password_hash: String,
    platform_admin: bool,
) -> Result<UserId> {
    let user = find_or_create_user(&**tx, clock, email).await?;
    let mut am: user::ActiveModel = user.clone().into();
    am.password_hash = Set(Some(password_hash));
    if platform_admin {
        am.is_platform_admin = Set(true);
    }
    am.update(&**tx).await?;
    audit::record_platform(
        tx,
        clock,
        actor,
        Event {
            action: "user.password_set",
            target: format!("user:{}", user.id),
            summary: json!({"before": {"platform_admin": user.is_platform_admin},
                            "after": {"platform_admin": user.is_platform_admin || platform_admin}}),
        },
    )
    .await?;
    Ok(UserId(user.id))
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiTokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list_api_tokens(tx: &TenantTx) -> Result<Vec<ApiTokenInfo>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::TenantId.eq(tx.tenant().0))
        .order_by_asc(api_token::Column::CreatedAt)
        .all(&**tx)
        .await?
        .into_iter()
        .map(|t| ApiTokenInfo {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            created_by: t.created_by,
            revoked_at: t.revoked_at,
        })
        .collect())
}

pub async fn is_platform_admin(conn: &impl ConnectionTrait, user: UserId) -> Result<bool> {
    Ok(user::Entity::find_by_id(user.0)
        .one(conn)
        .await?
        .is_some_and(|u| u.is_platform_admin))
}
