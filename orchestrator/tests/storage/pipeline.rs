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

/// The correlator's per-delivery lookups (the reachable index rows, the
/// prevalence of entities, the case page's "elsewhere") are indexed lookups
/// of the entity, whatever the number of entities asked for. On SQLite,
/// with no statistics, a long OR-list of (kind, value) pairs was planned
/// as a scan of all the tenant's rows, a cost growing with the estate:
/// each statement's plan must search by (tenant_id, kind, value). On both
/// backends the statements must find exactly the asked-for rows.
pub(super) async fn correlation_lookups_stay_indexed(db: TestDb) {
    use sea_orm::ActiveValue::Set;
    use sea_orm::EntityTrait;
    use vigil_orchestrator::pipeline::observables::{Kind, LOOKUP_CHUNK};
    use vigil_orchestrator::pipeline::{correlate, prevalence};
    use vigil_orchestrator::store::entity::entity_host;
    let c = clock();
    let t = tenant(&db, &c, "plans").await;
    let other = tenant(&db, &c, "other").await;
    let values: Vec<String> = (0..LOOKUP_CHUNK).map(|i| format!("acct-{i}")).collect();
    let asked: Vec<&str> = values.iter().map(String::as_str).collect();
    for (tenant, n) in [(t, 40usize), (other, 40)] {
        let tx = db.store.begin_tenant(tenant).await.unwrap();
        let now = c.now();
        let rows = (0..n).flat_map(move |i| {
            (0..3).map(move |h| entity_host::ActiveModel {
                tenant_id: Set(tenant.0),
                kind: Set(if i % 2 == 0 { "user" } else { "email" }.to_owned()),
                value: Set(format!("acct-{i}")),
                host: Set(format!("host-{h}")),
                last_seen: Set(now),
            })
        });
        entity_host::Entity::insert_many(rows)
            .exec_without_returning(&*tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let since = c.now() - Duration::days(7);
    let tx = db.store.begin_tenant(t).await.unwrap();
    let backend = tx.get_database_backend();
    let statements = [
        (
            "entity_hosts",
            prevalence::hosts_statement(backend, t.0, Kind::User, &asked, since),
        ),
        (
            "case_entities",
            correlate::reachable_statement(backend, t.0, Kind::User, &asked, 0, i64::MAX),
        ),
        (
            "observables",
            backend.build(&correlate::elsewhere_query(
                t.0,
                uuid::Uuid::nil(),
                Kind::User,
                &asked,
                5,
            )),
        ),
    ];
    if backend == DbBackend::Sqlite {
        for (table, st) in &statements {
            let plan = explain(&*tx, st, "EXPLAIN QUERY PLAN", "detail").await;
            let on_table: Vec<&String> = plan
                .iter()
                .filter(|d| d.contains(&format!(" {table} ")) || d.ends_with(&format!(" {table}")))
                .collect();
            assert!(!on_table.is_empty(), "{table}: {plan:?}");
            for d in on_table {
                assert!(
                    d.starts_with("SEARCH") && d.contains("(tenant_id=? AND kind=? AND value=?"),
                    "{table} is not searched by entity: {plan:?}"
                );
            }
        }
    } else {
        // PostgreSQL picks a sequential scan of tables this small; with
        // that ruled out, the index must be searched by the entity's value
        // too (a cached plan that searched by tenant and kind alone, the
        // value as a filter, read every row of the kind at breadth).
        tx.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
        for (table, st) in &statements[..2] {
            let plan = explain(&*tx, st, "EXPLAIN", "QUERY PLAN").await;
            let text = plan.join("\n");
            let scan = plan
                .iter()
                .position(|l| l.contains(&format!(" on {table} ")))
                .unwrap_or_else(|| panic!("{table} not read by an index: {text}"));
            let cond = plan[scan + 1..]
                .iter()
                .find(|l| l.contains("Index Cond"))
                .unwrap_or_else(|| panic!("{text}"));
            assert!(
                cond.contains("tenant_id") && cond.contains("kind") && cond.contains("value"),
                "{table} is not searched by entity: {text}"
            );
        }
    }
    // The prevalence statement finds the even users, with their three
    // hosts, and nothing of the other tenant or of another kind.
    let rows = tx.query_all_raw(statements[0].1.clone()).await.unwrap();
    let mut found: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.try_get("", "value").unwrap(), r.try_get("", "n").unwrap()))
        .collect();
    found.sort();
    let mut want: Vec<(String, i64)> = (0..40).step_by(2).map(|i| (format!("acct-{i}"), 3)).collect();
    want.sort();
    assert_eq!(found, want);
    for (_, st) in &statements[1..] {
        assert!(tx.query_all_raw(st.clone()).await.unwrap().is_empty());
    }
}

/// The lines of a statement's plan: `prefix` is the backend's EXPLAIN,
/// `column` the column its lines come in.
async fn explain(
    conn: &impl ConnectionTrait,
    st: &sea_orm::Statement,
    prefix: &str,
    column: &str,
) -> Vec<String> {
    let mut st = st.clone();
    st.sql = format!("{prefix} {}", st.sql);
    conn.query_all_raw(st)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", column).unwrap())
        .collect()
}
