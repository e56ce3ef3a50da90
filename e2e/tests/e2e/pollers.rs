//! Pollers against the CrowdStrike and Graylog simulators, on both
//! backends: the cursor advances only with the alerts it covers (one
//! transaction), repeats are dropped, failures leave the cursor where it was
//! and say why on the integration's status.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;
use vigil_e2e::sim::{self, Fault};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::connect::connectors::Connectors;
use vigil_orchestrator::connect::pollers::{self, PollReport};
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{
    Clock, ManualClock, Role, Store, TenantId, connect::integrations, identity, secrets::vault,
};

fn eng() -> Actor {
    Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    }
}

async fn pollable(
    store: &Store,
    c: &dyn Clock,
    master: &MasterKey,
    kind: &str,
    config: serde_json::Value,
    secret: &str,
) -> (TenantId, Uuid) {
    let tx = store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c, &Actor::cli(), &format!("T {}", Uuid::new_v4().simple()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = store.begin_tenant(t.id).await.unwrap();
    let i = integrations::create(&tx, c, &eng(), kind, kind, config)
        .await
        .unwrap();
    vault::set(&tx, c, master, &eng(), i.id, secret.as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (t.id, i.id)
}

async fn status(store: &Store, t: TenantId, id: Uuid) -> integrations::Status {
    let tx = store.begin_tenant(t).await.unwrap();
    integrations::get(&tx, id).await.unwrap().status
}

async fn alerts(store: &Store, t: TenantId) -> usize {
    let tx = store.begin_tenant(t).await.unwrap();
    vigil_orchestrator::pipeline::ingest::list(&tx, 100_000, 0)
        .await
        .unwrap()
        .len()
}

fn ts(base: chrono::DateTime<Utc>, secs: i64) -> String {
    (base + Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn crowdstrike_polls(db: TestDb) {
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let (run, cs) = sim::crowdstrike::start("cid", "secret").await;
    let hour_ago = now - Duration::hours(1);
    cs.add_alerts(
        (0..250)
            .map(|n| sim::crowdstrike::alert(n, &ts(hour_ago, n as i64), &format!("host-{}", n % 7), "ab")),
    );
    // Older than the first poll's 24 h look-back: not pulled.
    cs.add_alerts([sim::crowdstrike::alert(
        9999,
        &ts(now - Duration::days(3), 0),
        "old",
        "cd",
    )]);
    let (t, id) = pollable(
        &db.store,
        c,
        &master,
        "crowdstrike",
        json!({"base_url": run.base(), "client_id": "cid", "poll_seconds": 60}),
        "secret",
    )
    .await;
    let conn = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();

    let r = pollers::run_due(&conn, c, 10).await.unwrap();
    assert_eq!(
        r,
        PollReport {
            polled: 1,
            stored: 250,
            duplicates: 0,
            failed: 0
        }
    );
    let st = status(&db.store, t, id).await;
    assert_eq!(st.cursor.as_deref(), Some(ts(hour_ago, 249).as_str()));
    assert_eq!((st.pulled, st.failures, st.last_error), (250, 0, None));
    assert_eq!(st.next_poll_at, Some(now + Duration::seconds(60)));
    assert_eq!(alerts(&db.store, t).await, 250);
    assert_eq!(
        pollers::run_due(&conn, c, 10).await.unwrap(),
        PollReport::default(),
        "not due yet"
    );

    // Next round: the alert at the cursor comes again and is dropped.
    clock.advance(Duration::seconds(61));
    cs.add_alerts((250..255).map(|n| sim::crowdstrike::alert(n, &ts(now, n as i64), "host-9", "ef")));
    let r = pollers::run_due(&conn, c, 10).await.unwrap();
    assert_eq!((r.stored, r.duplicates), (5, 1), "{r:?}");
    assert_eq!(alerts(&db.store, t).await, 255);

    // A restarted node (new connectors, same database) starts at the cursor.
    let conn2 = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();
    clock.advance(Duration::seconds(61));
    let r = pollers::run_due(&conn2, c, 10).await.unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
    let cursor = status(&db.store, t, id).await.cursor;

    // Failures: cursor unchanged, a clear error, backoff (Retry-After honoured).
    for (fault, needle) in [
        (Fault::Status(429, Some(900)), "rate limited"),
        (Fault::Garbage, "not what its API documents"),
        (Fault::Huge, "larger than"),
        (Fault::Status(503, None), "vendor failed"),
    ] {
        clock.advance(Duration::hours(2));
        run.control
            .push_on("GET /alerts/queries/alerts/v2", fault.clone());
        let r = pollers::run_due(&conn, c, 10).await.unwrap();
        assert_eq!(r.failed, 1, "{fault:?}");
        let st = status(&db.store, t, id).await;
        assert_eq!(st.cursor, cursor, "{fault:?}");
        assert!(st.last_error.as_deref().unwrap().contains(needle), "{st:?}");
        if needle == "rate limited" {
            assert!(st.next_poll_at.unwrap() >= c.now() + Duration::seconds(900));
        }
    }
    assert_eq!(status(&db.store, t, id).await.failures, 4);
    // Recovery clears the error.
    clock.advance(Duration::hours(2));
    assert_eq!(pollers::run_due(&conn, c, 10).await.unwrap().polled, 1);
    let st = status(&db.store, t, id).await;
    assert_eq!((st.failures, st.last_error), (0, None));

    // Revoked at the vendor: the refusal is on the status, nothing stored.
    cs.revoke();
    clock.advance(Duration::hours(2));
    assert_eq!(pollers::run_due(&conn, c, 10).await.unwrap().failed, 1);
    assert!(
        status(&db.store, t, id)
            .await
            .last_error
            .unwrap()
            .contains("refused the credential")
    );
    assert_eq!(alerts(&db.store, t).await, 255);

    // No credential in Vigil: said so.
    let tx = db.store.begin_tenant(t).await.unwrap();
    vault::revoke(&tx, c, &eng(), id).await.unwrap();
    tx.commit().await.unwrap();
    clock.advance(Duration::hours(2));
    assert_eq!(pollers::run_due(&conn, c, 10).await.unwrap().failed, 1);
    assert!(
        status(&db.store, t, id)
            .await
            .last_error
            .unwrap()
            .contains("no credential")
    );
}

#[tokio::test]
async fn crowdstrike_polls_sqlite() {
    crowdstrike_polls(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn crowdstrike_polls_postgres() {
    crowdstrike_polls(TestDb::postgres().await).await;
}

async fn graylog_polls(db: TestDb) {
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let c: &dyn Clock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let (run, gl) = sim::graylog::start("gltoken").await;
    let base = now - Duration::minutes(30);
    gl.events
        .lock()
        .unwrap()
        .extend((0..130).map(|n| sim::graylog::event(n, &ts(base, n as i64), "web-1", "203.0.113.9")));
    let (t, id) = pollable(
        &db.store,
        c,
        &master,
        "graylog",
        json!({"base_url": run.base()}),
        "gltoken",
    )
    .await;
    let conn = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();
    let r = pollers::run_due(&conn, c, 10).await.unwrap();
    assert_eq!((r.polled, r.stored), (1, 130), "{r:?}");
    assert_eq!(
        status(&db.store, t, id).await.cursor.as_deref(),
        Some(ts(base, 129).as_str())
    );
    // Events arriving later, some exactly at the cursor's second.
    gl.events
        .lock()
        .unwrap()
        .push(sim::graylog::event(500, &ts(base, 129), "web-2", "198.51.100.1"));
    gl.events
        .lock()
        .unwrap()
        .push(sim::graylog::event(501, &ts(now, 30), "web-2", "198.51.100.1"));
    clock.advance(Duration::seconds(61));
    let r = pollers::run_due(&conn, c, 10).await.unwrap();
    assert_eq!(
        (r.stored, r.duplicates),
        (2, 1),
        "no gap at a shared timestamp: {r:?}"
    );
    assert_eq!(alerts(&db.store, t).await, 132);
    assert_eq!(run.control.count("POST /api/events/search"), 3);
}

#[tokio::test]
async fn graylog_polls_sqlite() {
    graylog_polls(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn graylog_polls_postgres() {
    graylog_polls(TestDb::postgres().await).await;
}
