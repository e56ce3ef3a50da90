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

/// The investigation on several nodes: a node is killed -9 while its
/// collect step waits on CrowdStrike; other alerts arrive; after the lease
/// two fresh nodes share the rounds. Every case gets exactly one round whose
/// steps each succeeded once (the killed one on its second attempt), one
/// draft and one proposed escalation; the killed round's draft cites the
/// device record collected on the retry.
#[tokio::test]
async fn a_node_killed_mid_round_loses_nothing() {
    use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter};
    use serde_json::json;
    use vigil_orchestrator::audit::Actor;
    use vigil_orchestrator::connect::integrations;
    use vigil_orchestrator::engine::{cases, gates};
    use vigil_orchestrator::pipeline::{drafts, ingest, investigation};
    use vigil_orchestrator::secrets::vault;
    use vigil_orchestrator::{Clock, Role, identity};

    const CASES: usize = 12;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&StoreOptions::new(url.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let key = key_file(dir.path(), &master);
    let (cs_run, falcon) = sim::crowdstrike::start("cid", "secret").await;
    for n in 0..CASES {
        falcon.devices.lock().unwrap().push(sim::crowdstrike::device(
            &format!("dev-{n}"),
            &format!("ws-{n}"),
            "normal",
        ));
    }
    // The first device lookup hangs (the node is killed while it waits).
    cs_run.control.push_on(
        "GET /devices/queries/devices/v1",
        sim::Fault::Slow(Duration::from_secs(3600)),
    );
    let c = SystemClock;
    let tx = store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &c, &Actor::cli(), "Rounds")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let f = integrations::create(
        &tx,
        &c,
        &eng,
        "crowdstrike",
        "Falcon",
        json!({"base_url": cs_run.base(), "client_id": "cid"}),
    )
    .await
    .unwrap();
    vault::set(&tx, &c, &master, &eng, f.id, b"secret").await.unwrap();
    tx.commit().await.unwrap();
    let alert = |n: usize| {
        json!({
            "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 5,
            "time": c.now().timestamp_millis(),
            "metadata": {"version": "1.3.0", "product": {"name": "EDR"}},
            "finding_info": {"uid": format!("node-{n}"), "title": "Credential dumping from LSASS",
                             "attacks": [{"tactic": {"name": "Credential Access", "uid": "TA0006"}},
                                             {"tactic": {"name": "Lateral Movement", "uid": "TA0008"}}]},
            "device": {"hostname": format!("ws-{n}")},
        })
        .to_string()
    };
    let deliver = |from: usize, to: usize| {
        let store = &store;
        async move {
            let texts: Vec<String> = (from..to).map(alert).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let tx = store.begin_tenant(t.id).await.unwrap();
            ingest::store_checked(&tx, &c, hook.id, ingest::check("auto", &refs).unwrap())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };

    // One node takes the first case's round and hangs in its collect step.
    let first = Server::start(node(&url, &key)).await.expect("first node");
    deliver(0, 1).await;
    let deadline = Instant::now() + PATIENCE;
    while cs_run.control.count("GET /devices/queries/devices/v1") == 0 {
        assert!(
            Instant::now() < deadline,
            "the collect step never asked CrowdStrike"
        );
        tick.tick().await;
    }
    vigil_e2e::kill(first.pid(), "KILL");
    drop(first);
    deliver(1, CASES).await;
    // Its lease runs out (30 s; moved into the past here rather than waited for).
    let owner = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let held = owner
        .execute_unprepared(
            "UPDATE steps SET lease_expires_at = lease_expires_at - interval '1 hour' WHERE state = 'running'",
        )
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(held, 1, "the killed node held one step");
    owner.close().await.unwrap();

    let nodes = [
        Server::start(node(&url, &key)).await.expect("node 2"),
        Server::start(node(&url, &key)).await.expect("node 3"),
    ];
    let deadline = Instant::now() + PATIENCE * 2;
    let case_ids = loop {
        let tx = store.begin_tenant(t.id).await.unwrap();
        let (list, _) = cases::list(&tx, None, 100, 0).await.unwrap();
        let mut done = 0;
        let mut seen = Vec::new();
        for k in &list {
            let p = investigation::progress(&tx, k.id).await.unwrap();
            if p.rounds.len() == 1 && p.rounds[0].state == "awaiting_decision" {
                done += 1;
            }
            seen.push(
                p.rounds
                    .iter()
                    .map(|r| {
                        let steps: Vec<String> = r
                            .steps
                            .iter()
                            .map(|s| {
                                format!(
                                    "{} {} x{} {:?}",
                                    s.kind,
                                    s.state.as_str(),
                                    s.attempts,
                                    s.last_error
                                )
                            })
                            .collect();
                        format!("round {} {}: {}", r.round, r.state, steps.join(", "))
                    })
                    .collect::<Vec<_>>(),
            );
        }
        tx.commit().await.unwrap();
        if list.len() == CASES && done == CASES {
            break list.into_iter().map(|k| k.id).collect::<Vec<_>>();
        }
        assert!(
            Instant::now() < deadline,
            "rounds did not finish: {done} of {}: {seen:#?}",
            list.len()
        );
        tick.tick().await;
    };
    let tx = store.begin_tenant(t.id).await.unwrap();
    let mut retried = 0;
    for id in &case_ids {
        let all = step::Entity::find()
            .filter(step::Column::CaseId.eq(*id))
            .all(&*tx)
            .await
            .unwrap();
        for kind in investigation::STEPS {
            let of: Vec<&step::Model> = all.iter().filter(|s| s.kind == kind).collect();
            assert_eq!(of.len(), 1, "{kind} once per round: {of:?}");
            assert_eq!(of[0].state, "succeeded", "{of:?}");
            if of[0].attempts > 1 {
                assert_eq!((kind, of[0].attempts), (investigation::COLLECT, 2));
                retried += 1;
            }
        }
        let ds = drafts::list(&tx, *id, false).await.unwrap();
        assert_eq!(ds.len(), 1, "one draft per round");
        assert!(
            ds[0].body.to_string().contains("evidence_id"),
            "every draft cites its device record"
        );
        let (gs, _) = gates::list(&tx, None, Some(*id), 10, 0).await.unwrap();
        let mut kinds: Vec<&str> = gs.iter().map(|g| g.kind.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["contain_host", "escalate_critical"], "proposed once each");
    }
    tx.commit().await.unwrap();
    assert_eq!(retried, 1, "only the killed node's step ran twice");
    assert!(
        cs_run.control.count("GET /devices/queries/devices/v1") == CASES + 1,
        "each host looked up once, the killed lookup once more: {}",
        cs_run.control.count("GET /devices/queries/devices/v1")
    );
    for n in nodes {
        assert!(n.terminate().await.0.success());
    }
    store.close().await.unwrap();
    TestDb::drop_pg_database(&admin_url, &name);
}
