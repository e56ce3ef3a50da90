//! A case's timeline over alerts of several formats: event time (not
//! arrival) orders it, ties keep arrival order, and every row's pointer
//! resolves to the time field in the stored alert.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use vigil_e2e::sim;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{
    ManualClock, Role, connect::integrations, identity, pipeline::ingest, pipeline::timeline,
};

/// A tenant on a clock set to 2026-11-22 12:00 UTC, and a person of `role`
/// acting in it.
async fn tenant_and_person(db: &TestDb, label: &str, role: Role) -> (ManualClock, identity::Tenant, Actor) {
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &c, &Actor::cli(), "T")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let person = Actor {
        label: label.into(),
        role: Some(role),
        source_ip: None,
    };
    (c, t, person)
}

async fn timeline_orders_by_event_time(db: TestDb) {
    let (c, t, eng) = tenant_and_person(&db, "user:eng", Role::SecurityEngineer).await;
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
    let stored = ingest::list(&tx, 100, 0).await.unwrap();
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

/// Correlation settings apply to alerts from then on: an ignored entity
/// links nothing, a shorter window keeps distant alerts apart, and bad
/// settings are refused whole.
async fn correlation_settings_apply(db: TestDb) {
    use vigil_orchestrator::pipeline::correlate::{self, Ignored, Settings};
    let (c, t, eng) = tenant_and_person(&db, "user:eng", Role::SecurityEngineer).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let alert = |id: &str, host: &str| {
        // Both contact one server (a device's own address shared by two
        // machines would be a reassigned lease, which links nothing).
        json!({"composite_id": id, "device": {"device_id": id, "hostname": host}, "network_accesses": [{"remote_address": "10.0.0.7"}], "description": id})
            .to_string()
    };
    let ingest_one = |text: String| {
        let tx = &tx;
        let c = &c;
        async move {
            let checked = ingest::check("auto", &[text.as_str()]).unwrap();
            ingest::store_checked(tx, c, hook.id, checked).await.unwrap();
        }
    };
    let cases = || async {
        vigil_orchestrator::engine::cases::list(&tx, None, 100, 0)
            .await
            .unwrap()
            .1
    };

    // Default: a shared server IP (destination, weight 0.5 ≥ 0.5) links
    // two hosts' alerts.
    ingest_one(alert("a1", "ws-1")).await;
    ingest_one(alert("a2", "ws-2")).await;
    assert_eq!(cases().await, 1);

    // The IP is a shared proxy: ignored (typed defanged; stored normalized).
    let s = correlate::set_settings(
        &tx,
        &c,
        &eng,
        Settings {
            ignore: vec![Ignored {
                kind: "ip".into(),
                value: "10.0.0[.]7".into(),
            }],
            ..Settings::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.ignore[0].value, "10.0.0.7");
    ingest_one(alert("a3", "ws-3")).await;
    assert_eq!(cases().await, 2, "the ignored IP linked nothing");

    // A 1-hour window: the same host two hours later opens a new case.
    correlate::set_settings(
        &tx,
        &c,
        &eng,
        Settings {
            window_hours: 1,
            ..s.clone()
        },
    )
    .await
    .unwrap();
    c.advance(chrono::Duration::hours(2));
    ingest_one(alert("a4", "ws-3")).await;
    assert_eq!(cases().await, 3);
    c.advance(chrono::Duration::minutes(30));
    ingest_one(alert("a5", "ws-3")).await;
    assert_eq!(cases().await, 3, "within the window it joins");

    // Refused whole: nothing changes.
    for bad in [
        Settings {
            window_hours: 0,
            ..Settings::default()
        },
        Settings {
            min_weight: 2.0,
            ..Settings::default()
        },
        Settings {
            weights: [("planet".to_owned(), 0.5)].into(),
            ..Settings::default()
        },
        Settings {
            ignore: vec![Ignored {
                kind: "ip".into(),
                value: "not-an-ip".into(),
            }],
            ..Settings::default()
        },
    ] {
        assert!(correlate::set_settings(&tx, &c, &eng, bad).await.is_err());
    }
    assert_eq!(correlate::settings(&tx).await.unwrap().window_hours, 1);
    // Audit events take their place in the chain at commit.
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let log = vigil_orchestrator::audit::list(&tx, 100, 0).await.unwrap().0;
    assert_eq!(
        log.iter().filter(|e| e.action == "correlation.configure").count(),
        2
    );
}

#[tokio::test]
async fn correlation_settings_sqlite() {
    correlation_settings_apply(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn correlation_settings_postgres() {
    correlation_settings_apply(TestDb::postgres().await).await;
}

/// One delivery is correlated as a batch: its alerts group in memory by
/// shared entities (A–C by host, B–C by IP: one case, no merge needed),
/// each keeps its provenance, a repeat inside the delivery is a duplicate of
/// its first copy, and a later delivery joins through the entity index.
async fn a_delivery_correlates_as_one_batch(db: TestDb) {
    use vigil_orchestrator::pipeline::correlate;
    let (c, t, eng) = tenant_and_person(&db, "user:eng", Role::SecurityEngineer).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let alert = |id: &str, host: &str, ip: &str| {
        json!({"composite_id": id, "device": {"device_id": id, "hostname": host}, "network_accesses": [{"remote_address": ip}], "description": id})
            .to_string()
    };
    let (a, b, cc) = (
        alert("A", "ws-1", "10.0.0.1"),
        alert("B", "ws-2", "10.0.0.2"),
        alert("C", "ws-1", "10.0.0.2"),
    );
    let lone = alert("L", "ws-9", "10.0.0.9");
    let texts = [a.as_str(), b.as_str(), cc.as_str(), a.as_str(), lone.as_str()];
    let checked = ingest::check("auto", &texts).unwrap();
    let got = ingest::store_checked(&tx, &c, hook.id, checked).await.unwrap();
    assert_eq!((got.accepted, got.duplicates), (4, 1));
    assert_eq!(got.alert_ids[3], got.alert_ids[0], "the repeat is the first copy");
    let [ida, idb, idc, _, idl] = got.alert_ids[..] else {
        panic!("{got:?}")
    };
    let (cases, n) = vigil_orchestrator::engine::cases::list(&tx, None, 100, 0)
        .await
        .unwrap();
    assert_eq!(n, 2, "A, B, C in one case; L alone");
    let case_of = |id| {
        let tx = &tx;
        let cases = &cases;
        async move {
            for k in cases {
                if correlate::alerts_of(tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(a, _)| *a == id)
                {
                    return k.id;
                }
            }
            panic!("alert {id} in no case")
        }
    };
    let abc = case_of(ida).await;
    assert_eq!(case_of(idb).await, abc);
    assert_eq!(case_of(idc).await, abc);
    assert_ne!(case_of(idl).await, abc);
    let why: std::collections::HashMap<_, _> = correlate::alerts_of(&tx, abc)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(why[&ida], None, "A opened the case");
    let b_why = why[&idb].clone().unwrap();
    assert_eq!(
        (
            b_why["kind"].as_str(),
            b_why["value"].as_str(),
            b_why["via_alert"].as_str()
        ),
        (Some("ip"), Some("10.0.0.2"), Some(idc.to_string().as_str())),
        "B joined through C's IP"
    );
    let c_why = why[&idc].clone().unwrap();
    assert_eq!(
        (
            c_why["kind"].as_str(),
            c_why["value"].as_str(),
            c_why["via_alert"].as_str()
        ),
        (Some("host"), Some("ws-1"), Some(ida.to_string().as_str())),
        "C joined through A's host"
    );
    let (events, _) = vigil_orchestrator::audit::list(&tx, 100, 0).await.unwrap();
    assert!(
        !events.iter().any(|e| e.action == "case.merge"),
        "grouped before any case was opened: nothing to merge"
    );

    // A later delivery joins through the index, naming the alert it met.
    c.advance(chrono::Duration::minutes(5));
    let later = alert("D", "ws-2", "10.0.0.77");
    let checked = ingest::check("auto", &[later.as_str()]).unwrap();
    let got = ingest::store_checked(&tx, &c, hook.id, checked).await.unwrap();
    let idd = got.alert_ids[0];
    assert_eq!(case_of(idd).await, abc);
    let d_why = correlate::alerts_of(&tx, abc)
        .await
        .unwrap()
        .into_iter()
        .find(|(a, _)| *a == idd)
        .and_then(|(_, w)| w)
        .unwrap();
    assert_eq!(
        (d_why["value"].as_str(), d_why["via_alert"].as_str()),
        (Some("ws-2"), Some(idb.to_string().as_str()))
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn batch_correlation_sqlite() {
    a_delivery_correlates_as_one_batch(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn batch_correlation_postgres() {
    a_delivery_correlates_as_one_batch(TestDb::postgres().await).await;
}

/// A person merges and splits cases: alerts move with provenance, and later
/// alerts follow the entities to the case that now holds them.
async fn people_merge_and_split_cases(db: TestDb) {
    use vigil_orchestrator::engine::cases;
    use vigil_orchestrator::pipeline::correlate;
    let (c, t, ann) = tenant_and_person(&db, "user:ann", Role::AnalystEdit).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &c, &ann, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let mut n = 0;
    let mut ingest_host = |host: &'static str| {
        n += 1;
        let text = json!({"composite_id": format!("x{n}"), "device": {"device_id": format!("d{n}"), "hostname": host}, "description": host}).to_string();
        let tx = &tx;
        let c = &c;
        async move {
            let checked = ingest::check("auto", &[text.as_str()]).unwrap();
            ingest::store_checked(tx, c, hook.id, checked)
                .await
                .unwrap()
                .alert_ids[0]
        }
    };
    let mut a_alerts = vec![];
    for _ in 0..3 {
        a_alerts.push(ingest_host("host-a").await);
    }
    let mut b_alerts = vec![];
    for _ in 0..2 {
        b_alerts.push(ingest_host("host-b").await);
    }
    let case_of = |alert: uuid::Uuid| {
        let tx = &tx;
        async move {
            for k in cases::list(tx, None, 100, 0).await.unwrap().0 {
                if correlate::alerts_of(tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(a, _)| *a == alert)
                {
                    return k.id;
                }
            }
            panic!("alert {alert} in no case")
        }
    };
    let (x, y) = (case_of(a_alerts[0]).await, case_of(b_alerts[0]).await);
    assert_ne!(x, y);

    correlate::merge(&tx, &c, &ann, y, x).await.unwrap();
    assert_eq!(correlate::alerts_of(&tx, x).await.unwrap().len(), 5);
    b_alerts.push(ingest_host("host-b").await);
    assert_eq!(
        case_of(b_alerts[2]).await,
        x,
        "host-b now leads to the merged case"
    );
    assert!(
        correlate::merge(&tx, &c, &ann, y, x).await.is_err(),
        "already merged"
    );
    assert!(correlate::merge(&tx, &c, &ann, x, x).await.is_err());

    let z = correlate::split(&tx, &c, &ann, x, &b_alerts, Some("host-b on its own"))
        .await
        .unwrap();
    assert_eq!(correlate::alerts_of(&tx, x).await.unwrap().len(), 3);
    let moved = correlate::alerts_of(&tx, z).await.unwrap();
    assert_eq!(moved.len(), 3);
    assert!(
        moved
            .iter()
            .all(|(_, why)| why.as_ref().unwrap()["split_from"] == json!(x))
    );
    let later_b = ingest_host("host-b").await;
    let later_a = ingest_host("host-a").await;
    assert_eq!(case_of(later_b).await, z, "host-b follows the split");
    assert_eq!(case_of(later_a).await, x);
    let all_of_x: Vec<_> = a_alerts.iter().copied().chain([later_a]).collect();
    assert!(
        correlate::split(&tx, &c, &ann, x, &all_of_x, None).await.is_err(),
        "leaves one"
    );
    assert!(
        correlate::split(&tx, &c, &ann, x, &[later_b], None)
            .await
            .is_err(),
        "not in this case"
    );
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let log = vigil_orchestrator::audit::list(&tx, 100, 0).await.unwrap().0;
    assert!(
        log.iter()
            .any(|e| e.action == "case.merge" && e.actor == "user:ann")
    );
    assert!(
        log.iter()
            .any(|e| e.action == "case.split" && e.actor == "user:ann")
    );
}

#[tokio::test]
async fn merge_and_split_sqlite() {
    people_merge_and_split_cases(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn merge_and_split_postgres() {
    people_merge_and_split_cases(TestDb::postgres().await).await;
}

/// Indicator lists: CSV and STIX imports (all or nothing, normalized), and
/// the case's signals: its alerts' entities that are on the list.
async fn iocs_add_signals(db: TestDb) {
    use vigil_orchestrator::pipeline::iocs;
    let (c, t, eng) = tenant_and_person(&db, "user:eng", Role::SecurityEngineer).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let r = iocs::import(&tx, &c, &eng, "csv", "kind,value,description\nip,10.0.0[.]7,proxy C2\nfile_hash,AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12,dropper\n")
        .await
        .unwrap();
    assert_eq!((r.added, r.duplicates), (2, 0));
    let stix = r#"{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","pattern_type":"stix","name":"C2 domain","pattern":"[domain-name:value = 'C2.Evil.example'] OR [ipv4-addr:value = '10.0.0.7']"}]}"#;
    let r = iocs::import(&tx, &c, &eng, "stix", stix).await.unwrap();
    assert_eq!((r.added, r.duplicates), (1, 1), "the IP was already listed");
    // A bad line refuses the whole import.
    assert!(
        iocs::import(&tx, &c, &eng, "csv", "domain,ok.example\nip,not-an-ip")
            .await
            .is_err()
    );
    assert_eq!(iocs::list(&tx, 100).await.unwrap().len(), 3);

    let hook = integrations::create(&tx, &c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let text = json!({"composite_id": "s1", "device": {"device_id": "d1", "hostname": "ws-1", "local_ip": "10.0.0.7"}, "sha256": "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "description": "dropper ran"}).to_string();
    let checked = ingest::check("auto", &[text.as_str()]).unwrap();
    let alert = ingest::store_checked(&tx, &c, hook.id, checked)
        .await
        .unwrap()
        .alert_ids[0];
    let case = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0[0]
        .id;
    let mut signals = iocs::signals(&tx, case).await.unwrap();
    signals.sort_by(|a, b| a.kind.cmp(&b.kind));
    let got: Vec<_> = signals
        .iter()
        .map(|s| (s.kind.as_str(), s.pointer.as_str(), s.description.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("file_hash", "/sha256", Some("dropper")),
            ("ip", "/device/local_ip", Some("proxy C2"))
        ]
    );
    assert!(signals.iter().all(|s| s.alert_id == alert));
}

#[tokio::test]
async fn iocs_sqlite() {
    iocs_add_signals(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn iocs_postgres() {
    iocs_add_signals(TestDb::postgres().await).await;
}

/// Drafts: the deterministic drafter's brief cites evidence in every
/// sentence and passes the validator; hostile drafts are refused; a person
/// approves or rejects; executives see approved briefs only.
async fn drafts_cite_their_evidence(db: TestDb) {
    use vigil_orchestrator::pipeline::drafts::{self, Body, Citation, Recommendation, Sentence, Signal};
    let (c, t, ann) = tenant_and_person(&db, "user:ann", Role::AnalystEdit).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    vigil_orchestrator::pipeline::iocs::import(
        &tx,
        &c,
        &ann,
        "csv",
        "file_hash,ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12,dropper",
    )
    .await
    .unwrap();
    let hook = integrations::create(&tx, &c, &ann, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let mut ids = vec![];
    for (n, host) in ["ws-1", "ws-2", "ws-1"].iter().enumerate() {
        let text = json!({"composite_id": format!("d{n}"), "timestamp": format!("2026-11-22T09:0{n}:00Z"), "device": {"device_id": format!("x{n}"), "hostname": host}, "user_name": "jdoe", "sha256": "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "description": format!("dropper on {host}")}).to_string();
        let checked = ingest::check("auto", &[text.as_str()]).unwrap();
        ids.push(
            ingest::store_checked(&tx, &c, hook.id, checked)
                .await
                .unwrap()
                .alert_ids[0],
        );
    }
    // Another case's alert, for a hostile citation.
    let other = {
        let text = json!({"composite_id": "far", "device": {"device_id": "z", "hostname": "elsewhere"}, "description": "unrelated"}).to_string();
        let checked = ingest::check("auto", &[text.as_str()]).unwrap();
        ingest::store_checked(&tx, &c, hook.id, checked)
            .await
            .unwrap()
            .alert_ids[0]
    };
    let case = {
        let mut found = None;
        for k in vigil_orchestrator::engine::cases::list(&tx, None, 100, 0)
            .await
            .unwrap()
            .0
        {
            if vigil_orchestrator::pipeline::correlate::alerts_of(&tx, k.id)
                .await
                .unwrap()
                .iter()
                .any(|(a, _)| *a == ids[0])
            {
                found = Some(k.id);
            }
        }
        found.unwrap()
    };

    let d = drafts::generate(&tx, &c, case).await.unwrap();
    assert_eq!(
        (d.version, d.state.as_str(), d.drafter.as_str()),
        (1, "draft", "deterministic")
    );
    let body: Body = serde_json::from_value(d.body.clone()).unwrap();
    assert!(
        body.summary[0]
            .text
            .starts_with("3 alerts (crowdstrike) between 2026-11-22 09:00 UTC and 2026-11-22 09:02 UTC"),
        "{:?}",
        body.summary
    );
    assert!(
        body.entities
            .iter()
            .any(|s| s.text == "host ws-1 appears in 2 alert(s).")
    );
    assert_eq!(body.timeline.len(), 3);
    let rec = &body.recommendations[0];
    assert_eq!(rec.action, "open_ticket");
    assert!(
        rec.signals
            .iter()
            .any(|s| s.name.contains("on the indicator list"))
    );
    assert!((rec.total - rec.signals.iter().map(|s| s.weight).sum::<f64>()).abs() < 1e-9);
    drafts::validate(&tx, case, &body).await.unwrap();

    // Hostile drafts, each refused.
    let good = Citation::alert(ids[0], "/device/hostname");
    let sentence = |cites: Vec<Citation>| Sentence {
        text: "x".into(),
        cites,
    };
    let hostile = [
        Body {
            summary: vec![sentence(vec![])],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![Citation::alert(other, "/device/hostname")])],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![Citation::alert(ids[0], "/nowhere")])],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![Citation::alert(uuid::Uuid::new_v4(), "/")])],
            ..Body::default()
        },
        // A citation naming both an alert and an evidence item, or neither.
        Body {
            summary: vec![sentence(vec![Citation {
                evidence_id: Some(uuid::Uuid::new_v4()),
                ..good.clone()
            }])],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![Citation {
                alert_id: None,
                ..good.clone()
            }])],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![good.clone()])],
            recommendations: vec![Recommendation {
                action: "escalate_critical".into(),
                signals: vec![Signal {
                    name: "s".into(),
                    weight: 0.4,
                    cites: vec![good.clone()],
                }],
                total: 0.9,
            }],
            ..Body::default()
        },
        Body {
            summary: vec![sentence(vec![good.clone()])],
            recommendations: vec![Recommendation {
                action: "delete_everything".into(),
                signals: vec![Signal {
                    name: "s".into(),
                    weight: 0.4,
                    cites: vec![good.clone()],
                }],
                total: 0.4,
            }],
            ..Body::default()
        },
        Body::default(),
    ];
    for (n, h) in hostile.iter().enumerate() {
        assert!(
            drafts::store(&tx, &c, case, h, "llm").await.is_err(),
            "hostile draft {n} was accepted"
        );
    }

    // Decisions, and what an executive sees.
    assert!(drafts::list(&tx, case, true).await.unwrap().is_empty());
    assert!(
        drafts::decide(&tx, &c, &ann, d.id, false, Some(" "))
            .await
            .is_err(),
        "reason required"
    );
    let approved = drafts::decide(&tx, &c, &ann, d.id, true, None).await.unwrap();
    assert_eq!(approved.state, "approved");
    assert!(
        drafts::decide(&tx, &c, &ann, d.id, false, Some("no"))
            .await
            .is_err(),
        "decided stays decided"
    );
    let v2 = drafts::generate(&tx, &c, case).await.unwrap();
    assert_eq!(v2.version, 2);
    let seen: Vec<i32> = drafts::list(&tx, case, true)
        .await
        .unwrap()
        .iter()
        .map(|d| d.version)
        .collect();
    assert_eq!(seen, [1], "executives see approved briefs only");
}

#[tokio::test]
async fn drafts_sqlite() {
    drafts_cite_their_evidence(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn drafts_postgres() {
    drafts_cite_their_evidence(TestDb::postgres().await).await;
}

/// Correlation against the ground truth of the fixture corpus: pairwise
/// precision and recall of the case grouping, with the tenant's proxy IP on
/// the ignore list (as a SOC would configure it) and without.
#[tokio::test]
async fn correlation_precision_and_recall_on_the_corpus() {
    use crate::correlation::{Delivery, run};
    use vigil_orchestrator::pipeline::corpus;
    use vigil_orchestrator::pipeline::correlate::{Ignored, Settings};
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let samples = corpus::generate(2026, 3, 40, start);
    let mut results = vec![];
    for ignore_proxy in [true, false] {
        let db = TestDb::sqlite().await;
        let settings = ignore_proxy.then(|| Settings {
            ignore: vec![Ignored {
                kind: "ip".into(),
                value: corpus::PROXY_IP.into(),
            }],
            ..Settings::default()
        });
        let predicted = run(&db, &samples, Delivery::Live, settings).await;
        let truth: Vec<usize> = samples.iter().map(|s| s.incident).collect();
        let tenant: Vec<usize> = samples.iter().map(|s| s.tenant).collect();
        let (p, r) = corpus::precision_recall(&truth, &predicted, &tenant);
        println!(
            "corpus of {} alerts, proxy ignored: {ignore_proxy}: precision {p:.3}, recall {r:.3}",
            samples.len()
        );
        results.push((p, r));
    }
    let ((p, r), (p_noisy, r_noisy)) = (results[0], results[1]);
    assert!(p >= 0.99 && r >= 0.99, "tuned: precision {p}, recall {r}");
    assert!(
        r_noisy >= 0.99,
        "recall does not depend on the ignore list: {r_noisy}"
    );
    // The proxy is in a third of all alerts, on every host: its prevalence
    // says it is noise without anyone listing it.
    assert!(
        p_noisy >= 0.99,
        "an unignored proxy IP is found as noise: {p_noisy}"
    );
}

/// Drafts by the tenant's model, over both APIs: sanitized context out
/// (secrets and e-mail addresses redacted), the answer through the same
/// validator; a refused or unreachable answer leaves the deterministic
/// draft, which says why.
#[tokio::test]
async fn model_drafts_pass_the_same_validator() {
    use std::sync::Arc;
    use vigil_orchestrator::connect::connectors::Connectors;
    use vigil_orchestrator::pipeline::drafts;
    use vigil_orchestrator::secrets::credentials::MasterKey;
    let db = TestDb::sqlite().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let c: &ManualClock = clock.as_ref();
    let master = Arc::new(MasterKey::generate());
    let (run, model) = sim::llm::start("sk-test").await;
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c, &Actor::cli(), "T").await.unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let text = json!({"composite_id": "m1", "timestamp": "2026-11-22T09:00:00Z", "device": {"device_id": "x", "hostname": "ws-9"}, "description": "login as j.doe@corp.example with password=hunter2 key AKIAABCDEFGHIJKLMNOP badge EMP-123456"}).to_string();
    let checked = ingest::check("auto", &[text.as_str()]).unwrap();
    let alert = ingest::store_checked(&tx, c, hook.id, checked)
        .await
        .unwrap()
        .alert_ids[0];
    let case = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0[0]
        .id;
    let mut llms = vec![];
    for api in ["openai", "anthropic"] {
        let i = integrations::create(
            &tx,
            c,
            &eng,
            "llm",
            api,
            // The tenant's own PII pattern: badge numbers.
            json!({"base_url": run.base(), "api": api, "model": "m-1",
                   "redact": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]}),
        )
        .await
        .unwrap();
        vigil_orchestrator::secrets::vault::set(&tx, c, master.as_ref(), &eng, i.id, b"sk-test")
            .await
            .unwrap();
        llms.push(i.id);
    }
    tx.commit().await.unwrap();
    let conn = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();

    // Scope off: nothing leaves Vigil; the deterministic draft says why.
    let d = drafts::generate_with_model(&conn, c, t.id, case, llms[0])
        .await
        .unwrap();
    assert!(
        d.drafter.contains("model unavailable") && d.drafter.contains("context:send"),
        "{}",
        d.drafter
    );
    assert!(model.requests.lock().unwrap().is_empty());
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    for id in &llms {
        integrations::set_scope(
            &tx,
            c,
            &Actor {
                label: "user:adm".into(),
                role: Some(Role::TenantAdmin),
                source_ip: None,
            },
            *id,
            "context:send",
            true,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    // A valid answer (cites the case's alert) is stored as the model's draft.
    let good = json!({
        "summary": [{"text": "Model summary of ws-9.", "cites": [{"alert_id": alert, "pointer": "/device/hostname"}]}],
        "scope": [], "entities": [], "timeline": [],
        "recommendations": [{"action": "open_ticket", "signals": [{"name": "credential in clear text", "weight": 0.5, "cites": [{"alert_id": alert, "pointer": "/description"}]}], "total": 0.5}]
    });
    for (n, id) in llms.iter().enumerate() {
        *model.answer.lock().unwrap() = format!("```json\n{good}\n```");
        let d = drafts::generate_with_model(&conn, c, t.id, case, *id)
            .await
            .unwrap();
        assert_eq!(d.drafter, if n == 0 { "openai:m-1" } else { "anthropic:m-1" });
        assert_eq!(d.body["summary"][0]["text"], "Model summary of ws-9.");
    }
    // What left Vigil was sanitized.
    for r in model.requests.lock().unwrap().iter() {
        assert!(
            !r.contains("hunter2")
                && !r.contains("AKIAABCDEFGHIJKLMNOP")
                && !r.contains("j.doe@corp.example")
                && !r.contains("EMP-123456"),
            "{r}"
        );
        assert!(r.contains("[redacted]"));
        assert!(r.contains("[redacted-employee_id]"), "{r}");
    }
    // Hostile answers: uncited, citing elsewhere, or not a draft at all.
    for bad in [
        json!({"summary": [{"text": "The attacker is APT29.", "cites": []}], "scope": [], "entities": [], "timeline": [], "recommendations": []}).to_string(),
        json!({"summary": [{"text": "x", "cites": [{"alert_id": uuid::Uuid::new_v4(), "pointer": "/"}]}], "scope": [], "entities": [], "timeline": [], "recommendations": []}).to_string(),
        "I think you should escalate.".to_owned(),
    ] {
        *model.answer.lock().unwrap() = bad;
        let d = drafts::generate_with_model(&conn, c, t.id, case, llms[1]).await.unwrap();
        assert!(d.drafter.starts_with("deterministic (model"), "{}", d.drafter);
        assert!(!d.body["summary"][0]["text"].as_str().unwrap().contains("APT29"));
    }
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert_eq!(
        drafts::list(&tx, case, false).await.unwrap().len(),
        6,
        "every attempt is a version"
    );
}
