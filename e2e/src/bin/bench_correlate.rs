//! In-memory correlation benchmark (BENCHMARKS.md, issue 4): the grouping
//! rule (`correlate::group`: alerts sharing an entity within the window
//! join one group, union-find) over 10k, 100k and 1M synthetic alerts.
//! Each alert carries a host, a user and an IP drawn from pools that grow
//! with n (incidents of ~6 alerts over ~2 h, spread over 30 days), plus a
//! Time is wall clock of `group` alone; peak memory is how far the resident
//! set rose above its size before grouping (Linux VmHWM after resetting it),
//! inputs excluded.
//!
//! Reproduce: `cargo run --release -p vigil-e2e --bin bench-correlate`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use vigil_orchestrator::pipeline::corpus::Rng;
use vigil_orchestrator::pipeline::correlate::group;

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    println!("| alerts | time | time / (n log2 n) | peak memory added by grouping | groups |");
    println!("|---|---|---|---|---|");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut rng = Rng(0x5eed_2026 ^ n as u64);
        let incidents = n / 6;
        let span = Duration::days(30).num_seconds() as u64;
        let mut times = Vec::with_capacity(n);
        let mut entities: Vec<Vec<(u8, u64)>> = Vec::with_capacity(n);
        for _ in 0..n {
            let inc = rng.next_u64() % incidents as u64;
            // An incident lives at its own time, its alerts within 2 hours.
            let base = (inc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % span;
            let at = t0 + Duration::seconds((base + rng.next_u64() % 7_200) as i64);
            times.push(at);
            entities.push(vec![
                (0, inc),
                (1, inc / 3),
                (2, inc.wrapping_mul(7) % (incidents as u64 * 2)),
            ]);
        }
        // Reset the peak resident size (Linux: clear_refs 5), so the peak
        // read after grouping is this round's.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = status_kib("VmRSS:");
        let start = Instant::now();
        let groups = group(&times, &entities, Duration::hours(24));
        let took = start.elapsed();
        let peak = status_kib("VmHWM:").saturating_sub(before) * 1024;
        let mut distinct = groups.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let nlogn = n as f64 * (n as f64).log2();
        println!(
            "| {n} | {:.1} ms | {:.2} ns | {:.1} MiB | {} |",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e9 / nlogn,
            peak as f64 / (1 << 20) as f64,
            distinct.len()
        );
    }
}
