//! A second alert corpus, built differently from [`crate::pipeline::corpus`]:
//! not incidents with a little pollution, but an *estate* simulated day by
//! day — a few hundred hosts in offices behind NAT addresses, DHCP leases
//! that move between machines, a directory domain every account shares,
//! the SaaS sign-in and update domains half the fleet talks to, service
//! accounts on every server, a vulnerability scanner and an admin jump host
//! touching everything, the vendor's console link in every Falcon alert —
//! and, inside that, incidents of four shapes: malware on one machine, a
//! phishing wave across several users, a brute force from one outside
//! address against several hosts, and lateral movement that runs for days.
//! Each alert is written in the layout its vendor publishes (Falcon
//! endpoint and identity detections, OCSF Detection Finding with
//! `evidences`, ECS with `related.*`, Graylog events with `event.source`).
//!
//! Ground truth: every benign alert (scanner, jump host, a lone detection)
//! is an incident of its own; an incident's alerts share an incident id.
//! Delivery: [`Estate::alerts`] in event-time order; the tests deliver them
//! as a backfill in batches, one by one, and shuffled.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::pipeline::corpus::{Rng, Sample};

/// The estate of one tenant.
#[derive(Debug, Clone)]
struct Tenant {
    index: usize,
    hosts: Vec<String>,
    users: Vec<String>,
    nat: Vec<String>,
    dc: String,
    directory: String,
}

/// One alert before it is written in a vendor's layout.
#[derive(Debug, Clone, Default)]
struct Ev {
    at: DateTime<Utc>,
    title: String,
    host: String,
    host_ip: String,
    nat_ip: String,
    user: Option<String>,
    domain: Option<String>,
    url: Option<String>,
    hash: Option<String>,
    process: Option<String>,
    src_ip: Option<String>,
    src_host: Option<String>,
    identity: bool,
}

/// The SaaS domains half an estate's traffic names (background).
pub const SAAS: &[&str] = &[
    "login.microsoftonline.com",
    "outlook.office365.com",
    "update.microsoft.com",
    "www.google.com",
    "slack.com",
];
const SERVICE: &[&str] = &["svc_backup", "svc_sccm", "svc_monitor"];
/// explorer.exe's hash: the parent of half of all Windows detections.
const EXPLORER: &str = "0b25d56bd2b4d8a6df45beff7be165117fbf7ba6ba2c07744f039143866335e4";
const SCANNER: &str = "vuln-scan-01";
const SCANNER_IP: &str = "10.250.0.9";
const JUMP: &str = "jump-01";

fn hex64(rng: &mut Rng) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

fn pick<'a, T>(rng: &mut Rng, v: &'a [T]) -> &'a T {
    &v[(rng.next_u64() % v.len() as u64) as usize]
}

/// A simulated estate: tenants, days, and the alerts they produce.
#[derive(Debug)]
pub struct Estate {
    rng: Rng,
    start: DateTime<Utc>,
    days: i64,
    out: Vec<Sample>,
    next_incident: usize,
    n: usize,
}

impl Estate {
    /// `tenants` estates of `hosts` hosts each over `days` days, with
    /// `incidents` incidents per tenant.
    pub fn generate(
        seed: u64,
        tenants: usize,
        hosts: usize,
        days: i64,
        incidents: usize,
        start: DateTime<Utc>,
    ) -> Self {
        let mut e = Estate {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            start,
            days,
            out: Vec::new(),
            next_incident: 0,
            n: 0,
        };
        for t in 0..tenants {
            let tenant = Tenant {
                index: t,
                hosts: (0..hosts)
                    .map(|i| {
                        if i % 5 == 0 {
                            format!("srv{i:03}.t{t}.corp.example")
                        } else {
                            format!("ws{i:03}.t{t}.corp.example")
                        }
                    })
                    .collect(),
                users: (0..hosts).map(|i| format!("user{i:03}.t{t}")).collect(),
                nat: (0..3).map(|o| format!("198.51.{}.{}", 100 + t, 10 + o)).collect(),
                dc: format!("dc01.t{t}.corp.example"),
                directory: format!("t{t}.corp.example"),
            };
            for _ in 0..incidents {
                match e.rng.next_u64() % 4 {
                    0 => e.malware(&tenant),
                    1 => e.phishing(&tenant),
                    2 => e.brute_force(&tenant),
                    _ => e.lateral(&tenant),
                }
            }
            // Benign alerts: one for every fourth host over the period, as
            // many from the scanner, half as many from the jump host.
            for _ in 0..hosts / 4 {
                e.benign(&tenant);
            }
            for _ in 0..hosts / 4 {
                e.scanner(&tenant);
            }
            for _ in 0..hosts / 8 {
                e.jump(&tenant);
            }
        }
        e.out.sort_by_key(|s| s.at);
        e
    }

    /// The alerts in event-time order.
    pub fn alerts(&self) -> &[Sample] {
        &self.out
    }

    fn when(&mut self) -> DateTime<Utc> {
        self.start + Duration::minutes((self.rng.next_u64() % (self.days as u64 * 24 * 60)) as i64)
    }

    /// The device's address on a day (leases move: a pool smaller than
    /// the fleet, reassigned daily).
    fn lease(&self, t: &Tenant, host: &str, at: DateTime<Utc>) -> String {
        let day = (at - self.start).num_days();
        let i = t.hosts.iter().position(|h| h == host).unwrap_or(0) as i64;
        let pool = (t.hosts.len() as i64 * 3 / 4).max(1);
        let slot = (i * 7 + day * 13).rem_euclid(pool);
        format!("10.{}.{}.{}", t.index, slot / 250, slot % 250 + 2)
    }

    fn base(&mut self, t: &Tenant, host: &str, at: DateTime<Utc>, title: &str) -> Ev {
        let office = t.hosts.iter().position(|h| h == host).unwrap_or(0) % t.nat.len();
        let mut ev = Ev {
            at,
            title: title.to_owned(),
            host: host.to_owned(),
            host_ip: self.lease(t, host, at),
            nat_ip: t.nat[office].clone(),
            ..Ev::default()
        };
        // Everyday traffic in alerts of every kind.
        if self.rng.next_u64() % 100 < 40 {
            ev.domain = Some(pick(&mut self.rng, SAAS).to_string());
        }
        if self.rng.next_u64() % 100 < 15 {
            ev.user = Some(pick(&mut self.rng, SERVICE).to_string());
        }
        ev
    }

    fn push(&mut self, t: &Tenant, incident: usize, ev: Ev) {
        self.n += 1;
        // A click on a link is seen by the mail or web gateway (OCSF, ECS,
        // Graylog), not by the endpoint agent.
        let format = if ev.url.is_some() {
            1 + self.rng.next_u64() % 3
        } else {
            self.rng.next_u64() % 4
        };
        let v = render(&mut self.rng, t, self.n, format, &ev);
        self.out.push(Sample {
            tenant: t.index,
            incident,
            at: ev.at,
            text: v.to_string(),
        });
    }

    fn incident(&mut self) -> usize {
        self.next_incident += 1;
        self.next_incident
    }

    fn malware(&mut self, t: &Tenant) {
        let id = self.incident();
        let host = pick(&mut self.rng, &t.hosts).clone();
        let user = t.users[t.hosts.iter().position(|h| *h == host).unwrap_or(0)].clone();
        let hash = hex64(&mut self.rng);
        let c2 = format!("cdn-{}.updates-{}.example", self.rng.next_u64() % 10_000, id);
        let begin = self.when();
        for k in 0..(2 + self.rng.next_u64() % 5) {
            let at = begin + Duration::minutes((k * 20 + self.rng.next_u64() % 90) as i64);
            let mut ev = self.base(t, &host, at, "Malicious file executed");
            if self.rng.next_u64() % 100 < 60 {
                ev.user = Some(user.clone());
            }
            if self.rng.next_u64() % 100 < 60 {
                ev.hash = Some(hash.clone());
                ev.process = Some("invoice_viewer.exe".into());
            }
            if self.rng.next_u64() % 100 < 50 {
                ev.domain = Some(c2.clone());
            }
            self.push(t, id, ev);
        }
    }

    fn phishing(&mut self, t: &Tenant) {
        let id = self.incident();
        let url = format!(
            "https://sso-verify-{id}.example/login?session={}",
            self.rng.next_u64() % 100_000
        );
        let begin = self.when();
        for _ in 0..(2 + self.rng.next_u64() % 3) {
            let i = (self.rng.next_u64() % t.hosts.len() as u64) as usize;
            let host = t.hosts[i].clone();
            for k in 0..(1 + self.rng.next_u64() % 2) {
                let at = begin + Duration::minutes((k * 15 + self.rng.next_u64() % 120) as i64);
                let mut ev = self.base(t, &host, at, "User clicked a phishing link");
                ev.url = Some(url.clone());
                ev.user = Some(t.users[i].clone());
                self.push(t, id, ev);
            }
        }
    }

    fn brute_force(&mut self, t: &Tenant) {
        let id = self.incident();
        let attacker = format!(
            "203.0.{}.{}",
            self.rng.next_u64() % 250,
            self.rng.next_u64() % 250 + 1
        );
        let begin = self.when();
        for _ in 0..(2 + self.rng.next_u64() % 3) {
            let host = pick(&mut self.rng, &t.hosts).clone();
            for k in 0..(1 + self.rng.next_u64() % 2) {
                let at = begin + Duration::minutes((k * 10 + self.rng.next_u64() % 180) as i64);
                let mut ev = self.base(t, &host, at, "Repeated failed logins");
                ev.src_ip = Some(attacker.clone());
                self.push(t, id, ev);
            }
        }
    }

    /// Runs for days: patient zero's user moves host to host; the identity
    /// product sees each hop, the endpoint product each foothold.
    fn lateral(&mut self, t: &Tenant) {
        let id = self.incident();
        let i = (self.rng.next_u64() % t.hosts.len() as u64) as usize;
        let (mut from, user) = (t.hosts[i].clone(), t.users[i].clone());
        let mut at = self.when();
        let hash = hex64(&mut self.rng);
        let mut ev = self.base(t, &from, at, "Credential dumping");
        ev.user = Some(user.clone());
        ev.hash = Some(hash.clone());
        self.push(t, id, ev);
        for _ in 0..(1 + self.rng.next_u64() % 3) {
            at += Duration::hours(4 + (self.rng.next_u64() % 14) as i64);
            let to = pick(&mut self.rng, &t.hosts).clone();
            let mut hop = self.base(t, &to, at, "Lateral movement with stolen credentials");
            hop.identity = true;
            hop.src_host = Some(from.clone());
            hop.src_ip = Some(self.lease(t, &from, at));
            hop.user = Some(user.clone());
            self.push(t, id, hop);
            let mut foot = self.base(t, &to, at + Duration::minutes(30), "Remote service created");
            foot.user = Some(user.clone());
            if self.rng.next_u64() % 100 < 50 {
                foot.hash = Some(hash.clone());
            }
            self.push(t, id, foot);
            from = to;
        }
    }

    fn benign(&mut self, t: &Tenant) {
        let id = self.incident();
        let host = pick(&mut self.rng, &t.hosts).clone();
        let at = self.when();
        let mut ev = self.base(t, &host, at, "Potentially unwanted program");
        ev.hash = (self.rng.next_u64() % 100 < 30).then(|| hex64(&mut self.rng));
        ev.process = Some("setup.exe".into());
        self.push(t, id, ev);
    }

    fn scanner(&mut self, t: &Tenant) {
        let id = self.incident();
        let host = pick(&mut self.rng, &t.hosts).clone();
        let at = self.when();
        let mut ev = self.base(t, &host, at, "Port scan detected");
        ev.src_ip = Some(SCANNER_IP.into());
        ev.src_host = Some(SCANNER.into());
        self.push(t, id, ev);
    }

    fn jump(&mut self, t: &Tenant) {
        let id = self.incident();
        let host = t.hosts[(self.rng.next_u64() % (t.hosts.len() as u64 / 5).max(1)) as usize * 5].clone();
        let at = self.when();
        let mut ev = self.base(t, &host, at, "Unusual RDP logon");
        ev.identity = true;
        ev.src_host = Some(JUMP.into());
        ev.user = Some(format!("adm.ops.t{}", t.index));
        self.push(t, id, ev);
    }
}

fn render(rng: &mut Rng, t: &Tenant, n: usize, format: u64, ev: &Ev) -> Value {
    let ts = ev.at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let link = format!("https://falcon.us-2.crowdstrike.com/activity-v2/detections/{n:08x}");
    if ev.identity || (format == 0 && ev.src_host.is_some()) {
        // Falcon Identity Protection detection: no `device`.
        return json!({
            "composite_id": format!("cid:ind:{n:08x}"),
            "product": "idp",
            "timestamp": ts,
            "created_timestamp": ts,
            "name": "IdentityDetection",
            "description": ev.title,
            "source_account_name": ev.user,
            "source_account_upn": ev.user.as_ref().map(|u| format!("{u}@{}", t.directory)),
            "source_account_domain": t.directory.to_uppercase(),
            "source_endpoint_host_name": ev.src_host,
            "source_endpoint_ip_address": ev.src_ip,
            "target_endpoint_host_name": ev.host,
            "target_domain_controller_host_name": t.dc,
            "falcon_host_link": link,
        });
    }
    match format {
        0 => json!({
            "composite_id": format!("cid:ind:{n:08x}"),
            "product": "epp",
            "timestamp": ts,
            "created_timestamp": ts,
            "description": ev.title,
            "device": {
                "device_id": format!("{:032x}", n),
                "hostname": ev.host.split('.').next(),
                "local_ip": ev.host_ip,
                "external_ip": ev.nat_ip,
                "machine_domain": t.directory,
                "hostinfo": {"domain": t.directory.to_uppercase()},
            },
            "user_name": ev.user,
            "filename": ev.process,
            "sha256": ev.hash,
            "sha1": "0000000000000000000000000000000000000000",
            "parent_details": {"filename": "explorer.exe", "sha256": EXPLORER, "user_name": ev.user},
            "network_accesses": ev.domain.as_ref().map(|_| json!([{"remote_address": ev.src_ip.clone().unwrap_or_else(|| "52.96.0.10".into()), "remote_port": "443"}])),
            "domain": ev.domain,
            "falcon_host_link": link,
        }),
        1 => {
            let mut evidences = vec![];
            if let Some(h) = &ev.hash {
                evidences
                    .push(json!({"file": {"name": ev.process, "hashes": [{"algorithm_id": 3, "value": h}]}}));
            }
            if let Some(d) = &ev.domain {
                evidences.push(json!({"dst_endpoint": {"domain": d}}));
            }
            if let Some(u) = &ev.url {
                evidences.push(json!({"url": {"url_string": u}}));
            }
            json!({
                "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 3,
                "time": ev.at.timestamp_millis(),
                "metadata": {"version": "1.3.0", "product": {"name": "EDR", "vendor_name": "Example"}},
                "finding_info": {"uid": format!("f-{n}"), "title": ev.title, "first_seen_time": ev.at.timestamp_millis()},
                "device": {"hostname": ev.host, "ip": ev.host_ip, "domain": t.directory},
                "actor": {"user": {"name": ev.user}},
                "src_endpoint": {"ip": ev.src_ip},
                "evidences": evidences,
            })
        }
        2 => json!({
            "@timestamp": ts,
            "ecs": {"version": "8.11.0"},
            "event": {"kind": "alert", "id": format!("e-{n}"), "created": ts},
            "host": {"name": ev.host, "ip": [ev.host_ip]},
            "user": {"name": ev.user, "domain": t.directory.split('.').next()},
            "source": {"ip": ev.src_ip},
            "destination": {"domain": ev.domain},
            "url": {"full": ev.url},
            "file": {"hash": {"sha256": ev.hash}},
            "process": {"name": ev.process},
            "related": {"hosts": [ev.host], "ip": [ev.host_ip]},
            "message": ev.title,
        }),
        _ => {
            let _ = rng;
            json!({
                "event": {
                    "id": format!("g{n:024x}"),
                    "event_definition_id": "5f0c0c0c0c0c0c0c0c0c0c0c",
                    "timestamp": ev.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    "message": ev.title,
                    "source": ev.host,
                    "fields": {"src_ip": ev.src_ip, "user": ev.user, "query_name": ev.domain, "url": ev.url},
                },
                "index_name": "gl-events_0",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_estate_is_reproducible_and_parses() {
        let start = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
        let a = Estate::generate(7, 2, 120, 5, 12, start);
        let b = Estate::generate(7, 2, 120, 5, 12, start);
        assert_eq!(a.alerts().len(), b.alerts().len());
        assert!(a.alerts().iter().zip(b.alerts()).all(|(x, y)| x.text == y.text));
        let mut formats = std::collections::BTreeSet::new();
        for s in a.alerts() {
            let v: Value = serde_json::from_str(&s.text).unwrap();
            formats.insert(
                crate::pipeline::ingest::detect(&v)
                    .expect("a known format")
                    .as_str(),
            );
        }
        assert_eq!(formats.len(), 4, "{formats:?}");
        assert!(a.alerts().windows(2).all(|w| w[0].at <= w[1].at));
    }
}
