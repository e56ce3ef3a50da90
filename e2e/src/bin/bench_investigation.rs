//! Investigation benchmark (BENCHMARKS.md "Investigation"), on SQLite and
//! PostgreSQL: alerts arrive through the ingest path at a steady rate spread
//! over many hosts (one case each), the engine's workers run the
//! investigation (collect evidence from the loopback CrowdStrike and Graylog
//! simulators, sequence, assess, draft deterministically, propose), and for
//! every alert the time from its commit to the end of the round that covers
//! it (draft stored, gates proposed) is measured. The round starts
//! [`investigation::DEBOUNCE`] after the alert that scheduled it, so that
//! much is the design, not the engine: it is reported beside the figures.
//! Throughput: one delivery then names as many new hosts as there are cases,
//! so that many rounds fall due together; rounds completed per second from
//! the first one's start to the last one's end, and the step transitions
//! they make, as a ratio to a no-op chain of durable steps on the same
//! database with the same workers in the same run (the engine's ceiling).
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-investigation`
//! (PostgreSQL from VIGIL_TEST_DATABASE_URL, else 127.0.0.1:5432).
//! `BENCH_RATE` (alerts/s, 500), `BENCH_CASES` (200), `BENCH_SECONDS` (10),
//! `BENCH_SENDERS` (deliveries in flight at once, 4), `BENCH_BATCH` (alerts
//! per delivery, 10).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use vigil_e2e::sim;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::connect::connectors::Connectors;
use vigil_orchestrator::connect::integrations;
use vigil_orchestrator::engine::steps::{self, NewStep, StepContext, StepDone, StepFailure, StepHandler};
use vigil_orchestrator::pipeline::{ingest, investigation};
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::secrets::vault;
use vigil_orchestrator::store::Backend;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Clock, Role, SystemClock, TenantId, identity};

const WORKERS: usize = 4;
/// Deliveries in flight at once (`BENCH_SENDERS`).
fn senders() -> usize {
    env("BENCH_SENDERS", 4).max(1) as usize
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Key = (uuid::Uuid, i64);

/// Records when a round's first step starts and when its last one ends, and
/// how long each step's handler took.
struct Timed {
    inner: Arc<dyn StepHandler>,
    kind: &'static str,
    starts: bool,
    ends: bool,
    at: Arc<Mutex<HashMap<Key, Instant>>>,
    took: Arc<Mutex<HashMap<&'static str, Vec<Duration>>>>,
}

#[async_trait::async_trait]
impl StepHandler for Timed {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure> {
        let key = (
            ctx.case_id.unwrap_or_default(),
            ctx.input.get("round").and_then(|r| r.as_i64()).unwrap_or(1),
        );
        if self.starts {
            self.at.lock().unwrap().entry(key).or_insert_with(Instant::now);
        }
        let t0 = Instant::now();
        let r = self.inner.run(ctx).await;
        self.took
            .lock()
            .unwrap()
            .entry(self.kind)
            .or_default()
            .push(t0.elapsed());
        if self.ends && r.is_ok() {
            self.at.lock().unwrap().entry(key).or_insert_with(Instant::now);
        }
        r
    }
}

/// A no-op step that enqueues its successor (the engine's ceiling).
struct Chain(Arc<AtomicU64>);

#[async_trait::async_trait]
impl StepHandler for Chain {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(StepDone {
            output: json!({}),
            next: vec![NewStep::new("bench.chain", ctx.case_id, json!({}))],
        })
    }
}

fn workers(
    db: &TestDb,
    registry: &steps::Registry,
    stop: &Arc<AtomicBool>,
    name: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|n| {
            let (store, registry, stop) = (db.store.clone(), registry.clone(), stop.clone());
            let owner = format!("{name}-{n}");
            tokio::spawn(async move {
                let mut w = steps::Worker::new(owner);
                w.batch = 4;
                while !stop.load(Ordering::Relaxed) {
                    let r = steps::run_once(&store, &SystemClock, &registry, &w)
                        .await
                        .unwrap();
                    if r.claimed() == 0 {
                        // Idle: what `vigil serve`'s worker does without a wake-up.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect()
}

async fn ceiling(db: &TestDb, tenant: TenantId) -> f64 {
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    for _ in 0..WORKERS {
        steps::enqueue(&tx, &SystemClock, NewStep::new("bench.chain", None, json!({})))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let registry = steps::Registry::default().with("bench.chain", Arc::new(Chain(count.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = workers(db, &registry, &stop, "chain");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let done = count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done
}

fn alert(n: u64, host: usize, at: chrono::DateTime<Utc>) -> String {
    json!({
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 4,
        "time": at.timestamp_millis(),
        "metadata": {"version": "1.3.0", "product": {"name": "EDR"}},
        "finding_info": {"uid": format!("bench-{n}"), "title": "Credential dumping from LSASS",
                         "attacks": [{"tactic": {"name": "Credential Access", "uid": "TA0006"}}]},
        "device": {"hostname": format!("bench-ws-{host:04}"), "ip": format!("10.{}.{}.7", host / 250, host % 250)},
        "actor": {"user": {"name": format!("user{host:04}")}},
    })
    .to_string()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(db: TestDb, label: &str) {
    let (rate, cases, seconds) = (
        env("BENCH_RATE", 500),
        env("BENCH_CASES", 200) as usize,
        env("BENCH_SECONDS", 10),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let master = Arc::new(MasterKey::generate());
    let (cs_run, falcon) = sim::crowdstrike::start("cid", "secret").await;
    let (gl_run, graylog) = sim::graylog::start("gl").await;
    let (jira_run, _jira) = sim::jira::start("soc@bench.example", "tok").await;
    *falcon.devices.lock().unwrap() = (0..cases)
        .map(|h| sim::crowdstrike::device(&format!("dev-{h}"), &format!("bench-ws-{h:04}"), "normal"))
        .collect();
    let now = clock.now();
    *graylog.messages.lock().unwrap() = (0..cases)
        .map(|h| {
            sim::graylog::message(
                h,
                &(now - chrono::Duration::minutes(2))
                    .format("%Y-%m-%d %H:%M:%S%.3f")
                    .to_string(),
                &format!("bench-ws-{h:04}"),
                &format!("4624 logon user{h:04} on bench-ws-{h:04}"),
            )
        })
        .collect();
    let tx = db.store.begin_platform().await.unwrap();
    let tenant = identity::create_tenant(&tx, clock.as_ref(), &Actor::cli(), "bench")
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::TenantAdmin),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let c = clock.as_ref();
    let hook = integrations::create(&tx, c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    for (kind, config, secret) in [
        (
            "crowdstrike",
            json!({"base_url": cs_run.base(), "client_id": "cid"}),
            "secret",
        ),
        ("graylog", json!({"base_url": gl_run.base()}), "gl"),
        (
            "jira",
            json!({"base_url": jira_run.base(), "email": "soc@bench.example", "project_key": "SOC"}),
            "tok",
        ),
    ] {
        let i = integrations::create(&tx, c, &eng, kind, kind, config)
            .await
            .unwrap();
        vault::set(&tx, c, master.as_ref(), &eng, i.id, secret.as_bytes())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let ceiling = ceiling(&db, tenant).await;
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&owner, "DELETE FROM steps")
        .await
        .unwrap();

    // The investigation, its first and last steps timed.
    let conn = Connectors::new(db.store.clone(), master.clone(), clock.clone()).unwrap();
    let base = investigation::registry(steps::Registry::default(), conn);
    let (started, ended) = (
        Arc::new(Mutex::new(HashMap::new())),
        Arc::new(Mutex::new(HashMap::new())),
    );
    let took = Arc::new(Mutex::new(HashMap::new()));
    let mut registry = base.clone();
    for (i, kind) in investigation::STEPS.iter().enumerate() {
        let (starts, ends) = (i == 0, i == investigation::STEPS.len() - 1);
        registry = registry.with(
            kind,
            Arc::new(Timed {
                inner: base.handler(kind).unwrap(),
                kind,
                starts,
                ends,
                at: if starts { started.clone() } else { ended.clone() },
                took: took.clone(),
            }),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = workers(&db, &registry, &stop, "investigation");

    // The load: `rate` alerts/s in deliveries of BENCH_BATCH, host after host,
    // from up to SENDERS deliveries in flight at once (a SOC's tools send
    // concurrently; one sender waiting for each commit cannot offer more
    // than one delivery per commit time).
    let per_tick = env("BENCH_BATCH", 10).max(1);
    let every = Duration::from_secs_f64(per_tick as f64 / rate.max(1) as f64);
    let committed: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let first_alert: Arc<Mutex<HashMap<usize, uuid::Uuid>>> = Arc::new(Mutex::new(HashMap::new()));
    let retried = Arc::new(AtomicU64::new(0));
    let delivery_times: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(senders()));
    let mut in_flight = Vec::new();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(every);
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let permit = gate.clone().acquire_owned().await.unwrap();
        let at = clock.now();
        let hosts: Vec<usize> = (0..per_tick).map(|k| ((n + k) as usize) % cases).collect();
        let texts: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(k, h)| alert(n + k as u64, *h, at))
            .collect();
        n += per_tick;
        let (store, clock, committed, first_alert, retried, delivery_times) = (
            db.store.clone(),
            clock.clone(),
            committed.clone(),
            first_alert.clone(),
            retried.clone(),
            delivery_times.clone(),
        );
        let hook = hook.id;
        in_flight.push(tokio::spawn(async move {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            // A delivery that loses a race (PostgreSQL's serialization) is
            // sent again, as a webhook sender retries on a 5xx.
            let mut tries = 0;
            let sent = Instant::now();
            let stored = loop {
                let tx = store.begin_tenant(tenant).await.unwrap();
                let r =
                    ingest::store_checked(&tx, clock.as_ref(), hook, ingest::check("auto", &refs).unwrap())
                        .await;
                match r {
                    Ok(stored) if tx.commit().await.is_ok() => break stored,
                    Err(e) if tries >= 5 => panic!("delivery refused: {e}"),
                    _ => {
                        tries += 1;
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                }
            };
            let done = Instant::now();
            delivery_times.lock().unwrap().push(done - sent);
            let mut f = first_alert.lock().unwrap();
            for (h, id) in hosts.iter().zip(&stored.alert_ids) {
                f.entry(*h).or_insert(*id);
            }
            committed
                .lock()
                .unwrap()
                .extend(hosts.into_iter().map(|h| (h, done)));
            drop(permit);
        }));
    }
    for t in in_flight {
        t.await.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    let first_alert = first_alert.lock().unwrap().clone();
    let offered = n as f64 / t0.elapsed().as_secs_f64();
    let retried = retried.load(Ordering::Relaxed);
    let mut delivery_times = delivery_times.lock().unwrap().clone();
    delivery_times.sort();
    // Let the last rounds finish (bounded).
    let settle = Instant::now();
    let rounds_started = || started.lock().unwrap().len();
    while settle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if ended.lock().unwrap().len() >= rounds_started()
            && settle.elapsed()
                > (investigation::DEBOUNCE + investigation::ROUND_INTERVAL)
                    .to_std()
                    .unwrap()
        {
            break;
        }
    }
    // Saturation: one delivery names `cases` new hosts at once, so as many
    // rounds become due together; how fast the workers get through them is
    // the investigation's throughput.
    let before: std::collections::HashSet<Key> = started.lock().unwrap().keys().copied().collect();
    let at = clock.now();
    let texts: Vec<String> = (0..cases)
        .map(|k| alert(1_000_000 + k as u64, cases + k, at))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    ingest::store_checked(&tx, c, hook.id, ingest::check("auto", &refs).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let wait = Instant::now();
    let new_ended = || {
        let e = ended.lock().unwrap();
        e.iter()
            .filter(|(k, _)| !before.contains(k))
            .map(|(_, t)| *t)
            .collect::<Vec<Instant>>()
    };
    while new_ended().len() < cases && wait.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_start = started
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| !before.contains(k))
        .map(|(_, t)| *t)
        .min()
        .unwrap();
    let ends = new_ended();
    let span = ends
        .iter()
        .max()
        .unwrap()
        .duration_since(first_start)
        .as_secs_f64();
    let saturated = ends.len() as f64 / span;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Each alert's round: the first of its case to start after its commit.
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let (_, open) = vigil_orchestrator::engine::cases::list(&tx, None, 1, 0)
        .await
        .unwrap();
    let mut host_case: HashMap<usize, uuid::Uuid> = HashMap::new();
    for (h, a) in &first_alert {
        if let (_, Some(case)) = ingest::get(&tx, *a).await.unwrap() {
            host_case.insert(*h, case);
        }
    }
    tx.commit().await.unwrap();
    let started = started.lock().unwrap().clone();
    let ended = ended.lock().unwrap().clone();
    let mut by_case: HashMap<uuid::Uuid, Vec<(Instant, i64)>> = HashMap::new();
    for ((case, round), at) in &started {
        by_case.entry(*case).or_default().push((*at, *round));
    }
    for v in by_case.values_mut() {
        v.sort();
    }
    let mut latencies = Vec::new();
    let mut uncovered = 0;
    for (host, at) in &committed {
        let covered = host_case
            .get(host)
            .and_then(|case| by_case.get(case).map(|rs| (case, rs)))
            .and_then(|(case, rs)| rs.iter().find(|(s, _)| s >= at).map(|(_, r)| (*case, *r)))
            .and_then(|key| ended.get(&key));
        match covered {
            Some(end) => latencies.push(end.duration_since(*at)),
            None => uncovered += 1,
        }
    }
    latencies.sort();
    let transitions = saturated * investigation::STEPS.len() as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {label} | {offered:.0} alerts/s over {cases} hosts, {seconds} s, {per_tick} per delivery, {} senders ({retried} deliveries sent again) | {open} cases | {} | {:.0} ms | {:.0} ms | {uncovered} | {saturated:.1} rounds/s ({transitions:.0} steps/s) | {ceiling:.0} | {:.3} |",
        senders(),
        before.len(),
        ms(pct(&latencies, 0.5)),
        ms(pct(&latencies, 0.99)),
        transitions / ceiling,
    );
    let took = took.lock().unwrap();
    let line: Vec<String> = investigation::STEPS
        .iter()
        .map(|k| {
            let mut d = took.get(k).cloned().unwrap_or_default();
            d.sort();
            let mean = d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len().max(1) as f64;
            format!(
                "{} {:.1} / {:.1} ms",
                k.trim_start_matches("investigation."),
                mean * 1e3,
                ms(pct(&d, 0.99))
            )
        })
        .collect();
    STEP_TIMES.lock().unwrap().push(format!(
        "| {label} | {} | delivery (begin → commit) {:.1} / {:.1} ms |",
        line.join(" | "),
        ms(pct(&delivery_times, 0.5)),
        ms(pct(&delivery_times, 0.99))
    ));
}

/// Each run's per-step handler times (mean / p99), printed after the table.
static STEP_TIMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[tokio::main]
async fn main() {
    println!(
        "| database | load | cases (load + saturation) | rounds under the load | alert committed → its round's draft and proposals: p50 | p99 | alerts whose round did not end | saturated: as many rounds due at once as the load's hosts | no-op step chain transitions/s, same {WORKERS} workers (same run) | ratio (steps/s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    run(TestDb::new(Backend::Sqlite).await, "SQLite").await;
    run(TestDb::new(Backend::Postgres).await, "PostgreSQL").await;
    println!();
    println!(
        "| database | time in each step's handler, mean / p99, whole run | | | | | ingest under the load, p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for l in STEP_TIMES.lock().unwrap().iter() {
        println!("{l}");
    }
}
