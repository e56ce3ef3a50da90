//! Approved writes through the real connectors to the vendor simulators:
//! held while the scope is off, sent once, retried after `Retry-After`,
//! dead-lettered (clearly) when the vendor refuses the credential; and a
//! node killed -9 in the middle of a write makes no second ticket.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_e2e::sim::{self, Fault};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::connect::connectors::Connectors;
use vigil_orchestrator::engine::state::{GateKind, GateState, Severity};
use vigil_orchestrator::engine::{cases, gates, outbox};
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{
    Clock, ManualClock, Role, Store, TenantId, connect::integrations, identity, secrets::vault,
};

pub(crate) fn person(label: &str, role: Role) -> Actor {
    Actor {
        label: label.into(),
        role: Some(role),
        source_ip: None,
    }
}

pub(crate) struct World {
    pub tenant: TenantId,
    pub case: Uuid,
    pub jira: Uuid,
}

/// A tenant with an open case and a Jira integration pointing at `base`,
/// with `token` as its credential. Write scopes off, as always at first.
pub(crate) async fn world(
    store: &Store,
    c: &dyn Clock,
    master: &MasterKey,
    base: &str,
    token: &str,
) -> World {
    let tx = store.begin_platform().await.unwrap();
    let t = identity::create_tenant(
        &tx,
        c,
        &Actor::cli(),
        &format!("Acme {}", Uuid::new_v4().simple()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let tx = store.begin_tenant(t.id).await.unwrap();
    let case = cases::open(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        "Beaconing",
        Severity::High,
    )
    .await
    .unwrap();
    let eng = person("user:eng", Role::SecurityEngineer);
    let j = integrations::create(
        &tx,
        c,
        &eng,
        "jira",
        "Jira",
        json!({"base_url": base, "email": "soc@acme.example", "project_key": "SOC"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, master, &eng, j.id, token.as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    World {
        tenant: t.id,
        case: case.id,
        jira: j.id,
    }
}

pub(crate) async fn approved_write(store: &Store, c: &dyn Clock, w: &World, summary: &str) -> Uuid {
    let tx = store.begin_tenant(w.tenant).await.unwrap();
    let g = gates::request(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        w.case,
        GateKind::TicketWrite,
        json!({"system": "jira", "operation": "create", "integration_id": w.jira, "fields": {"summary": summary}}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let any = |_: GateKind| true;
    let bob = person("user:bob", Role::AnalystEdit);
    gates::approve(
        &tx,
        c,
        &gates::Decider {
            actor: &bob,
            may_decide: &any,
        },
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    g.id
}

pub(crate) async fn entry(
    store: &Store,
    t: TenantId,
    gate: Uuid,
) -> (String, i32, Option<String>, Option<Value>) {
    let tx = store.begin_tenant(t).await.unwrap();
    let e = outbox::of_gate(&tx, gate).await.unwrap().unwrap();
    (e.state, e.attempts, e.last_error, e.result)
}

pub(crate) async fn set_scope(store: &Store, c: &dyn Clock, w: &World, on: bool) {
    let tx = store.begin_tenant(w.tenant).await.unwrap();
    integrations::set_scope(
        &tx,
        c,
        &person("user:adm", Role::TenantAdmin),
        w.jira,
        "issue:create",
        on,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn writes_reach_the_vendor_once(db: TestDb) {
    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let w = world(&db.store, c, &master, &run.base(), "tok").await;
    let writer = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();

    // Approved, but the write scope is off: held, nothing sent.
    let g1 = approved_write(&db.store, c, &w, "Beaconing from host-7").await;
    let r = outbox::run_due(&db.store, c, &writer, 10).await.unwrap();
    assert_eq!((r.executed, r.held), (0, 1));
    assert_eq!(run.control.requests(), 0);
    let (state, _, err, _) = entry(&db.store, w.tenant, g1).await;
    assert_eq!(state, "pending");
    assert!(err.unwrap().contains("write scope is disabled"));

    // Enabled: sent once, the ticket recorded on the entry.
    set_scope(&db.store, c, &w, true).await;
    let r = outbox::run_due(&db.store, c, &writer, 10).await.unwrap();
    assert_eq!(r.executed, 1, "{r:?}");
    assert_eq!(
        outbox::run_due(&db.store, c, &writer, 10).await.unwrap(),
        outbox::RunReport::default()
    );
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(
        jira.issues()[0].fields["labels"],
        json!(["vigil", format!("vigil-gate-{g1}")])
    );
    let (state, attempts, _, result) = entry(&db.store, w.tenant, g1).await;
    assert_eq!((state.as_str(), attempts), ("done", 1));
    assert_eq!(result.unwrap()["ticket"], "SOC-1");
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    assert_eq!(gates::get(&tx, g1).await.unwrap().state, GateState::Executed);
    drop(tx);

    // 429 with Retry-After: retried no sooner than the vendor asked.
    let g2 = approved_write(&db.store, c, &w, "Second").await;
    run.control
        .push_on("POST /rest/api/3/issue", Fault::Status(429, Some(600)));
    let r = outbox::run_due(&db.store, c, &writer, 10).await.unwrap();
    assert_eq!(r.retried, 1, "{r:?}");
    clock.advance(Duration::seconds(599));
    assert_eq!(
        outbox::run_due(&db.store, c, &writer, 10).await.unwrap().executed,
        0,
        "not before Retry-After"
    );
    clock.advance(Duration::seconds(2));
    assert_eq!(
        outbox::run_due(&db.store, c, &writer, 10).await.unwrap().executed,
        1
    );
    assert_eq!(entry(&db.store, w.tenant, g2).await.1, 2);
    assert_eq!(jira.issues().len(), 2);

    // Scope disabled after approval: held again, including writes approved before.
    set_scope(&db.store, c, &w, false).await;
    let g3 = approved_write(&db.store, c, &w, "Third").await;
    assert_eq!(outbox::run_due(&db.store, c, &writer, 10).await.unwrap().held, 1);
    set_scope(&db.store, c, &w, true).await;

    // The vendor refuses the credential: not retried, dead-lettered with a clear reason.
    *jira.token.lock().unwrap() = "rotated-at-vendor".into();
    let r = outbox::run_due(&db.store, c, &writer, 10).await.unwrap();
    assert_eq!(r.dead, 1, "{r:?}");
    let (state, _, err, _) = entry(&db.store, w.tenant, g3).await;
    assert_eq!(state, "dead");
    assert!(err.unwrap().contains("refused the credential"));

    // Revoked credential: nothing is sent, dead-lettered, clear reason.
    let g4 = approved_write(&db.store, c, &w, "Fourth").await;
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    vault::revoke(&tx, c, &person("user:adm", Role::TenantAdmin), w.jira)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let before = run.control.requests();
    assert_eq!(outbox::run_due(&db.store, c, &writer, 10).await.unwrap().dead, 1);
    assert_eq!(run.control.requests(), before);
    assert!(
        entry(&db.store, w.tenant, g4)
            .await
            .2
            .unwrap()
            .contains("no credential")
    );
    assert_eq!(jira.issues().len(), 2);
}

#[tokio::test]
async fn writes_reach_the_vendor_once_sqlite() {
    writes_reach_the_vendor_once(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn writes_reach_the_vendor_once_postgres() {
    writes_reach_the_vendor_once(TestDb::postgres().await).await;
}

/// A ticket write names an integration of this tenant and of that system.
#[tokio::test]
async fn ticket_writes_name_a_real_integration() {
    let db = TestDb::sqlite().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let master = MasterKey::generate();
    let w = world(&db.store, &clock, &master, "https://acme.atlassian.net", "tok").await;
    let other = world(&db.store, &clock, &master, "https://globex.atlassian.net", "tok").await;
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let ask = |p: Value| {
        let tx = &tx;
        let clock = &clock;
        async move {
            gates::request(
                tx,
                clock,
                &person("user:ann", Role::AnalystEdit),
                w.case,
                GateKind::TicketWrite,
                p,
                gates::ESCALATE_AFTER,
            )
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
        }
    };
    assert!(
        ask(json!({"system": "jira", "operation": "create"}))
            .await
            .contains("integration_id")
    );
    assert!(
        ask(json!({"system": "jira", "operation": "create", "integration_id": other.jira}))
            .await
            .contains("names no jira integration"),
        "another tenant's integration"
    );
    assert!(
        ask(json!({"system": "servicenow", "operation": "create", "integration_id": w.jira}))
            .await
            .contains("is jira, not servicenow")
    );
    assert!(
        ask(json!({"system": "jira", "operation": "comment", "integration_id": w.jira}))
            .await
            .contains("needs the `ticket`")
    );
}

/// A node is killed -9 while the vendor holds its create request (the issue
/// exists, the answer never arrives). After the lease, a restarted node
/// retries with the same key, finds the issue, and records it: one ticket.
#[tokio::test]
async fn a_node_killed_mid_write_makes_one_ticket() {
    use sea_orm::ConnectionTrait;
    use std::os::unix::fs::PermissionsExt;
    use vigil_e2e::{PATIENCE, Server, vigil};
    use vigil_orchestrator::testkit::{pg_admin_url, with_database};
    use vigil_orchestrator::{StoreOptions, SystemClock};

    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&StoreOptions::new(url.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, master.to_hex()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let w = world(&store, &SystemClock, &master, &run.base(), "tok").await;
    set_scope(&store, &SystemClock, &w, true).await;
    run.control.push_on(
        "POST /rest/api/3/issue",
        Fault::HangAfter(std::time::Duration::from_secs(3600)),
    );
    let g = approved_write(&store, &SystemClock, &w, "Beaconing from host-7").await;

    let serve = || {
        let mut cmd = vigil(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("VIGIL_DATABASE_URL", &url)
            .env("VIGIL_MASTER_KEY_FILE", &key_file);
        cmd
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let first = Server::start(serve()).await.expect("first node");
    let deadline = std::time::Instant::now() + PATIENCE;
    while jira.issues().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never reached the vendor"
        );
        tick.tick().await;
    }
    vigil_e2e::kill(first.pid(), "KILL");
    drop(first);
    let (state, attempts, _, _) = entry(&store, w.tenant, g).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("executing", 1),
        "claimed, outcome unknown"
    );

    // The lease runs out (60 s; moved into the past here rather than waited for).
    let owner = sea_orm::Database::connect(url.as_str()).await.unwrap();
    owner
        .execute_unprepared(&format!(
            "UPDATE outbox SET run_after = run_after - interval '1 hour' WHERE gate_id = '{g}'"
        ))
        .await
        .unwrap();
    owner.close().await.unwrap();

    let second = Server::start(serve()).await.expect("second node");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (state, attempts, _, result) = entry(&store, w.tenant, g).await;
        if state == "done" {
            assert_eq!(attempts, 2);
            assert_eq!(result.unwrap()["ticket"], "SOC-1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retry never finished: {state}"
        );
        tick.tick().await;
    }
    assert_eq!(jira.issues().len(), 1, "one ticket");
    assert_eq!(
        run.control.count("POST /rest/api/3/issue"),
        1,
        "one create request ever"
    );
    assert_eq!(
        run.control.count("GET /rest/api/3/search/jql"),
        2,
        "each attempt looked first"
    );
    assert!(second.terminate().await.0.success());
    store.close().await.unwrap();
    TestDb::drop_pg_database(&admin_url, &name);
}

/// Host containment is a gated write to the EDR: held until the write scope
/// is on, then sent once.
#[tokio::test]
async fn host_containment_is_a_gated_write() {
    let db = TestDb::sqlite().await;
    let (run, cs) = sim::crowdstrike::start("cid", "secret").await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let w = world(&db.store, c, &master, "https://unused.atlassian.net", "tok").await;
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let eng = person("user:eng", Role::SecurityEngineer);
    let edr = integrations::create(
        &tx,
        c,
        &eng,
        "crowdstrike",
        "Falcon",
        json!({"base_url": run.base(), "client_id": "cid"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, &master, &eng, edr.id, b"secret")
        .await
        .unwrap();
    let bad = gates::request(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        w.case,
        GateKind::ContainHost,
        json!({"integration_id": w.jira, "device_id": "dev0001"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(bad.unwrap_err().to_string().contains("is jira, not crowdstrike"));
    let g = gates::request(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        w.case,
        GateKind::ContainHost,
        json!({"integration_id": edr.id, "device_id": "dev0001"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let any = |_: GateKind| true;
    let bob = person("user:bob", Role::AnalystEdit);
    gates::approve(
        &tx,
        c,
        &gates::Decider {
            actor: &bob,
            may_decide: &any,
        },
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let writer = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();
    assert_eq!(outbox::run_due(&db.store, c, &writer, 10).await.unwrap().held, 1);
    assert!(cs.contained.lock().unwrap().is_empty());
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    integrations::set_scope(
        &tx,
        c,
        &person("user:adm", Role::TenantAdmin),
        edr.id,
        "hosts:contain",
        true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outbox::run_due(&db.store, c, &writer, 10).await.unwrap().executed,
        1
    );
    assert_eq!(
        outbox::run_due(&db.store, c, &writer, 10).await.unwrap(),
        outbox::RunReport::default()
    );
    assert_eq!(*cs.contained.lock().unwrap(), ["dev0001"]);
    let (state, _, _, result) = entry(&db.store, w.tenant, g.id).await;
    assert_eq!(state, "done");
    assert_eq!(result.unwrap()["contained"], "dev0001");
}

/// An unanswered gate escalates and the tenant's notification webhook hears
/// about it: signed, once, only with `notify:send` on and no kill switch.
#[tokio::test]
async fn escalations_are_notified_by_signed_webhook() {
    use vigil_orchestrator::connect::notifications;
    use vigil_orchestrator::engine::kill;
    let db = TestDb::sqlite().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let w = world(&db.store, c, &master, "https://unused.atlassian.net", "tok").await;
    let eng = person("user:eng", Role::SecurityEngineer);
    let adm = person("user:adm", Role::TenantAdmin);
    // The receiver learns the secret Vigil shows once.
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let (hook, secret) = integrations::create_with_secret(
        &tx,
        c,
        &master,
        &eng,
        "notify_webhook",
        "Pager",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let secret = secret.expect("shown once");
    let (run, rx) = sim::notify::start(secret.as_bytes()).await;
    // Point it at the receiver (a new integration: configs are immutable here).
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let hook2 = integrations::create(
        &tx,
        c,
        &eng,
        "notify_webhook",
        "Pager 2",
        json!({"url": format!("{}/hook", run.base()), "events": ["gate.escalated"]}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, master.as_ref(), &eng, hook2.id, secret.as_bytes())
        .await
        .unwrap();
    let other = integrations::create(
        &tx,
        c,
        &eng,
        "notify_webhook",
        "Closures only",
        json!({"url": format!("{}/hook", run.base()), "events": ["case.closed"]}),
    )
    .await
    .unwrap();
    let g = gates::request(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        w.case,
        GateKind::EscalateCritical,
        json!({"reason": "ransomware"}),
        Duration::hours(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let conn = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();

    clock.advance(Duration::hours(2));
    assert_eq!(gates::escalate_overdue(&db.store, c).await.unwrap(), 1);
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let queued = notifications::list(&tx, 10).await.unwrap();
    drop(tx);
    assert_eq!(
        queued.len(),
        2,
        "both gate.escalated subscribers (the first hook has no filter)"
    );
    assert!(
        queued.iter().all(|n| n.integration_id != other.id),
        "not the closures-only hook"
    );

    // Scope off: held, nothing sent.
    let r = notifications::run_due(&conn, c, 10).await.unwrap();
    assert_eq!(r.held, 2, "{r:?}");
    assert_eq!(run.control.requests(), 0);
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    for id in [hook.id, hook2.id] {
        integrations::set_scope(&tx, c, &adm, id, "notify:send", true)
            .await
            .unwrap();
    }
    kill::set_tenant(&tx, c, &adm, true).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        notifications::run_due(&conn, c, 10).await.unwrap().held,
        2,
        "kill switch holds it"
    );
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    kill::set_tenant(&tx, c, &adm, false).await.unwrap();
    tx.commit().await.unwrap();

    // The receiver answers 503 once: retried later, then delivered.
    run.control.push_on("POST /hook", Fault::Status(503, None));
    let r = notifications::run_due(&conn, c, 10).await.unwrap();
    // The first hook points at a closed port: a transient failure too.
    assert_eq!((r.sent, r.retried), (0, 2), "{r:?}");
    clock.advance(Duration::minutes(5));
    let r = notifications::run_due(&conn, c, 10).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(notifications::run_due(&conn, c, 10).await.unwrap().sent, 0);
    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["event"], "gate.escalated");
    assert_eq!(got[0].1["gate"], json!(g.id));
    assert_eq!(*rx.refused.lock().unwrap(), 0, "the signature verified");
}

/// An approved write whose payload names no target (a gate from before
/// targets were required) is dead-lettered with the reason, not held
/// forever, and nothing is sent.
#[tokio::test]
async fn an_untargeted_write_is_dead_lettered_with_its_reason() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    use vigil_orchestrator::store::entity::outbox as ob;
    let db = TestDb::sqlite().await;
    let (run, _jira) = sim::jira::start("soc@acme.example", "tok").await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let w = world(&db.store, c, &master, &run.base(), "tok").await;
    let g = approved_write(&db.store, c, &w, "legacy").await;
    let tx = db.store.begin_tenant(w.tenant).await.unwrap();
    let e = outbox::of_gate(&tx, g).await.unwrap().unwrap();
    ob::ActiveModel {
        id: Set(e.id),
        payload: Set(json!({"system": "jira", "operation": "create"})),
        ..Default::default()
    }
    .update(&*tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let writer = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();
    let r = outbox::run_due(&db.store, c, &writer, 10).await.unwrap();
    assert_eq!(r.dead, 1, "{r:?}");
    let (state, _, err, _) = entry(&db.store, w.tenant, g).await;
    assert_eq!(state, "dead");
    assert!(err.unwrap().contains("integration_id"));
    assert_eq!(run.control.requests(), 0, "nothing sent");
}
