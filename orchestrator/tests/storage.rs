//! The storage suite: every test body runs against SQLite and PostgreSQL.
//! PostgreSQL runs as the `vigil_app` role, so row level security applies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::credentials::PasswordPolicy;
use vigil_orchestrator::identity::{self, LinkPurpose};
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::store::Readiness;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Backend, Clock, Error, ManualClock, Role, TenantId};

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap())
}

fn cheap() -> PasswordPolicy {
    PasswordPolicy {
        memory_kib: 1024,
        iterations: 1,
        min_length: 12,
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn tenant(db: &TestDb, clock: &ManualClock, name: &str) -> TenantId {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, clock, &Actor::cli(), name)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t.id
}

async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn migrations_are_current(db: TestDb) {
    assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
}

async fn tenants_create_get_list(db: TestDb) {
    let c = clock();
    let a = tenant(&db, &c, "Acme SOC").await;
    let b = tenant(&db, &c, "Globex").await;
    let got = identity::get_tenant(db.store.conn(), a).await.unwrap();
    assert_eq!(got.name, "Acme SOC");
    assert_eq!(got.status, "active");
    let names: Vec<_> = identity::list_tenants(db.store.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Acme SOC", "Globex"]);
    assert_eq!(
        identity::find_tenant_by_name(db.store.conn(), " Globex ")
            .await
            .unwrap()
            .unwrap()
            .id,
        b
    );

    let tx = db.store.begin_platform().await.unwrap();
    let dup = identity::create_tenant(&tx, &c, &Actor::cli(), "Acme SOC").await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    drop(tx);
    let tx = db.store.begin_platform().await.unwrap();
    assert!(matches!(
        identity::create_tenant(&tx, &c, &Actor::cli(), "  ").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        identity::get_tenant(db.store.conn(), TenantId::new()).await,
        Err(Error::NotFound(_))
    ));
}

async fn members_are_tenant_scoped(db: TestDb) {
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let ann = identity::add_member(&tx, &c, &Actor::cli(), &email("Ann@a.example"), Role::AnalystEdit)
        .await
        .unwrap();
    assert_eq!(ann.email, "ann@a.example");
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(b).await.unwrap();
    identity::add_member(&tx, &c, &Actor::cli(), &email("bob@b.example"), Role::TenantAdmin)
        .await
        .unwrap();
    let ann_in_b = identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::Executive)
        .await
        .unwrap();
    assert_eq!(ann_in_b.user_id, ann.user_id, "one identity, two memberships");
    tx.commit().await.unwrap();

    let tx = db.store.begin_tenant(a).await.unwrap();
    let members = identity::list_members(&tx).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].email.as_str(), members[0].role),
        ("ann@a.example", Role::AnalystEdit)
    );
    let dup = identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::AnalystRead).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let pa = identity::add_member(
        &tx,
        &c,
        &Actor::cli(),
        &email("root@a.example"),
        Role::PlatformAdmin,
    )
    .await;
    assert!(matches!(pa, Err(Error::Invalid(_))));
    drop(tx);
    // A tenant that does not exist cannot gain members.
    let tx = db.store.begin_tenant(TenantId::new()).await.unwrap();
    let ghost = identity::add_member(&tx, &c, &Actor::cli(), &email("x@y.example"), Role::AnalystRead).await;
    assert!(matches!(ghost, Err(Error::NotFound("tenant"))), "{ghost:?}");
    drop(tx);

    let mut mine = identity::memberships_of(&db.store, ann.user_id).await.unwrap();
    mine.sort_by_key(|(t, _)| *t);
    let mut want = vec![(a, Role::AnalystEdit), (b, Role::Executive)];
    want.sort_by_key(|(t, _)| *t);
    assert_eq!(mine, want);
}

async fn api_tokens_bind_tenant_and_role(db: TestDb) {
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (id, token) = identity::issue_api_token(&tx, &c, &Actor::cli(), "siem", Role::AnalystRead)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(token.starts_with("vgl_"));

    let p = identity::authenticate_api_token(&db.store, &token).await.unwrap();
    assert_eq!(
        (p.tenant, p.role, p.name.as_str(), p.token_id),
        (a, Role::AnalystRead, "siem", id)
    );

    // The same secret presented as tenant B's: refused.
    let forged = token.replace(&a.0.simple().to_string(), &b.0.simple().to_string());
    for bad in [
        forged.as_str(),
        "vgl_",
        "vgl_nothex_abc",
        "Bearer x",
        "",
        &token[..token.len() - 1],
    ] {
        let r = identity::authenticate_api_token(&db.store, bad).await;
        assert!(matches!(r, Err(Error::Unauthenticated(_))), "{bad}: {r:?}");
    }

    // Revoking from another tenant finds nothing; from its own, it works.
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(
        identity::revoke_api_token(&tx, &c, &Actor::cli(), id).await,
        Err(Error::NotFound(_))
    ));
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    identity::revoke_api_token(&tx, &c, &Actor::cli(), id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(identity::authenticate_api_token(&db.store, &token).await.is_err());
}

async fn password_links_are_one_time_and_expire(db: TestDb) {
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let m = identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::AnalystEdit)
        .await
        .unwrap();
    let link = identity::issue_link(
        &*tx,
        &c,
        LinkPurpose::SetPassword,
        Some(m.user_id),
        Duration::hours(72),
    )
    .await
    .unwrap();
    let stale = identity::issue_link(
        &*tx,
        &c,
        LinkPurpose::SetPassword,
        Some(m.user_id),
        Duration::hours(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let weak = identity::complete_password_link(&db.store, &c, &cheap(), &link, "short").await;
    assert!(matches!(weak, Err(Error::Invalid(_))), "{weak:?}");
    // A bootstrap page cannot redeem a password link.
    assert!(
        identity::check_link(db.store.conn(), &c, LinkPurpose::Bootstrap, &link)
            .await
            .is_err()
    );

    let uid = identity::complete_password_link(&db.store, &c, &cheap(), &link, "correct horse battery")
        .await
        .unwrap();
    assert_eq!(uid, m.user_id);
    let user = identity::find_user_by_email(db.store.conn(), &email("ann@a.example"))
        .await
        .unwrap()
        .unwrap();
    assert!(cheap().verify("correct horse battery", user.password_hash.as_deref().unwrap()));

    let again =
        identity::complete_password_link(&db.store, &c, &cheap(), &link, "another long password").await;
    assert!(
        matches!(again, Err(Error::Unauthenticated("this link was already used"))),
        "{again:?}"
    );

    c.advance(Duration::hours(2));
    let expired =
        identity::complete_password_link(&db.store, &c, &cheap(), &stale, "another long password").await;
    assert!(
        matches!(expired, Err(Error::Unauthenticated("this link has expired"))),
        "{expired:?}"
    );
}

async fn bootstrap_creates_exactly_one_platform_admin(db: TestDb) {
    let c = clock();
    assert!(identity::bootstrap_needed(db.store.conn()).await.unwrap());
    let first = identity::issue_link(
        db.store.conn(),
        &c,
        LinkPurpose::Bootstrap,
        None,
        Duration::hours(24),
    )
    .await
    .unwrap();
    let second = identity::issue_link(
        db.store.conn(),
        &c,
        LinkPurpose::Bootstrap,
        None,
        Duration::hours(24),
    )
    .await
    .unwrap();
    let id = identity::complete_bootstrap(
        &db.store,
        &c,
        &cheap(),
        &first,
        &email("admin@vigil.example"),
        "a long admin password",
        Some("127.0.0.1".into()),
    )
    .await
    .unwrap();
    assert!(!identity::bootstrap_needed(db.store.conn()).await.unwrap());
    let u = identity::find_user_by_email(db.store.conn(), &email("admin@vigil.example"))
        .await
        .unwrap()
        .unwrap();
    assert!(u.is_platform_admin);
    assert_eq!(u.id, id.0);
    let late = identity::complete_bootstrap(
        &db.store,
        &c,
        &cheap(),
        &second,
        &email("mallory@vigil.example"),
        "a long admin password",
        None,
    )
    .await;
    assert!(matches!(late, Err(Error::Conflict(_))), "{late:?}");
    assert!(
        identity::find_user_by_email(db.store.conn(), &email("mallory@vigil.example"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn audit_log_is_append_only(db: TestDb) {
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::AnalystEdit)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The owner connection (a superuser on the test PostgreSQL) sees every row.
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let total = "SELECT COUNT(*) AS n FROM audit_events";
    let before = count(&owner, total).await;
    assert_eq!(before, 2, "tenant.create and membership.grant");
    let actions = [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
    ];
    for sql in actions {
        // Refused for the application (inside its tenant) ...
        let tx = db.store.begin_tenant(a).await.unwrap();
        assert!(
            tx.execute_unprepared(sql).await.is_err(),
            "app: {sql} must be refused"
        );
        drop(tx);
        // ... and for the schema owner alike.
        assert!(
            owner.execute_unprepared(sql).await.is_err(),
            "owner: {sql} must be refused"
        );
    }
    assert_eq!(count(&owner, total).await, before);
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE actor = 'mallory'"
        )
        .await,
        0
    );
}

async fn user_with_password(
    db: &TestDb,
    c: &ManualClock,
    tenant: TenantId,
    who: &str,
    role: Role,
) -> vigil_orchestrator::UserId {
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let m = identity::add_member(&tx, c, &Actor::cli(), &email(who), role)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_platform().await.unwrap();
    let hash = cheap().hash("correct horse battery").unwrap();
    identity::upsert_local_user(&tx, c, &Actor::cli(), &email(who), hash, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    m.user_id
}

async fn login_locks_out_and_audits(db: TestDb) {
    use vigil_orchestrator::auth::{self, LoginRefused};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let ann = user_with_password(&db, &c, a, "ann@a.example", Role::AnalystEdit).await;

    let (s, uid) = auth::login(
        &db.store,
        &c,
        &cheap(),
        "ANN@a.example",
        "correct horse battery",
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(uid, ann);
    let info = auth::resolve_session(&db.store, &c, &s.token).await.unwrap();
    assert_eq!(info.active_tenant, Some(a), "single tenant is picked at login");
    assert!(!info.mfa_verified);
    assert!(
        auth::csrf_matches(&info, &s.csrf)
            && !auth::csrf_matches(&info, "")
            && !auth::csrf_matches(&info, "x")
    );

    let unknown = auth::login(
        &db.store,
        &c,
        &cheap(),
        "nobody@a.example",
        "whatever whatever",
        None,
    )
    .await
    .unwrap();
    assert_eq!(unknown.unwrap_err(), LoginRefused::BadCredentials);
    for i in 1..=4 {
        let r = auth::login(&db.store, &c, &cheap(), "ann@a.example", "wrong password!!", None)
            .await
            .unwrap();
        assert_eq!(r.unwrap_err(), LoginRefused::BadCredentials, "failure {i}");
    }
    let fifth = auth::login(&db.store, &c, &cheap(), "ann@a.example", "wrong password!!", None)
        .await
        .unwrap();
    assert!(matches!(fifth, Err(LoginRefused::Locked { .. })), "{fifth:?}");
    // Locked: even the right password is refused until the lock ends.
    let right = auth::login(
        &db.store,
        &c,
        &cheap(),
        "ann@a.example",
        "correct horse battery",
        None,
    )
    .await
    .unwrap();
    assert!(matches!(right, Err(LoginRefused::Locked { .. })));
    c.advance(Duration::minutes(2));
    auth::login(
        &db.store,
        &c,
        &cheap(),
        "ann@a.example",
        "correct horse battery",
        None,
    )
    .await
    .unwrap()
    .unwrap();

    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'login.success'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'login.failure'"
        )
        .await,
        7
    );
}

async fn sessions_expire_and_log_out(db: TestDb) {
    use vigil_orchestrator::auth;
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let ann = user_with_password(&db, &c, a, "ann@a.example", Role::AnalystRead).await;
    let s = auth::create_session(&db.store, &c, ann, Some(a)).await.unwrap();
    // Activity keeps it alive past the idle timeout ...
    for _ in 0..4 {
        c.advance(Duration::minutes(20));
        auth::resolve_session(&db.store, &c, &s.token).await.unwrap();
    }
    // ... but 30 idle minutes end it.
    c.advance(Duration::minutes(31));
    assert!(auth::resolve_session(&db.store, &c, &s.token).await.is_err());

    // The absolute limit holds however active the session is.
    let s = auth::create_session(&db.store, &c, ann, Some(a)).await.unwrap();
    for _ in 0..((12 * 60) / 20) {
        c.advance(Duration::minutes(20));
        let _ = auth::resolve_session(&db.store, &c, &s.token).await;
    }
    assert!(auth::resolve_session(&db.store, &c, &s.token).await.is_err());

    let s = auth::create_session(&db.store, &c, ann, Some(a)).await.unwrap();
    auth::logout(&db.store, &s.token).await.unwrap();
    assert!(auth::resolve_session(&db.store, &c, &s.token).await.is_err());
    assert_eq!(
        auth::role_in(&db.store, ann, a).await.unwrap(),
        Some(Role::AnalystRead)
    );
    assert_eq!(
        auth::role_in(&db.store, ann, TenantId::new()).await.unwrap(),
        None
    );
}

/// A tenant's own session limits: new sessions run under them, live ones
/// take them at once (the lifetime only shrinks), a switch to a stricter
/// tenant applies its limits, and out-of-range values are refused.
async fn tenant_session_limits(db: TestDb) {
    use vigil_orchestrator::auth::{self, SessionLimits};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let b = tenant(&db, &c, "B").await;
    let ann = user_with_password(&db, &c, a, "ann@a.example", Role::AnalystRead).await;
    let actor = vigil_orchestrator::audit::Actor {
        label: "user:adm".into(),
        role: Some(Role::TenantAdmin),
        source_ip: None,
    };
    assert_eq!(
        auth::session_limits(db.store.conn(), Some(a)).await.unwrap(),
        SessionLimits::DEFAULT
    );
    for (idle, abs) in [(4, 60), (60, 14), (25 * 60, 7 * 24 * 60), (60, 30)] {
        assert!(
            SessionLimits::new(Duration::minutes(idle), Duration::minutes(abs)).is_err(),
            "{idle} / {abs}"
        );
    }
    let live = auth::create_session(&db.store, &c, ann, Some(a)).await.unwrap();
    let tx = db.store.begin_tenant(a).await.unwrap();
    let strict = SessionLimits::new(Duration::minutes(10), Duration::hours(1)).unwrap();
    auth::set_session_limits(&tx, &c, &actor, strict).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        auth::session_limits(db.store.conn(), Some(a)).await.unwrap(),
        strict
    );
    // The live session: 11 idle minutes now end it.
    c.advance(Duration::minutes(11));
    assert!(auth::resolve_session(&db.store, &c, &live.token).await.is_err());
    // A new one: activity keeps it past 10 minutes, not past one hour.
    let s = auth::create_session(&db.store, &c, ann, Some(a)).await.unwrap();
    for _ in 0..6 {
        c.advance(Duration::minutes(9));
        auth::resolve_session(&db.store, &c, &s.token).await.unwrap();
    }
    c.advance(Duration::minutes(7));
    assert!(
        auth::resolve_session(&db.store, &c, &s.token).await.is_err(),
        "63 minutes"
    );
    // Switching into the strict tenant applies its limits.
    let tx = db.store.begin_tenant(b).await.unwrap();
    vigil_orchestrator::identity::add_member(
        &tx,
        &c,
        &actor,
        &vigil_orchestrator::ids::Email::parse("ann@a.example").unwrap(),
        Role::AnalystRead,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let s = auth::create_session(&db.store, &c, ann, Some(b)).await.unwrap();
    c.advance(Duration::minutes(20));
    auth::resolve_session(&db.store, &c, &s.token).await.unwrap();
    auth::set_active_tenant(&db.store, s.id, ann, a).await.unwrap();
    c.advance(Duration::minutes(11));
    assert!(auth::resolve_session(&db.store, &c, &s.token).await.is_err());
    // Audited with before and after.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let n = count(
        &*tx,
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'settings.sessions'",
    )
    .await;
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
}

async fn totp_enrols_rotates_and_refuses_replay(db: TestDb) {
    use vigil_orchestrator::auth;
    use vigil_orchestrator::credentials::MasterKey;
    let c = clock();
    let key = MasterKey::generate();
    let a = tenant(&db, &c, "A").await;
    let adm = user_with_password(&db, &c, a, "adm@a.example", Role::TenantAdmin).await;
    let s = auth::create_session(&db.store, &c, adm, Some(a)).await.unwrap();
    let (secret, uri) = auth::begin_totp(&db.store, &key, adm, "adm@a.example")
        .await
        .unwrap();
    assert!(uri.starts_with("otpauth://totp/Vigil:adm@a.example?secret="));
    // The secret is stored sealed, not in the clear.
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            &format!("SELECT COUNT(*) AS n FROM users WHERE totp_secret LIKE '%{secret}%'")
        )
        .await,
        0
    );

    let wrong = auth::verify_totp(&db.store, &c, &key, s.id, adm, "000000", None)
        .await
        .unwrap()
        .verified();
    let code = auth::totp_code(&secret, c.now()).unwrap();
    assert!(wrong.is_none() || code == "000000");
    let rotated = auth::verify_totp(&db.store, &c, &key, s.id, adm, &code, None)
        .await
        .unwrap()
        .verified()
        .expect("enrolled");
    assert!(
        auth::resolve_session(&db.store, &c, &s.token).await.is_err(),
        "old session id is dead"
    );
    let info = auth::resolve_session(&db.store, &c, &rotated.token)
        .await
        .unwrap();
    assert!(info.mfa_verified && info.totp_enabled);
    assert_ne!(rotated.csrf, s.csrf);

    // The same code again (same step) is a replay.
    let s2 = auth::create_session(&db.store, &c, adm, Some(a)).await.unwrap();
    assert!(
        auth::verify_totp(&db.store, &c, &key, s2.id, adm, &code, None)
            .await
            .unwrap()
            .verified()
            .is_none()
    );
    c.advance(Duration::seconds(30));
    let next = auth::totp_code(&secret, c.now()).unwrap();
    assert!(
        auth::verify_totp(&db.store, &c, &key, s2.id, adm, &next, None)
            .await
            .unwrap()
            .verified()
            .is_some()
    );
    assert!(matches!(
        auth::begin_totp(&db.store, &key, adm, "adm@a.example").await,
        Err(Error::Conflict(_))
    ));
    // failure, enrolled, recovery codes issued, failure (replay), verified
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action LIKE 'mfa.%'"
        )
        .await,
        5
    );

    // Enrolment gave ten recovery codes, kept only as hashes.
    let codes = rotated.recovery_codes.clone();
    assert_eq!(codes.len(), auth::RECOVERY_CODES);
    assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
    for c in &codes {
        assert_eq!(
            count(
                &owner,
                &format!(
                    "SELECT COUNT(*) AS n FROM recovery_codes WHERE code_hash LIKE '%{}%'",
                    &c[..5]
                )
            )
            .await,
            0,
            "stored in the clear"
        );
    }
    // One works once, typed however (case, spaces, no dash).
    let typed = format!(" {} {} ", codes[0][..5].to_uppercase(), &codes[0][6..]);
    let s3 = auth::create_session(&db.store, &c, adm, Some(a)).await.unwrap();
    let r = auth::verify_totp(&db.store, &c, &key, s3.id, adm, &typed, None)
        .await
        .unwrap()
        .verified()
        .expect("a recovery code stands in for the authenticator");
    assert!(r.recovery_codes.is_empty(), "codes are issued at enrolment only");
    assert!(
        auth::resolve_session(&db.store, &c, &r.token)
            .await
            .unwrap()
            .mfa_verified
    );
    let s4 = auth::create_session(&db.store, &c, adm, Some(a)).await.unwrap();
    for used_or_wrong in [codes[0].as_str(), "aaaaa-aaaaa", "not a code"] {
        assert!(
            auth::verify_totp(&db.store, &c, &key, s4.id, adm, used_or_wrong, None)
                .await
                .unwrap()
                .verified()
                .is_none(),
            "{used_or_wrong}"
        );
    }
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'mfa.verified' AND CAST(summary AS TEXT) LIKE '%recovery_code%'"
        )
        .await,
        1
    );
}

mod engine_support {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::{Value, json};
    use vigil_orchestrator::engine::outbox::{WriteError, Writer};
    use vigil_orchestrator::{Result, TenantId, TenantTx};

    /// A vendor stand-in that counts writes and drops duplicates by
    /// idempotency key, as a vendor honouring the key would.
    #[derive(Debug, Default)]
    pub struct Vendor {
        pub scope: AtomicBool,
        pub hang: AtomicBool,
        pub fail_transient: AtomicBool,
        pub calls: Mutex<Vec<String>>,
        pub tickets: Mutex<HashMap<String, usize>>,
    }

    #[async_trait::async_trait]
    impl Writer for Vendor {
        async fn scope_enabled(&self, _: &TenantTx, _: &str, _: &Value) -> Result<bool> {
            Ok(self.scope.load(Ordering::SeqCst))
        }
        async fn write(&self, _: TenantId, _: &str, _: &Value, key: &str) -> Result<Value, WriteError> {
            self.calls.lock().unwrap().push(key.to_owned());
            if self.fail_transient.load(Ordering::SeqCst) {
                return Err(WriteError::transient("503 from vendor"));
            }
            let n = {
                let mut t = self.tickets.lock().unwrap();
                let len = t.len();
                *t.entry(key.to_owned()).or_insert(len + 1)
            };
            if self.hang.load(Ordering::SeqCst) {
                // The vendor has the ticket; the worker dies before recording.
                std::future::pending::<()>().await;
            }
            Ok(json!({"ticket": format!("SOC-{n}")}))
        }
    }
}

fn decider<'a>(
    actor: &'a Actor,
    may: &'a (dyn Fn(vigil_orchestrator::engine::state::GateKind) -> bool + Sync),
) -> vigil_orchestrator::engine::gates::Decider<'a> {
    vigil_orchestrator::engine::gates::Decider {
        actor,
        may_decide: may,
    }
}

fn person(label: &str, role: Role) -> Actor {
    Actor {
        label: label.into(),
        role: Some(role),
        source_ip: None,
    }
}

/// A ticket system integration (Jira or ServiceNow) for ticket-write gates.
async fn ticket_system(db: &TestDb, c: &ManualClock, t: TenantId, kind: &str) -> uuid::Uuid {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let config = if kind == "jira" {
        serde_json::json!({"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"})
    } else {
        serde_json::json!({"instance_url": "https://acme.service-now.com", "username": "vigil"})
    };
    let i = vigil_orchestrator::integrations::create(
        &tx,
        c,
        &person("user:eng", Role::SecurityEngineer),
        kind,
        &format!("{kind} tickets"),
        config,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    i.id
}

async fn open_case(db: &TestDb, c: &ManualClock, t: TenantId) -> uuid::Uuid {
    use vigil_orchestrator::engine::{cases, state::Severity};
    let tx = db.store.begin_tenant(t).await.unwrap();
    let case = cases::open(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        "Beaconing from host-7",
        Severity::High,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    case.id
}

async fn gates_bind_hash_and_refuse_self_approval(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
    );
    let any = |_: GateKind| true;

    let tx = db.store.begin_tenant(a).await.unwrap();
    let bad = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "C2 beacon confirmed"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    assert_eq!(g.state, GateState::Pending);
    assert_eq!(
        g.payload_hash,
        gates::payload_hash(
            GateKind::EscalateCritical,
            case_id,
            &json!({"reason": "C2 beacon confirmed"})
        )
    );
    let dup = gates::request(
        &tx,
        &c,
        &bob,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "again"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    tx.commit().await.unwrap();

    // Another tenant sees nothing.
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(gates::get(&tx, g.id).await, Err(Error::NotFound(_))));
    assert!(matches!(
        gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(cases::get(&tx, case_id).await, Err(Error::NotFound(_))));
    drop(tx);

    let tx = db.store.begin_tenant(a).await.unwrap();
    let own = gates::approve(&tx, &c, &decider(&ann, &any), g.id, &g.payload_hash).await;
    assert!(
        matches!(own, Err(Error::Forbidden(_))),
        "no self-approval: {own:?}"
    );
    let none = |_: GateKind| false;
    assert!(matches!(
        gates::approve(&tx, &c, &decider(&bob, &none), g.id, &g.payload_hash).await,
        Err(Error::Forbidden(_))
    ));
    let stale = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &"0".repeat(64)).await;
    assert!(
        matches!(stale, Err(Error::Conflict(_))),
        "hash mismatch: {stale:?}"
    );
    let done = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed, "internal change applied at once");
    assert_eq!(done.decided_by.as_deref(), Some("user:bob"));
    assert_eq!(done.decided_role.as_deref(), Some("analyst_edit"));
    assert_eq!(
        cases::get(&tx, case_id).await.unwrap().severity,
        Severity::Critical
    );
    let twice = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await;
    assert!(
        matches!(twice, Err(Error::Conflict(_))),
        "illegal transition: {twice:?}"
    );
    let again = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "x"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "already critical");
    tx.commit().await.unwrap();

    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('gate.request', 'gate.approve')"
        )
        .await,
        2
    );
}

async fn reject_needs_reason_and_edits_keep_a_diff(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::SecurityEngineer),
    );
    let any = |_: GateKind| true;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::CloseCase,
        json!({"resolution": "benign", "summary": "scanner"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    assert!(matches!(
        gates::reject(&tx, &c, &decider(&bob, &any), g.id, "  ").await,
        Err(Error::Invalid(_))
    ));
    let bad_edit = gates::edit_and_approve(
        &tx,
        &c,
        &decider(&bob, &any),
        g.id,
        json!({"resolution": "nuked"}),
    )
    .await;
    assert!(matches!(bad_edit, Err(Error::Invalid(_))), "{bad_edit:?}");
    let edited = json!({"resolution": "false_positive", "summary": "internal vulnerability scanner"});
    let done = gates::edit_and_approve(&tx, &c, &decider(&bob, &any), g.id, edited.clone())
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed);
    assert_eq!(done.payload, edited);
    assert_ne!(done.payload_hash, g.payload_hash);
    let diff = done.edit_diff.unwrap();
    assert_eq!(diff.as_array().unwrap().len(), 2, "{diff}");
    assert_eq!(diff[0]["pointer"], "/resolution");
    assert_eq!(cases::get(&tx, case_id).await.unwrap().state, CaseState::Closed);
    // A closed case takes no new gates.
    let late = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "x"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(late, Err(Error::Conflict(_))));
    tx.commit().await.unwrap();

    // Rejection with a reason is final.
    let case2 = open_case(&db, &c, a).await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g2 = gates::request(
        &tx,
        &c,
        &ann,
        case2,
        GateKind::EscalateCritical,
        json!({"reason": "maybe"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let r = gates::reject(&tx, &c, &decider(&bob, &any), g2.id, "not enough evidence")
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.reason.as_deref()),
        (GateState::Rejected, Some("not enough evidence"))
    );
    assert!(
        gates::approve(&tx, &c, &decider(&bob, &any), g2.id, &g2.payload_hash)
            .await
            .is_err()
    );
    assert_eq!(cases::get(&tx, case2).await.unwrap().severity, Severity::High);
}

async fn ticket_writes_run_once_behind_the_guard(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, kill, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
    );
    let admin = person("user:adm", Role::TenantAdmin);
    let any = |_: GateKind| true;
    let vendor = engine_support::Vendor::default();
    let jira = ticket_system(&db, &c, a, "jira").await;
    let payload = json!({"system": "jira", "operation": "create", "integration_id": jira, "fields": {"summary": "Beaconing from host-7"}});

    // Approving an external write while the kill switch is engaged: 423.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::TicketWrite,
        payload.clone(),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    kill::set_tenant(&tx, &c, &admin, true).await.unwrap();
    let blocked = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await;
    assert!(matches!(blocked, Err(Error::KillSwitch(_))), "{blocked:?}");
    kill::set_tenant(&tx, &c, &admin, false).await.unwrap();
    let approved = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(approved.state, GateState::Approved);
    tx.commit().await.unwrap();

    // Write scope off: held, nothing written.
    let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
    assert_eq!((r.executed, r.held), (0, 1));
    // Kill switch engaged after approval: still held.
    vendor.scope.store(true, Ordering::SeqCst);
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &admin, true).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
    // Platform switch alone holds everything too.
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &admin, false).await.unwrap();
    tx.commit().await.unwrap();
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), true)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
    assert!(vendor.calls.lock().unwrap().is_empty(), "no write while held");
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), false)
        .await
        .unwrap();
    ptx.commit().await.unwrap();

    // Released: the write happens, once.
    let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
    assert_eq!(r.executed, 1, "{r:?}");
    for _ in 0..3 {
        assert_eq!(
            outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap(),
            outbox::RunReport::default()
        );
    }
    assert_eq!(
        vendor.calls.lock().unwrap().clone(),
        vec![format!("vigil-gate-{}", g.id)]
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(gates::get(&tx, g.id).await.unwrap().state, GateState::Executed);
    let entry = outbox::of_gate(&tx, g.id).await.unwrap().unwrap();
    assert_eq!(entry.state, "done");
    assert_eq!(entry.result.unwrap()["ticket"], "SOC-1");
}

async fn a_worker_dying_mid_write_never_duplicates(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let any = |_: GateKind| true;
    let sn = ticket_system(&db, &c, a, "servicenow").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "servicenow", "operation": "create", "integration_id": sn, "fields": {"short_description": "x"}}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let vendor = engine_support::Vendor::default();
    vendor.scope.store(true, Ordering::SeqCst);
    vendor.hang.store(true, Ordering::SeqCst);
    // The worker is killed mid-write (its future dropped after the vendor
    // accepted the ticket, before Vigil recorded it).
    let run = outbox::run_due(&db.store, &c, &vendor, 10);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), run)
            .await
            .is_err()
    );
    vendor.hang.store(false, Ordering::SeqCst);
    // Within the lease nobody retries ...
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap(),
        outbox::RunReport::default()
    );
    // ... after it, the entry is re-sent with the same key and recorded once.
    c.advance(outbox::LEASE + Duration::seconds(1));
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        1
    );
    let calls = vendor.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], calls[1], "same idempotency key on the retry");
    assert_eq!(
        vendor.tickets.lock().unwrap().len(),
        1,
        "one ticket at the vendor"
    );
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
}

async fn transient_failures_retry_then_dead_letter(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let any = |_: GateKind| true;
    let jira = ticket_system(&db, &c, a, "jira").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "jira", "operation": "comment", "integration_id": jira, "ticket": "SOC-1", "fields": {"body": "x"}}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let vendor = engine_support::Vendor::default();
    vendor.scope.store(true, Ordering::SeqCst);
    vendor.fail_transient.store(true, Ordering::SeqCst);
    let mut retried = 0;
    let mut dead = 0;
    for _ in 0..20 {
        let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
        retried += r.retried;
        dead += r.dead;
        c.advance(Duration::hours(2));
    }
    assert_eq!((retried, dead), (outbox::MAX_ATTEMPTS as usize - 1, 1));
    let tx = db.store.begin_tenant(a).await.unwrap();
    let entry = outbox::of_gate(&tx, g.id).await.unwrap().unwrap();
    assert_eq!(entry.state, "dead");
    assert!(entry.last_error.unwrap().contains("503"));
    assert_eq!(
        gates::get(&tx, g.id).await.unwrap().state,
        GateState::Approved,
        "visible, not executed"
    );
}

async fn unanswered_gates_escalate_never_approve(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "ransomware note"}),
        Duration::hours(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 0);
    c.advance(Duration::minutes(61));
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 1);
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 0, "once");
    let tx = db.store.begin_tenant(a).await.unwrap();
    let e = gates::get(&tx, g.id).await.unwrap();
    assert_eq!(e.state, GateState::Escalated);
    assert!(e.decided_by.is_none(), "escalation decides nothing");
    let any = |_: GateKind| true;
    let ok = gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    assert_eq!(ok.state, GateState::Executed);
}

mod step_support {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::json;
    use vigil_orchestrator::engine::steps::{NewStep, StepContext, StepDone, StepFailure, StepHandler};

    /// Fails transiently until its `fail_until` attempt, then succeeds and
    /// (optionally) enqueues a follow-up. Counts runs per step.
    #[derive(Debug, Default)]
    pub struct Probe {
        pub runs: Mutex<HashMap<uuid::Uuid, usize>>,
    }

    #[async_trait::async_trait]
    impl StepHandler for Probe {
        async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure> {
            *self.runs.lock().unwrap().entry(ctx.step_id).or_default() += 1;
            let fail_until = ctx.input["fail_until"].as_i64().unwrap_or(0) as i32;
            if ctx.input["permanent"].as_bool() == Some(true) {
                return Err(StepFailure {
                    transient: false,
                    message: "bad input".into(),
                });
            }
            if ctx.attempt <= fail_until {
                return Err(StepFailure {
                    transient: true,
                    message: format!("flaky on attempt {}", ctx.attempt),
                });
            }
            let next = match ctx.input["then"].as_str() {
                Some(k) => vec![NewStep::new(k, ctx.case_id, json!({}))],
                None => vec![],
            };
            Ok(StepDone {
                output: json!({"attempt": ctx.attempt}),
                next,
            })
        }
    }
}

fn registry(p: std::sync::Arc<step_support::Probe>) -> vigil_orchestrator::engine::steps::Registry {
    vigil_orchestrator::engine::steps::Registry::default()
        .with("probe", p.clone())
        .with("probe.next", p)
}

fn test_worker(owner: &str) -> vigil_orchestrator::engine::steps::Worker {
    let mut w = vigil_orchestrator::engine::steps::Worker::new(owner);
    w.db_clock = false;
    w
}

async fn steps_retry_dead_letter_and_chain(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w1");
    let tx = db.store.begin_tenant(a).await.unwrap();
    let flaky = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"fail_until": 2, "then": "probe.next"})),
    )
    .await
    .unwrap();
    let mut doomed = steps::NewStep::new("probe", None, json!({"fail_until": 99}));
    doomed.max_attempts = 3;
    let doomed = steps::enqueue(&tx, &c, doomed).await.unwrap();
    let orphan = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("nobody.handles.this", None, json!({})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let r = steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    assert_eq!((r.retried, r.dead), (2, 1), "{r:?}");
    // Backoff: nothing is due until time passes.
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0
    );
    for _ in 0..4 {
        c.advance(Duration::minutes(10));
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    }
    let tx = db.store.begin_tenant(a).await.unwrap();
    let f = steps::get(&tx, flaky).await.unwrap();
    assert_eq!((f.state, f.attempts), (StepState::Succeeded, 3));
    let d = steps::get(&tx, doomed).await.unwrap();
    assert_eq!((d.state, d.attempts), (StepState::Dead, 3));
    assert!(d.last_error.unwrap().contains("flaky"));
    assert!(
        steps::get(&tx, orphan)
            .await
            .unwrap()
            .last_error
            .unwrap()
            .contains("no handler")
    );
    let all = steps::list(&tx, None, None, 100).await.unwrap();
    let next = all
        .iter()
        .find(|s| s.kind == "probe.next")
        .expect("the follow-up was enqueued");
    assert_eq!(next.state, StepState::Succeeded);
    // An engineer retries the dead step; it runs again from attempt 1.
    let retried = steps::retry_dead(&tx, &c, &person("user:eng", Role::SecurityEngineer), doomed)
        .await
        .unwrap();
    assert_eq!((retried.state, retried.attempts), (StepState::Pending, 0));
    assert!(
        matches!(
            steps::retry_dead(&tx, &c, &Actor::cli(), flaky).await,
            Err(Error::Conflict(_))
        ),
        "only dead steps"
    );
    tx.commit().await.unwrap();
    assert_eq!(steps::run_once(&db.store, &c, &reg, &w).await.unwrap().retried, 1);
    assert_eq!(probe.runs.lock().unwrap()[&flaky], 3);
}

async fn an_expired_lease_passes_the_step_on(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let tx = db.store.begin_tenant(a).await.unwrap();
    // With a follow-up: a fenced result must not start (or enqueue) it.
    let id = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Worker 1 claims, then "dies" (never records).
    let (w1, w2) = (test_worker("node-1"), test_worker("node-2"));
    let claimed = steps::claim(&db.store, &c, &w1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        steps::claim(&db.store, &c, &w2).await.unwrap().is_empty(),
        "leased"
    );
    c.advance(w1.lease + Duration::seconds(1));
    let taken = steps::claim(&db.store, &c, &w2).await.unwrap();
    assert_eq!(taken.len(), 1, "the lease expired: worker 2 takes over");
    assert_eq!(taken[0].attempts, 2);
    // Worker 1 wakes up late: its result is fenced off.
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w1, &claimed[0])
            .await
            .unwrap(),
        steps::Ran::Fenced
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        steps::list(&tx, None, None, 10).await.unwrap().len(),
        1,
        "the fenced result added no follow-up"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w2, &taken[0])
            .await
            .unwrap(),
        steps::Ran::Succeeded
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(steps::get(&tx, id).await.unwrap().state, StepState::Succeeded);
    let all = steps::list(&tx, None, None, 10).await.unwrap();
    assert_eq!(all.len(), 2, "exactly one follow-up, from worker 2");
    assert!(
        all.iter()
            .any(|s| s.kind == "probe.next" && s.state == StepState::Running)
    );
}

async fn steps_wait_for_their_gate_and_the_kill_switch(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{gates, kill, state::*, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w");
    let any = |_: GateKind| true;
    let jira = ticket_system(&db, &c, a, "jira").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let approve_me = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "r"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let reject_me = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "jira", "operation": "create", "integration_id": jira}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let mut after = steps::NewStep::new("probe", Some(case_id), json!({}));
    after.after_gate = Some(approve_me.id);
    let waiting = steps::enqueue(&tx, &c, after.clone()).await.unwrap();
    after.after_gate = Some(reject_me.id);
    let cancelled = steps::enqueue(&tx, &c, after).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "gated steps wait"
    );

    let tx = db.store.begin_tenant(a).await.unwrap();
    gates::reject(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        reject_me.id,
        "no",
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        approve_me.id,
        &approve_me.payload_hash,
    )
    .await
    .unwrap();
    kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "kill switch: no step starts"
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), true)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "platform kill switch"
    );
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), false)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().succeeded,
        1,
        "released: it resumes"
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        steps::get(&tx, waiting).await.unwrap().state,
        StepState::Succeeded
    );
    assert_eq!(
        steps::get(&tx, cancelled).await.unwrap().state,
        StepState::Cancelled
    );
    assert_eq!(probe.runs.lock().unwrap().len(), 1);
}

async fn chains_continue_in_place_but_not_under_a_kill_switch(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{kill, state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w");
    let tx = db.store.begin_tenant(a).await.unwrap();
    steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // One claim, two transitions: the follow-up ran as a continuation.
    let r = steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    assert_eq!(r.succeeded, 2, "{r:?}");

    // Under a kill switch the follow-up is enqueued, not started.
    let tx = db.store.begin_tenant(a).await.unwrap();
    steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let claimed = steps::claim(&db.store, &c, &w).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &person("user:eng", Role::SecurityEngineer), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w, &claimed[0])
            .await
            .unwrap(),
        steps::Ran::Succeeded
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    let pending = steps::list(&tx, None, Some(StepState::Pending), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the follow-up waits");
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0
    );
}

async fn quorum_needs_distinct_approvers_of_the_same_proposal(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let admin = person("user:adm", Role::TenantAdmin);
    let any = |_: GateKind| true;
    let (ann, bob, cat, dan) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
        person("user:cat", Role::SecurityEngineer),
        person("user:dan", Role::AnalystEdit),
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    for bad in [0, gates::MAX_QUORUM + 1] {
        assert!(matches!(
            gates::set_quorum(&tx, &c, &admin, GateKind::EscalateCritical, bad).await,
            Err(Error::Invalid(_))
        ));
    }
    gates::set_quorum(&tx, &c, &admin, GateKind::EscalateCritical, 2)
        .await
        .unwrap();
    gates::set_quorum(&tx, &c, &admin, GateKind::CloseCase, 2)
        .await
        .unwrap();
    assert_eq!(gates::quorum(&tx, GateKind::EscalateCritical).await.unwrap(), 2);
    assert_eq!(
        gates::quorum(&tx, GateKind::TicketWrite).await.unwrap(),
        1,
        "default"
    );

    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "r"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let first = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(first.state, GateState::Pending, "one of two");
    assert_eq!(gates::approvals(&tx, g.id, &g.payload_hash).await.unwrap(), 1);
    tx.commit().await.unwrap();
    // The same person twice (its own transaction: on PostgreSQL a refused
    // insert ends the transaction, as it does for a request).
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await,
            Err(Error::Conflict(_))
        ),
        "the same person twice"
    );
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&ann, &any), g.id, &g.payload_hash).await,
            Err(Error::Forbidden(_))
        ),
        "the requester"
    );
    let done = gates::approve(&tx, &c, &decider(&cat, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed, "two distinct approvers");
    assert_eq!(
        cases::get(&tx, case_id).await.unwrap().severity,
        Severity::Critical
    );

    // An edit is a new proposal: approvals of the old one do not count.
    let cg = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::CloseCase,
        json!({"resolution": "benign"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(&tx, &c, &decider(&bob, &any), cg.id, &cg.payload_hash)
        .await
        .unwrap();
    let edited = gates::edit_and_approve(
        &tx,
        &c,
        &decider(&cat, &any),
        cg.id,
        json!({"resolution": "true_positive"}),
    )
    .await
    .unwrap();
    assert_eq!(
        edited.state,
        GateState::Pending,
        "bob approved the old text; cat's is the only approval of the new one"
    );
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&dan, &any), cg.id, &cg.payload_hash).await,
            Err(Error::Conflict(_))
        ),
        "stale hash"
    );
    let closed = gates::approve(&tx, &c, &decider(&dan, &any), cg.id, &edited.payload_hash)
        .await
        .unwrap();
    assert_eq!(closed.state, GateState::Executed);
    assert_eq!(cases::get(&tx, case_id).await.unwrap().state, CaseState::Closed);
    tx.commit().await.unwrap();
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gate.approval_recorded'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gate.quorum_set'"
        )
        .await,
        2
    );
}

async fn integrations_start_read_only_and_writes_are_opt_in(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::integrations;
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let eng = person("user:eng", Role::SecurityEngineer);
    let adm = person("user:adm", Role::TenantAdmin);
    let tx = db.store.begin_tenant(a).await.unwrap();
    for (kind, config) in [
        ("teams", json!({})),
        ("jira", json!({"base_url": "http://jira.example", "email": "e"})),
        ("jira", json!({"email": "e"})),
    ] {
        let r = integrations::create(&tx, &c, &eng, kind, "x", config).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{kind}: {r:?}");
    }
    let j = integrations::create(
        &tx,
        &c,
        &eng,
        "jira",
        "Jira Cloud",
        json!({"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"}),
    )
    .await
    .unwrap();
    assert!(
        j.manifest
            .iter()
            .filter(|s| s.access == vigil_integrations::Access::Write)
            .all(|s| !s.enabled),
        "read-only at birth"
    );
    assert!(
        j.manifest
            .iter()
            .filter(|s| s.access == vigil_integrations::Access::Read)
            .all(|s| s.enabled)
    );
    assert!(
        !integrations::scope_enabled(&tx, j.id, "issue:create")
            .await
            .unwrap()
    );
    assert!(
        matches!(
            integrations::set_scope(&tx, &c, &adm, j.id, "issue:read", false).await,
            Err(Error::Invalid(_))
        ),
        "read scopes stay on"
    );
    assert!(
        matches!(
            integrations::set_scope(&tx, &c, &adm, j.id, "issue:delete", true).await,
            Err(Error::Invalid(_))
        ),
        "not in the manifest"
    );
    let on = integrations::set_scope(&tx, &c, &adm, j.id, "issue:create", true)
        .await
        .unwrap();
    let create = on.manifest.iter().find(|s| s.scope == "issue:create").unwrap();
    assert!(create.enabled && create.enabled_by.as_deref() == Some("user:adm"));
    integrations::set_scope(&tx, &c, &adm, j.id, "issue:create", true)
        .await
        .unwrap();
    assert!(
        integrations::scope_enabled(&tx, j.id, "issue:create")
            .await
            .unwrap()
    );
    integrations::set_scope(&tx, &c, &adm, j.id, "issue:create", false)
        .await
        .unwrap();
    assert!(
        !integrations::scope_enabled(&tx, j.id, "issue:create")
            .await
            .unwrap(),
        "off again at once"
    );
    tx.commit().await.unwrap();
    // A name taken (its own transaction: a refused insert ends it on PostgreSQL).
    let tx = db.store.begin_tenant(a).await.unwrap();
    let dup = integrations::create(&tx, &c, &eng, "webhook", "Jira Cloud", json!({})).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    drop(tx);
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(
        integrations::get(&tx, j.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        integrations::set_scope(&tx, &c, &adm, j.id, "issue:create", true).await,
        Err(Error::NotFound(_))
    ));
    drop(tx);
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'integration.scope'"
        )
        .await,
        2,
        "changes only"
    );
}

async fn credentials_are_enveloped_rotated_and_revoked(db: TestDb) {
    use secrecy::ExposeSecret;
    use serde_json::json;
    use vigil_orchestrator::credentials::MasterKey;
    use vigil_orchestrator::{integrations, vault};
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let master = MasterKey::generate();
    let eng = person("user:eng", Role::SecurityEngineer);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (hook, secret) = integrations::create_with_secret(
        &tx,
        &c,
        &master,
        &eng,
        "webhook",
        "EDR push",
        json!({"format": "auto"}),
    )
    .await
    .unwrap();
    let secret = secret.expect("a webhook gets a signing secret");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        vault::open(&tx, &c, &master, hook.id)
            .await
            .unwrap()
            .expose_secret()
            .as_slice(),
        secret.as_bytes()
    );
    let (jira, none) = integrations::create_with_secret(
        &tx,
        &c,
        &master,
        &eng,
        "jira",
        "Jira",
        json!({"base_url": "https://j.example", "email": "e"}),
    )
    .await
    .unwrap();
    assert!(none.is_none());
    assert!(matches!(
        vault::open(&tx, &c, &master, jira.id).await,
        Err(Error::NotFound(_))
    ));
    let v1 = vault::set(&tx, &c, &master, &eng, jira.id, b"api-token-one")
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.fingerprint.len(), 16);
    c.advance(Duration::minutes(1));
    let v2 = vault::set(&tx, &c, &master, &eng, jira.id, b"api-token-two")
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v1.fingerprint, v2.fingerprint);
    assert_eq!(
        vault::open(&tx, &c, &master, jira.id)
            .await
            .unwrap()
            .expose_secret()
            .as_slice(),
        b"api-token-two"
    );
    assert_eq!(vault::current(&tx, jira.id).await.unwrap().unwrap().version, 2);
    // Another master key cannot unwrap the tenant's data key.
    assert!(
        vault::open(&tx, &c, &MasterKey::generate(), jira.id)
            .await
            .is_err()
    );
    tx.commit().await.unwrap();

    // At rest: no plaintext anywhere; the old version's ciphertext is gone.
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    for needle in ["api-token-one", "api-token-two", secret.as_str()] {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM credentials WHERE ciphertext LIKE '%{needle}%' OR fingerprint LIKE '%{needle}%'"
        );
        assert_eq!(count(&owner, &sql).await, 0, "{needle}");
    }
    let old = "SELECT COUNT(*) AS n FROM credentials WHERE version = 1 AND ciphertext IS NOT NULL \
               AND integration_id IN (SELECT id FROM integrations WHERE kind = 'jira')";
    assert_eq!(count(&owner, old).await, 0, "rotation destroys the old version");

    // Other tenants: not found.
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(
        vault::open(&tx, &c, &master, jira.id).await,
        Err(Error::NotFound(_))
    ));
    drop(tx);
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(
        vault::set(&tx, &c, &master, &eng, jira.id, b"x").await,
        Err(Error::NotFound(_))
    ));
    drop(tx);

    let tx = db.store.begin_tenant(a).await.unwrap();
    vault::revoke(&tx, &c, &person("user:adm", Role::TenantAdmin), jira.id)
        .await
        .unwrap();
    assert!(
        matches!(
            vault::open(&tx, &c, &master, jira.id).await,
            Err(Error::NotFound(_))
        ),
        "revoked in one action"
    );
    assert!(vault::current(&tx, jira.id).await.unwrap().is_none());
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(matches!(
        vault::revoke(&tx, &c, &person("user:adm", Role::TenantAdmin), jira.id).await,
        Err(Error::NotFound(_))
    ));
    drop(tx);
    let live = "SELECT COUNT(*) AS n FROM credentials WHERE ciphertext IS NOT NULL \
                AND integration_id IN (SELECT id FROM integrations WHERE kind = 'jira')";
    assert_eq!(count(&owner, live).await, 0);
    for action in ["credential.set", "credential.rotate", "credential.revoke"] {
        assert!(
            count(
                &owner,
                &format!("SELECT COUNT(*) AS n FROM audit_events WHERE action = '{action}'")
            )
            .await
                >= 1,
            "{action}"
        );
    }
}

async fn alerts_sharing_entities_join_one_case(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::credentials::MasterKey;
    use vigil_orchestrator::engine::cases;
    use vigil_orchestrator::{correlate, ingest, integrations};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let master = MasterKey::generate();
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (hook, secret) = integrations::create_with_secret(
        &tx,
        &c,
        &master,
        &person("user:eng", Role::SecurityEngineer),
        "webhook",
        "edr",
        json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let secret = secret.unwrap();
    let send = |alert: serde_json::Value| {
        let body = alert.to_string();
        let ts = c.now().timestamp().to_string();
        let sig = ingest::sign(secret.as_bytes(), &ts, body.as_bytes());
        let (store, master) = (db.store.clone(), &master);
        let c = &c;
        async move {
            let d = ingest::Delivery {
                integration: hook.id,
                timestamp: Some(&ts),
                signature: Some(&sig),
                body: body.as_bytes(),
                source_ip: None,
            };
            ingest::receive(&store, c, master, d).await.unwrap().alert_ids[0]
        }
    };
    let case_of = |alert: uuid::Uuid| {
        let store = db.store.clone();
        async move {
            let tx = store.begin_tenant(a).await.unwrap();
            let (items, _) = cases::list(&tx, None, 100, 0).await.unwrap();
            for k in items {
                if correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(x, _)| *x == alert)
                {
                    return k.id;
                }
            }
            panic!("alert {alert} is in no open case");
        }
    };
    let a1 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a1", "title": "Beaconing"}, "device": {"hostname": "WS-1"}, "process": {"name": "svchost.exe"}})).await;
    let a2 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a2"}, "device": {"hostname": "ws-1"}, "dst_endpoint": {"ip": "185.220.101.4"}})).await;
    let a3 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a3", "title": "Scan"}, "dst_endpoint": {"ip": "203.0.113.9"}})).await;
    let (c1, c3) = (case_of(a1).await, case_of(a3).await);
    assert_eq!(case_of(a2).await, c1, "shares the host");
    assert_ne!(c1, c3);
    // One alert touching both cases merges them into the older.
    let a4 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a4"}, "src_endpoint": {"ip": "185.220.101.4"}, "dst_endpoint": {"ip": "203.0.113.9"}})).await;
    for x in [a1, a2, a3, a4] {
        assert_eq!(case_of(x).await, c1, "everything connected is one case");
    }
    let tx = db.store.begin_tenant(a).await.unwrap();
    let links = correlate::alerts_of(&tx, c1).await.unwrap();
    let why_a2 = links.iter().find(|(x, _)| *x == a2).unwrap().1.clone().unwrap();
    assert_eq!(
        (
            why_a2["kind"].as_str(),
            why_a2["value"].as_str(),
            why_a2["pointer"].as_str()
        ),
        (Some("host"), Some("ws-1"), Some("/device/hostname"))
    );
    assert!(
        links.iter().find(|(x, _)| *x == a1).unwrap().1.is_none(),
        "a1 opened the case"
    );
    assert_eq!(cases::get(&tx, c1).await.unwrap().title, "Beaconing");
    tx.commit().await.unwrap();
    // A shared process name alone links nothing; nor does the window's edge.
    let a5 =
        send(json!({"class_uid": 2004, "finding_info": {"uid": "a5"}, "process": {"name": "svchost.exe"}}))
            .await;
    assert_ne!(case_of(a5).await, c1);
    c.advance(Duration::hours(25));
    let a6 =
        send(json!({"class_uid": 2004, "finding_info": {"uid": "a6"}, "device": {"hostname": "WS-1"}})).await;
    assert_ne!(case_of(a6).await, c1, "outside the 24 h window");
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        cases::list(&tx, None, 100, 0).await.unwrap().1,
        3,
        "merged cases are not listed"
    );
    drop(tx);
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'case.merge'"
        )
        .await,
        1
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::TestDb::new(super::Backend::Sqlite).await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::TestDb::new(super::Backend::Postgres).await).await } )*
        }
    };
}

#[path = "storage/sso_rules.rs"]
mod sso_rules;
use sso_rules::sso_links_and_roles_follow_the_rules;

on_both_backends!(
    sso_links_and_roles_follow_the_rules,
    migrations_are_current,
    tenants_create_get_list,
    members_are_tenant_scoped,
    api_tokens_bind_tenant_and_role,
    password_links_are_one_time_and_expire,
    bootstrap_creates_exactly_one_platform_admin,
    audit_log_is_append_only,
    login_locks_out_and_audits,
    sessions_expire_and_log_out,
    tenant_session_limits,
    totp_enrols_rotates_and_refuses_replay,
    gates_bind_hash_and_refuse_self_approval,
    reject_needs_reason_and_edits_keep_a_diff,
    ticket_writes_run_once_behind_the_guard,
    a_worker_dying_mid_write_never_duplicates,
    transient_failures_retry_then_dead_letter,
    unanswered_gates_escalate_never_approve,
    steps_retry_dead_letter_and_chain,
    an_expired_lease_passes_the_step_on,
    steps_wait_for_their_gate_and_the_kill_switch,
    chains_continue_in_place_but_not_under_a_kill_switch,
    quorum_needs_distinct_approvers_of_the_same_proposal,
    integrations_start_read_only_and_writes_are_opt_in,
    credentials_are_enveloped_rotated_and_revoked,
    alerts_sharing_entities_join_one_case,
);

/// Several workers on one PostgreSQL: SKIP LOCKED claims never overlap and
/// every step runs exactly once.
#[tokio::test]
async fn competing_workers_claim_each_step_once() {
    use serde_json::json;
    use vigil_orchestrator::engine::steps;
    let db = TestDb::postgres().await;
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let mut ids = std::collections::HashSet::new();
    for t in [a, b] {
        let tx = db.store.begin_tenant(t).await.unwrap();
        for _ in 0..150 {
            ids.insert(
                steps::enqueue(&tx, &c, steps::NewStep::new("probe", None, json!({})))
                    .await
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
    }
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (store, reg) = (db.store.clone(), reg.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = steps::Worker::new(format!("node-{n}"));
            w.batch = 7;
            let clock = vigil_orchestrator::SystemClock;
            let mut total = 0;
            loop {
                let r = steps::run_once(&store, &clock, &reg, &w).await.unwrap();
                if r.claimed() == 0 {
                    return total;
                }
                assert_eq!(r.fenced, 0);
                total += r.succeeded;
            }
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        succeeded += t.await.unwrap();
    }
    assert_eq!(succeeded, ids.len());
    let runs = probe.runs.lock().unwrap();
    assert_eq!(runs.len(), ids.len());
    assert!(runs.values().all(|n| *n == 1), "a step ran twice");
}

/// Row level security, proven as the application role with the
/// application's own filters bypassed (raw SQL without WHERE tenant_id).
mod rls {
    use super::*;

    #[tokio::test]
    async fn app_role_is_unprivileged() {
        let db = TestDb::postgres().await;
        let row = db
            .store
            .conn()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS who, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get::<String>("", "who").unwrap(),
            vigil_migrations::APP_ROLE
        );
        assert!(!row.try_get::<bool>("", "rolsuper").unwrap());
        assert!(!row.try_get::<bool>("", "rolbypassrls").unwrap());
        // It owns nothing.
        let owned = count(
            db.store.conn(),
            "SELECT COUNT(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user",
        )
        .await;
        assert_eq!(owned, 0);
    }

    #[tokio::test]
    async fn every_tenant_table_has_forced_rls() {
        let db = TestDb::postgres().await;
        let rows = db
            .store
            .conn()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT c.relname::text AS t, c.relrowsecurity AS on_, c.relforcerowsecurity AS forced \
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attname = 'tenant_id' AND NOT a.attisdropped \
                 ORDER BY 1",
            ))
            .await
            .unwrap();
        let mut tables = Vec::new();
        for r in rows {
            let t: String = r.try_get("", "t").unwrap();
            assert!(r.try_get::<bool>("", "on_").unwrap(), "{t}: RLS not enabled");
            assert!(r.try_get::<bool>("", "forced").unwrap(), "{t}: RLS not forced");
            tables.push(t);
        }
        let mut declared: Vec<_> = vigil_migrations::TENANT_TABLES
            .iter()
            .map(|s| s.to_string())
            .collect();
        declared.sort();
        assert_eq!(
            tables, declared,
            "every table with tenant_id is declared a tenant table"
        );
    }

    #[tokio::test]
    async fn tenants_cannot_see_or_write_each_other() {
        let db = TestDb::postgres().await;
        let c = clock();
        let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
        for (t, who) in [(a, "ann@a.example"), (b, "bob@b.example")] {
            let tx = db.store.begin_tenant(t).await.unwrap();
            identity::add_member(&tx, &c, &Actor::cli(), &email(who), Role::AnalystEdit)
                .await
                .unwrap();
            identity::issue_api_token(&tx, &c, &Actor::cli(), "t", Role::AnalystRead)
                .await
                .unwrap();
            // Engine rows: a case, an approved ticket write (gate + outbox), a kill-switch record.
            use vigil_orchestrator::engine::{cases, gates, kill, state::*};
            let tickets = vigil_orchestrator::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "servicenow",
                "Tickets",
                serde_json::json!({"instance_url": "https://s.example", "username": "u"}),
            )
            .await
            .unwrap();
            let case = cases::open(
                &tx,
                &c,
                &person("user:ann", Role::AnalystEdit),
                "c",
                Severity::Low,
            )
            .await
            .unwrap();
            let g = gates::request(
                &tx,
                &c,
                &person("user:ann", Role::AnalystEdit),
                case.id,
                GateKind::TicketWrite,
                serde_json::json!({"system": "servicenow", "operation": "create", "integration_id": tickets.id}),
                gates::ESCALATE_AFTER,
            )
            .await
            .unwrap();
            let any = |_: GateKind| true;
            gates::approve(
                &tx,
                &c,
                &decider(&person("user:bob", Role::AnalystEdit), &any),
                g.id,
                &g.payload_hash,
            )
            .await
            .unwrap();
            kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), true)
                .await
                .unwrap();
            vigil_orchestrator::engine::steps::enqueue(
                &tx,
                &c,
                vigil_orchestrator::engine::steps::NewStep::new(
                    "probe",
                    Some(case.id),
                    serde_json::json!({}),
                ),
            )
            .await
            .unwrap();
            vigil_orchestrator::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "notify_webhook",
                "Pager",
                serde_json::json!({"url": "https://hooks.example/vigil"}),
            )
            .await
            .unwrap();
            vigil_orchestrator::iocs::import(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "csv",
                "ip,198.51.100.7",
            )
            .await
            .unwrap();
            assert_eq!(
                vigil_orchestrator::notifications::enqueue(
                    &tx,
                    &c,
                    "gate.escalated",
                    "x",
                    serde_json::json!({})
                )
                .await
                .unwrap(),
                1
            );
            let integ = vigil_orchestrator::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "jira",
                "Jira",
                serde_json::json!({"base_url": "https://j.example", "email": "e"}),
            )
            .await
            .unwrap();
            vigil_orchestrator::integrations::set_scope(
                &tx,
                &c,
                &person("user:adm", Role::TenantAdmin),
                integ.id,
                "issue:create",
                true,
            )
            .await
            .unwrap();
            let master = vigil_orchestrator::credentials::MasterKey::generate();
            vigil_orchestrator::vault::set(
                &tx,
                &c,
                &master,
                &person("user:eng", Role::SecurityEngineer),
                integ.id,
                b"secret",
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // An alert, through a real signed delivery.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let (hook, secret) = vigil_orchestrator::integrations::create_with_secret(
                &tx,
                &c,
                &master,
                &person("user:eng", Role::SecurityEngineer),
                "webhook",
                "hook",
                serde_json::json!({}),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let body = br#"{"class_uid": 2004, "finding_info": {"uid": "f"}, "device": {"hostname": "h-1"}}"#;
            let ts = c.now().timestamp().to_string();
            let sig = vigil_orchestrator::ingest::sign(secret.unwrap().as_bytes(), &ts, body);
            let alert = vigil_orchestrator::ingest::receive(
                &db.store,
                &c,
                &master,
                vigil_orchestrator::ingest::Delivery {
                    integration: hook.id,
                    timestamp: Some(&ts),
                    signature: Some(&sig),
                    body,
                    source_ip: None,
                },
            )
            .await
            .unwrap()
            .alert_ids[0];
            // A draft of the case the alert opened.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let mut case = None;
            for k in vigil_orchestrator::engine::cases::list(&tx, None, 100, 0)
                .await
                .unwrap()
                .0
            {
                if vigil_orchestrator::correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(a, _)| *a == alert)
                {
                    case = Some(k.id);
                }
            }
            let case = case.unwrap();
            vigil_orchestrator::drafts::generate(&tx, &c, case).await.unwrap();
            tx.commit().await.unwrap();
            // An SSO provider, a login in flight, and a linked identity.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let p = vigil_orchestrator::sso::create_provider(
                &tx,
                &c,
                &master,
                &person("user:adm", Role::TenantAdmin),
                vigil_orchestrator::sso::NewProvider {
                    name: "idp".into(),
                    issuer: "https://idp.example".into(),
                    client_id: "vigil".into(),
                    client_secret: Some("s".into()),
                    algorithms: vec!["RS256".into()],
                    group_claim: "groups".into(),
                    role_map: vec![("soc".into(), Role::AnalystEdit)],
                    trust_idp_mfa: false,
                    scopes: Vec::new(),
                    domains: vec!["example.com".into()],
                },
            )
            .await
            .unwrap();
            vigil_orchestrator::sso::remember_login(&tx, &c, p.id, &format!("state-{t}"), "b", "n", "v")
                .await
                .unwrap();
            let who = vigil_integrations::oidc::Identity {
                issuer: "https://idp.example".into(),
                subject: "sub".into(),
                email: Some(format!("sso-{}@example.com", t.0.simple())),
                email_verified: true,
                groups: vec!["soc".into()],
                amr: vec![],
            };
            vigil_orchestrator::sso::admit(&tx, &c, &p, &who, None)
                .await
                .unwrap();
            vigil_orchestrator::sso::first_use_of_assertion(&tx, &c, p.id, "assertion-1", None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        // Under B's setting, raw unfiltered queries see only B's rows.
        let tx = db.store.begin_tenant(b).await.unwrap();
        for table in vigil_migrations::TENANT_TABLES {
            let n = count(&*tx, &format!("SELECT COUNT(*) AS n FROM {table}")).await;
            let mine = count(
                &*tx,
                &format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = '{b}'"),
            )
            .await;
            assert!(n > 0 && n == mine, "{table}: {n} visible, {mine} are B's");
        }
        // Writing a row for A while acting as B is refused.
        let forged = tx
            .execute_unprepared(&format!(
                "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, created_at, created_by) \
                 VALUES ('{}', '{a}', 'x', 'tenant_admin', 'h', now(), 'mallory')",
                uuid::Uuid::new_v4()
            ))
            .await;
        assert!(forged.is_err(), "cross-tenant insert must be refused");
        drop(tx);
        // Updating A's memberships from B's transaction touches nothing.
        let tx = db.store.begin_tenant(b).await.unwrap();
        let res = tx
            .execute_unprepared(&format!(
                "UPDATE memberships SET role = 'tenant_admin' WHERE tenant_id = '{a}'"
            ))
            .await
            .unwrap();
        assert_eq!(res.rows_affected(), 0);
        tx.commit().await.unwrap();

        // With no tenant set: nothing visible, nothing writable.
        for table in vigil_migrations::TENANT_TABLES {
            assert_eq!(
                count(db.store.conn(), &format!("SELECT COUNT(*) AS n FROM {table}")).await,
                0,
                "{table}"
            );
        }
        let orphan = db
            .store
            .conn()
            .execute_unprepared(&format!(
                "INSERT INTO memberships (id, tenant_id, user_id, role, created_at) \
                 SELECT '{}', '{a}', id, 'tenant_admin', now() FROM users LIMIT 1",
                uuid::Uuid::new_v4()
            ))
            .await;
        assert!(orphan.is_err(), "insert without tenant must be refused");
        // The setting is transaction-local: it does not leak to the next
        // statement on the same pooled connection.
        let tx = db.store.begin_tenant(a).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            count(db.store.conn(), "SELECT COUNT(*) AS n FROM memberships").await,
            0
        );
    }
}
