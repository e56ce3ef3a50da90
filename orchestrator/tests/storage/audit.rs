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
