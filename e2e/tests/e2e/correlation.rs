//! Correlation measured on two corpora built differently (the incident
//! corpus and the simulated estate), with DEFAULT settings — no ignore list,
//! no tuned weights — delivered as a live stream, as a backfill in batches,
//! and out of order. Pairwise precision and recall against the ground truth
//! are printed (BENCHMARKS.md reports them) and held to the targets.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::pipeline::corpus::{self, Rng, Sample};
use vigil_orchestrator::pipeline::correlate::{self, Settings};
use vigil_orchestrator::pipeline::estate::Estate;
use vigil_orchestrator::store::entity::case_alert;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{ManualClock, Role, TenantId, connect::integrations, identity, pipeline::ingest};

/// How alerts reach Vigil.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// One delivery per alert, each received when it happened.
    Live,
    /// After the fact, in event-time order, `n` alerts per delivery, all
    /// received within minutes (a poller catching up, an import).
    Backfill(usize),
    /// As a backfill, but the batches (of `n`) arrive in a shuffled order.
    Shuffled(usize, u64),
}

/// Ingests `samples` into fresh tenants and returns each sample's case.
pub async fn run(
    db: &TestDb,
    samples: &[Sample],
    delivery: Delivery,
    settings: Option<Settings>,
) -> Vec<u128> {
    run_in(db, samples, delivery, settings).await.0
}

/// [`run`], also returning the tenants made.
pub async fn run_in(
    db: &TestDb,
    samples: &[Sample],
    delivery: Delivery,
    settings: Option<Settings>,
) -> (Vec<u128>, Vec<TenantId>) {
    let first = samples.iter().map(|s| s.at).min().unwrap_or_else(start);
    let last = samples.iter().map(|s| s.at).max().unwrap_or_else(start);
    let c = ManualClock::new(first);
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let n_tenants = samples.iter().map(|s| s.tenant).max().map_or(0, |m| m + 1);
    let mut tenants: Vec<(TenantId, uuid::Uuid)> = vec![];
    for t in 0..n_tenants {
        let tx = db.store.begin_platform().await.unwrap();
        let id = identity::create_tenant(&tx, &c, &Actor::cli(), &format!("T{t}-{}", uuid::Uuid::now_v7()))
            .await
            .unwrap()
            .id;
        tx.commit().await.unwrap();
        let tx = db.store.begin_tenant(id).await.unwrap();
        let hook = integrations::create(&tx, &c, &eng, "webhook", "feed", json!({}))
            .await
            .unwrap();
        if let Some(s) = &settings {
            correlate::set_settings(&tx, &c, &eng, s.clone()).await.unwrap();
        }
        tx.commit().await.unwrap();
        tenants.push((id, hook.id));
    }
    // Deliveries: (received at, sample indices of one tenant).
    let mut deliveries: Vec<(DateTime<Utc>, Vec<usize>)> = vec![];
    match delivery {
        Delivery::Live => {
            for (i, s) in samples.iter().enumerate() {
                deliveries.push((s.at, vec![i]));
            }
        }
        Delivery::Backfill(n) | Delivery::Shuffled(n, _) => {
            for t in 0..n_tenants {
                let mine: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].tenant == t).collect();
                for chunk in mine.chunks(n.max(1)) {
                    deliveries.push((last + Duration::hours(1), chunk.to_vec()));
                }
            }
            if let Delivery::Shuffled(_, seed) = delivery {
                let mut rng = Rng(seed | 1);
                for i in (1..deliveries.len()).rev() {
                    let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                    deliveries.swap(i, j);
                }
            }
        }
    }
    let mut alert_of = vec![uuid::Uuid::nil(); samples.len()];
    for (k, (at, idx)) in deliveries.iter().enumerate() {
        c.set(*at + Duration::seconds(k as i64 % 600));
        let (tenant, hook) = tenants[samples[idx[0]].tenant];
        let texts: Vec<&str> = idx.iter().map(|&i| samples[i].text.as_str()).collect();
        let tx = db.store.begin_tenant(tenant).await.unwrap();
        let checked = ingest::check("auto", &texts).unwrap();
        let ids = ingest::store_checked(&tx, &c, hook, checked)
            .await
            .unwrap()
            .alert_ids;
        tx.commit().await.unwrap();
        for (&i, id) in idx.iter().zip(ids) {
            alert_of[i] = id;
        }
    }
    let mut predicted = vec![];
    for (s, a) in samples.iter().zip(&alert_of) {
        let tx = db.store.begin_tenant(tenants[s.tenant].0).await.unwrap();
        let link = case_alert::Entity::find()
            .filter(case_alert::Column::AlertId.eq(*a))
            .one(&*tx)
            .await
            .unwrap()
            .unwrap();
        predicted.push(link.case_id.as_u128());
    }
    (predicted, tenants.iter().map(|t| t.0).collect())
}

fn score(samples: &[Sample], predicted: &[u128]) -> (f64, f64, usize) {
    let truth: Vec<usize> = samples.iter().map(|s| s.incident).collect();
    let tenant: Vec<usize> = samples.iter().map(|s| s.tenant).collect();
    let (p, r) = corpus::precision_recall(&truth, predicted, &tenant);
    let mut cases = predicted.to_vec();
    cases.sort_unstable();
    cases.dedup();
    (p, r, cases.len())
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

/// The incident corpus and the estate, live and as a backfill, with the
/// defaults. The incident corpus holds the targets (precision and recall at
/// least 0.95). The estate does not yet: its benign alerts land on the
/// machines of incidents within hours and its truth keeps them apart, which
/// a host-linking rule cannot; its floors here (precision 0.78, recall
/// 0.88) guard what is reached (BENCHMARKS.md has the figures).
#[tokio::test]
async fn defaults_hold_on_both_corpora() {
    let incidents = corpus::generate(2026, 3, 40, start());
    let estate = Estate::generate(2026, 3, 240, 5, 24, start());
    let mut failures = vec![];
    for (name, samples) in [
        ("incident corpus", incidents.as_slice()),
        ("estate", estate.alerts()),
    ] {
        let incidents = {
            let mut v: Vec<usize> = samples.iter().map(|s| s.incident).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        for delivery in [Delivery::Live, Delivery::Backfill(100)] {
            let db = TestDb::sqlite().await;
            let predicted = run(&db, samples, delivery, None).await;
            let (p, r, cases) = score(samples, &predicted);
            println!(
                "{name}: {} alerts, {incidents} incidents, {delivery:?}: {cases} cases, precision {p:.3}, recall {r:.3}",
                samples.len()
            );
            let (p_min, r_min) = if name == "estate" {
                (0.78, 0.88)
            } else {
                (0.95, 0.95)
            };
            if p < p_min || r < r_min {
                failures.push(format!("{name} {delivery:?}: precision {p:.3} recall {r:.3}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn partition(predicted: &[u128]) -> Vec<Vec<usize>> {
    let mut groups: std::collections::BTreeMap<u128, Vec<usize>> = Default::default();
    for (i, c) in predicted.iter().enumerate() {
        groups.entry(*c).or_default().push(i);
    }
    let mut v: Vec<Vec<usize>> = groups.into_values().collect();
    v.sort();
    v
}

/// Pairs of alerts (of one tenant) on which two groupings agree (both
/// together or both apart), as a share of all pairs: the Rand index.
fn agreement(samples: &[Sample], a: &[u128], b: &[u128]) -> f64 {
    let (mut same, mut all) = (0u64, 0u64);
    for i in 0..samples.len() {
        for j in (i + 1)..samples.len() {
            if samples[i].tenant == samples[j].tenant {
                all += 1;
                if (a[i] == a[j]) == (b[i] == b[j]) {
                    same += 1;
                }
            }
        }
    }
    if all == 0 { 1.0 } else { same as f64 / all as f64 }
}

/// The rule itself is order-free: with prevalence learning off (so weights
/// do not depend on what arrived before), the same alerts give exactly the
/// same cases in event order, batches shuffled, and one by one in a
/// shuffled order — event-time windows and the hourly index make the cases
/// the connected components of the links, whatever the arrival order.
#[tokio::test]
async fn delivery_order_does_not_change_the_cases() {
    let estate = Estate::generate(11, 1, 160, 4, 16, start());
    let samples = estate.alerts();
    let fixed = Settings {
        noise: vigil_orchestrator::pipeline::prevalence::Noise {
            min_hosts: 1_000_000,
            ..Default::default()
        },
        ..Settings::default()
    };
    let db = TestDb::sqlite().await;
    let reference = partition(&run(&db, samples, Delivery::Backfill(50), Some(fixed.clone())).await);
    for delivery in [
        Delivery::Shuffled(50, 1),
        Delivery::Shuffled(25, 2),
        Delivery::Shuffled(1, 3),
    ] {
        let db = TestDb::sqlite().await;
        let got = partition(&run(&db, samples, delivery, Some(fixed.clone())).await);
        println!(
            "fixed weights, {delivery:?}: {} cases (in order: {})",
            got.len(),
            reference.len()
        );
        assert!(got == reference, "{delivery:?} grouped differently");
    }
}

/// With the defaults, prevalence is learned as alerts arrive, so what was
/// known when an alert came can differ by order; unlinking entities that
/// turn out to be noise brings the orders together. Measured: the share of
/// alert pairs grouped alike across orders (printed; at least 0.99).
#[tokio::test]
async fn learned_noise_converges_across_delivery_orders() {
    let estate = Estate::generate(11, 1, 160, 4, 16, start());
    let samples = estate.alerts();
    let db = TestDb::sqlite().await;
    let reference = run(&db, samples, Delivery::Backfill(50), None).await;
    for delivery in [
        Delivery::Shuffled(50, 1),
        Delivery::Shuffled(25, 2),
        Delivery::Live,
    ] {
        let db = TestDb::sqlite().await;
        let got = run(&db, samples, delivery, None).await;
        let a = agreement(samples, &reference, &got);
        println!(
            "defaults, {delivery:?}: {} cases (in order: {}), pairs grouped alike {a:.4}",
            partition(&got).len(),
            partition(&reference).len()
        );
        assert!(a >= 0.99, "{delivery:?}: {a}");
    }
}
