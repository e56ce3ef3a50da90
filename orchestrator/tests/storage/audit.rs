//! The audit chain on both backends: gapless under concurrent writers,
//! signed checkpoints, and every kind of tampering named at its first
//! broken sequence number — tampering done as the schema owner, who can
//! switch the append-only triggers off, i.e. someone with the database.

use chrono::Duration;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;
use vigil_orchestrator::audit::chain::{self, BreakKind, Policy, Scope, SigningKey};
use vigil_orchestrator::audit::{self, Event, Recorded, export};
use vigil_orchestrator::store::entity::audit_event;

use super::*;

async fn write(db: &TestDb, c: &ManualClock, t: TenantId, n: usize, tag: &str) {
    for i in 0..n {
        let tx = db.store.begin_tenant(t).await.unwrap();
        audit::record(
            &tx,
            c,
            &person("user:ann", Role::AnalystEdit),
            Event {
                action: "case.note",
                target: format!("case:{tag}-{i}"),
                summary: json!({"i": i, "note": "é \"quoted\", with, commas", "x": 0.1}),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c.advance(Duration::seconds(1));
    }
}

async fn verify(db: &TestDb, c: &ManualClock, t: TenantId, key: &SigningKey) -> chain::Report {
    chain::verify(
        &db.store,
        Scope::Tenant(t),
        Some(key.public()),
        c,
        Policy::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap()
}

async fn checkpoint(db: &TestDb, c: &ManualClock, t: TenantId, key: &SigningKey) -> chain::Checkpoint {
    chain::checkpoint(&db.store, Scope::Tenant(t), key, c, Policy::default(), true)
        .await
        .unwrap()
        .expect("a checkpoint")
}

/// The schema owner, with the append-only triggers off.
async fn tamperer(db: &TestDb) -> DatabaseConnection {
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let off: &[&str] = match db.backend() {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_checkpoints_no_update",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ],
        Backend::Postgres => &[
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
            "ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only",
        ],
    };
    for sql in off {
        owner.execute_unprepared(sql).await.unwrap();
    }
    owner
}

/// Event `seq` of the tenant chain (the platform chain has its own seq 1…).
async fn event_at(owner: &DatabaseConnection, seq: i64) -> Recorded {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    audit_event::Entity::find()
        .filter(audit_event::Column::Chain.like("tenant:%"))
        .filter(audit_event::Column::Seq.eq(seq))
        .one(owner)
        .await
        .unwrap()
        .map(Recorded::from)
        .unwrap()
}

/// Rewrites event `seq`'s actor and hash (and the head if it is last).
async fn set_actor_and_hash(owner: &DatabaseConnection, seq: i64, actor: &str, prev: &str) -> String {
    let mut e = event_at(owner, seq).await;
    e.actor = actor.to_owned();
    let chain = e.chain.clone().unwrap();
    let h = chain::event_hash(&chain, seq, prev, &e);
    owner
        .execute_unprepared(&format!(
            "UPDATE audit_events SET actor = '{actor}', prev_hash = '{prev}', hash = '{h}' WHERE chain = '{chain}' AND seq = {seq}"
        ))
        .await
        .unwrap();
    h
}

pub(super) async fn audit_chain_is_gapless_under_concurrent_writers(db: TestDb) {
    let c = clock();
    let t = tenant(&db, &c, "A").await;
    let key = SigningKey::generate();
    let shared = std::sync::Arc::new(clock());
    // Two nodes: a second pool on the same database.
    let second = vigil_orchestrator::Store::connect(&vigil_orchestrator::StoreOptions::new(db.url.clone()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        let c = shared.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let tx = store.begin_tenant(t).await.unwrap();
                audit::record(
                    &tx,
                    c.as_ref(),
                    &Actor::system(),
                    Event {
                        action: "test.write",
                        target: format!("writer:{w}"),
                        summary: json!({"i": i}),
                    },
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let chain_name = chain::chain_of(Some(t));
    assert_eq!(
        count(
            &owner,
            &format!("SELECT COUNT(*) AS n FROM audit_events WHERE chain = '{chain_name}'")
        )
        .await,
        200
    );
    assert_eq!(
        count(
            &owner,
            &format!(
                "SELECT COUNT(DISTINCT seq) AS n FROM audit_events WHERE chain = '{chain_name}' AND seq BETWEEN 1 AND 200"
            )
        )
        .await,
        200,
        "sequence numbers 1..200, no gaps, no repeats"
    );
    let cp = checkpoint(&db, &c, t, &key).await;
    assert_eq!(cp.seq, 200);
    let r = verify(&db, &c, t, &key).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        (r.events, r.first_seq, r.last_seq, r.checkpoints),
        (200, Some(1), Some(200), 1)
    );
    // The platform chain holds the tenant's creation, on its own.
    let p = chain::verify(
        &db.store,
        Scope::Platform,
        Some(key.public()),
        &c,
        Policy::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert!(p.ok() && p.events >= 1, "{p:?}");
    // Without a key the walk is the same, and says the checkpoints were not checked.
    let nk = chain::verify(
        &db.store,
        Scope::Tenant(t),
        None,
        &c,
        Policy::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert!(nk.ok() && !nk.key_checked && nk.checkpoints == 0, "{nk:?}");
}

pub(super) async fn an_action_whose_audit_event_fails_does_not_happen(db: TestDb) {
    let c = clock();
    let t = tenant(&db, &c, "A").await;
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let refuse: &[&str] = match db.backend() {
        Backend::Sqlite => &[
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit store down'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
    };
    for sql in refuse {
        owner.execute_unprepared(sql).await.unwrap();
    }
    let tx = db.store.begin_tenant(t).await.unwrap();
    identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::AnalystEdit)
        .await
        .unwrap();
    let e = tx.commit().await.unwrap_err();
    assert!(e.to_string().contains("audit store down"), "{e}");
    assert_eq!(
        count(&owner, "SELECT COUNT(*) AS n FROM memberships").await,
        0,
        "the grant did not happen"
    );
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_heads WHERE tenant_id IS NOT NULL"
        )
        .await,
        0,
        "nor did the chain move"
    );
}

/// A tenant with 20 events, checkpoints at 10 and 20.
async fn signed_chain(db: &TestDb, c: &ManualClock, key: &SigningKey) -> TenantId {
    let t = tenant(db, c, "A").await;
    write(db, c, t, 10, "a").await;
    assert_eq!(checkpoint(db, c, t, key).await.seq, 10);
    write(db, c, t, 10, "b").await;
    assert_eq!(checkpoint(db, c, t, key).await.seq, 20);
    let r = verify(db, c, t, key).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.events, r.checkpoints), (20, 2));
    t
}

pub(super) async fn audit_tampering_is_named(db: TestDb) {
    let backend = db.backend();
    drop(db);
    let key = SigningKey::generate();
    // (scenario, expected first broken seq, kind)
    let scenarios: [(&str, i64, BreakKind); 10] = [
        ("edit", 5, BreakKind::Edited),
        ("edit and rehash", 5, BreakKind::Edited),
        ("delete", 7, BreakKind::Deleted),
        ("reorder", 3, BreakKind::Reordered),
        ("tail cut", 16, BreakKind::TailCut),
        ("tail cut, head fixed", 16, BreakKind::TailCut),
        // With the checkpoints beyond it deleted too, the cut chain's tail
        // is unsigned: once the interval has passed, that is the break.
        ("tail and its checkpoints cut", 11, BreakKind::CheckpointMissing),
        ("rewrite everything", 10, BreakKind::Rewritten),
        ("forged checkpoint", 15, BreakKind::CheckpointForged),
        ("re-signed with another key", 10, BreakKind::CheckpointForged),
    ];
    for (name, seq, kind) in scenarios {
        let db = TestDb::new(backend).await;
        let c = clock();
        let t = signed_chain(&db, &c, &key).await;
        let owner = tamperer(&db).await;
        let chain_name = chain::chain_of(Some(t));
        match name {
            "edit" => {
                owner
                    .execute_unprepared(
                        "UPDATE audit_events SET actor = 'mallory' WHERE chain LIKE 'tenant:%' AND seq = 5",
                    )
                    .await
                    .unwrap();
            }
            "edit and rehash" => {
                let prev = event_at(&owner, 4).await.hash.unwrap();
                set_actor_and_hash(&owner, 5, "mallory", &prev).await;
            }
            "delete" => {
                owner
                    .execute_unprepared("DELETE FROM audit_events WHERE chain LIKE 'tenant:%' AND seq = 7")
                    .await
                    .unwrap();
            }
            "reorder" => {
                for sql in [
                    "UPDATE audit_events SET seq = -3 WHERE chain LIKE 'tenant:%' AND seq = 3",
                    "UPDATE audit_events SET seq = 3 WHERE chain LIKE 'tenant:%' AND seq = 4",
                    "UPDATE audit_events SET seq = 4 WHERE chain LIKE 'tenant:%' AND seq = -3",
                ] {
                    owner.execute_unprepared(sql).await.unwrap();
                }
            }
            "tail cut" | "tail cut, head fixed" | "tail and its checkpoints cut" => {
                owner
                    .execute_unprepared("DELETE FROM audit_events WHERE chain LIKE 'tenant:%' AND seq > 15")
                    .await
                    .unwrap();
                if name != "tail cut" {
                    let h = event_at(&owner, 15).await.hash.unwrap();
                    owner
                        .execute_unprepared(&format!(
                            "UPDATE audit_heads SET seq = 15, hash = '{h}' WHERE chain = '{chain_name}'"
                        ))
                        .await
                        .unwrap();
                }
                if name == "tail and its checkpoints cut" {
                    owner
                        .execute_unprepared(
                            "DELETE FROM audit_checkpoints WHERE chain LIKE 'tenant:%' AND seq > 15",
                        )
                        .await
                        .unwrap();
                    c.advance(Duration::hours(1));
                }
            }
            "rewrite everything" => {
                // Event 2 changed, every later hash recomputed, head moved:
                // a chain consistent in itself. Only the signature tells.
                let mut prev = event_at(&owner, 1).await.hash.unwrap();
                for s in 2..=20 {
                    let who = if s == 2 {
                        "mallory".to_owned()
                    } else {
                        event_at(&owner, s).await.actor
                    };
                    prev = set_actor_and_hash(&owner, s, &who, &prev).await;
                }
                owner
                    .execute_unprepared(&format!(
                        "UPDATE audit_heads SET hash = '{prev}' WHERE chain = '{chain_name}'"
                    ))
                    .await
                    .unwrap();
            }
            "forged checkpoint" | "re-signed with another key" => {
                let mallory = SigningKey::generate();
                if name == "forged checkpoint" {
                    // The tail cut at 15, and a checkpoint the attacker
                    // signs for it.
                    owner
                        .execute_unprepared(
                            "DELETE FROM audit_checkpoints WHERE chain LIKE 'tenant:%' AND seq = 20",
                        )
                        .await
                        .unwrap();
                    owner
                        .execute_unprepared(&format!(
                            "UPDATE audit_heads SET seq = 15, hash = '{}' WHERE chain = '{chain_name}'",
                            event_at(&owner, 15).await.hash.unwrap()
                        ))
                        .await
                        .unwrap();
                    owner
                        .execute_unprepared(
                            "DELETE FROM audit_events WHERE chain LIKE 'tenant:%' AND seq > 15",
                        )
                        .await
                        .unwrap();
                    checkpoint(&db, &c, t, &mallory).await;
                } else {
                    // Every checkpoint replaced by the attacker's own.
                    owner
                        .execute_unprepared("DELETE FROM audit_checkpoints WHERE chain LIKE 'tenant:%'")
                        .await
                        .unwrap();
                    owner
                        .execute_unprepared(&format!(
                            "UPDATE audit_heads SET seq = 10, hash = '{}' WHERE chain = '{chain_name}'",
                            event_at(&owner, 10).await.hash.unwrap()
                        ))
                        .await
                        .unwrap();
                    let cp10 = checkpoint(&db, &c, t, &mallory).await;
                    assert_eq!(cp10.seq, 10);
                    owner
                        .execute_unprepared(&format!(
                            "UPDATE audit_heads SET seq = 20, hash = '{}' WHERE chain = '{chain_name}'",
                            event_at(&owner, 20).await.hash.unwrap()
                        ))
                        .await
                        .unwrap();
                    checkpoint(&db, &c, t, &mallory).await;
                }
            }
            _ => unreachable!(),
        }
        let r = verify(&db, &c, t, &key).await;
        let b = r
            .broken
            .clone()
            .unwrap_or_else(|| panic!("{name}: not detected: {r:?}"));
        assert_eq!((b.seq, b.kind), (seq, kind), "{name}: {b}");
        // And on an export made from the tampered database.
        let lines = export_lines(&db, &c, t, None).await;
        let r = verify_lines(&lines, &key);
        let b = r
            .broken
            .clone()
            .unwrap_or_else(|| panic!("{name}, exported: not detected: {r:?}"));
        assert_eq!((b.seq, b.kind), (seq, kind), "{name}, exported: {b}");
    }
}

async fn export_lines(db: &TestDb, c: &ManualClock, t: TenantId, range: Option<(i64, i64)>) -> Vec<String> {
    let base = clock().now();
    let (from, to) = match range {
        Some((a, b)) => (
            Some(base + Duration::seconds(a)),
            Some(base + Duration::seconds(b)),
        ),
        None => (None, None),
    };
    let mut ex = export::Exporter::new(db.store.clone(), Scope::Tenant(t), from, to, c.now()).unwrap();
    let mut out = Vec::new();
    let mut first = true;
    while let Some(lines) = ex.next_chunk().await.unwrap() {
        out.extend_from_slice(&export::render(export::Format::Jsonl, &lines, first).unwrap());
        first = false;
    }
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify_lines(lines: &[String], key: &SigningKey) -> chain::Report {
    let text = lines.join("\n");
    export::verify(
        text.as_bytes(),
        Some(key.public()),
        Some(Policy::default().max_unsigned()),
    )
    .unwrap()
}

pub(super) async fn audit_exports_verify_on_their_own(db: TestDb) {
    let c = clock();
    let key = SigningKey::generate();
    let t = signed_chain(&db, &c, &key).await;
    let lines = export_lines(&db, &c, t, None).await;
    // header, 2 checkpoints, 20 events, end
    assert_eq!(lines.len(), 24, "{lines:#?}");
    let r = verify_lines(&lines, &key);
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.events, r.checkpoints, r.last_seq), (20, 2, Some(20)));

    // An event line taken out: the first missing seq is named.
    let mut cut = lines.clone();
    let at = cut
        .iter()
        .position(|l| l.contains("\"seq\":8,") && l.contains("\"type\":\"event\""))
        .unwrap();
    cut.remove(at);
    let b = verify_lines(&cut, &key).broken.unwrap();
    assert_eq!((b.seq, b.kind), (8, BreakKind::Deleted), "{b}");
    // The file cut short (no end line).
    let b = verify_lines(&lines[..lines.len() - 1], &key).broken.unwrap();
    assert_eq!(b.kind, BreakKind::Malformed, "{b}");
    // An event edited in the file.
    let edited: Vec<String> = lines.iter().map(|l| l.replace("case:b-3", "case:b-9")).collect();
    let b = verify_lines(&edited, &key).broken.unwrap();
    assert_eq!((b.seq, b.kind), (14, BreakKind::Edited), "{b}");
    // Verified with another key: every checkpoint is a forgery.
    let other = SigningKey::generate();
    let b = verify_lines(&lines, &other).broken.unwrap();
    assert_eq!((b.seq, b.kind), (10, BreakKind::CheckpointForged), "{b}");

    // A time range: the events written in seconds 12..17 (seq 13..17 — the
    // tenant's first event is at second 0), verifiable on their own.
    let ranged = export_lines(&db, &c, t, Some((12, 17))).await;
    let r = verify_lines(&ranged, &key);
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.first_seq, r.last_seq), (Some(13), Some(17)), "{r:?}");

    // CSV: one row per line, fields quoted properly.
    let mut ex = export::Exporter::new(db.store.clone(), Scope::Tenant(t), None, None, c.now()).unwrap();
    let mut csv_bytes = Vec::new();
    let mut first = true;
    while let Some(l) = ex.next_chunk().await.unwrap() {
        csv_bytes.extend(export::render(export::Format::Csv, &l, first).unwrap());
        first = false;
    }
    let mut rd = csv::Reader::from_reader(csv_bytes.as_slice());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 24);
    let ev = rows.iter().find(|r| &r[0] == "event").unwrap();
    let summary: serde_json::Value = serde_json::from_str(&ev[7]).unwrap();
    assert_eq!(summary["note"], "é \"quoted\", with, commas");
}

pub(super) async fn the_request_log_keeps_thirty_days(db: TestDb) {
    use vigil_orchestrator::audit::requests::{self, Request};
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let row = |days_ago: i64, id: &str| Request {
        at: c.now() - Duration::days(days_ago),
        method: "GET".into(),
        route: "/api/v1/cases/{id}".into(),
        status: 200,
        ms: 2.0,
        actor: "token:t".into(),
        request_id: id.into(),
    };
    for t in [a, b] {
        let tx = db.store.begin_tenant(t).await.unwrap();
        requests::record(&tx, &[row(31, "old"), row(29, "recent"), row(0, "now")])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        requests::prune(&tx, c.now() - requests::retention())
            .await
            .unwrap(),
        1
    );
    let (rows, total) = requests::list(&tx, 10, 0).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        rows.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
        ["now", "recent"],
        "newest first"
    );
    // B's log is B's: untouched by A's pruning.
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert_eq!(requests::list(&tx, 10, 0).await.unwrap().1, 3);
    tx.commit().await.unwrap();
}

/// A tenant's signed-webhook integration, and a way to deliver one alert
/// through the real ingest path (its id back).
struct Hook {
    id: uuid::Uuid,
    secret: String,
}

async fn webhook(
    db: &TestDb,
    c: &ManualClock,
    master: &vigil_orchestrator::secrets::credentials::MasterKey,
    t: TenantId,
) -> Hook {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let (hook, secret) = vigil_orchestrator::connect::integrations::create_with_secret(
        &tx,
        c,
        master,
        &person("user:eng", Role::SecurityEngineer),
        "webhook",
        "edr",
        json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Hook {
        id: hook.id,
        secret: secret.unwrap(),
    }
}

async fn deliver(
    db: &TestDb,
    c: &ManualClock,
    master: &vigil_orchestrator::secrets::credentials::MasterKey,
    hook: &Hook,
    body: serde_json::Value,
) -> uuid::Uuid {
    use vigil_orchestrator::pipeline::ingest;
    let body = body.to_string();
    let ts = c.now().timestamp().to_string();
    let sig = ingest::sign(hook.secret.as_bytes(), &ts, body.as_bytes());
    let d = ingest::Delivery {
        integration: hook.id,
        timestamp: Some(&ts),
        signature: Some(&sig),
        body: body.as_bytes(),
        source_ip: None,
    };
    ingest::receive(&db.store, c, master, d).await.unwrap().alert_ids[0]
}

pub(super) async fn retention_deletes_what_expired_and_the_chain_still_verifies(db: TestDb) {
    use vigil_orchestrator::engine::cases;
    use vigil_orchestrator::pipeline::retention;
    use vigil_orchestrator::pipeline::{correlate, drafts};
    use vigil_orchestrator::secrets::credentials::MasterKey;
    // Long ago (the database itself refuses to prune audit events younger
    // than 90 days by its own clock).
    let c = ManualClock::new(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2025, 5, 1, 12, 0, 0).unwrap());
    let a = tenant(&db, &c, "A").await;
    let key = SigningKey::generate();
    let master = MasterKey::generate();
    let hook = webhook(&db, &c, &master, a).await;
    let send = |host: &'static str, uid: &'static str| {
        deliver(
            &db,
            &c,
            &master,
            &hook,
            json!({"class_uid": 2004, "finding_info": {"uid": uid, "title": "Beaconing"}, "device": {"hostname": host}}),
        )
    };
    let case_of = |alert: uuid::Uuid| {
        let store = db.store.clone();
        async move {
            let tx = store.begin_tenant(a).await.unwrap();
            for k in cases::list(&tx, None, 100, 0).await.unwrap().0 {
                if correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(x, _)| *x == alert)
                {
                    return k.id;
                }
            }
            panic!("alert {alert} in no case");
        }
    };
    let kept = send("ws-1", "x").await; // in a case that stays open
    let expired = send("ws-2", "y").await; // in a case that is closed
    let (kx, ky) = (case_of(kept).await, case_of(expired).await);
    assert_ne!(kx, ky);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let narrative = drafts::generate(&tx, &c, kx).await.unwrap();
    cases::comment(&tx, &c, &person("user:ann", Role::AnalystEdit), kx, "old note")
        .await
        .unwrap();
    let brief = drafts::generate(&tx, &c, ky).await.unwrap();
    drafts::decide(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        brief.id,
        true,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        use vigil_orchestrator::store::entity::case;
        // (Closing goes through a gate; here only its outcome matters.)
        case::Entity::update_many()
            .col_expr(case::Column::State, sea_orm::sea_query::Expr::value("closed"))
            .filter(case::Column::Id.eq(ky))
            .exec(&owner)
            .await
            .unwrap();
    }
    let signed = checkpoint(&db, &c, a, &key).await.seq;

    // 400 days later: something recent, then the run.
    c.advance(Duration::days(400));
    let recent = send("ws-3", "z").await;
    write(&db, &c, a, 2, "recent").await;
    {
        let tx = db.store.begin_tenant(a).await.unwrap();
        cases::comment(&tx, &c, &person("user:ann", Role::AnalystEdit), kx, "new note")
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let d = retention::run(&db.store, &c, a).await.unwrap();
    assert_eq!((d.alerts, d.narratives, d.briefs), (1, 1, 1), "{d:?}");
    assert_eq!(d.comments, 1, "the old comment, not the new: {d:?}");
    {
        let tx = db.store.begin_tenant(a).await.unwrap();
        let (left, _) = cases::comments(&tx, kx, 10, 0).await.unwrap();
        assert_eq!(
            left.iter().map(|k| k.body.as_str()).collect::<Vec<_>>(),
            ["new note"]
        );
    }
    assert!(
        d.observables >= 1 && d.case_links == 1 && d.sightings >= 1,
        "{d:?}"
    );
    assert_eq!(
        d.audit_events as i64, signed,
        "the front up to the checkpoint: {d:?}"
    );
    {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        use vigil_orchestrator::store::entity::{alert, draft, observable};
        let alerts = |ids: Vec<uuid::Uuid>| {
            alert::Entity::find()
                .filter(alert::Column::Id.is_in(ids))
                .count(&owner)
        };
        assert_eq!(alerts(vec![expired]).await.unwrap(), 0);
        assert_eq!(alerts(vec![kept, recent]).await.unwrap(), 2);
        let obs = observable::Entity::find()
            .filter(observable::Column::AlertId.eq(expired))
            .count(&owner)
            .await
            .unwrap();
        assert_eq!(obs, 0);
        let left = draft::Entity::find()
            .filter(draft::Column::Id.is_in([narrative.id, brief.id]))
            .count(&owner)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
    // The pruned chain verifies, from the checkpoint on; the run is in it.
    let r = verify(&db, &c, a, &key).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.pruned_before, Some(signed + 1));
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (log, _) = audit::list(&tx, 10, 0).await.unwrap();
    tx.commit().await.unwrap();
    let run = log.iter().find(|e| e.action == "retention.run").unwrap();
    assert_eq!(run.summary["deleted"]["alerts"], 1, "{:?}", run.summary);
    // And on an export.
    let lines = export_lines(&db, &c, a, None).await;
    assert!(verify_lines(&lines, &key).ok());
    // A second run finds nothing more.
    let again = retention::run(&db.store, &c, a).await.unwrap();
    assert_eq!(again, retention::Deleted::default());
    // The database refuses to delete a recent event, or one behind no
    // checkpoint, even for the serving role.
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(
        tx.execute_unprepared("DELETE FROM audit_events WHERE chain LIKE 'tenant:%'")
            .await
            .is_err()
    );
    drop(tx);
    // Windows within bounds, audited.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let admin = person("user:adm", Role::TenantAdmin);
    let short = retention::Windows {
        telemetry_days: 3,
        ..retention::Windows::default()
    };
    let e = retention::set_windows(&tx, &c, &admin, short).await.unwrap_err();
    assert!(
        e.to_string().contains("telemetry_days must be between 7 and 365"),
        "{e}"
    );
    let ok = retention::Windows {
        telemetry_days: 60,
        ..retention::Windows::default()
    };
    retention::set_windows(&tx, &c, &admin, ok).await.unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(retention::windows(&tx).await.unwrap().telemetry_days, 60);
    tx.commit().await.unwrap();
}

pub(super) async fn purge_erases_a_case_an_entity_and_old_telemetry(db: TestDb) {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use vigil_orchestrator::engine::{cases, gates, state::GateKind};
    use vigil_orchestrator::pipeline::observables::Kind;
    use vigil_orchestrator::pipeline::purge::{self, Target};
    use vigil_orchestrator::pipeline::{correlate, drafts};
    use vigil_orchestrator::secrets::credentials::MasterKey;
    use vigil_orchestrator::store::entity::{alert, case, case_alert, draft, entity_host, gate, observable};
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let master = MasterKey::generate();
    let hooks = [
        webhook(&db, &c, &master, a).await,
        webhook(&db, &c, &master, b).await,
    ];
    let send = |to: usize, body: serde_json::Value| deliver(&db, &c, &master, &hooks[to], body);
    let ocsf = |uid: &str, host: &str, email: &str| {
        json!({"class_uid": 2004, "finding_info": {"uid": uid, "title": "Phish"}, "device": {"hostname": host},
               "actor": {"user": {"email_addr": email}}})
    };
    let old = send(0, ocsf("o", "ws-7", "old@corp.example")).await;
    c.advance(Duration::days(10));
    let a1 = send(0, ocsf("a1", "ws-1", "ann@corp.example")).await;
    let a2 = send(0, ocsf("a2", "ws-1", "carl@corp.example")).await;
    let a3 = send(0, ocsf("a3", "ws-9", "ann@corp.example")).await;
    let b1 = send(1, ocsf("b1", "ws-1", "ann@corp.example")).await;
    let case_of = |t: TenantId, x: uuid::Uuid| {
        let store = db.store.clone();
        async move {
            let tx = store.begin_tenant(t).await.unwrap();
            for k in cases::list(&tx, None, 100, 0).await.unwrap().0 {
                if correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(y, _)| *y == x)
                {
                    return k.id;
                }
            }
            panic!("no case for {x}");
        }
    };
    let k1 = case_of(a, a1).await;
    assert_eq!(case_of(a, a2).await, k1);
    let tx = db.store.begin_tenant(a).await.unwrap();
    drafts::generate(&tx, &c, k1).await.unwrap();
    // Evidence of the case: a Graylog answer naming her, and one that does not.
    seed_evidence(
        &tx,
        k1,
        c.now(),
        r#"{"messages": [{"message": {"message": "login ann@corp.example"}}]}"#,
    )
    .await;
    seed_evidence(
        &tx,
        k1,
        c.now(),
        r#"{"messages": [{"message": {"message": "login annXcorp.example"}}]}"#,
    )
    .await;
    // Comments: one naming her (typed in capitals), one not.
    let ann_actor = person("user:ann", Role::AnalystEdit);
    cases::comment(&tx, &c, &ann_actor, k1, "Called Ann@Corp.Example about the login")
        .await
        .unwrap();
    cases::comment(&tx, &c, &ann_actor, k1, "phish wave, 3 mailboxes")
        .await
        .unwrap();
    gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        k1,
        GateKind::EscalateCritical,
        json!({"reason": "phish wave"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let alerts_left = |ids: Vec<uuid::Uuid>| {
        alert::Entity::find()
            .filter(alert::Column::Id.is_in(ids))
            .count(&owner)
    };
    let admin = person("user:adm", Role::TenantAdmin);

    // Everything mentioning ann@corp.example: a1 and a3, not a2, not B's.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let d = purge::purge(
        &tx,
        &c,
        &admin,
        Target::Entity {
            kind: Kind::Email,
            value: "ANN@corp.example".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(d.alerts, 2, "{d:?}");
    assert_eq!(d.evidence, 1, "the answer naming her, not the other: {d:?}");
    assert_eq!(d.comments, 1, "the comment naming her, not the other: {d:?}");
    assert_eq!(alerts_left(vec![a1, a3]).await.unwrap(), 0);
    assert_eq!(alerts_left(vec![a2, b1, old]).await.unwrap(), 3);
    let mentions = observable::Entity::find()
        .filter(observable::Column::Value.eq("ann@corp.example"))
        .count(&owner)
        .await
        .unwrap();
    assert_eq!(mentions, 1, "only B's alert still names her");
    let sightings = entity_host::Entity::find()
        .filter(entity_host::Column::Value.eq("ann@corp.example"))
        .filter(entity_host::Column::TenantId.eq(a.0))
        .count(&owner)
        .await
        .unwrap();
    assert_eq!(sightings, 0);
    // The audit log names the entity by its hash only.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (log, _) = audit::list(&tx, 5, 0).await.unwrap();
    tx.commit().await.unwrap();
    let ev = log.iter().find(|e| e.action == "data.purge").unwrap();
    assert!(!ev.summary.to_string().contains("ann@"), "{}", ev.summary);
    assert_eq!(ev.summary["deleted"]["alerts"], 2);

    // One case with everything derived from it.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let d = purge::purge(&tx, &c, &admin, Target::Case(k1)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (d.cases, d.gates, d.drafts, d.evidence, d.comments),
        (1, 1, 1, 1, 1),
        "{d:?}"
    );
    assert_eq!(alerts_left(vec![a2]).await.unwrap(), 0);
    for (what, n) in [
        (
            "case",
            case::Entity::find()
                .filter(case::Column::Id.eq(k1))
                .count(&owner)
                .await
                .unwrap(),
        ),
        (
            "links",
            case_alert::Entity::find()
                .filter(case_alert::Column::CaseId.eq(k1))
                .count(&owner)
                .await
                .unwrap(),
        ),
        (
            "gates",
            gate::Entity::find()
                .filter(gate::Column::CaseId.eq(k1))
                .count(&owner)
                .await
                .unwrap(),
        ),
        (
            "drafts",
            draft::Entity::find()
                .filter(draft::Column::CaseId.eq(k1))
                .count(&owner)
                .await
                .unwrap(),
        ),
    ] {
        assert_eq!(n, 0, "{what} of the purged case");
    }
    // Another tenant's case is not found, and nothing of it goes.
    let kb = case_of(b, b1).await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let e = purge::purge(&tx, &c, &admin, Target::Case(kb)).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    drop(tx);

    // All telemetry before a date.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let d = purge::purge(
        &tx,
        &c,
        &admin,
        Target::TelemetryBefore(c.now() - Duration::days(5)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(d.alerts, 1, "{d:?}");
    assert_eq!(alerts_left(vec![old]).await.unwrap(), 0);
    assert_eq!(alerts_left(vec![b1]).await.unwrap(), 1, "B keeps everything");
    // A value that is no such entity is refused.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let e = purge::purge(
        &tx,
        &c,
        &admin,
        Target::Entity {
            kind: Kind::Ip,
            value: "not-an-ip".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

pub(super) async fn tenant_deletion_leaves_no_row_behind(db: TestDb) {
    use vigil_orchestrator::identity::deletion;
    use vigil_orchestrator::pipeline::{drafts, retention};
    use vigil_orchestrator::secrets::credentials::MasterKey;
    // The grace period runs out by the database's clock too.
    let c = ManualClock::new(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2025, 3, 1, 9, 0, 0).unwrap());
    let (a, b) = (tenant(&db, &c, "Leaving").await, tenant(&db, &c, "Staying").await);
    let key = SigningKey::generate();
    let master = MasterKey::generate();
    for t in [a, b] {
        let tx = db.store.begin_tenant(t).await.unwrap();
        identity::add_member(
            &tx,
            &c,
            &Actor::cli(),
            &email(&format!("m@{}.example", t.0.simple())),
            Role::AnalystEdit,
        )
        .await
        .unwrap();
        identity::issue_api_token(&tx, &c, &Actor::cli(), "siem", Role::AnalystRead)
            .await
            .unwrap();
        retention::set_windows(&tx, &c, &Actor::cli(), retention::Windows::default())
            .await
            .unwrap();
        vigil_orchestrator::audit::requests::record(
            &tx,
            &[vigil_orchestrator::audit::requests::Request {
                at: c.now(),
                method: "GET".into(),
                route: "/api/v1/cases".into(),
                status: 200,
                ms: 1.0,
                actor: "token:x".into(),
                request_id: "r".into(),
            }],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let hook = webhook(&db, &c, &master, t).await;
        deliver(
            &db,
            &c,
            &master,
            &hook,
            json!({"class_uid": 2004, "finding_info": {"uid": "x", "title": "Beacon"}, "device": {"hostname": "ws-1"}}),
        )
        .await;
        let tx = db.store.begin_tenant(t).await.unwrap();
        let case = vigil_orchestrator::engine::cases::list(&tx, None, 1, 0)
            .await
            .unwrap()
            .0[0]
            .id;
        drafts::generate(&tx, &c, case).await.unwrap();
        seed_evidence(&tx, case, c.now(), r#"{"messages": []}"#).await;
        vigil_orchestrator::engine::cases::comment(
            &tx,
            &c,
            &person("user:ann", Role::AnalystEdit),
            case,
            "seen",
        )
        .await
        .unwrap();
        vigil_orchestrator::engine::cases::save_view(
            &tx,
            &c,
            vigil_orchestrator::UserId(uuid::Uuid::now_v7()),
            "mine",
            "assignee=me",
        )
        .await
        .unwrap();
        vigil_orchestrator::engine::gates::request(
            &tx,
            &c,
            &person("user:ann", Role::AnalystEdit),
            case,
            vigil_orchestrator::engine::state::GateKind::EscalateCritical,
            json!({"reason": "r"}),
            vigil_orchestrator::engine::gates::ESCALATE_AFTER,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        checkpoint(&db, &c, t, &key).await;
    }
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let rows_of = |t: TenantId, table: &str| {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = '{}'", t.0);
        let table = table.to_owned();
        let owner = &owner;
        async move {
            // (SQLite keeps uuids as blobs: compare through the store's own binding.)
            let backend = owner.get_database_backend();
            if backend == sea_orm::DbBackend::Sqlite {
                let row = owner
                    .query_one_raw(sea_orm::Statement::from_sql_and_values(
                        backend,
                        format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = ?"),
                        [t.0.into()],
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<i64>("", "n").unwrap()
            } else {
                count(owner, &sql).await
            }
        }
    };
    let mut order: Vec<&str> = deletion::ORDER.to_vec();
    order.sort();
    let mut tables: Vec<&str> = vigil_migrations::TENANT_TABLES.to_vec();
    tables.sort();
    assert_eq!(order, tables, "deletion knows every tenant table");
    let mut before = 0;
    for t in vigil_migrations::TENANT_TABLES {
        before += rows_of(a, t).await;
    }
    assert!(before > 20, "{before} rows to delete");

    // Scheduled, cancelled, scheduled again; nothing goes before it is due.
    let admin = person("user:root", Role::PlatformAdmin);
    let tx = db.store.begin_platform().await.unwrap();
    assert!(
        deletion::schedule(&tx, &c, &admin, a, Duration::hours(1))
            .await
            .is_err(),
        "a grace of 1 day at least"
    );
    deletion::schedule(&tx, &c, &admin, a, Duration::days(2))
        .await
        .unwrap();
    assert!(matches!(
        deletion::schedule(&tx, &c, &admin, a, Duration::days(2)).await,
        Err(Error::Conflict(_))
    ));
    deletion::cancel(&tx, &c, &admin, a).await.unwrap();
    deletion::schedule(&tx, &c, &admin, a, Duration::days(2))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.advance(Duration::days(1));
    assert!(
        deletion::run_due(&db.store, &c).await.unwrap().is_empty(),
        "not yet due"
    );
    assert_eq!(rows_of(a, "memberships").await, 1);
    c.advance(Duration::days(2));
    let done = deletion::run_due(&db.store, &c).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, a);
    assert_eq!(done[0].1 as i64, before, "every row counted");
    for t in vigil_migrations::TENANT_TABLES {
        assert_eq!(rows_of(a, t).await, 0, "{t}: a row of the deleted tenant is left");
        assert!(
            rows_of(b, t).await > 0
                || [
                    "sso_providers",
                    "sso_logins",
                    "sso_identities",
                    "sso_assertions",
                    "iocs",
                    "notifications",
                    "outbox",
                    "gate_approvals",
                    "integration_scopes",
                    "integration_status"
                ]
                .contains(t),
            "{t}: the other tenant lost rows"
        );
    }
    assert!(
        identity::get_tenant(db.store.conn(), a).await.is_err(),
        "the tenant itself is gone"
    );
    // The platform chain records it, and still verifies.
    let p = chain::verify(
        &db.store,
        Scope::Platform,
        None,
        &c,
        Policy::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert!(p.ok(), "{p:?}");
    // The other tenant's chain is whole.
    assert!(verify(&db, &c, b, &key).await.ok());
}

/// Verification and export read pages in their own way (on SQLite, a page
/// rendered as one JSON text); what they read is exactly what the entity
/// model reads, awkward values included, and it hashes to what was
/// written.
pub(super) async fn pages_read_what_the_model_reads(db: TestDb) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let c = clock();
    let t = tenant(&db, &c, "Pages").await;
    let summaries = [
        json!({"x": 0.30000000000000004, "big": 1e300, "tiny": 5e-324, "neg": -0.0}),
        json!({"max": u64::MAX, "min": i64::MIN, "deep": {"a": [[], {}, [null, false]]}}),
        json!({"text": "\u{1}\u{1f}\u{7f}\"\\/ é 😀 \u{2028}", "": ""}),
        json!("a bare string"),
        json!([1, "two", 3.5]),
        json!(null),
    ];
    for (i, summary) in summaries.iter().enumerate() {
        let tx = db.store.begin_tenant(t).await.unwrap();
        let actor = if i % 2 == 0 {
            person("user:ann", Role::AnalystEdit)
        } else {
            Actor {
                label: "system:correlation".into(),
                role: None,
                source_ip: None,
            }
        };
        audit::record(
            &tx,
            &c,
            &actor,
            Event {
                action: "case.note",
                target: format!("case:{i}\u{1}'\""),
                summary: summary.clone(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c.advance(Duration::microseconds(1_234_567));
    }
    let chain_name = chain::chain_of(Some(t));
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let by_model: Vec<Recorded> = audit_event::Entity::find()
        .filter(audit_event::Column::Chain.eq(chain_name.clone()))
        .order_by_asc(audit_event::Column::Seq)
        .all(&owner)
        .await
        .unwrap()
        .into_iter()
        .map(Recorded::from)
        .collect();
    assert_eq!(by_model.len(), summaries.len());
    let tx = db.store.begin_tenant_read(t).await.unwrap();
    let paged = chain::events_after(&*tx, &chain_name, 0, 1_000).await.unwrap();
    let limited = chain::events_after(&*tx, &chain_name, 1, 2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(paged, by_model);
    assert_eq!(limited, by_model[1..3].to_vec());
    let mut prev = chain::GENESIS.to_owned();
    for e in &paged {
        let h = chain::event_hash(&chain_name, e.seq.unwrap(), &prev, e);
        assert_eq!(Some(&h), e.hash.as_ref(), "seq {:?}", e.seq);
        prev = h;
    }
    let none = db.store.begin_tenant_read(t).await.unwrap();
    assert!(
        chain::events_after(&*none, &chain_name, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    none.commit().await.unwrap();
}
