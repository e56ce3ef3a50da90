//! Authentication: local password login (Argon2id, backoff and lockout),
//! server-side sessions (idle and absolute expiry, rotation at login and at
//! MFA step-up, CSRF token), and TOTP (secret sealed under the master key,
//! replayed codes refused). Every login success and failure and every MFA
//! event is audited. No HTTP here: the web layer maps cookies and forms.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::identity::authcache::{AuthCache, CachedSession};
use crate::ids::Email;
use crate::secrets::credentials::{MasterKey, PasswordPolicy, random_secret, token_hash};
use crate::store::Store;
use crate::store::entity::{login_throttle, membership, recovery_code, session, user};
use crate::{Clock, Error, Result, Role, TenantId, UserId};

/// A session ends after this long without a request ...
pub const IDLE_TIMEOUT: Duration = Duration::minutes(30);
/// ... and this long after login, whatever happens.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::hours(12);
/// `last_seen_at` is written at most this often (not on every request).
const TOUCH_EVERY: Duration = Duration::seconds(60);
/// Failures before the account locks; each further failure doubles the lock.
pub const FAILURES_BEFORE_LOCK: i32 = 5;
const MAX_LOCK: Duration = Duration::hours(1);

/// Why a login was refused. The caller shows every variant except
/// `Locked` with the same words, so they do not reveal which accounts exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    BadCredentials,
    Locked { until: DateTime<Utc> },
    Disabled,
}

/// A freshly created (or rotated) session: the cookie value and the CSRF
/// token are shown to the client once.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub token: String,
    pub csrf: String,
    /// Issued when this verification completed TOTP enrolment: shown to
    /// the person once, stored only as hashes.
    pub recovery_codes: Vec<String>,
}

/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// A recovery code as typed: `xxxxx-xxxxx` (base32, case and spaces
/// ignored), normalized; `None` if it cannot be one.
fn recovery_form(code: &str) -> Option<String> {
    let c: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (c.len() == 10
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ('2'..='7').contains(&ch)))
    .then_some(c)
}

/// Replaces the user's recovery codes with [`RECOVERY_CODES`] new ones
/// (50 random bits each) and returns them; only their hashes are kept.
pub async fn issue_recovery_codes(store: &Store, clock: &dyn Clock, user: UserId) -> Result<Vec<String>> {
    use rand::RngCore;
    let now = clock.now();
    let tx = store.begin_raw().await?;
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user.0))
        .exec(&*tx)
        .await?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut b = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut b);
        let raw = data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase();
        let code = format!("{}-{}", &raw[..5], &raw[5..10]);
        recovery_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.0),
            code_hash: Set(token_hash(&raw[..10])),
            created_at: Set(now),
            used_at: Set(None),
        }
        .insert(&*tx)
        .await?;
        codes.push(code);
    }
    tx.commit().await?;
    Ok(codes)
}

/// New recovery codes for a person whose session passed MFA (the old ones
/// stop working). Audited.
pub async fn regenerate_recovery_codes(
    store: &Store,
    clock: &dyn Clock,
    session: &SessionInfo,
    source_ip: Option<String>,
) -> Result<Vec<String>> {
    if !session.totp_enabled || !session.mfa_verified {
        // A state to change first, not a role the person lacks.
        return Err(Error::Conflict(
            "verify your second factor in this session first".into(),
        ));
    }
    let codes = issue_recovery_codes(store, clock, session.user).await?;
    login_event(
        store,
        clock,
        &Actor {
            label: format!("user:{}", session.user.0),
            role: None,
            source_ip,
        },
        "mfa.recovery_codes_issued",
        format!("user:{}", session.user.0),
        json!({"count": RECOVERY_CODES, "regenerated": true}),
    )
    .await?;
    Ok(codes)
}

/// Uses one of the user's recovery codes (once: a conditional update, so
/// two concurrent uses cannot both succeed). Returns the codes left, or
/// `None` if the code is not an unused one of theirs.
async fn use_recovery_code(
    store: &Store,
    clock: &dyn Clock,
    user: UserId,
    code: &str,
) -> Result<Option<u64>> {
    let Some(form) = recovery_form(code) else {
        return Ok(None);
    };
    let used = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(clock.now()))
        .filter(recovery_code::Column::UserId.eq(user.0))
        .filter(recovery_code::Column::CodeHash.eq(token_hash(&form)))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(store.conn())
        .await?;
    if used.rows_affected != 1 {
        return Ok(None);
    }
    let left = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user.0))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(store.conn())
        .await?;
    Ok(Some(left))
}

pub use super::principal::SessionInfo;

fn lock_for(failures: i32) -> Option<Duration> {
    let over = failures - FAILURES_BEFORE_LOCK;
    if over < 0 {
        return None;
    }
    let minutes = 1i64 << over.min(6);
    Some(Duration::minutes(minutes).min(MAX_LOCK))
}

async fn login_event(
    store: &Store,
    clock: &dyn Clock,
    actor: &Actor,
    action: &str,
    target: String,
    summary: serde_json::Value,
) -> Result<()> {
    let tx = store.begin_platform().await?;
    audit::record_platform(
        &tx,
        clock,
        actor,
        Event {
            action,
            target,
            summary,
        },
    )
    .await?;
    tx.commit().await
}

/// Verifies e-mail and password. On success the failure counter resets and
/// a session is created; every outcome is audited (as a platform event: a
/// person logs in before choosing a tenant).
pub async fn login(
    store: &Store,
    clock: &dyn Clock,
    policy: &PasswordPolicy,
    email: &str,
    password: &str,
    source_ip: Option<String>,
) -> Result<std::result::Result<(NewSession, UserId), LoginRefused>> {
    let now = clock.now();
    let anon = Actor {
        label: "anonymous".into(),
        role: None,
        source_ip: source_ip.clone(),
    };
    let found = match Email::parse(email) {
        Ok(e) => {
            user::Entity::find()
                .filter(user::Column::Email.eq(e.as_str()))
                .one(store.conn())
                .await?
        }
        Err(_) => None,
    };
    let Some(u) = found else {
        // An address without an account locks out as a real one does, so
        // neither the words nor the status reveal which accounts exist.
        let key = token_hash(&email.trim().to_lowercase());
        let prior = login_throttle::Entity::find_by_id(key.clone())
            .one(store.conn())
            .await?;
        if let Some(until) = prior.as_ref().and_then(|t| t.locked_until).filter(|t| *t > now) {
            login_event(
                store,
                clock,
                &anon,
                "login.failure",
                "user:unknown".into(),
                json!({"reason": "unknown account", "locked_until": until}),
            )
            .await?;
            return Ok(Err(LoginRefused::Locked { until }));
        }
        // Same work as a real check, so timing does not reveal the account.
        policy.verify(password, DUMMY_PHC);
        let failures = prior.as_ref().map_or(0, |t| t.failures) + 1;
        let locked_until = lock_for(failures).map(|d| now + d);
        throttle_unknown(store, now, key, prior.is_some(), failures, locked_until).await?;
        login_event(
            store,
            clock,
            &anon,
            "login.failure",
            "user:unknown".into(),
            json!({"reason": "unknown account", "locked_until": locked_until}),
        )
        .await?;
        return Ok(Err(match locked_until {
            Some(until) => LoginRefused::Locked { until },
            None => LoginRefused::BadCredentials,
        }));
    };
    let actor = Actor {
        label: format!("user:{}", u.id),
        role: None,
        source_ip,
    };
    let target = format!("user:{}", u.id);
    if u.disabled_at.is_some() {
        login_event(
            store,
            clock,
            &actor,
            "login.failure",
            target,
            json!({"reason": "disabled"}),
        )
        .await?;
        return Ok(Err(LoginRefused::Disabled));
    }
    // A lock from wrong passwords, or from wrong second factors (the next
    // password login waits for that too).
    if let Some(until) = u.locked_until.max(u.mfa_locked_until).filter(|t| *t > now) {
        login_event(
            store,
            clock,
            &actor,
            "login.failure",
            target,
            json!({"reason": "locked"}),
        )
        .await?;
        return Ok(Err(LoginRefused::Locked { until }));
    }
    let ok = u
        .password_hash
        .as_deref()
        .is_some_and(|h| policy.verify(password, h));
    if !ok {
        let failures = u.failed_logins + 1;
        let locked_until = lock_for(failures).map(|d| now + d);
        user::Entity::update_many()
            .col_expr(user::Column::FailedLogins, Expr::value(failures))
            .col_expr(user::Column::LockedUntil, Expr::value(locked_until))
            .filter(user::Column::Id.eq(u.id))
            .exec(store.conn())
            .await?;
        login_event(
            store,
            clock,
            &actor,
            "login.failure",
            target,
            json!({"reason": "bad password", "failures": failures, "locked_until": locked_until}),
        )
        .await?;
        return Ok(Err(match locked_until {
            Some(until) => LoginRefused::Locked { until },
            None => LoginRefused::BadCredentials,
        }));
    }
    user::Entity::update_many()
        .col_expr(user::Column::FailedLogins, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(user::Column::Id.eq(u.id))
        .exec(store.conn())
        .await?;
    // One tenant: act in it straight away; several: the user picks.
    let memberships = crate::identity::memberships_of(store, UserId(u.id)).await?;
    let active = if memberships.len() == 1 {
        Some(memberships[0].0)
    } else {
        None
    };
    let s = create_session(store, clock, UserId(u.id), active).await?;
    login_event(
        store,
        clock,
        &actor,
        "login.success",
        target,
        json!({"session": s.id, "method": "password"}),
    )
    .await?;
    Ok(Ok((s, UserId(u.id))))
}

/// Records a failed login for an address without an account; rows idle for
/// a day are dropped (the table holds only recent guesses).
async fn throttle_unknown(
    store: &Store,
    now: DateTime<Utc>,
    key: String,
    exists: bool,
    failures: i32,
    locked_until: Option<DateTime<Utc>>,
) -> Result<()> {
    if exists {
        login_throttle::Entity::update_many()
            .col_expr(login_throttle::Column::Failures, Expr::value(failures))
            .col_expr(login_throttle::Column::LockedUntil, Expr::value(locked_until))
            .col_expr(login_throttle::Column::UpdatedAt, Expr::value(now))
            .filter(login_throttle::Column::Key.eq(key))
            .exec(store.conn())
            .await?;
        return Ok(());
    }
    login_throttle::Entity::delete_many()
        .filter(login_throttle::Column::UpdatedAt.lt(now - Duration::days(1)))
        .exec(store.conn())
        .await?;
    let row = login_throttle::ActiveModel {
        key: Set(key),
        failures: Set(failures),
        locked_until: Set(locked_until),
        updated_at: Set(now),
    };
    // Two first guesses at once: one row wins, the other guess is still refused.
    match row
        .insert(store.conn())
        .await
        .map_err(|e| Error::from_insert(e, "throttle"))
    {
        Ok(_) | Err(Error::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A valid Argon2id PHC string of a random password, for equal-time refusals.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1uuUVSc6whs3Di4EWXU5AzkO8TFwmvvl0ymxH2pqtmc";

pub async fn create_session(
    store: &Store,
    clock: &dyn Clock,
    user: UserId,
    active_tenant: Option<TenantId>,
) -> Result<NewSession> {
    open_session(store, clock, user, active_tenant, None, None, false).await
}

/// A session opened by single sign-on: bound to the provider's tenant (it
/// cannot switch tenants nor act as a platform admin), MFA-verified from
/// the start only when the tenant trusts its IdP's MFA claim and the IdP
/// asserted one.
pub async fn create_sso_session(
    store: &Store,
    clock: &dyn Clock,
    user: UserId,
    tenant: TenantId,
    provider: Uuid,
    idp_mfa: bool,
) -> Result<NewSession> {
    open_session(
        store,
        clock,
        user,
        Some(tenant),
        Some(tenant),
        Some(provider),
        idp_mfa,
    )
    .await
}

async fn open_session(
    store: &Store,
    clock: &dyn Clock,
    user: UserId,
    active_tenant: Option<TenantId>,
    bound_tenant: Option<TenantId>,
    sso_provider: Option<Uuid>,
    mfa_verified: bool,
) -> Result<NewSession> {
    let now = clock.now();
    let limits = session_limits(store.conn(), active_tenant).await?;
    let (token, csrf, id) = (random_secret(), random_secret(), Uuid::now_v7());
    session::ActiveModel {
        id: Set(id),
        token_hash: Set(token_hash(&token)),
        user_id: Set(user.0),
        active_tenant_id: Set(active_tenant.map(|t| t.0)),
        mfa_verified_at: Set(mfa_verified.then_some(now)),
        csrf_token: Set(csrf.clone()),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(now + limits.absolute),
        bound_tenant_id: Set(bound_tenant.map(|t| t.0)),
        idle_secs: Set(limits.idle_secs()),
        mfa_failures: Set(0),
        sso_provider_id: Set(sso_provider),
    }
    .insert(store.conn())
    .await?;
    Ok(NewSession {
        id,
        token,
        csrf,
        recovery_codes: Vec::new(),
    })
}

/// Resolves a session cookie. Expired (idle or absolute) sessions are
/// deleted and refused.
pub async fn resolve_session(store: &Store, clock: &dyn Clock, token: &str) -> Result<SessionInfo> {
    Ok(resolve_full(store, clock, token).await?.info)
}

/// [`resolve_session`] through the node's guard cache: a cached session is
/// checked for expiry and idleness against the clock (an expired one goes
/// to the database, which decides and deletes), and touched on the same
/// schedule.
pub async fn resolve_session_cached(
    store: &Store,
    clock: &dyn Clock,
    cache: &AuthCache,
    token: &str,
) -> Result<SessionInfo> {
    let now = clock.now();
    let hash = token_hash(token);
    if let Some(c) = cache.session(&hash)
        && c.expires_at > now
        && c.last_seen_at + c.idle > now
    {
        if now - c.last_seen_at >= TOUCH_EVERY {
            touch(store, c.info.id, now).await?;
            cache.touched(&hash, now);
        }
        return Ok(c.info);
    }
    let ticket = cache.ticket();
    let s = resolve_full(store, clock, token).await?;
    let info = s.info.clone();
    cache.store_session(ticket, hash, s);
    Ok(info)
}

async fn touch(store: &Store, session: Uuid, now: DateTime<Utc>) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::LastSeenAt, Expr::value(now))
        .filter(session::Column::Id.eq(session))
        .exec(store.conn())
        .await?;
    Ok(())
}

async fn resolve_full(store: &Store, clock: &dyn Clock, token: &str) -> Result<CachedSession> {
    let now = clock.now();
    let s = session::Entity::find()
        .filter(session::Column::TokenHash.eq(token_hash(token)))
        .one(store.conn())
        .await?
        .ok_or(Error::Unauthenticated("no such session"))?;
    let idle = s
        .idle_secs
        .map_or(IDLE_TIMEOUT, |v| Duration::seconds(i64::from(v)));
    if s.expires_at <= now || s.last_seen_at + idle <= now {
        session::Entity::delete_by_id(s.id).exec(store.conn()).await?;
        return Err(Error::Unauthenticated("session expired"));
    }
    let u = user::Entity::find_by_id(s.user_id)
        .one(store.conn())
        .await?
        .ok_or(Error::Unauthenticated("no such session"))?;
    if u.disabled_at.is_some() {
        return Err(Error::Unauthenticated("account disabled"));
    }
    let mut last_seen_at = s.last_seen_at;
    if now - s.last_seen_at >= TOUCH_EVERY {
        touch(store, s.id, now).await?;
        last_seen_at = now;
    }
    Ok(CachedSession {
        info: SessionInfo {
            id: s.id,
            user: UserId(u.id),
            email: u.email,
            // A tenant's IdP never vouches for platform power.
            platform_admin: u.is_platform_admin && s.bound_tenant_id.is_none(),
            active_tenant: s.active_tenant_id.map(TenantId),
            bound_tenant: s.bound_tenant_id.map(TenantId),
            mfa_verified: s.mfa_verified_at.is_some(),
            totp_enabled: u.totp_enabled_at.is_some(),
            csrf: s.csrf_token,
        },
        expires_at: s.expires_at,
        last_seen_at,
        idle,
    })
}

/// The role the user holds in `tenant` right now (fresh on every request,
/// so a role change applies at once on every node).
pub async fn role_in(store: &Store, user: UserId, tenant: TenantId) -> Result<Option<Role>> {
    let tx = store.begin_tenant(tenant).await?;
    let m = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant.0))
        .filter(membership::Column::UserId.eq(user.0))
        .one(&*tx)
        .await?;
    tx.commit().await?;
    m.map(|m| m.role.parse()).transpose()
}

/// [`role_in`] through the node's guard cache.
pub async fn role_in_cached(
    store: &Store,
    cache: &AuthCache,
    user: UserId,
    tenant: TenantId,
) -> Result<Option<Role>> {
    if let Some(r) = cache.role(user.0, tenant.0) {
        return Ok(r);
    }
    let ticket = cache.ticket();
    let r = role_in(store, user, tenant).await?;
    cache.store_role(ticket, user.0, tenant.0, r);
    Ok(r)
}

/// Switches the session to a tenant the user belongs to.
pub async fn set_active_tenant(store: &Store, session: Uuid, user: UserId, tenant: TenantId) -> Result<()> {
    let Some(current) = session::Entity::find_by_id(session).one(store.conn()).await? else {
        return Err(Error::Unauthenticated("no such session"));
    };
    if current.bound_tenant_id.is_some_and(|b| b != tenant.0) || role_in(store, user, tenant).await?.is_none()
    {
        return Err(Error::NotFound("tenant"));
    }
    // The tenant's limits apply from now on; the lifetime only shrinks.
    let limits = session_limits(store.conn(), Some(tenant)).await?;
    session::Entity::update_many()
        .col_expr(session::Column::ActiveTenantId, Expr::value(tenant.0))
        .col_expr(session::Column::IdleSecs, Expr::value(limits.idle_secs()))
        .col_expr(
            session::Column::ExpiresAt,
            Expr::value(current.expires_at.min(current.created_at + limits.absolute)),
        )
        .filter(session::Column::Id.eq(session))
        .exec(store.conn())
        .await?;
    Ok(())
}

/// How long a tenant's sessions may sit idle and live at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
    /// Whether these are the tenant's own (else the defaults).
    pub custom: bool,
}

impl SessionLimits {
    pub const DEFAULT: SessionLimits = SessionLimits {
        idle: IDLE_TIMEOUT,
        absolute: ABSOLUTE_TIMEOUT,
        custom: false,
    };
    /// Allowed idle timeouts.
    pub const IDLE_RANGE: (Duration, Duration) = (Duration::minutes(5), Duration::hours(24));
    /// Allowed absolute lifetimes.
    pub const ABSOLUTE_RANGE: (Duration, Duration) = (Duration::minutes(15), Duration::days(7));

    fn idle_secs(&self) -> Option<i32> {
        self.custom
            .then(|| i32::try_from(self.idle.num_seconds()).unwrap_or(i32::MAX))
    }

    /// Checks limits a tenant admin asks for.
    pub fn new(idle: Duration, absolute: Duration) -> Result<Self> {
        let (lo, hi) = Self::IDLE_RANGE;
        if idle < lo || idle > hi {
            return Err(Error::Invalid(
                "the idle timeout must be 5 minutes to 24 hours".into(),
            ));
        }
        let (lo, hi) = Self::ABSOLUTE_RANGE;
        if absolute < lo || absolute > hi {
            return Err(Error::Invalid(
                "the absolute timeout must be 15 minutes to 7 days".into(),
            ));
        }
        if idle > absolute {
            return Err(Error::Invalid(
                "the idle timeout cannot exceed the absolute one".into(),
            ));
        }
        Ok(Self {
            idle,
            absolute,
            custom: true,
        })
    }
}

/// The session limits of a tenant (the defaults without one).
pub async fn session_limits(
    conn: &impl sea_orm::ConnectionTrait,
    tenant: Option<TenantId>,
) -> Result<SessionLimits> {
    let Some(t) = tenant else {
        return Ok(SessionLimits::DEFAULT);
    };
    let row = crate::store::entity::tenant::Entity::find_by_id(t.0)
        .one(conn)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(match (row.session_idle_secs, row.session_absolute_secs) {
        (None, None) => SessionLimits::DEFAULT,
        (idle, absolute) => SessionLimits {
            idle: idle.map_or(IDLE_TIMEOUT, |v| Duration::seconds(i64::from(v))),
            absolute: absolute.map_or(ABSOLUTE_TIMEOUT, |v| Duration::seconds(i64::from(v))),
            custom: true,
        },
    })
}

/// Sets the transaction's tenant's session limits; sessions acting in the
/// tenant take the new idle timeout at once and never outlive the new
/// absolute one. Audited.
pub async fn set_session_limits(
    tx: &crate::store::TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    limits: SessionLimits,
) -> Result<()> {
    let before = session_limits(&**tx, Some(tx.tenant())).await?;
    let secs = |d: Duration| i32::try_from(d.num_seconds()).unwrap_or(i32::MAX);
    crate::store::entity::tenant::Entity::update_many()
        .col_expr(
            crate::store::entity::tenant::Column::SessionIdleSecs,
            Expr::value(secs(limits.idle)),
        )
        .col_expr(
            crate::store::entity::tenant::Column::SessionAbsoluteSecs,
            Expr::value(secs(limits.absolute)),
        )
        .filter(crate::store::entity::tenant::Column::Id.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    let sessions = session::Entity::find()
        .filter(session::Column::ActiveTenantId.eq(tx.tenant().0))
        .all(&**tx)
        .await?;
    for s in sessions {
        session::Entity::update_many()
            .col_expr(session::Column::IdleSecs, Expr::value(secs(limits.idle)))
            .col_expr(
                session::Column::ExpiresAt,
                Expr::value(s.expires_at.min(s.created_at + limits.absolute)),
            )
            .filter(session::Column::Id.eq(s.id))
            .exec(&**tx)
            .await?;
    }
    crate::audit::record(
        tx,
        clock,
        actor,
        crate::audit::Event {
            action: "settings.sessions",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({
                "before": {"idle_minutes": before.idle.num_minutes(), "absolute_minutes": before.absolute.num_minutes()},
                "after": {"idle_minutes": limits.idle.num_minutes(), "absolute_minutes": limits.absolute.num_minutes()},
            }),
        },
    )
    .await?;
    Ok(())
}

/// Ends a session server-side.
pub async fn logout(store: &Store, token: &str) -> Result<()> {
    session::Entity::delete_many()
        .filter(session::Column::TokenHash.eq(token_hash(token)))
        .exec(store.conn())
        .await?;
    Ok(())
}

/// Compares a presented CSRF token with the session's, in constant time.
pub fn csrf_matches(session: &SessionInfo, presented: &str) -> bool {
    !presented.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

// ---------------------------------------------------------------- TOTP

const TOTP_STEP: u64 = 30;

fn totp(secret: Vec<u8>) -> Result<TOTP> {
    TOTP::new(Algorithm::SHA1, 6, 1, TOTP_STEP, secret).map_err(|e| Error::Invalid(format!("TOTP: {e}")))
}

fn aad(user: UserId) -> String {
    format!("totp:{user}")
}

/// Re-seals every TOTP secret under the current master key (after a
/// master-key rotation; the previous key opens the old sealing). Returns how
/// many were re-sealed.
pub async fn reseal_totp(store: &Store, key: &MasterKey) -> Result<usize> {
    let tx = store.begin_platform().await?;
    let users = user::Entity::find()
        .filter(user::Column::TotpSecret.is_not_null())
        .all(&*tx)
        .await?;
    let mut n = 0;
    for u in users {
        let Some(sealed) = u.totp_secret else { continue };
        let id = UserId(u.id);
        let plain = key.open(&aad(id), &sealed)?;
        user::Entity::update_many()
            .col_expr(user::Column::TotpSecret, Expr::value(key.seal(&aad(id), &plain)?))
            .filter(user::Column::Id.eq(u.id))
            .exec(&*tx)
            .await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

/// Starts (or restarts) enrolment: a new secret, sealed under the master
/// key, not yet enabled. Returns the base32 secret and the otpauth URI to
/// show once.
pub async fn begin_totp(
    store: &Store,
    key: &MasterKey,
    user: UserId,
    email: &str,
) -> Result<(String, String)> {
    let u = user::Entity::find_by_id(user.0)
        .one(store.conn())
        .await?
        .ok_or(Error::NotFound("user"))?;
    if u.totp_enabled_at.is_some() {
        return Err(Error::Conflict("TOTP is already enabled".into()));
    }
    let mut secret = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let sealed = key.seal(&aad(user), &secret)?;
    user::Entity::update_many()
        .col_expr(user::Column::TotpSecret, Expr::value(sealed))
        .col_expr(user::Column::TotpLastStep, Expr::value(Option::<i64>::None))
        .filter(user::Column::Id.eq(user.0))
        .exec(store.conn())
        .await?;
    let b32 = data_encoding::BASE32_NOPAD.encode(&secret);
    let uri = format!(
        "otpauth://totp/Vigil:{email}?secret={b32}&issuer=Vigil&algorithm=SHA1&digits=6&period={TOTP_STEP}"
    );
    Ok((b32, uri))
}

/// The TOTP step of `at` whose code equals `code` (±1 step), if any.
fn matching_step(secret: Vec<u8>, code: &str, at: DateTime<Utc>) -> Result<Option<i64>> {
    let t = totp(secret)?;
    let now = u64::try_from(at.timestamp()).unwrap_or(0);
    let step = now / TOTP_STEP;
    let code = code.trim();
    for s in [step.saturating_sub(1), step, step + 1] {
        let expected = t.generate(s * TOTP_STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            return Ok(i64::try_from(s).ok());
        }
    }
    Ok(None)
}

/// Wrong second factors in a row before the account's second factor locks;
/// each further one doubles the lock, from [`MFA_FIRST_LOCK`] to [`MFA_MAX_LOCK`].
pub const MFA_FAILURES_BEFORE_LOCK: i32 = 5;
pub const MFA_FIRST_LOCK: Duration = Duration::seconds(30);
pub const MFA_MAX_LOCK: Duration = Duration::minutes(15);
/// Wrong second factors one session may present before it is ended.
pub const MFA_FAILURES_PER_SESSION: i32 = 10;

fn mfa_lock_for(attempts: i32) -> Option<Duration> {
    let over = attempts - MFA_FAILURES_BEFORE_LOCK;
    if over < 0 {
        return None;
    }
    Some((MFA_FIRST_LOCK * (1 << over.min(10))).min(MFA_MAX_LOCK))
}

/// What a presented second factor (TOTP or recovery code) came to.
#[derive(Debug, Clone)]
pub enum MfaOutcome {
    /// Accepted: the session is MFA-verified under a new id.
    Verified(NewSession),
    /// Wrong, replayed or already used.
    Refused,
    /// Too many wrong codes for this account: nothing is checked until then
    /// (the right code neither), and no password login either.
    Locked { until: DateTime<Utc> },
    /// Too many wrong codes in this session: it has been ended.
    SessionEnded,
}

impl MfaOutcome {
    /// The rotated session, if the factor was accepted.
    pub fn verified(self) -> Option<NewSession> {
        match self {
            MfaOutcome::Verified(s) => Some(s),
            _ => None,
        }
    }
}

/// Counts an attempt before it is checked (so concurrent guesses cannot
/// outrun the lock): the user's counter goes up by one, conditionally on
/// its value, and the attempt that reaches the threshold sets the lock.
/// `Err(until)`: locked, nothing may be checked.
async fn claim_mfa_attempt(
    store: &Store,
    now: DateTime<Utc>,
    user: UserId,
) -> Result<std::result::Result<(user::Model, Option<DateTime<Utc>>), DateTime<Utc>>> {
    for _ in 0..16 {
        let u = user::Entity::find_by_id(user.0)
            .one(store.conn())
            .await?
            .ok_or(Error::NotFound("user"))?;
        if let Some(until) = u.mfa_locked_until.filter(|t| *t > now) {
            return Ok(Err(until));
        }
        let attempts = u.mfa_failures + 1;
        let lock = mfa_lock_for(attempts).map(|d| now + d);
        let claimed = user::Entity::update_many()
            .col_expr(user::Column::MfaFailures, Expr::value(attempts))
            .col_expr(user::Column::MfaLockedUntil, Expr::value(lock))
            .filter(user::Column::Id.eq(user.0))
            .filter(user::Column::MfaFailures.eq(u.mfa_failures))
            .exec(store.conn())
            .await?;
        if claimed.rows_affected == 1 {
            return Ok(Ok((u, lock)));
        }
    }
    // Lost every race: so many attempts at once are refused as a lock.
    Ok(Err(now + MFA_FIRST_LOCK))
}

/// A wrong code: audited; the lock it set (audited once, as `mfa.locked`);
/// the session's own count, which ends the session at its limit.
async fn mfa_wrong(
    store: &Store,
    clock: &dyn Clock,
    actor: &Actor,
    session_id: Uuid,
    user: UserId,
    reason: &str,
    lock: Option<DateTime<Utc>>,
) -> Result<MfaOutcome> {
    let target = format!("user:{user}");
    login_event(
        store,
        clock,
        actor,
        "mfa.failure",
        target.clone(),
        json!({"reason": reason}),
    )
    .await?;
    if let Some(until) = lock {
        login_event(
            store,
            clock,
            actor,
            "mfa.locked",
            target.clone(),
            json!({"until": until, "session": session_id}),
        )
        .await?;
    }
    session::Entity::update_many()
        .col_expr(
            session::Column::MfaFailures,
            sea_orm::sea_query::ExprTrait::add(Expr::col(session::Column::MfaFailures), 1),
        )
        .filter(session::Column::Id.eq(session_id))
        .exec(store.conn())
        .await?;
    let count = session::Entity::find_by_id(session_id)
        .one(store.conn())
        .await?
        .map_or(MFA_FAILURES_PER_SESSION, |s| s.mfa_failures);
    if count >= MFA_FAILURES_PER_SESSION {
        session::Entity::delete_by_id(session_id)
            .exec(store.conn())
            .await?;
        login_event(
            store,
            clock,
            actor,
            "mfa.session_ended",
            target,
            json!({"session": session_id, "wrong_codes": count}),
        )
        .await?;
        return Ok(MfaOutcome::SessionEnded);
    }
    Ok(match lock {
        Some(until) => MfaOutcome::Locked { until },
        None => MfaOutcome::Refused,
    })
}

/// Checks a code for the user (enrolled or enrolling). A code whose step is
/// not newer than the last accepted one is refused (no replay). On success
/// the session is marked MFA-verified and rotated (new cookie value), and
/// the account's count of wrong codes starts again.
pub async fn verify_totp(
    store: &Store,
    clock: &dyn Clock,
    key: &MasterKey,
    session_id: Uuid,
    user: UserId,
    code: &str,
    source_ip: Option<String>,
) -> Result<MfaOutcome> {
    let now = clock.now();
    let (u, lock) = match claim_mfa_attempt(store, now, user).await? {
        Ok(v) => v,
        Err(until) => return Ok(MfaOutcome::Locked { until }),
    };
    let sealed = u
        .totp_secret
        .ok_or_else(|| Error::Conflict("TOTP enrolment has not started".into()))?;
    let secret = key.open(&aad(user), &sealed)?;
    let actor = Actor {
        label: format!("user:{user}"),
        role: None,
        source_ip,
    };
    let target = format!("user:{user}");
    let reset = || {
        user::Entity::update_many()
            .col_expr(user::Column::MfaFailures, Expr::value(0))
            .col_expr(
                user::Column::MfaLockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(user::Column::Id.eq(user.0))
    };
    // A recovery code stands in for a TOTP code once enrolled (it cannot
    // complete an enrolment: that needs the authenticator).
    if u.totp_enabled_at.is_some() && recovery_form(code).is_some() {
        let Some(left) = use_recovery_code(store, clock, user, code).await? else {
            return mfa_wrong(
                store,
                clock,
                &actor,
                session_id,
                user,
                "wrong recovery code",
                lock,
            )
            .await;
        };
        reset().exec(store.conn()).await?;
        let rotated = rotate(store, session_id, clock.now()).await?;
        login_event(
            store,
            clock,
            &actor,
            "mfa.verified",
            target,
            json!({"method": "recovery_code", "codes_left": left}),
        )
        .await?;
        return Ok(MfaOutcome::Verified(rotated));
    }
    let step = matching_step(secret, code, now)?;
    let fresh = step.filter(|s| u.totp_last_step.is_none_or(|last| *s > last));
    let Some(step) = fresh else {
        let reason = if step.is_some() {
            "replayed code"
        } else {
            "wrong code"
        };
        return mfa_wrong(store, clock, &actor, session_id, user, reason, lock).await;
    };
    let enrolling = u.totp_enabled_at.is_none();
    // Conditional on the last step, so two concurrent uses of one code
    // cannot both succeed.
    let mut upd = reset().col_expr(user::Column::TotpLastStep, Expr::value(step));
    upd = match u.totp_last_step {
        Some(last) => upd.filter(user::Column::TotpLastStep.eq(last)),
        None => upd.filter(user::Column::TotpLastStep.is_null()),
    };
    if enrolling {
        upd = upd.col_expr(user::Column::TotpEnabledAt, Expr::value(now));
    }
    if upd.exec(store.conn()).await?.rows_affected != 1 {
        return mfa_wrong(store, clock, &actor, session_id, user, "replayed code", lock).await;
    }
    let mut rotated = rotate(store, session_id, now).await?;
    let action = if enrolling { "mfa.enrolled" } else { "mfa.verified" };
    login_event(
        store,
        clock,
        &actor,
        action,
        target.clone(),
        json!({"method": "totp"}),
    )
    .await?;
    if enrolling {
        rotated.recovery_codes = issue_recovery_codes(store, clock, user).await?;
        login_event(
            store,
            clock,
            &actor,
            "mfa.recovery_codes_issued",
            target,
            json!({"count": RECOVERY_CODES}),
        )
        .await?;
    }
    Ok(MfaOutcome::Verified(rotated))
}

/// Gives a session a new id and CSRF token, marking it MFA-verified.
async fn rotate(store: &Store, session_id: Uuid, now: DateTime<Utc>) -> Result<NewSession> {
    let (token, csrf) = (random_secret(), random_secret());
    let res = session::Entity::update_many()
        .col_expr(session::Column::TokenHash, Expr::value(token_hash(&token)))
        .col_expr(session::Column::CsrfToken, Expr::value(csrf.clone()))
        .col_expr(session::Column::MfaVerifiedAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .exec(store.conn())
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Unauthenticated("no such session"));
    }
    Ok(NewSession {
        id: session_id,
        token,
        csrf,
        recovery_codes: Vec::new(),
    })
}

/// For tests and tools: the code a TOTP secret (base32) shows at `at`.
pub fn totp_code(secret_b32: &str, at: DateTime<Utc>) -> Result<String> {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .map_err(|_| Error::Invalid("secret is not base32".into()))?;
    Ok(totp(secret)?.generate(u64::try_from(at.timestamp()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_backoff_doubles_and_caps() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(Duration::minutes(1)));
        assert_eq!(lock_for(6), Some(Duration::minutes(2)));
        assert_eq!(lock_for(9), Some(Duration::minutes(16)));
        assert_eq!(lock_for(50), Some(Duration::hours(1)));
    }

    #[test]
    fn mfa_lock_starts_after_five_and_doubles_to_a_cap() {
        assert_eq!(mfa_lock_for(4), None);
        assert_eq!(mfa_lock_for(5), Some(Duration::seconds(30)));
        assert_eq!(mfa_lock_for(6), Some(Duration::seconds(60)));
        assert_eq!(mfa_lock_for(8), Some(Duration::seconds(240)));
        assert_eq!(mfa_lock_for(10), Some(Duration::minutes(15)));
        assert_eq!(mfa_lock_for(1000), Some(Duration::minutes(15)));
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_PHC).is_ok());
    }

    #[test]
    fn totp_matches_rfc6238_vector() {
        // RFC 6238 appendix B, SHA1, T = 59 s → 94287082 (8 digits); the 6-digit code is its tail.
        let secret = b"12345678901234567890".to_vec();
        let at = DateTime::from_timestamp(59, 0).unwrap();
        assert_eq!(totp(secret.clone()).unwrap().generate(59), "287082");
        assert_eq!(matching_step(secret.clone(), "287082", at).unwrap(), Some(1));
        assert_eq!(matching_step(secret, "000000", at).unwrap(), None);
    }
}
