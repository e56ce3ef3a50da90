//! Issue 12: who an SSO identity becomes, which roles its IdP may set, and
//! a provider's lifecycle (its sessions end when it is disabled or removed).

use super::*;
use vigil_integrations::oidc::Identity;
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::{UserId, identity::auth, identity::sso};

fn who(subject: &str, email: &str, verified: bool, groups: &[&str]) -> Identity {
    Identity {
        issuer: "https://idp.example".into(),
        subject: subject.into(),
        email: Some(email.into()),
        email_verified: verified,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        amr: vec![],
    }
}

async fn member(db: &TestDb, c: &ManualClock, t: TenantId, mail: &str, role: Role) -> UserId {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let m = identity::add_member(&tx, c, &Actor::cli(), &email(mail), role)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    m.user_id
}

async fn admit(
    db: &TestDb,
    c: &ManualClock,
    t: TenantId,
    p: &sso::ProviderInfo,
    id: &Identity,
) -> vigil_orchestrator::Result<sso::SignedIn> {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let r = sso::admit(&tx, c, p, id, None).await;
    if r.is_ok() {
        tx.commit().await.unwrap();
    }
    r
}

async fn audits(db: &TestDb, t: TenantId, action: &str) -> i64 {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let n = count(
        &*tx,
        &format!("SELECT COUNT(*) AS n FROM audit_events WHERE action = '{action}'"),
    )
    .await;
    tx.commit().await.unwrap();
    n
}

pub(super) async fn sso_links_and_roles_follow_the_rules(db: TestDb) {
    let c = clock();
    let master = MasterKey::generate();
    let t = tenant(&db, &c, "T").await;
    let u = tenant(&db, &c, "U").await;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let p = sso::create_provider(
        &tx,
        &c,
        &master,
        &Actor::cli(),
        sso::NewProvider {
            name: "idp".into(),
            issuer: "https://idp.example".into(),
            client_id: "vigil".into(),
            client_secret: None,
            algorithms: vec!["RS256".into()],
            group_claim: "groups".into(),
            role_map: vec![
                ("soc".into(), Role::AnalystEdit),
                ("leads".into(), Role::TenantAdmin),
            ],
            trust_idp_mfa: false,
            scopes: vec!["profile".into()],
            domains: vec!["Example.COM".into()],
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(p.domains, vec!["example.com"], "domains are kept lower-cased");
    assert_eq!(p.scopes, vec!["profile"]);

    // The tenant's last admin, linked (verified, owned domain), whose IdP
    // groups map lower: the role is kept, and that is audited.
    let alice = member(&db, &c, t, "alice@example.com", Role::TenantAdmin).await;
    let s = admit(&db, &c, t, &p, &who("alice", "alice@example.com", true, &["soc"]))
        .await
        .unwrap();
    assert_eq!((s.user, s.role), (alice, Role::TenantAdmin));
    assert_eq!(
        auth::role_in(&db.store, alice, t).await.unwrap(),
        Some(Role::TenantAdmin)
    );
    assert_eq!(audits(&db, t, "sso.role_kept").await, 1);
    assert_eq!(audits(&db, t, "sso.linked").await, 1);
    // With another admin, the mapping applies, audited with before/after.
    member(&db, &c, t, "bob@example.com", Role::TenantAdmin).await;
    let s = admit(&db, &c, t, &p, &who("alice", "alice@example.com", true, &["soc"]))
        .await
        .unwrap();
    assert_eq!(s.role, Role::AnalystEdit);
    let tx = db.store.begin_tenant(t).await.unwrap();
    let change = count(
        &*tx,
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'membership.change' \
         AND CAST(summary AS TEXT) LIKE '%tenant_admin%' AND CAST(summary AS TEXT) LIKE '%analyst_edit%'",
    )
    .await;
    tx.commit().await.unwrap();
    assert_eq!(change, 1);

    // A platform admin is never linked, whatever the IdP asserts.
    let tx = db.store.begin_platform().await.unwrap();
    let root = identity::upsert_local_user(
        &tx,
        &c,
        &Actor::cli(),
        &email("root@example.com"),
        cheap().hash("correct horse battery").unwrap(),
        true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let s = admit(&db, &c, t, &p, &who("root", "root@example.com", true, &["leads"]))
        .await
        .unwrap();
    assert_ne!(s.user, root);
    assert!(
        !identity::is_platform_admin(db.store.conn(), s.user)
            .await
            .unwrap()
    );

    // A person in another tenant: linked (verified, owned), a member of this
    // tenant from now on, the other membership untouched, the session bound
    // to this tenant (no 403).
    let carol = member(&db, &c, u, "carol@example.com", Role::AnalystRead).await;
    let s = admit(&db, &c, t, &p, &who("carol", "carol@example.com", true, &["soc"]))
        .await
        .unwrap();
    assert_eq!(s.user, carol);
    assert_eq!(
        auth::role_in(&db.store, carol, t).await.unwrap(),
        Some(Role::AnalystEdit)
    );
    assert_eq!(
        auth::role_in(&db.store, carol, u).await.unwrap(),
        Some(Role::AnalystRead)
    );
    let session = auth::create_sso_session(&db.store, &c, carol, t, p.id, false)
        .await
        .unwrap();
    let info = auth::resolve_session(&db.store, &c, &session.token)
        .await
        .unwrap();
    assert_eq!(info.bound_tenant, Some(t));

    // Unverified, with no account yet: a new account that does not take the
    // address (a later local invitation of that address cannot reach it).
    let s = admit(&db, &c, t, &p, &who("dave", "dave@example.com", false, &["soc"]))
        .await
        .unwrap();
    let tx = db.store.begin_tenant(t).await.unwrap();
    let dave = identity::add_member(
        &tx,
        &c,
        &Actor::cli(),
        &email("dave@example.com"),
        Role::Executive,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(dave.user_id, s.user, "the invitation makes its own account");

    // A subdomain of an owned domain is not owned (nor a look-alike).
    for (sub, addr) in [
        ("erin", "erin@sub.example.com"),
        ("frank", "frank@example.com.evil.test"),
    ] {
        let existing = member(&db, &c, t, addr, Role::AnalystRead).await;
        let s = admit(&db, &c, t, &p, &who(sub, addr, true, &["soc"]))
            .await
            .unwrap();
        assert_ne!(s.user, existing, "{addr}");
    }

    // Updates are checked and audited; disabling ends the provider's sessions.
    let update = |u: sso::ProviderUpdate| {
        let (db, c, master) = (&db, &c, &master);
        async move {
            let tx = db.store.begin_tenant(t).await.unwrap();
            let r = sso::update_provider(&tx, c, master, &Actor::cli(), p.id, u).await;
            if r.is_ok() {
                tx.commit().await.unwrap();
            }
            r
        }
    };
    let e = update(sso::ProviderUpdate {
        domains: Some(vec!["*.example.com".into()]),
        ..Default::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("domains") && e.contains("no wildcards"), "{e}");
    let e = update(sso::ProviderUpdate {
        email_authoritative: Some(true),
        ..Default::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("SAML"), "{e}");
    let e = update(sso::ProviderUpdate {
        scopes: Some(vec!["has space".into()]),
        ..Default::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("scopes"), "{e}");
    let off = update(sso::ProviderUpdate {
        enabled: Some(false),
        name: Some("idp (off)".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(!off.enabled);
    assert!(
        auth::resolve_session(&db.store, &c, &session.token)
            .await
            .is_err(),
        "its sessions ended"
    );
    assert_eq!(audits(&db, t, "sso.provider_changed").await, 1);
    let refused = admit(
        &db,
        &c,
        t,
        &off,
        &who("carol", "carol@example.com", true, &["soc"]),
    )
    .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    let on = update(sso::ProviderUpdate {
        enabled: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    admit(
        &db,
        &c,
        t,
        &on,
        &who("carol", "carol@example.com", true, &["soc"]),
    )
    .await
    .unwrap();

    // Removal: its links and sessions go; the accounts stay.
    let session = auth::create_sso_session(&db.store, &c, carol, t, p.id, false)
        .await
        .unwrap();
    let tx = db.store.begin_tenant(t).await.unwrap();
    sso::delete_provider(&tx, &c, &Actor::cli(), p.id).await.unwrap();
    let links = count(&*tx, "SELECT COUNT(*) AS n FROM sso_identities").await;
    tx.commit().await.unwrap();
    assert_eq!(links, 0);
    assert!(
        auth::resolve_session(&db.store, &c, &session.token)
            .await
            .is_err()
    );
    assert_eq!(
        auth::role_in(&db.store, carol, t).await.unwrap(),
        Some(Role::AnalystEdit)
    );
    assert_eq!(audits(&db, t, "sso.provider_deleted").await, 1);
    // Another tenant cannot touch it (it is gone here, and was never there).
    let tx = db.store.begin_tenant(u).await.unwrap();
    assert!(matches!(
        sso::delete_provider(&tx, &c, &Actor::cli(), p.id).await,
        Err(Error::NotFound(_))
    ));
}
