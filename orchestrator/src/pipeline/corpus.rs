//! A realistic, reproducible alert corpus with ground truth: several
//! tenants, each with incidents whose alerts arrive in the four accepted
//! formats (OCSF, ECS, CrowdStrike, Graylog), interleaved in time, sharing
//! the incident's host, user and C2 domain, and polluted the way real
//! telemetry is: a corporate proxy IP in many alerts of unrelated incidents,
//! and common process names. Used to measure correlation (precision and
//! recall of the grouping) and to benchmark ingest.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The shared proxy every tenant's traffic goes through.
pub const PROXY_IP: &str = "10.255.0.1";

/// One alert of the corpus.
#[derive(Debug, Clone)]
pub struct Sample {
    pub tenant: usize,
    /// The ground-truth incident (unique across tenants).
    pub incident: usize,
    pub at: DateTime<Utc>,
    /// The alert as a source would send it.
    pub text: String,
}

/// A small deterministic generator (xorshift), so the corpus is the same
/// on every machine.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn alert(
    format: u64,
    n: usize,
    at: DateTime<Utc>,
    host: &str,
    user: Option<&str>,
    ip: &str,
    domain: Option<&str>,
) -> Value {
    let ts = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    match format {
        0 => json!({
            "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 4,
            "time": at.timestamp_millis(),
            "metadata": {"version": "1.3.0", "product": {"name": "EDR"}},
            "finding_info": {"uid": format!("ocsf-{n}"), "title": format!("Suspicious activity on {host}")},
            "device": {"hostname": host, "ip": ip},
            "actor": {"user": {"name": user}},
            "evidences": [{"dst_endpoint": {"domain": domain}}],
        }),
        1 => json!({
            "@timestamp": ts,
            "ecs": {"version": "8.11.0"},
            "event": {"kind": "alert", "id": format!("ecs-{n}"), "module": "endpoint"},
            "host": {"name": host},
            "user": {"name": user},
            "source": {"ip": ip},
            "destination": {"domain": domain},
            "process": {"name": "svchost.exe"},
            "message": format!("Beaconing from {host}"),
        }),
        2 => json!({
            "composite_id": format!("cid:ind:{n:08x}"),
            "timestamp": ts,
            "device": {"device_id": format!("dev-{n}"), "hostname": host, "local_ip": ip},
            "user_name": user,
            "filename": "powershell.exe",
            "description": format!("Encoded PowerShell on {host}"),
            "domain": domain,
        }),
        _ => json!({
            "event": {
                "id": format!("gl-{n}"),
                "event_definition_id": "5f0c0c0c0c0c0c0c0c0c0c0c",
                "timestamp": at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                "message": format!("Failed logins on {host}"),
                "fields": {"hostname": host, "user": user, "src_ip": ip, "query_name": domain},
            },
            "index_name": "gl-events_0",
        }),
    }
}

/// `tenants` × `incidents` incidents of 3 to 8 alerts each, starting at
/// `start`, sorted by arrival time.
pub fn generate(seed: u64, tenants: usize, incidents: usize, start: DateTime<Utc>) -> Vec<Sample> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let mut n = 0;
    for t in 0..tenants {
        for i in 0..incidents {
            let incident = t * incidents + i;
            let host = format!("t{t}-ws-{i:03}");
            let user = format!("t{t}.user{i:03}");
            let ip = format!("10.{t}.{}.{}", i / 200, i % 200 + 10);
            let c2 = format!("c2-{incident}.bad.example");
            let begin = start + Duration::minutes(rng.below(12 * 60) as i64);
            for _ in 0..(3 + rng.below(6)) {
                n += 1;
                let at = begin + Duration::seconds(rng.below(2 * 3600) as i64);
                // Real telemetry: the proxy IP in many alerts, the user and
                // the C2 domain only in some.
                let ip = if rng.chance(35) {
                    PROXY_IP.to_owned()
                } else {
                    ip.clone()
                };
                let user = rng.chance(60).then_some(user.as_str());
                let domain = rng.chance(50).then_some(c2.as_str());
                let v = alert(rng.below(4), n, at, &host, user, &ip, domain);
                out.push(Sample {
                    tenant: t,
                    incident,
                    at,
                    text: v.to_string(),
                });
            }
        }
    }
    out.sort_by_key(|s| s.at);
    out
}

/// Pairwise precision and recall of a grouping against the ground truth:
/// over every pair of alerts of one tenant, a pair is "together" when both
/// sit in one case (predicted) or one incident (truth).
pub fn precision_recall(truth: &[usize], predicted: &[u128], tenant: &[usize]) -> (f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for i in 0..truth.len() {
        for j in (i + 1)..truth.len() {
            if tenant[i] != tenant[j] {
                continue;
            }
            match (predicted[i] == predicted[j], truth[i] == truth[j]) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                _ => {}
            }
        }
    }
    let p = if tp + fp == 0 {
        1.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let r = if tp + fn_ == 0 {
        1.0
    } else {
        tp as f64 / (tp + fn_) as f64
    };
    (p, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_corpus_is_reproducible_and_parses() {
        let start = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let a = generate(7, 3, 40, start);
        let b = generate(7, 3, 40, start);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text));
        assert!(a.len() >= 300, "several hundred alerts: {}", a.len());
        let mut formats = std::collections::BTreeSet::new();
        for s in &a {
            let v: Value = serde_json::from_str(&s.text).unwrap();
            formats.insert(
                crate::pipeline::ingest::detect(&v)
                    .expect("a known format")
                    .as_str(),
            );
        }
        assert_eq!(formats.len(), 4);
        assert_eq!(precision_recall(&[1, 1, 2], &[9, 9, 8], &[0, 0, 0]), (1.0, 1.0));
        assert_eq!(
            precision_recall(&[1, 1, 2], &[9, 9, 9], &[0, 0, 0]),
            (1.0 / 3.0, 1.0)
        );
    }
}
