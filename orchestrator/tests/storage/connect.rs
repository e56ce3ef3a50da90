//! The storage suite: Integrations, write scopes and credentials.

use super::*;

pub(super) async fn integrations_start_read_only_and_writes_are_opt_in(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::connect::integrations;
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

pub(super) async fn credentials_are_enveloped_rotated_and_revoked(db: TestDb) {
    use secrecy::ExposeSecret;
    use serde_json::json;
    use vigil_orchestrator::secrets::credentials::MasterKey;
    use vigil_orchestrator::{connect::integrations, secrets::vault};
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
