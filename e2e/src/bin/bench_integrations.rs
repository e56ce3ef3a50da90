//! Integration benchmarks (BENCHMARKS.md), each a ratio to a ceiling
//! measured on the same database in the same run:
//! * alerts pulled from the CrowdStrike simulator and ingested (stored
//!   verbatim, deduplicated, observables extracted, correlated; cursor
//!   advanced in the same transaction), alerts/s on SQLite and PostgreSQL;
//!   ceiling: batched INSERT (100 rows per transaction) of the same alert
//!   texts into a bare table;
//! * outbox write latency, approval committed → the Jira simulator receives
//!   the create, p50/p99 (an in-process worker woken by the commit, as in
//!   `vigil serve`); ceiling: the same client calling the simulator directly;
//! * decrypting a credential per use (`vault::open`: unwrap the tenant data
//!   key, open the credential) vs reading the same row in a tenant
//!   transaction, µs per use.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-integrations`
//! (PostgreSQL from VIGIL_TEST_DATABASE_URL, else 127.0.0.1:5432).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_e2e::sim;
use vigil_integrations::Kind;
use vigil_integrations::client::{FixedScopes, Guard, Http};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::connect::connectors::Connectors;
use vigil_orchestrator::engine::state::{GateKind, Severity};
use vigil_orchestrator::engine::{cases, gates, outbox};
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::store::entity::credential;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{
    Clock, Role, Store, SystemClock, TenantId, connect::integrations, connect::pollers, identity,
    secrets::vault,
};

const ALERTS: usize = 5_000;
const WRITES: usize = 200;
const DECRYPTS: usize = 2_000;

fn person(label: &str, role: Role) -> Actor {
    Actor {
        label: label.into(),
        role: Some(role),
        source_ip: None,
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn tenant(store: &Store) -> TenantId {
    let tx = store.begin_platform().await.unwrap();
    let t = identity::create_tenant(
        &tx,
        &SystemClock,
        &Actor::cli(),
        &format!("B {}", uuid::Uuid::new_v4().simple()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t.id
}

/// Pull + ingest alerts/s, and the batched-INSERT ceiling.
async fn ingest(db: &TestDb, label: &str) {
    let (run, cs) = sim::crowdstrike::start("cid", "secret").await;
    let now = SystemClock.now();
    let alerts: Vec<_> = (0..ALERTS)
        .map(|n| {
            let ts = (now - chrono::Duration::seconds(3600) + chrono::Duration::milliseconds(n as i64 * 500))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            sim::crowdstrike::alert(n, &ts, &format!("host-{}", n % 50), &format!("{:064x}", n % 200))
        })
        .collect();
    cs.add_alerts(alerts.clone());
    let master = Arc::new(MasterKey::generate());
    let t = tenant(&db.store).await;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let eng = person("user:eng", Role::SecurityEngineer);
    let i = integrations::create(
        &tx,
        &SystemClock,
        &eng,
        "crowdstrike",
        "Falcon",
        json!({"base_url": run.base(), "client_id": "cid"}),
    )
    .await
    .unwrap();
    vault::set(&tx, &SystemClock, &master, &eng, i.id, b"secret")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let conn = Connectors::new(db.store.clone(), master, Arc::new(SystemClock)).unwrap();
    let start = Instant::now();
    let mut stored = 0;
    while stored < ALERTS {
        let r = pollers::run_due(&conn, &SystemClock, 10).await.unwrap();
        assert_eq!(r.failed, 0);
        stored += r.stored;
    }
    let pulled = start.elapsed();

    // Ceiling: the same texts, batched INSERT, same database.
    let texts: Vec<String> = alerts.iter().map(|a| a.to_string()).collect();
    let ceil = vigil_e2e::batched_insert_ceiling(&db.url, &texts, 100).await;
    let rate = ALERTS as f64 / pulled.as_secs_f64();
    println!(
        "pull+ingest {label}: {ALERTS} alerts in {:.2} s = {rate:.0} alerts/s; batched INSERT ceiling {ceil:.0} rows/s; ratio {:.3}",
        pulled.as_secs_f64(),
        rate / ceil
    );
}

/// Approval → simulator receipt, p50/p99, and the direct-call ceiling.
async fn outbox_latency(db: &TestDb, label: &str) {
    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let master = Arc::new(MasterKey::generate());
    let t = tenant(&db.store).await;
    let c = &SystemClock;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let eng = person("user:eng", Role::SecurityEngineer);
    let j = integrations::create(
        &tx,
        c,
        &eng,
        "jira",
        "Jira",
        json!({"base_url": run.base(), "email": "soc@acme.example", "project_key": "SOC"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, &master, &eng, j.id, b"tok").await.unwrap();
    integrations::set_scope(
        &tx,
        c,
        &person("user:adm", Role::TenantAdmin),
        j.id,
        "issue:create",
        true,
    )
    .await
    .unwrap();
    let case = cases::open(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        "bench",
        Severity::High,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The worker: woken by the approval's commit, like `vigil serve`'s.
    let writer = Connectors::new(db.store.clone(), master.clone(), Arc::new(SystemClock)).unwrap();
    let store = db.store.clone();
    let worker = tokio::spawn(async move {
        loop {
            store.work_announced().await;
            outbox::run_due(&store, &SystemClock, &writer, 100).await.unwrap();
        }
    });
    let any = |_: GateKind| true;
    let bob = person("user:bob", Role::AnalystEdit);
    let mut lat = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let tx = db.store.begin_tenant(t).await.unwrap();
        let g = gates::request(
            &tx,
            c,
            &person("user:ann", Role::AnalystEdit),
            case.id,
            GateKind::TicketWrite,
            json!({"system": "jira", "operation": "create", "integration_id": j.id, "fields": {"summary": format!("bench {n}")}}),
            gates::ESCALATE_AFTER,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let tx = db.store.begin_tenant(t).await.unwrap();
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
        let approved = Instant::now();
        loop {
            if let Some(at) = jira.created_at.lock().unwrap().get(n).copied() {
                lat.push(at.saturating_duration_since(approved));
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    worker.abort();

    // Ceiling: the client alone (lookup + create), no database.
    let client = vigil_integrations::jira::Jira::new(
        &json!({"base_url": run.base(), "email": "soc@acme.example"}),
        "tok",
        Http::new(Duration::from_secs(30)).unwrap(),
        Guard::new(Kind::Jira, Arc::new(FixedScopes(vec!["issue:create"]))),
    )
    .unwrap();
    let mut direct = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let s = Instant::now();
        client
            .create_issue("SOC", "direct", "", "Task", &format!("direct-{n}"))
            .await
            .unwrap();
        direct.push(s.elapsed());
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    println!(
        "outbox {label}: approval → vendor receipt p50 {:.2} ms, p99 {:.2} ms; direct client call p50 {:.2} ms, p99 {:.2} ms; ratio p50 {:.1}×, p99 {:.1}×",
        ms(p50),
        ms(p99),
        ms(d50),
        ms(d99),
        ms(p50) / ms(d50),
        ms(p99) / ms(d99)
    );
}

/// Decrypt per use vs reading the row.
async fn decrypt(db: &TestDb, label: &str) {
    let master = MasterKey::generate();
    let t = tenant(&db.store).await;
    let c = &SystemClock;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let eng = person("user:eng", Role::SecurityEngineer);
    let i = integrations::create(
        &tx,
        c,
        &eng,
        "graylog",
        "G",
        json!({"base_url": "https://g.example"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, &master, &eng, i.id, b"a-secret-token")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let start = Instant::now();
    for _ in 0..DECRYPTS {
        let tx = db.store.begin_tenant(t).await.unwrap();
        vault::open(&tx, c, &master, i.id).await.unwrap();
        tx.commit().await.unwrap();
    }
    let open = start.elapsed() / DECRYPTS as u32;
    let start = Instant::now();
    for _ in 0..DECRYPTS {
        let tx = db.store.begin_tenant(t).await.unwrap();
        credential::Entity::find()
            .filter(credential::Column::IntegrationId.eq(i.id))
            .one(&*tx)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
    }
    let read = start.elapsed() / DECRYPTS as u32;
    println!(
        "decrypt {label}: vault::open {:.0} µs per use; reading the row alone {:.0} µs; ratio {:.2}",
        open.as_secs_f64() * 1e6,
        read.as_secs_f64() * 1e6,
        open.as_secs_f64() / read.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    for (label, db) in [
        ("SQLite", TestDb::sqlite().await),
        ("PostgreSQL", TestDb::postgres().await),
    ] {
        ingest(&db, label).await;
        outbox_latency(&db, label).await;
        decrypt(&db, label).await;
    }
}
