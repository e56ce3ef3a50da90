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
/// least 0.95). The estate holds recall 0.95 but not the precision target:
/// its benign alerts land on the machines of incidents within hours, and
/// the same account appears in two of its labelled incidents within a day,
/// which its truth keeps apart and an entity-linking rule cannot; the floor
/// here (precision 0.78) guards what is reached (BENCHMARKS.md has the
/// figures).
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
                (0.78, 0.95)
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

/// Background is persistent, a campaign is a burst. A tenant of 60 hosts:
/// each host raises a lone alert a day for three days, half of them naming
/// the SaaS sign-in domain everybody uses; on the third day a phishing URL
/// is clicked on 9 more machines (13% of the fleet, beyond the 10% at which
/// background weighs nothing) within 90 minutes. The domain, seen day after
/// day, links nothing; the URL, seen only in its burst, makes one case of
/// the nine clicks — in event order, as a backfill and shuffled. The case's
/// explanation says why, in words.
#[tokio::test]
async fn a_burst_links_and_background_does_not() {
    let t0 = start();
    let ocsf =
        |n: usize, at: DateTime<Utc>, host: usize, title: &str, domain: Option<&str>, url: Option<&str>| {
            let mut evidences = vec![];
            if let Some(d) = domain {
                evidences.push(json!({"dst_endpoint": {"domain": d}}));
            }
            if let Some(u) = url {
                evidences.push(json!({"url": {"url_string": u}}));
            }
            json!({
                "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 3,
                "time": at.timestamp_millis(),
                "metadata": {"version": "1.3.0", "product": {"name": "EDR", "vendor_name": "Example"}},
                "finding_info": {"uid": format!("b-{n}"), "title": title},
                "device": {"hostname": format!("pc{host:03}.corp.example")},
                "evidences": evidences,
            })
            .to_string()
        };
    let mut samples = vec![];
    let mut n = 0;
    for day in 0..3 {
        for h in 0..60 {
            n += 1;
            let at = t0 + Duration::days(day) + Duration::minutes((h * 23 % 1400) as i64);
            let domain = (h % 2 == 0).then_some("login.saas.example");
            samples.push(Sample {
                tenant: 0,
                incident: n,
                at,
                text: ocsf(n, at, h, "Suspicious sign-in", domain, None),
            });
        }
    }
    let wave = 1_000_000;
    for k in 0..9 {
        n += 1;
        let at = t0 + Duration::days(2) + Duration::hours(20) + Duration::minutes(k * 10);
        let host = 60 + k as usize;
        samples.push(Sample {
            tenant: 0,
            incident: wave,
            at,
            text: ocsf(
                n,
                at,
                host,
                "User clicked a phishing link",
                None,
                Some("https://sso-check.example/l?s=42"),
            ),
        });
    }
    samples.sort_by_key(|s| s.at);
    for delivery in [Delivery::Live, Delivery::Backfill(40), Delivery::Shuffled(20, 5)] {
        let db = TestDb::sqlite().await;
        let (predicted, tenants) = run_in(&db, &samples, delivery, None).await;
        let (p, r, cases) = score(&samples, &predicted);
        println!("burst vs background, {delivery:?}: {cases} cases, precision {p:.3}, recall {r:.3}");
        assert_eq!((p, r), (1.0, 1.0), "{delivery:?}");
        let wave_case = samples
            .iter()
            .zip(&predicted)
            .find(|(s, _)| s.incident == wave)
            .map(|(_, c)| *c)
            .unwrap();
        let tx = db.store.begin_tenant(tenants[0]).await.unwrap();
        let e = correlate::explain(&tx, uuid::Uuid::from_u128(wave_case))
            .await
            .unwrap();
        let url = e.entities.iter().find(|v| v.value.contains("sso-check")).unwrap();
        assert!(url.links && url.why.contains("burst"), "{}", url.why);
        let lone = samples
            .iter()
            .zip(&predicted)
            .find(|(s, _)| s.text.contains("login.saas.example"))
            .map(|(_, c)| *c)
            .unwrap();
        let e = correlate::explain(&tx, uuid::Uuid::from_u128(lone))
            .await
            .unwrap();
        let saas = e
            .entities
            .iter()
            .find(|v| v.value == "login.saas.example")
            .unwrap();
        assert!(
            !saas.links && saas.why.contains("of this tenant's"),
            "{}",
            saas.why
        );
    }
}
