//! The investigation runs itself: with no request but the ingest, alerts
//! become a case whose round the engine runs — evidence, assessment, a
//! cited draft, and a gate Vigil proposes itself — debounced over a burst,
//! a new round (and draft version) for later alerts, nothing under the
//! kill switch. On both backends, with the worker `vigil serve` runs.

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::engine::state::GateKind;
use vigil_orchestrator::engine::{gates, kill, steps};
use vigil_orchestrator::pipeline::{drafts, ingest, investigation};
use vigil_orchestrator::store::entity::step;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{ManualClock, Role, connect::integrations, identity};

fn alert(n: usize, title: &str, tactic: &str, minute: i64) -> String {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap() + Duration::minutes(minute);
    json!({
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 5,
        "time": at.timestamp_millis(),
        "metadata": {"version": "1.3.0", "product": {"name": "EDR"}},
        "finding_info": {"uid": format!("inv-{n}"), "title": title,
                         "attacks": [{"tactic": {"name": tactic, "uid": "TA0006"}, "technique": {"uid": "T1003"}}]},
        "device": {"hostname": "ws-042", "ip": "10.1.2.42"},
        "actor": {"user": {"name": "m.rossi"}},
    })
    .to_string()
}

async fn drain(db: &TestDb, clock: &ManualClock) -> usize {
    let registry = investigation::registry(steps::Registry::default());
    let mut w = steps::Worker::new("test-investigation");
    w.db_clock = false;
    let mut ran = 0;
    for _ in 0..50 {
        let r = steps::run_once(&db.store, clock, &registry, &w).await.unwrap();
        if r.claimed() == 0 {
            break;
        }
        ran += r.succeeded;
        assert_eq!(r.dead, 0, "{r:?}");
    }
    ran
}

async fn runs_itself(db: TestDb) {
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap());
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &c, &Actor::cli(), "T")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let deliver = |texts: Vec<String>| {
        let db = &db;
        let c = &c;
        async move {
            let tx = db.store.begin_tenant(t.id).await.unwrap();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let checked = ingest::check("auto", &refs).unwrap();
            ingest::store_checked(&tx, c, hook.id, checked).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    // A burst: 2 alerts, then 20 more deliveries into the same case.
    deliver(vec![
        alert(1, "Suspicious PowerShell", "Execution", 0),
        alert(2, "Credential dumping from LSASS", "Credential Access", 5),
    ])
    .await;
    for n in 0..20 {
        deliver(vec![alert(
            10 + n,
            "Lateral movement over SMB",
            "Lateral Movement",
            10 + n as i64,
        )])
        .await;
    }
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let cases = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0;
    assert_eq!(cases.len(), 1, "one host, one case");
    let case_id = cases[0].id;
    drop(tx);
    let rounds = || async {
        let tx = db.store.begin_tenant(t.id).await.unwrap();
        step::Entity::find()
            .filter(step::Column::CaseId.eq(case_id))
            .filter(step::Column::Kind.eq(investigation::COLLECT))
            .all(&*tx)
            .await
            .unwrap()
    };
    assert_eq!(rounds().await.len(), 1, "a burst is one round");
    assert_eq!(drain(&db, &c).await, 0, "debounced: not due yet");
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, 4, "collect, assess, draft, propose");

    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let ds = drafts::list(&tx, case_id, false).await.unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].drafter, "deterministic (round 1)");
    let body: drafts::Body = serde_json::from_value(ds[0].body.clone()).unwrap();
    drafts::validate(&tx, case_id, &body).await.unwrap();
    let rec = &body.recommendations[0];
    assert_eq!(rec.action, "escalate_critical", "{rec:?}");
    assert!(rec.signals.iter().any(|s| s.name.contains("critical")), "{rec:?}");
    assert!(
        rec.signals.iter().any(|s| s.name.contains("credential access")),
        "{rec:?}"
    );
    let pending = gates::list(&tx, None, None, 50, 0).await.unwrap().0;
    assert_eq!(pending.len(), 1, "Vigil proposed the escalation");
    assert_eq!(pending[0].kind, GateKind::EscalateCritical);
    assert_eq!(pending[0].requested_by, "system:investigation");
    assert_eq!(pending[0].payload["draft"]["version"], 1);
    // What the case API shows of it.
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!(p.rounds.len(), 1);
    assert_eq!((p.rounds[0].round, p.rounds[0].state), (1, "complete"));
    let kinds: Vec<&str> = p.rounds[0].steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, investigation::STEPS);
    assert_eq!(p.draft.as_ref().map(|d| d.version), Some(1));
    tx.commit().await.unwrap();

    // A later alert: a new round, draft v2 (v1 superseded), the waiting
    // escalation is not asked twice.
    c.advance(Duration::minutes(5));
    deliver(vec![alert(
        99,
        "Credential dumping again",
        "Credential Access",
        40,
    )])
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, 4);
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let ds = drafts::list(&tx, case_id, false).await.unwrap();
    let states: Vec<(i32, &str)> = ds.iter().map(|d| (d.version, d.state.as_str())).collect();
    assert!(
        states.contains(&(1, "superseded")) && states.contains(&(2, "draft")),
        "{states:?}"
    );
    assert_eq!(gates::list(&tx, None, None, 50, 0).await.unwrap().0.len(), 1);
    tx.commit().await.unwrap();

    // Under the kill switch no round starts; on release it runs.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    kill::set_tenant(&tx, &c, &eng, true).await.unwrap();
    tx.commit().await.unwrap();
    deliver(vec![alert(
        100,
        "Credential dumping a third time",
        "Credential Access",
        50,
    )])
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, 0, "nothing runs under the kill switch");
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!((p.rounds[0].round, p.rounds[0].state), (3, "waiting"));
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    kill::set_tenant(&tx, &c, &eng, false).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(drain(&db, &c).await, 4);
    assert_eq!(rounds().await.len(), 3);

    // A person dismisses the proposal (feedback): later rounds do not ask again.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let analyst = Actor {
        label: "user:analyst".into(),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    let g = gates::list(&tx, None, None, 50, 0).await.unwrap().0.remove(0);
    let decider = gates::Decider {
        actor: &analyst,
        may_decide: &|_| true,
    };
    gates::reject(&tx, &c, &decider, g.id, "known pentest")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A person asks for a round: one is queued; asking again while it
    // waits queues nothing more. Audited.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert!(investigation::rerun(&tx, &c, &eng, case_id).await.unwrap());
    assert!(!investigation::rerun(&tx, &c, &eng, case_id).await.unwrap());
    // Audit events take their place in the chain at commit.
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let log = vigil_orchestrator::audit::list(&tx, 200, 0).await.unwrap().0;
    assert_eq!(
        log.iter().filter(|e| e.action == "investigation.rerun").count(),
        2
    );
    tx.commit().await.unwrap();
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, 4);
    assert_eq!(rounds().await.len(), 4);
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let all = gates::list(&tx, None, None, 50, 0).await.unwrap().0;
    assert_eq!(all.len(), 1, "a dismissed proposal is not made again");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn investigation_runs_itself_sqlite() {
    runs_itself(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn investigation_runs_itself_postgres() {
    runs_itself(TestDb::postgres().await).await;
}
