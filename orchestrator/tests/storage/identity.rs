//! The storage suite: Tenants, members, API tokens, one-time links, bootstrap, the audit log, password login, sessions and TOTP.

use super::*;

pub(super) async fn tenants_create_get_list(db: TestDb) {
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

pub(super) async fn members_are_tenant_scoped(db: TestDb) {
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

pub(super) async fn api_tokens_bind_tenant_and_role(db: TestDb) {
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

pub(super) async fn password_links_are_one_time_and_expire(db: TestDb) {
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

pub(super) async fn bootstrap_creates_exactly_one_platform_admin(db: TestDb) {
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

pub(super) async fn audit_log_is_append_only(db: TestDb) {
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

pub(super) async fn login_locks_out_and_audits(db: TestDb) {
    use vigil_orchestrator::identity::auth::{self, LoginRefused};
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

pub(super) async fn sessions_expire_and_log_out(db: TestDb) {
    use vigil_orchestrator::identity::auth;
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
pub(super) async fn tenant_session_limits(db: TestDb) {
    use vigil_orchestrator::identity::auth::{self, SessionLimits};
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

pub(super) async fn totp_enrols_rotates_and_refuses_replay(db: TestDb) {
    use vigil_orchestrator::identity::auth;
    use vigil_orchestrator::secrets::credentials::MasterKey;
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
