//! `vigil demo`: a demo tenant and one account per role, so a new user sees
//! Vigil working within a minute. Passwords are generated on every start and
//! printed once; nothing is a default password.

use std::fmt::Write;

use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::identity::{self, Tenant};
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::secrets::credentials::{PasswordPolicy, generate_password};
use vigil_orchestrator::{Clock, Role, Store};

use crate::Error;

pub const DEMO_TENANT: &str = "Demo SOC";

#[derive(Debug)]
pub struct Seeded {
    pub tenant: Tenant,
    /// (role, e-mail, password) — shown once.
    pub accounts: Vec<(Role, String, String)>,
}

impl Seeded {
    pub fn render(&self, public_url: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Demo tenant \"{}\" ({}) at {public_url}",
            self.tenant.name, self.tenant.id
        );
        let _ = writeln!(
            s,
            "Demo accounts (passwords are new on every start and shown only here):"
        );
        for (role, email, password) in &self.accounts {
            let _ = writeln!(s, "  {:<18} {:<40} {}", role.as_str(), email, password);
        }
        s
    }
}

fn demo_email(role: Role) -> Result<Email, Error> {
    Ok(Email::parse(&format!(
        "{}@demo.vigil.test",
        role.as_str().replace('_', "-")
    ))?)
}

/// Idempotent: reuses the demo tenant and accounts, resetting passwords.
pub async fn seed(store: &Store, clock: &dyn Clock, master: &MasterKey) -> Result<Seeded, Error> {
    let actor = Actor {
        label: "system:demo".into(),
        role: None,
        source_ip: None,
    };
    let policy = PasswordPolicy::default();
    let tenant = match identity::find_tenant_by_name(store.conn(), DEMO_TENANT).await? {
        Some(t) => t,
        None => {
            let tx = store.begin_platform().await?;
            let t = identity::create_tenant(&tx, clock, &actor, DEMO_TENANT).await?;
            tx.commit().await?;
            t
        }
    };
    let mut accounts = Vec::new();
    let mut analyst = None;
    for role in Role::ALL {
        let email = demo_email(role)?;
        let password = generate_password();
        let hash = policy.hash(&password)?;
        let tx = store.begin_platform().await?;
        let user = identity::upsert_local_user(&tx, clock, &actor, &email, hash, role == Role::PlatformAdmin)
            .await?;
        if role == Role::AnalystEdit {
            analyst = Some(user);
        }
        tx.commit().await?;
        if role.is_tenant_role() {
            let tx = store.begin_tenant(tenant.id).await?;
            if !identity::list_members(&tx)
                .await?
                .iter()
                .any(|m| m.email == email.as_str())
            {
                identity::add_member(&tx, clock, &actor, &email, role).await?;
            }
            tx.commit().await?;
        }
        accounts.push((role, email.as_str().to_owned(), password));
    }
    if let Some(analyst) = analyst {
        seed_cases(store, clock, tenant.id, analyst).await?;
    }
    seed_alerts(store, clock, master, tenant.id).await?;
    Ok(Seeded { tenant, accounts })
}

/// Sample cases, each with a gate waiting for a human (requested by the demo
/// analyst, so another role decides it). Only into an empty tenant.
async fn seed_cases(
    store: &Store,
    clock: &dyn Clock,
    tenant: vigil_orchestrator::TenantId,
    analyst: vigil_orchestrator::UserId,
) -> Result<(), Error> {
    use serde_json::json;
    use vigil_orchestrator::engine::state::{GateKind, Severity};
    use vigil_orchestrator::engine::{cases, gates};
    let tx = store.begin_tenant(tenant).await?;
    if cases::list(&tx, None, 1, 0).await?.1 > 0 {
        return Ok(());
    }
    let who = Actor {
        label: format!("user:{analyst}"),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    // A ticket system to propose writes to. Read-only, like every new
    // integration, and without a credential: an approved write waits in the
    // outbox, visibly, until a Tenant Admin sets one and enables the scope.
    let jira = vigil_orchestrator::connect::integrations::create(
        &tx,
        clock,
        &who,
        "jira",
        "Jira (demo)",
        json!({"base_url": "https://demo.atlassian.net", "email": "soc@demo.example", "project_key": "SOC"}),
    )
    .await?;
    let samples = [
        (
            "Beaconing to 185.220.101.4 from FIN-WS-042 every 60 s",
            Severity::High,
            GateKind::EscalateCritical,
            json!({"reason": "Regular 60 s beacons to a known Tor exit from a finance workstation; the process is an unsigned binary in %APPDATA%."}),
        ),
        (
            "Impossible travel: j.doe@corp signs in from Lisbon, then Singapore 40 min later",
            Severity::Medium,
            GateKind::TicketWrite,
            json!({"system": "jira", "operation": "create", "integration_id": jira.id, "fields": {"project_key": "SOC", "summary": "Reset credentials and review sessions for j.doe", "description": "Impossible travel: Lisbon then Singapore 40 minutes apart. Reset the password, revoke sessions, review MFA devices."}}),
        ),
        (
            "Port sweep from 10.20.0.15 (internal vulnerability scanner)",
            Severity::Low,
            GateKind::CloseCase,
            json!({"resolution": "false_positive", "summary": "Scheduled Nessus scan from the approved scanner host."}),
        ),
    ];
    for (title, severity, kind, payload) in samples {
        let case = cases::open(&tx, clock, &who, title, severity).await?;
        gates::request(&tx, clock, &who, case.id, kind, payload, gates::ESCALATE_AFTER).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sample alerts in the four accepted formats, delivered through the real
/// signed webhook path from a demo integration (once).
async fn seed_alerts(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    tenant: vigil_orchestrator::TenantId,
) -> Result<(), Error> {
    use vigil_orchestrator::{connect::integrations, pipeline::ingest};
    let tx = store.begin_tenant(tenant).await?;
    if integrations::list(&tx)
        .await?
        .0
        .iter()
        .any(|i| i.name == "Demo EDR webhook")
    {
        return Ok(());
    }
    let actor = Actor {
        label: "system:demo".into(),
        role: None,
        source_ip: None,
    };
    let (hook, secret) = integrations::create_with_secret(
        &tx,
        clock,
        master,
        &actor,
        "webhook",
        "Demo EDR webhook",
        serde_json::json!({"format": "auto"}),
    )
    .await?;
    tx.commit().await?;
    let Some(secret) = secret else { return Ok(()) };
    let now = clock.now();
    let at = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let body = serde_json::json!([
        {"class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2, "severity_id": 4, "time": (now - chrono::Duration::minutes(42)).timestamp_millis(),
         "finding_info": {"uid": "demo-ocsf-7781", "title": "Periodic beaconing to a Tor exit node", "types": ["Command and Control"]},
         "device": {"hostname": "FIN-WS-042", "ip": "10.20.4.42"}, "dst_endpoint": {"ip": "185.220.101.4", "port": 443},
         "metadata": {"product": {"name": "Network Sensor", "vendor_name": "Demo"}, "version": "1.1.0"}},
        {"composite_id": "demo:ind:4f2a", "cid": "demo-cid", "created_timestamp": at(40), "severity": 70, "tactic": "Command and Control",
         "description": "Unsigned binary in %APPDATA% made periodic outbound connections", "filename": "updsvc.exe",
         "sha256": "9f2c1c5c3c0d8a1b7e6f4a3d2c1b0a99887766554433221100ffeeddccbbaa99",
         "device": {"device_id": "demo-dev-42", "hostname": "FIN-WS-042", "local_ip": "10.20.4.42"}, "user_name": "m.rossi"},
        {"@timestamp": at(35), "ecs": {"version": "8.11.0"}, "event": {"id": "demo-ecs-118", "kind": "alert", "category": ["authentication"], "action": "impossible-travel"},
         "user": {"name": "j.doe", "email": "j.doe@corp.example"}, "source": {"ip": "203.0.113.77", "geo": {"city_name": "Singapore"}},
         "message": "Sign-in from Singapore 40 minutes after a sign-in from Lisbon"},
        {"event_definition_id": "demo-def-ssh", "event": {"id": "demo-gl-9001", "event_definition_id": "demo-def-ssh", "timestamp": at(30),
         "message": "Port sweep from 10.20.0.15 across 10.20.4.0/24", "source": "graylog", "fields": {"src_ip": "10.20.0.15"}}}
    ]);
    let text = body.to_string();
    let ts = now.timestamp().to_string();
    let sig = ingest::sign(secret.as_bytes(), &ts, text.as_bytes());
    ingest::receive(
        store,
        clock,
        master,
        ingest::Delivery {
            integration: hook.id,
            timestamp: Some(&ts),
            signature: Some(&sig),
            body: text.as_bytes(),
            source_ip: None,
        },
    )
    .await?;
    seed_corpus(store, clock, master, tenant, hook.id, &secret).await
}

/// Incidents from the fixture corpus (one tenant's worth), through the same
/// signed webhook, with the corpus's shared proxy IP on the tenant's ignore
/// list (as a SOC would set it); and a draft brief of the beaconing case.
async fn seed_corpus(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    tenant: vigil_orchestrator::TenantId,
    hook: uuid::Uuid,
    secret: &str,
) -> Result<(), Error> {
    use vigil_orchestrator::pipeline::correlate::{self, Ignored, Settings};
    use vigil_orchestrator::{pipeline::corpus, pipeline::drafts, pipeline::ingest};
    let actor = Actor {
        label: "system:demo".into(),
        role: None,
        source_ip: None,
    };
    let tx = store.begin_tenant(tenant).await?;
    let settings = Settings {
        ignore: vec![Ignored {
            kind: "ip".into(),
            value: corpus::PROXY_IP.into(),
        }],
        ..Settings::default()
    };
    correlate::set_settings(&tx, clock, &actor, settings).await?;
    tx.commit().await?;
    let samples = corpus::generate(
        DEMO_CORPUS_SEED,
        1,
        DEMO_CORPUS_INCIDENTS,
        clock.now() - chrono::Duration::hours(14),
    );
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let body = format!("[{}]", texts.join(","));
    let ts = clock.now().timestamp().to_string();
    let sig = ingest::sign(secret.as_bytes(), &ts, body.as_bytes());
    ingest::receive(
        store,
        clock,
        master,
        ingest::Delivery {
            integration: hook,
            timestamp: Some(&ts),
            signature: Some(&sig),
            body: body.as_bytes(),
            source_ip: None,
        },
    )
    .await?;
    // A draft of the FIN-WS-042 case, waiting for an analyst's decision.
    let tx = store.begin_tenant(tenant).await?;
    let (cases, _) = vigil_orchestrator::engine::cases::list(&tx, None, 500, 0).await?;
    if let Some(c) = cases.iter().find(|c| c.title.contains("Tor exit")) {
        drafts::generate(&tx, clock, c.id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The corpus slice `vigil demo` loads (fixed, so the demo is the same everywhere).
pub const DEMO_CORPUS_SEED: u64 = 2026;
pub const DEMO_CORPUS_INCIDENTS: usize = 25;

/// The demo's estate: a CrowdStrike and a Graylog on loopback (the
/// simulators the tests use, written from the vendors' published APIs),
/// knowing the hosts, users and addresses of the demo's alerts, wired to
/// the demo tenant as read-only integrations, so its investigations collect
/// evidence through the same clients a real tenant's would. Started by
/// `vigil demo` only; dropped (stopped) with the server.
#[derive(Debug)]
pub struct Estate {
    _falcon: crate::sim::Running,
    _graylog: crate::sim::Running,
}

pub const DEMO_FALCON: &str = "CrowdStrike (demo simulator)";
pub const DEMO_GRAYLOG: &str = "Graylog (demo simulator)";
const FALCON_CLIENT: &str = "demo-client";
const FALCON_SECRET: &str = "demo-falcon-secret";
const GRAYLOG_TOKEN: &str = "demo-graylog-token";

pub async fn estate(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    tenant: vigil_orchestrator::TenantId,
) -> Result<Estate, Error> {
    use std::collections::BTreeSet;
    use vigil_orchestrator::connect::integrations;
    use vigil_orchestrator::pipeline::ingest;
    use vigil_orchestrator::pipeline::observables::Kind;
    let (falcon_run, falcon) = crate::sim::crowdstrike::start(FALCON_CLIENT, FALCON_SECRET).await;
    let (graylog_run, graylog) = crate::sim::graylog::start(GRAYLOG_TOKEN).await;
    // What the tools know: each host of the demo's alerts as a device, and a
    // log line naming its host, user and address a few minutes before each alert.
    let tx = store.begin_tenant(tenant).await?;
    let mut hosts = BTreeSet::new();
    let mut messages = Vec::new();
    for (n, a) in ingest::list(&tx, 2_000, 0).await?.iter().enumerate() {
        let obs = ingest::observables_of(&tx, a.id).await?;
        let first = |k: Kind| obs.iter().find(|o| o.kind == k).map(|o| o.value.clone());
        let (host, user, ip) = (first(Kind::Host), first(Kind::User), first(Kind::Ip));
        if let Some(h) = &host {
            hosts.insert(h.clone());
        }
        if host.is_none() && user.is_none() && ip.is_none() {
            continue;
        }
        let at = a.event_at.unwrap_or(a.received_at) - chrono::Duration::minutes(3);
        let text = format!(
            "An account was successfully logged on (4624): user {} on {} from {}",
            user.as_deref().unwrap_or("-"),
            host.as_deref().unwrap_or("-"),
            ip.as_deref().unwrap_or("-")
        );
        messages.push(crate::sim::graylog::message(
            n,
            &at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            host.as_deref().unwrap_or("dc-01"),
            &text,
        ));
    }
    *graylog
        .messages
        .lock()
        .map_err(|_| Error::Io("demo estate".into()))? = messages;
    let devices = hosts
        .iter()
        .enumerate()
        // One host in seven is already network-contained.
        .map(|(i, h)| {
            crate::sim::crowdstrike::device(
                &format!("demo-dev-{i:03}"),
                h,
                if i % 7 == 3 { "contained" } else { "normal" },
            )
        })
        .collect();
    *falcon
        .devices
        .lock()
        .map_err(|_| Error::Io("demo estate".into()))? = devices;
    // Identity Protection's accounts: m.rossi administers the finance
    // hosts (a privileged account), j.doe is an ordinary user at risk.
    *falcon
        .identities
        .lock()
        .map_err(|_| Error::Io("demo estate".into()))? = vec![
        crate::sim::crowdstrike::identity(
            "m.rossi",
            "corp.example",
            &["DomainAdminsRole", "AdministratorsRole"],
            0.41,
        ),
        crate::sim::crowdstrike::identity("j.doe", "corp.example", &[], 0.78),
    ];
    // The integrations, pointing at this run's ports.
    let actor = Actor {
        label: "system:demo".into(),
        role: None,
        source_ip: None,
    };
    let existing = integrations::list(&tx).await?.0;
    for (kind, name, config, secret) in [
        (
            "crowdstrike",
            DEMO_FALCON,
            serde_json::json!({"base_url": falcon_run.base(), "client_id": FALCON_CLIENT}),
            FALCON_SECRET,
        ),
        (
            "graylog",
            DEMO_GRAYLOG,
            serde_json::json!({"base_url": graylog_run.base()}),
            GRAYLOG_TOKEN,
        ),
    ] {
        match existing.iter().find(|i| i.name == name) {
            Some(i) => {
                integrations::set_config(&tx, clock, &actor, i.id, config).await?;
            }
            None => {
                let i = integrations::create(&tx, clock, &actor, kind, name, config).await?;
                vigil_orchestrator::secrets::vault::set(&tx, clock, master, &actor, i.id, secret.as_bytes())
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(Estate {
        _falcon: falcon_run,
        _graylog: graylog_run,
    })
}
