//! The storage suite: Alerts, observables and correlation.

use super::*;

pub(super) async fn alerts_sharing_entities_join_one_case(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::cases;
    use vigil_orchestrator::secrets::credentials::MasterKey;
    use vigil_orchestrator::{connect::integrations, pipeline::correlate, pipeline::ingest};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let master = MasterKey::generate();
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (hook, secret) = integrations::create_with_secret(
        &tx,
        &c,
        &master,
        &person("user:eng", Role::SecurityEngineer),
        "webhook",
        "edr",
        json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let secret = secret.unwrap();
    let send = |alert: serde_json::Value| {
        let body = alert.to_string();
        let ts = c.now().timestamp().to_string();
        let sig = ingest::sign(secret.as_bytes(), &ts, body.as_bytes());
        let (store, master) = (db.store.clone(), &master);
        let c = &c;
        async move {
            let d = ingest::Delivery {
                integration: hook.id,
                timestamp: Some(&ts),
                signature: Some(&sig),
                body: body.as_bytes(),
                source_ip: None,
            };
            ingest::receive(&store, c, master, d).await.unwrap().alert_ids[0]
        }
    };
    let case_of = |alert: uuid::Uuid| {
        let store = db.store.clone();
        async move {
            let tx = store.begin_tenant(a).await.unwrap();
            let (items, _) = cases::list(&tx, None, 100, 0).await.unwrap();
            for k in items {
                if correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(x, _)| *x == alert)
                {
                    return k.id;
                }
            }
            panic!("alert {alert} is in no open case");
        }
    };
    let a1 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a1", "title": "Beaconing"}, "device": {"hostname": "WS-1"}, "process": {"name": "svchost.exe"}})).await;
    let a2 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a2"}, "device": {"hostname": "ws-1"}, "dst_endpoint": {"ip": "185.220.101.4"}})).await;
    let a3 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a3", "title": "Scan"}, "dst_endpoint": {"ip": "203.0.113.9"}})).await;
    let (c1, c3) = (case_of(a1).await, case_of(a3).await);
    assert_eq!(case_of(a2).await, c1, "shares the host");
    assert_ne!(c1, c3);
    // One alert touching both cases merges them into the older.
    let a4 = send(json!({"class_uid": 2004, "finding_info": {"uid": "a4"}, "src_endpoint": {"ip": "185.220.101.4"}, "dst_endpoint": {"ip": "203.0.113.9"}})).await;
    for x in [a1, a2, a3, a4] {
        assert_eq!(case_of(x).await, c1, "everything connected is one case");
    }
    let tx = db.store.begin_tenant(a).await.unwrap();
    let links = correlate::alerts_of(&tx, c1).await.unwrap();
    let why_a2 = links.iter().find(|(x, _)| *x == a2).unwrap().1.clone().unwrap();
    assert_eq!(
        (
            why_a2["kind"].as_str(),
            why_a2["value"].as_str(),
            why_a2["pointer"].as_str()
        ),
        (Some("host"), Some("ws-1"), Some("/device/hostname"))
    );
    assert!(
        links.iter().find(|(x, _)| *x == a1).unwrap().1.is_none(),
        "a1 opened the case"
    );
    assert_eq!(cases::get(&tx, c1).await.unwrap().title, "Beaconing");
    tx.commit().await.unwrap();
    // A shared process name alone links nothing; nor does the window's edge.
    let a5 =
        send(json!({"class_uid": 2004, "finding_info": {"uid": "a5"}, "process": {"name": "svchost.exe"}}))
            .await;
    assert_ne!(case_of(a5).await, c1);
    c.advance(Duration::hours(25));
    let a6 =
        send(json!({"class_uid": 2004, "finding_info": {"uid": "a6"}, "device": {"hostname": "WS-1"}})).await;
    assert_ne!(case_of(a6).await, c1, "outside the 24 h window");
    // The analyst's pivot: the other live cases with each entity, not the
    // case itself, not the case merged into it.
    use vigil_orchestrator::pipeline::observables::Kind;
    let (c5, c6) = (case_of(a5).await, case_of(a6).await);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let wanted = [
        (Kind::Host, "ws-1".to_owned()),
        (Kind::Process, "svchost.exe".to_owned()),
        (Kind::Ip, "203.0.113.9".to_owned()),
        (Kind::Host, "nowhere".to_owned()),
    ];
    let other = correlate::elsewhere(&tx, c1, &wanted, 5).await.unwrap();
    let ids = |k: Kind, v: &str| {
        other
            .get(&(k, v.to_owned()))
            .map(|l| l.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    };
    assert_eq!(ids(Kind::Host, "ws-1"), Some(vec![c6]));
    assert_eq!(ids(Kind::Process, "svchost.exe"), Some(vec![c5]));
    assert_eq!(
        ids(Kind::Ip, "203.0.113.9"),
        None,
        "only in c1 (c3 merged into it)"
    );
    assert_eq!(ids(Kind::Host, "nowhere"), None);
    // Most recently changed first, at most `per`.
    let from_c6 = correlate::elsewhere(&tx, c6, &wanted, 5).await.unwrap();
    assert_eq!(
        from_c6.get(&(Kind::Host, "ws-1".into())).map(|l| l[0].0),
        Some(c1)
    );
    let one = correlate::elsewhere(&tx, c5, &wanted, 1).await.unwrap();
    assert_eq!(
        one.get(&(Kind::Process, "svchost.exe".into())).map(Vec::len),
        Some(1)
    );
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        cases::list(&tx, None, 100, 0).await.unwrap().1,
        3,
        "merged cases are not listed"
    );
    drop(tx);
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'case.merge'"
        )
        .await,
        1
    );
}
