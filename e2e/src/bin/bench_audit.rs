//! Audit benchmark (BENCHMARKS.md, issue 17), on SQLite and PostgreSQL
//! (`VIGIL_TEST_DATABASE_URL`, else 127.0.0.1:5432):
//!
//! 1. **Append cost**: 2,000 transactions that each update one case row
//!    (what a gate decision writes at the least), with and without its audit
//!    event (`audit::record`: chained at commit under the head's row lock).
//!    Ratio: without / with.
//! 2. **Verify** (`audit::chain::verify`, what `vigil audit verify` runs)
//!    over one tenant chain of 100,000 and then 1,000,000 events, with a
//!    signed checkpoint at the head: time, and how far the resident set rose
//!    above its size before (Linux VmHWM after resetting it). Ceilings: the
//!    same pages read without hashing (the read alone), and the driver's
//!    row-by-row floor (the same rows fetched one by one, not decoded).
//! 3. **Export** (`audit::export::Exporter`, JSON Lines, to a byte counter;
//!    what the API streams): time and peak memory, same chains.
//!
//! The chains are filled by multi-row INSERTs of events hashed as
//! `audit::record` hashes them (filling through a million transactions
//! would measure the fill, not the audit), then ANALYZEd on PostgreSQL.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-audit`
//! (`BENCH_BACKEND=sqlite` or `postgres` runs one; `BENCH_KEEP_DB=1` keeps
//! the database; `BENCH_PROFILE_READ=1` only reads the million-event chain
//! three times, for a profiler to attach).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeZone, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Statement};
use serde_json::json;
use vigil_orchestrator::audit::chain::{self, Policy, Scope, SigningKey};
use vigil_orchestrator::audit::{self, Actor, Event, Recorded, export};
use vigil_orchestrator::engine::{cases, state::Severity};
use vigil_orchestrator::store::entity::audit_event;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Backend, Clock, ManualClock, Role, TenantId};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `f`, returning its time and the peak memory it added (MiB).
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, f64) {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    let peak = status_kib("VmHWM:").saturating_sub(before) as f64 / 1024.0;
    (out, took, peak)
}

fn actor() -> Actor {
    Actor {
        label: "user:bench".into(),
        role: Some(Role::AnalystEdit),
        source_ip: Some("192.0.2.7".into()),
    }
}

async fn append_cost(db: &TestDb, c: &ManualClock, t: TenantId) -> (f64, f64) {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let case = cases::open(&tx, c, &actor(), "Bench case", Severity::High)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let backend = db.store.backend();
    let update = match backend {
        Backend::Postgres => "UPDATE cases SET updated_at = $1 WHERE id = $2",
        Backend::Sqlite => "UPDATE cases SET updated_at = ? WHERE id = ?",
    };
    let db_backend = db.store.conn().get_database_backend();
    let n = 2_000;
    let mut rates = [0.0f64; 2];
    // Interleaved rounds (without, with), best of three each.
    for _ in 0..3 {
        for (k, with_audit) in [(0, false), (1, true)] {
            let start = Instant::now();
            for i in 0..n {
                let tx = db.store.begin_tenant(t).await.unwrap();
                tx.execute_raw(Statement::from_sql_and_values(
                    db_backend,
                    update,
                    [c.now().into(), case.id.into()],
                ))
                .await
                .unwrap();
                if with_audit {
                    audit::record(
                        &tx,
                        c,
                        &actor(),
                        Event {
                            action: "gate.approve",
                            target: format!("case:{}", case.id),
                            summary: json!({"i": i, "hash": "0f".repeat(32)}),
                        },
                    )
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            rates[k] = rates[k].max(rate);
        }
    }
    (rates[0], rates[1])
}

/// Appends `n` events to the tenant's chain after its current head.
async fn fill(db: &TestDb, t: TenantId, n: i64) {
    let chain_name = chain::chain_of(Some(t));
    let conn = db.store.conn();
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    let (mut seq, mut prev) = chain::head(&owner, &chain_name)
        .await
        .unwrap()
        .unwrap_or((0, chain::GENESIS.to_owned()));
    let at0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let target = seq + n;
    while seq < target {
        let mut rows = Vec::with_capacity(1_000);
        for _ in 0..1_000.min(target - seq) {
            seq += 1;
            let e = Recorded {
                id: uuid::Uuid::now_v7(),
                tenant_id: Some(t.0),
                at: (at0 + chrono::Duration::milliseconds(seq * 50)).trunc_subsecs(6),
                actor: format!("user:{}", seq % 97),
                actor_role: Some("analyst_edit".into()),
                action: "case.note".into(),
                target: format!("case:{}", seq % 5_000),
                summary: json!({"before": {"state": "open"}, "after": {"state": "triage"}, "n": seq}),
                source_ip: Some("192.0.2.7".into()),
                request_id: Some(format!("{seq:032x}")),
                chain: Some(chain_name.clone()),
                seq: Some(seq),
                prev_hash: Some(prev.clone()),
                hash: None,
            };
            let h = chain::event_hash(&chain_name, seq, &prev, &e);
            prev = h.clone();
            rows.push(audit_event::ActiveModel {
                id: Set(e.id),
                tenant_id: Set(e.tenant_id),
                at: Set(e.at),
                actor: Set(e.actor),
                actor_role: Set(e.actor_role),
                action: Set(e.action),
                target: Set(e.target),
                summary: Set(e.summary),
                source_ip: Set(e.source_ip),
                chain: Set(e.chain),
                seq: Set(e.seq),
                prev_hash: Set(e.prev_hash),
                hash: Set(Some(h)),
                request_id: Set(e.request_id),
            });
        }
        audit_event::Entity::insert_many(rows).exec(&owner).await.unwrap();
    }
    let b = conn.get_database_backend();
    let sql = match b {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO audit_heads (chain, tenant_id, seq, hash) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
        }
        _ => {
            "INSERT INTO audit_heads (chain, tenant_id, seq, hash) VALUES (?, ?, ?, ?) \
             ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
        }
    };
    owner
        .execute_raw(Statement::from_sql_and_values(
            b,
            sql,
            [chain_name.into(), t.0.into(), seq.into(), prev.into()],
        ))
        .await
        .unwrap();
    // Fresh planner statistics, as autovacuum takes them after a bulk load
    // (with the stale ones PostgreSQL sorts the whole chain for each page).
    if b == sea_orm::DbBackend::Postgres {
        owner.execute_unprepared("ANALYZE audit_events").await.unwrap();
    }
    owner.close().await.unwrap();
}

/// The ceiling: the same pages read, no hashing.
async fn read_only(db: &TestDb, t: TenantId) -> u64 {
    let chain_name = chain::chain_of(Some(t));
    let mut after = 0;
    let mut n = 0;
    loop {
        let tx = db.store.begin_tenant_read(t).await.unwrap();
        let page = chain::events_after(&*tx, &chain_name, after, chain::PAGE)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let Some(last) = page.last().and_then(|e| e.seq) else {
            break;
        };
        after = last;
        n += page.len() as u64;
    }
    n
}

/// The driver's floor: the same statement's rows fetched, not decoded.
async fn fetch_only(db: &TestDb, t: TenantId) -> u64 {
    let chain_name = chain::chain_of(Some(t));
    let b = db.store.conn().get_database_backend();
    let sql = match b {
        sea_orm::DbBackend::Postgres => {
            "SELECT id, tenant_id, at, actor, actor_role, action, target, summary, source_ip, \
             request_id, chain, seq, prev_hash, hash FROM audit_events WHERE chain = $1 AND seq > $2 \
             ORDER BY seq LIMIT 5000"
        }
        _ => {
            "SELECT id, tenant_id, at, actor, actor_role, action, target, summary, source_ip, \
             request_id, chain, seq, prev_hash, hash FROM audit_events WHERE chain = ? AND seq > ? \
             ORDER BY seq LIMIT 5000"
        }
    };
    let (mut after, mut n) = (0i64, 0u64);
    loop {
        let tx = db.store.begin_tenant_read(t).await.unwrap();
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                b,
                sql,
                [chain_name.clone().into(), after.into()],
            ))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let Some(last) = rows.last() else { break };
        after = last.try_get_by_index::<i64>(11).unwrap();
        n += rows.len() as u64;
    }
    n
}

async fn export_bytes(db: &TestDb, c: &ManualClock, t: TenantId) -> (u64, u64) {
    let mut ex = export::Exporter::new(db.store.clone(), Scope::Tenant(t), None, None, c.now()).unwrap();
    let (mut bytes, mut lines, mut first) = (0u64, 0u64, true);
    while let Some(chunk) = ex.next_chunk().await.unwrap() {
        lines += chunk.len() as u64;
        bytes += export::render(export::Format::Jsonl, &chunk, first)
            .unwrap()
            .len() as u64;
        first = false;
    }
    (lines, bytes)
}

async fn run(db: TestDb, label: &str) -> Vec<String> {
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap());
    let tx = db.store.begin_platform().await.unwrap();
    let t = vigil_orchestrator::identity::create_tenant(&tx, &c, &Actor::cli(), "Bench")
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    let (without, with) = append_cost(&db, &c, t).await;
    let mut out = vec![format!(
        "| {label} | append | {without:.0} tx/s without the event, {with:.0} tx/s with it | ratio {:.2} |",
        with / without
    )];
    let key = SigningKey::generate();
    let mut have = 0i64;
    for n in [100_000i64, 1_000_000] {
        fill(&db, t, n - have).await;
        have = n;
        chain::checkpoint(&db.store, Scope::Tenant(t), &key, &c, Policy::default(), true)
            .await
            .unwrap();
        if n == 1_000_000 && std::env::var("BENCH_PROFILE_READ").is_ok() {
            eprintln!("profile now");
            for _ in 0..3 {
                read_only(&db, t).await;
            }
            std::process::exit(0);
        }
        let (read, ceiling, _) = measured(read_only(&db, t)).await;
        let (_, fetch, _) = measured(fetch_only(&db, t)).await;
        let (report, took, peak) = measured(chain::verify(
            &db.store,
            Scope::Tenant(t),
            Some(key.public()),
            &c,
            Policy::default(),
            &mut |_, _| {},
        ))
        .await;
        let report = report.unwrap();
        assert!(report.ok(), "{report:?}");
        assert!(report.events >= n as u64 && read >= n as u64);
        out.push(format!(
            "| {label} | verify {n} events | {:.2} s ({:.0} events/s), peak +{peak:.1} MiB | read alone {:.2} s: ratio {:.2}; rows fetched one by one, not decoded: {:.2} s |",
            took.as_secs_f64(),
            report.events as f64 / took.as_secs_f64(),
            ceiling.as_secs_f64(),
            ceiling.as_secs_f64() / took.as_secs_f64(),
            fetch.as_secs_f64()
        ));
        let ((lines, bytes), took, peak) = measured(export_bytes(&db, &c, t)).await;
        out.push(format!(
            "| {label} | export {n} events (JSON Lines) | {:.2} s, {:.0} MiB, {lines} lines, peak +{peak:.1} MiB | read alone {:.2} s: ratio {:.2} |",
            took.as_secs_f64(),
            bytes as f64 / 1048576.0,
            ceiling.as_secs_f64(),
            ceiling.as_secs_f64() / took.as_secs_f64()
        ));
        eprintln!("{}", out[out.len() - 2]);
        eprintln!("{}", out[out.len() - 1]);
    }
    if std::env::var("BENCH_KEEP_DB").is_ok() {
        eprintln!("kept {} (tenant {})", db.url, t.0);
        std::mem::forget(db);
    }
    out
}

#[tokio::main]
async fn main() {
    // BENCH_BACKEND=sqlite|postgres runs one (to profile it).
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    let mut rows = Vec::new();
    if only != "postgres" {
        rows.extend(run(TestDb::new(Backend::Sqlite).await, "SQLite").await);
    }
    if only != "sqlite" {
        rows.extend(run(TestDb::new(Backend::Postgres).await, "PostgreSQL").await);
    }
    println!("| database | what | figure | against the ceiling (same run) |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
