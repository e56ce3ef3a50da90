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
        .unwrap();
    let code = auth::totp_code(&secret, c.now()).unwrap();
    assert!(wrong.is_none() || code == "000000");
    let rotated = auth::verify_totp(&db.store, &c, &key, s.id, adm, &code, None)
        .await
        .unwrap()
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
            .is_none()
    );
    c.advance(Duration::seconds(30));
    let next = auth::totp_code(&secret, c.now()).unwrap();
    assert!(
        auth::verify_totp(&db.store, &c, &key, s2.id, adm, &next, None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        auth::begin_totp(&db.store, &key, adm, "adm@a.example").await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action LIKE 'mfa.%'"
        )
        .await,
        4
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

on_both_backends!(
    migrations_are_current,
    tenants_create_get_list,
    members_are_tenant_scoped,
    api_tokens_bind_tenant_and_role,
    password_links_are_one_time_and_expire,
    bootstrap_creates_exactly_one_platform_admin,
    audit_log_is_append_only,
    login_locks_out_and_audits,
    sessions_expire_and_log_out,
    totp_enrols_rotates_and_refuses_replay,
);

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
