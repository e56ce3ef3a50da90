//! Several `vigil serve` nodes on one PostgreSQL, and PostgreSQL restarting
//! under a running node: every step claimed once, every approved write sent
//! once (counted at the vendor simulator), nothing lost.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use sea_orm::EntityTrait;
use vigil_e2e::sim;
use vigil_e2e::{PATIENCE, PrivateCluster, Server, vigil};
use vigil_orchestrator::engine::steps;
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::store::entity::{outbox, step};
use vigil_orchestrator::testkit::{TestDb, pg_admin_url, with_database};
use vigil_orchestrator::{Store, StoreOptions, SystemClock};

use super::outbox::{World, approved_write, set_scope, world};

fn key_file(dir: &std::path::Path, master: &MasterKey) -> std::path::PathBuf {
    let p = dir.join("master.key");
    std::fs::write(&p, master.to_hex()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn node(url: &str, key: &std::path::Path) -> tokio::process::Command {
    let cwd = key
        .parent()
        .unwrap()
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir(&cwd).unwrap();
    let mut cmd = vigil(&cwd);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("VIGIL_DATABASE_URL", url)
        .env("VIGIL_MASTER_KEY_FILE", key);
    cmd
}

async fn rows(store: &Store, w: &World) -> (Vec<step::Model>, Vec<outbox::Model>) {
    let tx = store.begin_tenant(w.tenant).await.unwrap();
    let s = step::Entity::find().all(&*tx).await.unwrap();
    let o = outbox::Entity::find().all(&*tx).await.unwrap();
    (s, o)
}

/// Three nodes, 300 steps and 30 approved writes: every step claimed once,
/// every write sent once.
#[tokio::test]
async fn three_nodes_share_the_work_without_double_claims() {
    // The nodes are other processes: the test polls the database for the outcome.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&StoreOptions::new(url.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let key = key_file(dir.path(), &master);
    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let w = world(&store, &SystemClock, &master, &run.base(), "tok").await;
    set_scope(&store, &SystemClock, &w, true).await;

    let nodes = [
        Server::start(node(&url, &key)).await.expect("node 1"),
        Server::start(node(&url, &key)).await.expect("node 2"),
        Server::start(node(&url, &key)).await.expect("node 3"),
    ];
    // Work arrives while all three run.
    let tx = store.begin_tenant(w.tenant).await.unwrap();
    for _ in 0..300 {
        // No handler is registered for this kind: each step is claimed,
        // found unrunnable and dead-lettered (attempts = claims).
        steps::enqueue(
            &tx,
            &SystemClock,
            steps::NewStep::new("e2e.unrunnable", None, serde_json::json!({})),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    for n in 0..30 {
        approved_write(&store, &SystemClock, &w, &format!("write {n}")).await;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (s, o) = rows(&store, &w).await;
        if s.iter().all(|s| s.state == "dead") && o.iter().all(|o| o.state == "done") {
            assert_eq!(s.len(), 300);
            assert!(s.iter().all(|s| s.attempts == 1), "a step was claimed twice");
            assert_eq!(o.len(), 30);
            assert!(
                o.iter().all(|o| o.attempts == 1),
                "an outbox entry was claimed twice: {:?}",
                o.iter()
                    .filter(|o| o.attempts != 1)
                    .map(|o| (o.attempts, &o.last_error, &o.result))
                    .collect::<Vec<_>>()
            );
            break;
        }
        assert!(Instant::now() < deadline, "work did not finish");
        tick.tick().await;
    }
    assert_eq!(jira.issues().len(), 30);
    assert_eq!(
        run.control.count("POST /rest/api/3/issue"),
        30,
        "one create per write"
    );
    for n in nodes {
        assert!(n.terminate().await.0.success());
    }
    store.close().await.unwrap();
    TestDb::drop_pg_database(&admin_url, &name);
}

/// PostgreSQL restarts (fast shutdown: connections cut) while a node works
/// through approved writes: the node keeps going, every write lands once.
#[tokio::test]
async fn postgres_restarting_mid_run_loses_nothing() {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let pg = PrivateCluster::start();
    let url = pg.url("postgres");
    Store::migrate(&StoreOptions::new(url.clone())).await.unwrap();
    let store = Store::connect(&StoreOptions::new(url.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let key = key_file(dir.path(), &master);
    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let w = world(&store, &SystemClock, &master, &run.base(), "tok").await;
    set_scope(&store, &SystemClock, &w, true).await;
    // Each create takes a while at the vendor, so the restart lands mid-run.
    for _ in 0..40 {
        run.control.push_on(
            "POST /rest/api/3/issue",
            sim::Fault::Slow(Duration::from_millis(40)),
        );
    }
    for n in 0..20 {
        approved_write(&store, &SystemClock, &w, &format!("before {n}")).await;
    }
    let server = Server::start(node(&url, &key)).await.expect("node");
    let deadline = Instant::now() + PATIENCE;
    while jira.issues().len() < 3 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tick.tick().await;
    }
    pg.restart();
    for n in 0..20 {
        approved_write(&store, &SystemClock, &w, &format!("after {n}")).await;
    }
    // A write whose outcome the restart cut off waits for its lease (60 s).
    let deadline = Instant::now() + PATIENCE + Duration::from_secs(60);
    loop {
        let (_, o) = rows(&store, &w).await;
        if o.len() == 40 && o.iter().all(|o| o.state == "done") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not finish: {:?}",
            o.iter().map(|o| (&o.state, &o.last_error)).collect::<Vec<_>>()
        );
        tick.tick().await;
    }
    assert_eq!(jira.issues().len(), 40, "every write landed once");
    assert_eq!(
        run.control.count("POST /rest/api/3/issue"),
        40,
        "no second create"
    );
    let err = server.stderr();
    assert!(server.terminate().await.0.success(), "{err}");
    store.close().await.unwrap();
}
