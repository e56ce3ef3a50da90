//! Key rotation, online: a tenant's data key (every credential re-sealed in
//! one transaction) and the master key (old key kept as "previous" while
//! `vigil admin rewrap-keys` moves every wrapping to the new key).

use std::os::unix::fs::PermissionsExt;

use chrono::{TimeZone, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;
use vigil_e2e::{Server, run, vigil};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::store::entity::{credential, tenant_key};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{
    ManualClock, Role, Store, StoreOptions, connect::integrations, identity, secrets::vault,
};

fn admin() -> Actor {
    Actor {
        label: "user:adm".into(),
        role: Some(Role::TenantAdmin),
        source_ip: None,
    }
}

async fn data_key_rotation(db: TestDb) {
    use sea_orm::EntityTrait;
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let master = MasterKey::generate();
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &c, &Actor::cli(), "A")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let mut ids = vec![];
    for n in 0..3 {
        let i = integrations::create(
            &tx,
            &c,
            &admin(),
            "graylog",
            &format!("g{n}"),
            json!({"base_url": "https://g.example"}),
        )
        .await
        .unwrap();
        vault::set(&tx, &c, &master, &admin(), i.id, format!("secret-{n}").as_bytes())
            .await
            .unwrap();
        ids.push(i.id);
    }
    tx.commit().await.unwrap();
    // Read under the tenant (RLS on PostgreSQL).
    let rows = || async {
        let tx = db.store.begin_tenant(t.id).await.unwrap();
        let mut ct: Vec<_> = credential::Entity::find().all(&*tx).await.unwrap();
        ct.sort_by_key(|c| c.id);
        let key = tenant_key::Entity::find().all(&*tx).await.unwrap();
        (ct, key)
    };
    let (before_ct, before_key) = rows().await;

    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert_eq!(
        vault::rotate_data_key(&tx, &c, &master, &admin()).await.unwrap(),
        3
    );
    tx.commit().await.unwrap();

    let (after_ct, after_key) = rows().await;
    assert_ne!(before_key[0].wrapped_key, after_key[0].wrapped_key);
    assert!(after_key[0].rotated_at.is_some());
    for (b, a) in before_ct.iter().zip(&after_ct) {
        assert_ne!(b.ciphertext, a.ciphertext, "re-sealed");
        assert_eq!(
            (b.version, &b.fingerprint),
            (a.version, &a.fingerprint),
            "same credential"
        );
    }
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    for (n, id) in ids.iter().enumerate() {
        let s = vault::open(&tx, &c, &master, *id).await.unwrap();
        assert_eq!(s.expose_secret(), format!("secret-{n}").as_bytes());
    }
    let log = vigil_orchestrator::audit::list(&tx, 100, 0).await.unwrap().0;
    assert!(log.iter().any(|e| e.action == "data_key.rotate"));
    drop(tx);

    // Master key: the new key with the old one as previous re-wraps; then
    // the new key alone opens everything and the old one nothing.
    let new_hex = MasterKey::generate().to_hex();
    let ring = MasterKey::from_hex(&new_hex)
        .unwrap()
        .with_previous(MasterKey::from_hex(&master.to_hex()).unwrap());
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert!(
        vault::open(&tx, &c, &MasterKey::from_hex(&new_hex).unwrap(), ids[0])
            .await
            .is_err()
    );
    assert!(vault::rewrap_data_key(&tx, &ring).await.unwrap());
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let s = vault::open(&tx, &c, &MasterKey::from_hex(&new_hex).unwrap(), ids[1])
        .await
        .unwrap();
    assert_eq!(s.expose_secret(), b"secret-1");
    assert!(
        vault::open(&tx, &c, &master, ids[1]).await.is_err(),
        "the old key opens nothing now"
    );
}

#[tokio::test]
async fn data_key_rotation_sqlite() {
    data_key_rotation(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn data_key_rotation_postgres() {
    data_key_rotation(TestDb::postgres().await).await;
}

/// The operator's procedure with the real binary: demo data sealed under key
/// A; configure B as the key and A as previous; `admin rewrap-keys`; B alone
/// now opens the demo webhook's secret.
#[tokio::test]
async fn master_key_rotation_with_the_cli() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("demo starts");
    assert!(server.terminate().await.0.success());
    let data = cwd.path().join("vigil-data");
    let a = std::fs::read_to_string(data.join("master.key")).unwrap();
    let b_path = cwd.path().join("new.key");
    let b = MasterKey::generate().to_hex();
    std::fs::write(&b_path, &b).unwrap();
    std::fs::set_permissions(&b_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut cmd = vigil(cwd.path());
    cmd.args(["admin", "rewrap-keys"])
        .env("VIGIL_MASTER_KEY_FILE", &b_path)
        .env("VIGIL_PREVIOUS_MASTER_KEY_FILE", data.join("master.key"));
    let f = run(cmd).await;
    assert!(f.status.success(), "{f:?}");
    assert!(f.stdout.contains("re-wrapped 1 tenant data keys"), "{}", f.stdout);

    let store = Store::connect(&StoreOptions::sqlite_file(&data.join("vigil.sqlite3")))
        .await
        .unwrap();
    let tenant = identity::list_tenants(store.conn()).await.unwrap()[0].id;
    let tx = store.begin_tenant(tenant).await.unwrap();
    let hook: Uuid = integrations::list(&tx)
        .await
        .unwrap()
        .0
        .into_iter()
        .find(|i| i.kind == vigil_integrations::Kind::Webhook)
        .unwrap()
        .id;
    let c = vigil_orchestrator::SystemClock;
    assert!(
        vault::open(&tx, &c, &MasterKey::from_hex(&b).unwrap(), hook)
            .await
            .is_ok()
    );
    assert!(
        vault::open(&tx, &c, &MasterKey::from_hex(&a).unwrap(), hook)
            .await
            .is_err()
    );
    drop(tx);
    store.close().await.unwrap();

    // A previous key file that is missing is one clear line.
    let mut cmd = vigil(cwd.path());
    cmd.args(["admin", "rewrap-keys"])
        .env("VIGIL_MASTER_KEY_FILE", &b_path)
        .env("VIGIL_PREVIOUS_MASTER_KEY_FILE", cwd.path().join("nope.key"));
    let f = run(cmd).await;
    assert!(!f.status.success());
    assert!(f.stderr.contains("does not exist"), "{}", f.stderr);
}

/// The data keys can be wrapped by an external key service instead of the
/// master key: anything implementing `Kms`. Here one that counts its calls
/// (a real one would call out to a KMS).
#[tokio::test]
async fn an_external_kms_wraps_the_data_keys() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use vigil_orchestrator::secrets::credentials::Kms;

    #[derive(Debug)]
    struct External {
        key: MasterKey,
        calls: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl Kms for External {
        async fn wrap_key(&self, aad: &str, key: &[u8]) -> vigil_orchestrator::Result<String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(format!("ext:{}", self.key.seal(aad, key)?))
        }
        async fn unwrap_key(&self, aad: &str, wrapped: &str) -> vigil_orchestrator::Result<Vec<u8>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let inner = wrapped
                .strip_prefix("ext:")
                .ok_or_else(|| vigil_orchestrator::Error::Invalid("not ours".into()))?;
            self.key.open(aad, inner)
        }
    }
    let db = TestDb::sqlite().await;
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let kms = External {
        key: MasterKey::generate(),
        calls: AtomicUsize::new(0),
    };
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &c, &Actor::cli(), "K")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let i = integrations::create(
        &tx,
        &c,
        &admin(),
        "graylog",
        "g",
        json!({"base_url": "https://g.example"}),
    )
    .await
    .unwrap();
    vault::set(&tx, &c, &kms, &admin(), i.id, b"s3cret")
        .await
        .unwrap();
    assert_eq!(
        vault::open(&tx, &c, &kms, i.id).await.unwrap().expose_secret(),
        b"s3cret"
    );
    assert_eq!(kms.calls.load(Ordering::SeqCst), 2, "one wrap, one unwrap");
    assert!(
        vault::open(&tx, &c, &MasterKey::generate(), i.id).await.is_err(),
        "only the KMS unwraps"
    );
}
