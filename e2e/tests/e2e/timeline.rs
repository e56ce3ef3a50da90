//! A case's timeline over alerts of several formats: event time (not
//! arrival) orders it, ties keep arrival order, and every row's pointer
//! resolves to the time field in the stored alert.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{ManualClock, Role, identity, ingest, integrations, timeline};

async fn timeline_orders_by_event_time(db: TestDb) {
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
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
    // Arrival order: ECS (09:05), Graylog (09:01), CrowdStrike (09:03),
    // OCSF (no event time), ECS again at 09:01 (a tie with Graylog).
    let alerts = [
        json!({"@timestamp": "2026-11-22T09:05:00Z", "ecs": {"version": "8.11"}, "event": {"kind": "alert", "id": "e1"}, "host": {"name": "fin-ws-042"}, "message": "beacon"}),
        json!({"event": {"id": "g1", "event_definition_id": "d", "timestamp": "2026-11-22 09:01:00.000", "message": "failed logins", "fields": {"hostname": "fin-ws-042"}}, "index_name": "gl"}),
        json!({"composite_id": "cid:ind:1", "timestamp": "2026-11-22T09:03:00Z", "device": {"device_id": "d1", "hostname": "fin-ws-042"}, "description": "powershell"}),
        json!({"class_uid": 2004, "finding_info": {"uid": "o1", "title": "finding"}, "device": {"hostname": "fin-ws-042"}}),
        json!({"@timestamp": "2026-11-22T09:01:00Z", "ecs": {"version": "8.11"}, "event": {"kind": "alert", "id": "e2"}, "host": {"name": "fin-ws-042"}, "message": "tie"}),
    ];
    let texts: Vec<String> = alerts.iter().map(Value::to_string).collect();
    for text in &texts {
        let checked = ingest::check("auto", &[text.as_str()]).unwrap();
        ingest::store_checked(&tx, &c, hook.id, checked).await.unwrap();
        c.advance(chrono::Duration::seconds(1));
    }
    let cases = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0;
    assert_eq!(cases.len(), 1, "one host, one case");
    let rows = timeline::of_case(&tx, cases[0].id).await.unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.summary.as_str()).collect();
    assert_eq!(order, ["failed logins", "tie", "powershell", "beacon", "finding"]);
    assert_eq!(rows[4].placed_by, "received");
    assert!(rows[4].evidence.pointer.is_none());
    // Every pointer resolves, in the stored alert, to a value that gives the row's time.
    let stored = ingest::list(&tx, 100).await.unwrap();
    for r in &rows[..4] {
        let a = stored.iter().find(|a| a.id == r.evidence.alert_id).unwrap();
        let v: Value = serde_json::from_str(&a.raw).unwrap();
        let p = r.evidence.pointer.as_deref().unwrap();
        assert_eq!(timeline::event_time(&a.format, &v).unwrap(), (r.at, p));
        assert!(v.pointer(p).is_some());
    }
    assert!(
        timeline::of_case(&tx, uuid::Uuid::new_v4()).await.is_err(),
        "unknown case: 404"
    );
}

#[tokio::test]
async fn timeline_sqlite() {
    timeline_orders_by_event_time(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn timeline_postgres() {
    timeline_orders_by_event_time(TestDb::postgres().await).await;
}
