//! In-memory correlation benchmark (BENCHMARKS.md, issues 4 and 14): the
//! whole grouping decision as the ingest path makes it, over 10k, 100k and
//! 1M synthetic alerts of one tenant, at their event times:
//! 1. prevalence learned from the alerts (`prevalence::learn`: hosts and
//!    span per entity, the tenant's hosts),
//! 2. each alert's linking entities under the default settings
//!    (`Settings::linking`: kind/role weights, prevalence, a device's own
//!    address standing for its named device),
//! 3. grouping with a window per kind (`correlate::group_by`: 8 h for
//!    hosts, 24 h for the rest; union-find).
//!
//! The estate grows with n (a host per 20 alerts, 10 offices behind NAT
//! addresses, daily leases). Incidents of ~6 alerts within 2 h on one or
//! two hosts share a hash and the host's user; every alert of every kind
//! may name one of five SaaS domains (40%) — background that prevalence
//! must find, or everything joins one group. Spread over 30 days, in
//! shuffled (not event-time) order. Time is the three steps; peak memory is
//! how far the resident set rose above its size before them (Linux VmHWM
//! after resetting it), inputs excluded. Pairwise precision and recall
//! against the incidents are computed from the contingency table.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-correlate`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use vigil_orchestrator::pipeline::corpus::Rng;
use vigil_orchestrator::pipeline::correlate::{Settings, group_by};
use vigil_orchestrator::pipeline::estate::SAAS;
use vigil_orchestrator::pipeline::observables::{Kind, Observable, Role};
use vigil_orchestrator::pipeline::prevalence;

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn obs(kind: Kind, value: String, role: Role) -> Observable {
    Observable {
        kind,
        value,
        pointer: String::new(),
        role,
    }
}

fn pairs(counts: impl Iterator<Item = u64>) -> u64 {
    counts.map(|c| c * c.saturating_sub(1) / 2).sum()
}

fn main() {
    println!(
        "| alerts | hosts | prevalence + linking + grouping | time / (n log2 n) | of which grouping | peak memory added | groups (incidents) | precision / recall |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let settings = Settings::default();
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut rng = Rng(0x5eed_2026 ^ n as u64);
        let hosts = n / 20;
        let incidents = n / 6;
        let span = Duration::days(30).num_seconds() as u64;
        let mut alerts: Vec<(DateTime<Utc>, Vec<Observable>, usize)> = Vec::with_capacity(n);
        for _ in 0..n {
            let inc = (rng.next_u64() % incidents as u64) as usize;
            // An incident lives at its own time on its own host (and a
            // second one for a third of them), its alerts within 2 hours.
            let base = ((inc as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % span;
            let at = t0 + Duration::seconds((base + rng.next_u64() % 7_200) as i64);
            let mut h = ((inc as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 7) as usize % hosts;
            if inc.is_multiple_of(3) && rng.next_u64().is_multiple_of(2) {
                h = (h + 1 + inc % 7) % hosts;
            }
            // A daily lease from a pool smaller than the fleet.
            let slot = (h * 7 + (at - t0).num_days() as usize * 13) % (hosts * 3 / 4).max(1);
            let mut o = vec![
                obs(Kind::Host, format!("ws{h:06}"), Role::Device),
                obs(Kind::User, format!("user{h:06}"), Role::Person),
                obs(
                    Kind::Ip,
                    format!("10.{}.{}.{}", slot >> 16 & 255, slot >> 8 & 255, slot & 255),
                    Role::Device,
                ),
                obs(Kind::Ip, format!("198.51.100.{}", h % 10), Role::Nat),
            ];
            if rng.next_u64() % 100 < 60 {
                o.push(obs(
                    Kind::FileHash,
                    format!("{:064x}", inc as u64 ^ 0xdead_beef),
                    Role::Device,
                ));
            }
            if rng.next_u64() % 100 < 40 {
                o.push(obs(
                    Kind::Domain,
                    SAAS[(rng.next_u64() % SAAS.len() as u64) as usize].to_owned(),
                    Role::Destination,
                ));
            }
            alerts.push((at, o, inc));
        }
        // Reset the peak resident size (Linux: clear_refs 5), so the peak
        // read after grouping is this round's.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = status_kib("VmRSS:");
        let start = Instant::now();
        let placed: Vec<(DateTime<Utc>, &[Observable])> =
            alerts.iter().map(|(at, o, _)| (*at, o.as_slice())).collect();
        let p = prevalence::learn(&placed, |o| settings.may_link(o));
        let keys: Vec<Vec<(Kind, &str)>> = alerts
            .iter()
            .map(|(_, o, _)| {
                settings
                    .linking(o, &p)
                    .into_iter()
                    .map(|o| (o.kind, o.value.as_str()))
                    .collect()
            })
            .collect();
        let times: Vec<DateTime<Utc>> = alerts.iter().map(|a| a.0).collect();
        let grouping = Instant::now();
        let groups = group_by(&times, &keys, |(k, _)| settings.window_of(*k));
        let took = start.elapsed();
        let grouping = grouping.elapsed();
        let peak = status_kib("VmHWM:").saturating_sub(before) * 1024;
        // Pairwise precision and recall from the contingency table.
        let mut cell: HashMap<(usize, usize), u64> = HashMap::new();
        let mut by_group: HashMap<usize, u64> = HashMap::new();
        let mut by_truth: HashMap<usize, u64> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            *cell.entry((*g, alerts[i].2)).or_default() += 1;
            *by_group.entry(*g).or_default() += 1;
            *by_truth.entry(alerts[i].2).or_default() += 1;
        }
        let tp = pairs(cell.values().copied());
        let precision = tp as f64 / pairs(by_group.values().copied()).max(1) as f64;
        let recall = tp as f64 / pairs(by_truth.values().copied()).max(1) as f64;
        let nlogn = n as f64 * (n as f64).log2();
        println!(
            "| {n} | {} | {:.1} ms | {:.1} ns | {:.1} ms | {:.1} MiB | {} ({}) | {precision:.3} / {recall:.3} |",
            p.tenant_hosts,
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e9 / nlogn,
            grouping.as_secs_f64() * 1e3,
            peak as f64 / (1 << 20) as f64,
            by_group.len(),
            by_truth.len(),
        );
    }
}
