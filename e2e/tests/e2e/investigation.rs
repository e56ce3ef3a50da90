//! The investigation runs itself: with no request but the ingest, alerts
//! become a case whose round the engine runs — evidence, assessment, a
//! cited draft, and a gate Vigil proposes itself — debounced over a burst,
//! a new round (and draft version) for later alerts, nothing under the
//! kill switch. On both backends, with the worker `vigil serve` runs.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_e2e::sim::{self, Fault};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::connect::connectors::Connectors;
use vigil_orchestrator::engine::outbox;
use vigil_orchestrator::engine::state::GateKind;
use vigil_orchestrator::engine::{gates, kill, steps};
use vigil_orchestrator::pipeline::evidence;
use vigil_orchestrator::pipeline::{drafts, ingest, investigation};
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::secrets::vault;
use vigil_orchestrator::store::entity::step;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{ManualClock, Role, connect::integrations, identity};

fn alert(n: usize, title: &str, tactic: &str, minute: i64) -> String {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap() + Duration::minutes(minute);
    json!({
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": 5,
        "time": at.timestamp_millis(),
        "metadata": {"version": "1.3.0", "product": {"name": "EDR"}},
        "finding_info": {"uid": format!("inv-{n}"), "title": title,
                         "attacks": [{"tactic": {"name": tactic, "uid": "TA0006"}, "technique": {"uid": "T1003"}}]},
        "device": {"hostname": "ws-042", "ip": "10.1.2.42"},
        "actor": {"user": {"name": "m.rossi"}},
    })
    .to_string()
}

async fn drain(db: &TestDb, clock: &ManualClock) -> usize {
    // No integration to read evidence from: the connectors are never called.
    let conn = Connectors::new(
        db.store.clone(),
        Arc::new(MasterKey::generate()),
        Arc::new(vigil_orchestrator::SystemClock),
    )
    .unwrap();
    let registry = investigation::registry(steps::Registry::default(), conn);
    let mut w = steps::Worker::new("test-investigation");
    w.db_clock = false;
    let mut ran = 0;
    for _ in 0..50 {
        let r = steps::run_once(&db.store, clock, &registry, &w).await.unwrap();
        if r.claimed() == 0 {
            break;
        }
        ran += r.succeeded;
        assert_eq!(r.dead, 0, "{r:?}");
    }
    ran
}

/// A tenant with a webhook integration, and the security engineer who made it.
async fn tenant_with_hook(
    db: &TestDb,
    c: &ManualClock,
    name: &str,
) -> (identity::Tenant, integrations::Integration, Actor) {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c, &Actor::cli(), name)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (t, hook, eng)
}

async fn runs_itself(db: TestDb) {
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap());
    let (t, hook, eng) = tenant_with_hook(&db, &c, "T").await;
    let deliver = |texts: Vec<String>| {
        let db = &db;
        let c = &c;
        async move {
            let tx = db.store.begin_tenant(t.id).await.unwrap();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let checked = ingest::check("auto", &refs).unwrap();
            ingest::store_checked(&tx, c, hook.id, checked).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    // A burst: 2 alerts, then 20 more deliveries into the same case.
    deliver(vec![
        alert(1, "Suspicious PowerShell", "Execution", 0),
        alert(2, "Credential dumping from LSASS", "Credential Access", 5),
    ])
    .await;
    for n in 0..20 {
        deliver(vec![alert(
            10 + n,
            "Lateral movement over SMB",
            "Lateral Movement",
            10 + n as i64,
        )])
        .await;
    }
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let cases = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0;
    assert_eq!(cases.len(), 1, "one host, one case");
    let case_id = cases[0].id;
    drop(tx);
    let rounds = || async {
        let tx = db.store.begin_tenant(t.id).await.unwrap();
        step::Entity::find()
            .filter(step::Column::CaseId.eq(case_id))
            .filter(step::Column::Kind.eq(investigation::COLLECT))
            .all(&*tx)
            .await
            .unwrap()
    };
    assert_eq!(rounds().await.len(), 1, "a burst is one round");
    assert_eq!(drain(&db, &c).await, 0, "debounced: not due yet");
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(
        drain(&db, &c).await,
        investigation::STEPS.len(),
        "collect, sequence, assess, draft, propose"
    );

    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let ds = drafts::list(&tx, case_id, false).await.unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].drafter, "deterministic (round 1)");
    let body: drafts::Body = serde_json::from_value(ds[0].body.clone()).unwrap();
    drafts::validate(&tx, case_id, &body).await.unwrap();
    let rec = &body.recommendations[0];
    assert_eq!(rec.action, "escalate_critical", "{rec:?}");
    assert!(rec.signals.iter().any(|s| s.name.contains("critical")), "{rec:?}");
    assert!(
        rec.signals.iter().any(|s| s.name.contains("credential access")),
        "{rec:?}"
    );
    let pending = gates::list(&tx, None, None, 50, 0).await.unwrap().0;
    assert_eq!(pending.len(), 1, "Vigil proposed the escalation");
    assert_eq!(pending[0].kind, GateKind::EscalateCritical);
    assert_eq!(pending[0].requested_by, "system:investigation");
    assert_eq!(pending[0].payload["draft"]["version"], 1);
    // What the case API shows of it.
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!(p.rounds.len(), 1);
    assert_eq!(
        (p.rounds[0].round, p.rounds[0].state),
        (1, "awaiting_decision"),
        "the escalation waits for a person"
    );
    let kinds: Vec<&str> = p.rounds[0].steps.iter().map(|s| s.kind.as_str()).collect();
    let mut expected = investigation::STEPS.to_vec();
    expected.push(investigation::FOLLOW_UP);
    assert_eq!(kinds, expected, "the steps, then the escalation's follow-up");
    assert_eq!(
        p.rounds[0].steps[5].state,
        vigil_orchestrator::engine::state::StepState::Waiting
    );
    assert_eq!(p.draft.as_ref().map(|d| d.version), Some(1));
    tx.commit().await.unwrap();

    // A later alert: a new round, draft v2 (v1 superseded), the waiting
    // escalation is not asked twice.
    c.advance(Duration::minutes(5));
    deliver(vec![alert(
        99,
        "Credential dumping again",
        "Credential Access",
        40,
    )])
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, investigation::STEPS.len());
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let ds = drafts::list(&tx, case_id, false).await.unwrap();
    let states: Vec<(i32, &str)> = ds.iter().map(|d| (d.version, d.state.as_str())).collect();
    assert!(
        states.contains(&(1, "superseded")) && states.contains(&(2, "draft")),
        "{states:?}"
    );
    assert_eq!(gates::list(&tx, None, None, 50, 0).await.unwrap().0.len(), 1);
    tx.commit().await.unwrap();

    // An alert right after a round started: the next round waits until
    // ROUND_INTERVAL after the previous one's start, not just the debounce.
    deliver(vec![alert(
        100,
        "Credential dumping a third time",
        "Credential Access",
        50,
    )])
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, 0, "a busy case's rounds are spaced");
    // Under the kill switch no round starts; on release it runs.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    kill::set_tenant(&tx, &c, &eng, true).await.unwrap();
    tx.commit().await.unwrap();
    c.advance(investigation::ROUND_INTERVAL);
    assert_eq!(drain(&db, &c).await, 0, "nothing runs under the kill switch");
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!((p.rounds[0].round, p.rounds[0].state), (3, "waiting"));
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    kill::set_tenant(&tx, &c, &eng, false).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(drain(&db, &c).await, investigation::STEPS.len());
    assert_eq!(rounds().await.len(), 3);

    // A person dismisses the proposal (feedback): later rounds do not ask again.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let analyst = Actor {
        label: "user:analyst".into(),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    let g = gates::list(&tx, None, None, 50, 0).await.unwrap().0.remove(0);
    let decider = gates::Decider {
        actor: &analyst,
        may_decide: &|_| true,
    };
    gates::reject(&tx, &c, &decider, g.id, "known pentest")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    let first = p.rounds.iter().find(|r| r.round == 1).unwrap();
    assert_eq!(first.state, "complete", "dismissed: its follow-up is cancelled");
    tx.commit().await.unwrap();

    // A person asks for a round: one is queued, due at once (no debounce,
    // no spacing); asking again while it waits queues nothing more. Audited.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert!(investigation::rerun(&tx, &c, &eng, case_id).await.unwrap());
    assert!(!investigation::rerun(&tx, &c, &eng, case_id).await.unwrap());
    // Audit events take their place in the chain at commit.
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let log = vigil_orchestrator::audit::list(&tx, 200, 0).await.unwrap().0;
    assert_eq!(
        log.iter().filter(|e| e.action == "investigation.rerun").count(),
        2
    );
    tx.commit().await.unwrap();
    assert_eq!(drain(&db, &c).await, investigation::STEPS.len());
    assert_eq!(rounds().await.len(), 4);
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let all = gates::list(&tx, None, None, 50, 0).await.unwrap().0;
    assert_eq!(all.len(), 1, "a dismissed proposal is not made again");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn investigation_runs_itself_sqlite() {
    runs_itself(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn investigation_runs_itself_postgres() {
    runs_itself(TestDb::postgres().await).await;
}

/// Runs due steps until none is left; every step that ran, by kind, and
/// how many were retried.
async fn run_all(db: &TestDb, clock: &ManualClock, conn: &Connectors) -> (usize, usize) {
    let registry = investigation::registry(steps::Registry::default(), conn.clone());
    let mut w = steps::Worker::new("test-evidence");
    w.db_clock = false;
    let (mut ran, mut retried) = (0, 0);
    for _ in 0..50 {
        let r = steps::run_once(&db.store, clock, &registry, &w).await.unwrap();
        if r.claimed() == 0 {
            break;
        }
        assert_eq!(r.dead, 0, "{r:?}");
        ran += r.succeeded;
        retried += r.retried;
    }
    (ran, retried)
}

struct Estate {
    tenant: vigil_orchestrator::TenantId,
    hook: uuid::Uuid,
    falcon: uuid::Uuid,
    graylog: uuid::Uuid,
    jira: uuid::Uuid,
}

/// A tenant with a webhook, CrowdStrike and Graylog (read scopes, as every
/// integration starts) and Jira, each with a credential for its simulator.
async fn estate(db: &TestDb, c: &ManualClock, master: &MasterKey, cs: &str, gl: &str, jira: &str) -> Estate {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c, &Actor::cli(), "Evidence")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, c, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let falcon = integrations::create(
        &tx,
        c,
        &eng,
        "crowdstrike",
        "Falcon",
        json!({"base_url": cs, "client_id": "cid"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, master, &eng, falcon.id, b"secret")
        .await
        .unwrap();
    let graylog = integrations::create(&tx, c, &eng, "graylog", "Graylog", json!({"base_url": gl}))
        .await
        .unwrap();
    vault::set(&tx, c, master, &eng, graylog.id, b"gl-token")
        .await
        .unwrap();
    let j = integrations::create(
        &tx,
        c,
        &eng,
        "jira",
        "Jira",
        json!({"base_url": jira, "email": "soc@acme.example", "project_key": "SOC"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c, master, &eng, j.id, b"tok").await.unwrap();
    let admin = Actor {
        label: "user:adm".into(),
        role: Some(Role::TenantAdmin),
        source_ip: None,
    };
    integrations::set_scope(&tx, c, &admin, j.id, "issue:create", true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Estate {
        tenant: t.id,
        hook: hook.id,
        falcon: falcon.id,
        graylog: graylog.id,
        jira: j.id,
    }
}

async fn deliver(
    db: &TestDb,
    c: &ManualClock,
    (tenant, hook): (vigil_orchestrator::TenantId, uuid::Uuid),
    texts: Vec<String>,
) {
    let tx = db.store.begin_tenant(tenant).await.unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let checked = ingest::check("auto", &refs).unwrap();
    ingest::store_checked(&tx, c, hook, checked).await.unwrap();
    tx.commit().await.unwrap();
}

/// The story, with no request but the ingest: alerts in → evidence from the
/// CrowdStrike and Graylog simulators (a Graylog 503 retried by the engine)
/// → a cited draft whose entities and timeline cite the evidence → proposed
/// escalation, ticket and containment → a second person approves the ticket
/// → the Jira simulator receives exactly one issue.
async fn investigated_with_evidence(db: TestDb) {
    let c = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap(),
    ));
    let master = Arc::new(MasterKey::generate());
    let (cs_run, falcon) = sim::crowdstrike::start("cid", "secret").await;
    let (gl_run, graylog) = sim::graylog::start("gl-token").await;
    let (jira_run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    falcon
        .devices
        .lock()
        .unwrap()
        .push(sim::crowdstrike::device("dev-042", "ws-042", "normal"));
    falcon.identities.lock().unwrap().extend([
        sim::crowdstrike::identity(
            "m.rossi",
            "corp.example",
            &["MailboxRole", "DomainAdminsRole"],
            0.62,
        ),
        sim::crowdstrike::identity("someone.else", "corp.example", &["AdministratorsRole"], 0.1),
    ]);
    graylog.messages.lock().unwrap().extend([
        sim::graylog::message(
            1,
            "2026-11-22 08:58:00.000",
            "dc-01",
            "Kerberos TGT requested for m.rossi from ws-042",
        ),
        sim::graylog::message(
            2,
            "2026-11-22 09:03:00.000",
            "ws-042",
            "Sysmon: lsass.exe accessed by rundll32.exe",
        ),
        // Outside the case's window: not found.
        sim::graylog::message(3, "2026-11-20 10:00:00.000", "ws-042", "patch run"),
    ]);
    let e = estate(&db, &c, &master, &cs_run.base(), &gl_run.base(), &jira_run.base()).await;
    let conn = Connectors::new(db.store.clone(), master.clone(), c.clone()).unwrap();
    deliver(
        &db,
        &c,
        (e.tenant, e.hook),
        vec![
            alert(1, "Suspicious PowerShell", "Execution", 0),
            alert(2, "Credential dumping from LSASS", "Credential Access", 5),
            alert(3, "Lateral movement over SMB", "Lateral Movement", 8),
            alert(4, "Lateral movement over SMB", "Lateral Movement", 9),
            alert(5, "Lateral movement over SMB", "Lateral Movement", 10),
        ],
    )
    .await;
    // Graylog fails once: the collect step is retried with backoff, and the
    // retry asks only for what is missing.
    gl_run
        .control
        .push_on("GET /api/search/universal/absolute", Fault::Status(503, None));
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    let (ran, retried) = run_all(&db, &c, &conn).await;
    assert_eq!((ran, retried), (0, 1), "the collect step waits for its retry");
    let searches = gl_run.control.count("GET /api/search/universal/absolute");
    assert_eq!(searches, 3, "host, user and address of the case");
    c.advance(Duration::seconds(5));
    let (ran, _) = run_all(&db, &c, &conn).await;
    assert_eq!(
        ran,
        investigation::STEPS.len(),
        "collect, sequence, assess, draft, propose"
    );
    assert_eq!(
        gl_run.control.count("GET /api/search/universal/absolute"),
        searches + 1,
        "only the failed search again"
    );

    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let case_id = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0[0]
        .id;
    let items = evidence::of_case(&tx, case_id).await.unwrap();
    let mut seen: Vec<(String, String, String)> = items
        .iter()
        .map(|i| (i.source.clone(), i.subject.clone(), i.status.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "crowdstrike.device".into(),
                "host:ws-042".into(),
                "collected".into()
            ),
            (
                "crowdstrike.identity".into(),
                "user:m.rossi".into(),
                "collected".into()
            ),
            (
                "graylog.messages".into(),
                "host:ws-042".into(),
                "collected".into()
            ),
            (
                "graylog.messages".into(),
                "ip:10.1.2.42".into(),
                "collected".into()
            ),
            (
                "graylog.messages".into(),
                "user:m.rossi".into(),
                "collected".into()
            ),
        ]
    );
    let device = items.iter().find(|i| i.source == "crowdstrike.device").unwrap();
    assert_eq!(device.integration_id, e.falcon);
    assert_eq!(
        device.response.as_ref().unwrap()["resources"][0]["device_id"],
        "dev-042"
    );
    assert!(
        device
            .request
            .contains("/devices/entities/devices/v2?ids=dev-042"),
        "{}",
        device.request
    );
    let host_search = items
        .iter()
        .find(|i| i.subject == "host:ws-042" && i.integration_id == e.graylog)
        .unwrap();
    assert_eq!(
        host_search.response.as_ref().unwrap()["total_results"],
        2,
        "the two messages in the window"
    );

    // The draft cites the evidence; the validator accepts those citations.
    let d = drafts::list(&tx, case_id, false).await.unwrap().remove(0);
    assert_eq!(d.drafter, "deterministic (round 1)");
    let body: drafts::Body = serde_json::from_value(d.body.clone()).unwrap();
    drafts::validate(&tx, case_id, &body).await.unwrap();
    let cited: Vec<&drafts::Sentence> = body
        .entities
        .iter()
        .chain(&body.timeline)
        .filter(|s| s.cites.iter().any(|c| c.evidence_id.is_some()))
        .collect();
    let texts: Vec<&str> = cited.iter().map(|s| s.text.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("CrowdStrike knows host ws-042") && t.contains("containment status: normal")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Graylog holds 2 message(s) naming host ws-042")),
        "{texts:?}"
    );
    // The account's groups, from Identity Protection: m.rossi is a Domain
    // Admin (a signal citing the role in the evidence item); the mailbox
    // role is not a privilege.
    let identity = items.iter().find(|i| i.source == "crowdstrike.identity").unwrap();
    assert!(
        identity.request.contains("primaryDisplayNames"),
        "{}",
        identity.request
    );
    assert!(
        texts.iter().any(
            |t| t.contains("Identity Protection knows user m.rossi as CORP.EXAMPLE\\m.rossi")
                && t.contains("risk score 0.62 (medium)")
                && t.contains("privileged: Domain Admins")
                && !t.contains("Mailbox")
        ),
        "{texts:?}"
    );
    let privileged = body
        .recommendations
        .iter()
        .flat_map(|r| &r.signals)
        .find(|s| {
            s.name
                .contains("user m.rossi is a privileged account (Domain Admins)")
        })
        .expect("a privileged-account signal");
    assert_eq!(
        privileged.cites,
        [drafts::Citation::evidence(
            identity.id,
            "/data/entities/nodes/0/roles/1/type"
        )]
    );
    assert_eq!(privileged.weight, 0.3, "the default weight");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("lsass.exe accessed by rundll32.exe")),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("patch run")),
        "outside the window"
    );
    // The sequenced timeline: the alerts and the two messages in the window,
    // in event-time order, the message found by both the host and the user
    // search once.
    let t = investigation::sequenced(&tx, case_id).await.unwrap();
    let at: Vec<_> = t.iter().map(investigation::Entry::at).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    let logged: Vec<&str> = t
        .iter()
        .filter_map(|e| match e {
            investigation::Entry::Enrichment(e) => Some(e.summary.as_str()),
            investigation::Entry::Alert(_) => None,
        })
        .collect();
    assert_eq!(
        logged,
        [
            "Kerberos TGT requested for m.rossi from ws-042",
            "Sysmon: lsass.exe accessed by rundll32.exe"
        ]
    );
    assert!(
        matches!(&t[0], investigation::Entry::Enrichment(e) if e.source == "dc-01"),
        "08:58, before the first alert: {t:?}"
    );
    // Paged as the case page reads it, any page size gives the same events
    // in the same order, each enrichment event on exactly one page.
    let whole = serde_json::to_value(&t).unwrap();
    for size in [1, 2, 3, 200] {
        let mut pages = Vec::new();
        let mut offset = 0;
        loop {
            let p = investigation::sequenced_page(&tx, case_id, offset, size)
                .await
                .unwrap();
            assert_eq!(p.enrichment, logged.len());
            pages.extend(p.entries);
            offset += size;
            if offset >= p.alerts {
                break;
            }
        }
        assert_eq!(serde_json::to_value(&pages).unwrap(), whole, "page size {size}");
    }
    let past = investigation::sequenced_page(&tx, case_id, 10_000, 200)
        .await
        .unwrap();
    assert!(past.entries.is_empty(), "{:?}", past.entries);
    let actions: Vec<&str> = body.recommendations.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["escalate_critical", "contain_host"]);

    // A citation of evidence outside the case (or of nothing) is refused.
    let mut forged = body.clone();
    forged.entities[0].cites = vec![drafts::Citation::evidence(uuid::Uuid::now_v7(), "/resources")];
    let err = drafts::validate(&tx, case_id, &forged)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside this case"), "{err}");
    forged.entities[0].cites = vec![drafts::Citation::evidence(device.id, "/resources/7")];
    let err = drafts::validate(&tx, case_id, &forged)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("points nowhere"), "{err}");

    // Vigil proposed escalation and the containment of the device; the
    // ticket follows the escalation's approval.
    let (proposed, _) = gates::list(&tx, None, Some(case_id), 50, 0).await.unwrap();
    let mut kinds: Vec<GateKind> = proposed.iter().map(|g| g.kind).collect();
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(kinds, [GateKind::ContainHost, GateKind::EscalateCritical]);
    let contain = proposed
        .iter()
        .find(|g| g.kind == GateKind::ContainHost)
        .unwrap()
        .clone();
    assert_eq!(contain.payload["device_id"], "dev-042");
    assert_eq!(contain.payload["integration_id"], json!(e.falcon));
    assert_eq!(contain.requested_by, "system:investigation");
    let escalation = proposed
        .iter()
        .find(|g| g.kind == GateKind::EscalateCritical)
        .unwrap()
        .clone();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!((p.rounds[0].round, p.rounds[0].state), (1, "awaiting_decision"));
    tx.commit().await.unwrap();
    let person = |label: &str| Actor {
        label: format!("user:{label}"),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    let (ann, bob) = (person("ann"), person("bob"));
    let any = |_: GateKind| true;
    let decide = |who| gates::Decider {
        actor: who,
        may_decide: &any,
    };

    // A person approves the escalation: the round's next step proposes the
    // ticket (on the tenant's Jira), citing the same draft and signals.
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    gates::approve(
        &tx,
        c.as_ref(),
        &decide(&ann),
        escalation.id,
        &escalation.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(run_all(&db, &c, &conn).await.0, 1, "the escalation's follow-up");
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let (proposed, _) = gates::list(&tx, None, Some(case_id), 50, 0).await.unwrap();
    let ticket = proposed
        .iter()
        .find(|g| g.kind == GateKind::TicketWrite)
        .expect("the ticket follows the approved escalation")
        .clone();
    assert_eq!(ticket.payload["integration_id"], json!(e.jira));
    assert_eq!(ticket.requested_by, "system:investigation");
    assert_eq!(ticket.payload["after"]["gate"], json!(escalation.id));
    assert_eq!(ticket.payload["draft"], escalation.payload["draft"]);
    tx.commit().await.unwrap();
    assert_eq!(
        run_all(&db, &c, &conn).await.0,
        0,
        "the ticket waits for a person"
    );

    // A second person approves the ticket; the outbox sends it, exactly once.
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    gates::approve(&tx, c.as_ref(), &decide(&bob), ticket.id, &ticket.payload_hash)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = outbox::run_due(&db.store, c.as_ref(), &conn, 10).await.unwrap();
    assert_eq!(r.executed, 1, "{r:?}");
    outbox::run_due(&db.store, c.as_ref(), &conn, 10).await.unwrap();
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(run_all(&db, &c, &conn).await.0, 1, "the ticket's follow-up");
    assert_eq!(jira.issues().len(), 1, "exactly one issue");
    assert_eq!(
        falcon.contained.lock().unwrap().len(),
        0,
        "containment waits for its own gate"
    );
    // The containment is dismissed (feedback): the round is complete.
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    gates::reject(
        &tx,
        c.as_ref(),
        &decide(&bob),
        contain.id,
        "the host is a honeypot",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(run_all(&db, &c, &conn).await.0, 0, "a dismissal runs nothing");
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!((p.rounds[0].round, p.rounds[0].state), (1, "complete"));
    let follow: Vec<(&str, serde_json::Value)> = p.rounds[0]
        .steps
        .iter()
        .filter(|s| s.kind == investigation::FOLLOW_UP)
        .map(|s| (s.state.as_str(), s.output.clone().unwrap_or_default()))
        .collect();
    assert_eq!(follow.len(), 3, "{follow:?}");
    assert!(
        follow.iter().any(|(st, o)| *st == "succeeded"
            && o["after"] == "ticket_write"
            && o["outbox"]["state"] == "done"),
        "{follow:?}"
    );
    assert!(follow.iter().any(|(st, _)| *st == "cancelled"), "{follow:?}");
    tx.commit().await.unwrap();

    // A later alert within minutes: the new round uses the fresh evidence
    // again instead of asking the vendors; after FRESH it asks again.
    let asked = || cs_run.control.requests() + gl_run.control.requests();
    let before = asked();
    deliver(
        &db,
        &c,
        (e.tenant, e.hook),
        vec![alert(6, "Lateral movement over SMB", "Lateral Movement", 12)],
    )
    .await;
    c.advance(investigation::ROUND_INTERVAL + Duration::seconds(1));
    assert_eq!(run_all(&db, &c, &conn).await.0, investigation::STEPS.len());
    assert_eq!(asked(), before, "no vendor call for fresh evidence");
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let p = investigation::progress(&tx, case_id).await.unwrap();
    let collect = p.rounds[0]
        .steps
        .iter()
        .find(|s| s.kind == investigation::COLLECT)
        .unwrap();
    assert_eq!(
        collect.output.as_ref().unwrap()["evidence_reused"],
        5,
        "{collect:?}"
    );
    let d = drafts::list(&tx, case_id, false).await.unwrap().remove(0);
    assert!(
        d.body.to_string().contains("evidence_id"),
        "the new draft still cites the evidence"
    );
    tx.commit().await.unwrap();
    c.advance(evidence::FRESH + Duration::minutes(1));
    deliver(
        &db,
        &c,
        (e.tenant, e.hook),
        vec![alert(7, "Lateral movement over SMB", "Lateral Movement", 13)],
    )
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(run_all(&db, &c, &conn).await.0, investigation::STEPS.len());
    assert!(asked() > before, "stale evidence is asked for again");
}

#[tokio::test]
async fn investigated_with_evidence_sqlite() {
    investigated_with_evidence(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn investigated_with_evidence_postgres() {
    investigated_with_evidence(TestDb::postgres().await).await;
}

/// Enrichment that fails: a source that keeps failing is recorded as not
/// collected after the last try, garbage and a 10 MB answer at once, an
/// integration without a credential says so; the round still ends with a
/// validated draft.
async fn enrichment_failing(db: TestDb) {
    let c = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap(),
    ));
    let master = Arc::new(MasterKey::generate());
    let (cs_run, _falcon) = sim::crowdstrike::start("cid", "secret").await;
    let (gl_run, _graylog) = sim::graylog::start("gl-token").await;
    let e = estate(
        &db,
        &c,
        &master,
        &cs_run.base(),
        &gl_run.base(),
        "http://127.0.0.1:9",
    )
    .await;
    // A second Graylog without a credential.
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    integrations::create(
        &tx,
        c.as_ref(),
        &eng,
        "graylog",
        "Graylog 2",
        json!({"base_url": gl_run.base()}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // CrowdStrike is down for every try; Graylog answers garbage, 10 MB, then a 503 forever.
    for _ in 0..evidence::TRIES * 2 {
        cs_run
            .control
            .push_on("POST /oauth2/token", Fault::Status(503, None));
    }
    gl_run
        .control
        .push_on("GET /api/search/universal/absolute", Fault::Garbage);
    gl_run
        .control
        .push_on("GET /api/search/universal/absolute", Fault::Huge);
    for _ in 0..evidence::TRIES * 2 {
        gl_run
            .control
            .push_on("GET /api/search/universal/absolute", Fault::Status(503, None));
    }
    let conn = Connectors::new(db.store.clone(), master.clone(), c.clone()).unwrap();
    deliver(
        &db,
        &c,
        (e.tenant, e.hook),
        vec![alert(1, "Credential dumping from LSASS", "Credential Access", 0)],
    )
    .await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    let mut ran = 0;
    for _ in 0..evidence::TRIES {
        ran += run_all(&db, &c, &conn).await.0;
        c.advance(Duration::minutes(1));
    }
    assert_eq!(
        ran,
        investigation::STEPS.len(),
        "the round ends after the last try"
    );
    let tx = db.store.begin_tenant(e.tenant).await.unwrap();
    let case_id = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap()
        .0[0]
        .id;
    let items = evidence::of_case(&tx, case_id).await.unwrap();
    let why = |subject: &str, integration: uuid::Uuid| {
        items
            .iter()
            .find(|i| i.subject == subject && i.integration_id == integration)
            .map(|i| (i.status.clone(), i.error.clone().unwrap_or_default()))
            .unwrap()
    };
    let (st, err) = why("host:ws-042", e.falcon);
    assert_eq!(st, "not_collected");
    assert!(err.contains("vendor failed (HTTP 503)"), "{err}");
    let errors: Vec<String> = items
        .iter()
        .filter(|i| i.integration_id == e.graylog)
        .map(|i| {
            assert_eq!(i.status, "not_collected", "{i:?}");
            assert!(i.response.is_none());
            i.error.clone().unwrap()
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("not what its API documents")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("larger than")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("HTTP 503")), "{errors:?}");
    assert!(
        items
            .iter()
            .any(|i| i.error.as_deref() == Some("the integration has no credential: set one")),
        "{items:?}"
    );
    let d = drafts::list(&tx, case_id, false).await.unwrap().remove(0);
    let body: drafts::Body = serde_json::from_value(d.body.clone()).unwrap();
    drafts::validate(&tx, case_id, &body).await.unwrap();
    assert!(
        !body
            .entities
            .iter()
            .any(|s| s.cites.iter().any(|c| c.evidence_id.is_some())),
        "nothing collected, nothing cited"
    );
    let p = investigation::progress(&tx, case_id).await.unwrap();
    assert_eq!(
        p.rounds[0].state, "awaiting_decision",
        "its steps ran; the proposal waits for a person"
    );
    let collect = p.rounds[0]
        .steps
        .iter()
        .find(|s| s.kind == investigation::COLLECT)
        .unwrap();
    assert_eq!(collect.attempts, evidence::TRIES);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn enrichment_failing_sqlite() {
    enrichment_failing(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn enrichment_failing_postgres() {
    enrichment_failing(TestDb::postgres().await).await;
}

/// The round's draft by the tenant's model: a model that times out, then
/// one that answers uncited text, leaves the deterministic draft saying
/// why; a valid answer citing the case's alert is the round's draft. Each
/// round's drafter ends in its round, whatever drafted it.
async fn model_drafts_the_round(db: TestDb) {
    let c = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap(),
    ));
    let master = Arc::new(MasterKey::generate());
    let (run, model) = sim::llm::start("sk-test").await;
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c.as_ref(), &Actor::cli(), "Model")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let adm = Actor {
        label: "user:adm".into(),
        role: Some(Role::TenantAdmin),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, c.as_ref(), &adm, "webhook", "edr", json!({}))
        .await
        .unwrap();
    let llm = integrations::create(
        &tx,
        c.as_ref(),
        &adm,
        "llm",
        "Model",
        json!({"base_url": run.base(), "api": "openai", "model": "m-1"}),
    )
    .await
    .unwrap();
    vault::set(&tx, c.as_ref(), master.as_ref(), &adm, llm.id, b"sk-test")
        .await
        .unwrap();
    integrations::set_scope(&tx, c.as_ref(), &adm, llm.id, "context:send", true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let e = (t.id, hook.id);
    // A short client timeout, so "the model does not answer" is quick.
    let conn = Connectors::with_timeout(
        db.store.clone(),
        master.clone(),
        c.clone(),
        std::time::Duration::from_millis(500),
    )
    .unwrap();
    let round = |n: usize, minute: i64| {
        let (db, c, conn) = (&db, c.clone(), &conn);
        async move {
            deliver(
                db,
                &c,
                e,
                vec![alert(
                    n,
                    "Credential dumping from LSASS",
                    "Credential Access",
                    minute,
                )],
            )
            .await;
            c.advance(investigation::ROUND_INTERVAL + Duration::seconds(1));
            assert_eq!(run_all(db, &c, conn).await.0, investigation::STEPS.len());
            let tx = db.store.begin_tenant(e.0).await.unwrap();
            let case = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
                .await
                .unwrap()
                .0[0]
                .id;
            let d = drafts::list(&tx, case, false).await.unwrap().remove(0);
            let body: drafts::Body = serde_json::from_value(d.body.clone()).unwrap();
            drafts::validate(&tx, case, &body).await.unwrap();
            let alerts = vigil_orchestrator::pipeline::correlate::alerts_of(&tx, case)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            (d, alerts[0].0)
        }
    };
    run.control.push(Fault::Slow(std::time::Duration::from_secs(2)));
    let (d, alert_id) = round(1, 0).await;
    assert!(
        d.drafter.starts_with("deterministic (model unavailable") && d.drafter.ends_with("(round 1)"),
        "{}",
        d.drafter
    );
    *model.answer.lock().unwrap() =
        json!({"summary": [{"text": "It was APT29.", "cites": []}], "scope": [], "entities": [], "timeline": [], "recommendations": []})
            .to_string();
    let (d, _) = round(2, 5).await;
    assert!(
        d.drafter.starts_with("deterministic (model output refused") && d.drafter.ends_with("(round 2)"),
        "{}",
        d.drafter
    );
    assert!(!d.body.to_string().contains("APT29"));
    *model.answer.lock().unwrap() = json!({
        "summary": [{"text": "Credential dumping on ws-042.", "cites": [{"alert_id": alert_id, "pointer": "/device/hostname"}]}],
        "scope": [], "entities": [], "timeline": [], "recommendations": []
    })
    .to_string();
    let (d, _) = round(3, 10).await;
    assert_eq!(d.drafter, "openai:m-1 (round 3)");
    assert_eq!(d.body["summary"][0]["text"], "Credential dumping on ws-042.");
    assert_eq!(d.version, 3);
}

#[tokio::test]
async fn model_drafts_the_round_sqlite() {
    model_drafts_the_round(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn model_drafts_the_round_postgres() {
    model_drafts_the_round(TestDb::postgres().await).await;
}

/// A case merged away before its round runs: the round ends quietly
/// (skipped, nothing dead, no draft for the merged case) and the survivor
/// is investigated with what it now holds; a split investigates both
/// halves, each draft citing only its own alerts.
async fn merged_or_split_while_investigated(db: TestDb) {
    let c = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap(),
    ));
    let master = Arc::new(MasterKey::generate());
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, c.as_ref(), &Actor::cli(), "Merge")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ann = Actor {
        label: "user:ann".into(),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, c.as_ref(), &ann, "webhook", "edr", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let conn = Connectors::new(db.store.clone(), master.clone(), c.clone()).unwrap();
    let on = |n: usize, host: &str, minute: i64| {
        let mut v: serde_json::Value =
            serde_json::from_str(&alert(n, "Credential dumping", "Credential Access", minute)).unwrap();
        v["device"] = json!({"hostname": host});
        v["actor"] = json!({"user": {"name": format!("u-{host}")}});
        v.to_string()
    };
    deliver(&db, &c, (t.id, hook.id), vec![on(1, "ws-a", 0), on(2, "ws-b", 1)]).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let (list, _) = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap();
    assert_eq!(list.len(), 2, "two hosts, two cases");
    let (a, b) = (list[0].id, list[1].id);
    // Merged before the rounds run.
    vigil_orchestrator::pipeline::correlate::merge(&tx, c.as_ref(), &ann, a, b)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    run_all(&db, &c, &conn).await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let pa = investigation::progress(&tx, a).await.unwrap();
    assert_eq!(pa.rounds[0].state, "complete", "{:?}", pa.rounds);
    assert!(
        pa.rounds[0].steps[0]
            .output
            .as_ref()
            .unwrap()
            .get("skipped")
            .is_some()
    );
    assert!(
        drafts::list(&tx, a, false).await.unwrap().is_empty(),
        "no draft for a merged-away case"
    );
    let db_ = drafts::list(&tx, b, false).await.unwrap();
    assert_eq!(
        db_.len(),
        1,
        "one round for the survivor (the merge rode on its waiting round)"
    );
    let body: drafts::Body = serde_json::from_value(db_[0].body.clone()).unwrap();
    let cited: std::collections::BTreeSet<uuid::Uuid> = body
        .summary
        .iter()
        .chain(&body.entities)
        .flat_map(|s| s.cites.iter().filter_map(|c| c.alert_id))
        .collect();
    assert_eq!(cited.len(), 2, "the survivor's draft cites both alerts: {body:?}");
    // Split one alert out again: both halves get a round and a draft of their own.
    let alerts = vigil_orchestrator::pipeline::correlate::alerts_of(&tx, b)
        .await
        .unwrap();
    let out = alerts[0].0;
    let new = vigil_orchestrator::pipeline::correlate::split(&tx, c.as_ref(), &ann, b, &[out], None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.advance(investigation::ROUND_INTERVAL + Duration::seconds(1));
    assert_eq!(run_all(&db, &c, &conn).await.0, 2 * investigation::STEPS.len());
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    for (case, only) in [(new, Some(out)), (b, None)] {
        let d = drafts::list(&tx, case, false).await.unwrap().remove(0);
        let body: drafts::Body = serde_json::from_value(d.body.clone()).unwrap();
        drafts::validate(&tx, case, &body).await.unwrap();
        let cited: std::collections::BTreeSet<uuid::Uuid> = body
            .summary
            .iter()
            .chain(&body.entities)
            .flat_map(|s| s.cites.iter().filter_map(|c| c.alert_id))
            .collect();
        assert_eq!(cited.len(), 1, "{body:?}");
        if let Some(out) = only {
            assert!(cited.contains(&out));
        } else {
            assert!(!cited.contains(&out));
        }
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn merged_or_split_while_investigated_sqlite() {
    merged_or_split_while_investigated(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn merged_or_split_while_investigated_postgres() {
    merged_or_split_while_investigated(TestDb::postgres().await).await;
}

/// Containment is proposed per device: each host of the case CrowdStrike
/// reports online and not contained gets its own gate, a contained one
/// none, and a later round asks for none of them again.
async fn each_uncontained_host_is_proposed(db: TestDb) {
    let c = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap(),
    ));
    let master = Arc::new(MasterKey::generate());
    let (cs_run, falcon) = sim::crowdstrike::start("cid", "secret").await;
    let (gl_run, _graylog) = sim::graylog::start("gl-token").await;
    let (jira_run, _jira) = sim::jira::start("soc@acme.example", "tok").await;
    *falcon.devices.lock().unwrap() = vec![
        sim::crowdstrike::device("dev-1", "ws-1", "normal"),
        sim::crowdstrike::device("dev-2", "ws-2", "normal"),
        sim::crowdstrike::device("dev-3", "ws-3", "contained"),
    ];
    let e = estate(&db, &c, &master, &cs_run.base(), &gl_run.base(), &jira_run.base()).await;
    let conn = Connectors::new(db.store.clone(), master.clone(), c.clone()).unwrap();
    // One person on three hosts: one case.
    let on = |n: usize, host: &str, minute: i64| {
        let mut v: serde_json::Value = serde_json::from_str(&alert(
            n,
            "Credential dumping from LSASS",
            "Credential Access",
            minute,
        ))
        .unwrap();
        v["device"] = json!({"hostname": host});
        v.to_string()
    };
    let texts = (0..6)
        .map(|n| on(n, ["ws-1", "ws-2", "ws-3"][n % 3], n as i64))
        .collect();
    deliver(&db, &c, (e.tenant, e.hook), texts).await;
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    run_all(&db, &c, &conn).await;
    let contained = || async {
        let tx = db.store.begin_tenant(e.tenant).await.unwrap();
        let (list, _) = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
            .await
            .unwrap();
        assert_eq!(list.len(), 1, "one person, one case");
        let (gs, _) = gates::list(&tx, None, Some(list[0].id), 50, 0).await.unwrap();
        tx.commit().await.unwrap();
        let mut d: Vec<String> = gs
            .iter()
            .filter(|g| g.kind == GateKind::ContainHost)
            .map(|g| g.payload["device_id"].as_str().unwrap().to_owned())
            .collect();
        d.sort();
        d
    };
    assert_eq!(contained().await, ["dev-1", "dev-2"]);
    deliver(&db, &c, (e.tenant, e.hook), vec![on(9, "ws-1", 20)]).await;
    c.advance(investigation::ROUND_INTERVAL + Duration::seconds(1));
    assert_eq!(run_all(&db, &c, &conn).await.0, investigation::STEPS.len());
    assert_eq!(contained().await, ["dev-1", "dev-2"], "not asked twice");
}

#[tokio::test]
async fn each_uncontained_host_is_proposed_sqlite() {
    each_uncontained_host_is_proposed(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn each_uncontained_host_is_proposed_postgres() {
    each_uncontained_host_is_proposed(TestDb::postgres().await).await;
}

/// The current draft's recommendations (the draft validated).
async fn rec(tx: &vigil_orchestrator::store::TenantTx, case_id: uuid::Uuid) -> Vec<drafts::Recommendation> {
    let d = drafts::list(tx, case_id, false).await.unwrap().remove(0);
    let body: drafts::Body = serde_json::from_value(d.body).unwrap();
    drafts::validate(tx, case_id, &body).await.unwrap();
    body.recommendations
}

/// Known-benign cases: every alert from the tenant's scanner (on its ignore
/// list) → Vigil proposes closing the case as benign; approved, the case
/// closes and the round completes. An EICAR detection rated high stays
/// under the closing threshold with the default weights and crosses it
/// once the tenant weighs its benign detections more (a per-tenant
/// setting, audited, applied from the next round).
async fn known_benign_is_proposed_closed(db: TestDb) {
    use vigil_orchestrator::pipeline::{assess, correlate};
    let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap());
    let (t, hook, eng) = tenant_with_hook(&db, &c, "Benign").await;
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let mut cs = correlate::settings(&tx).await.unwrap();
    cs.ignore.push(correlate::Ignored {
        kind: "ip".into(),
        value: "10.9.9.9".into(),
    });
    correlate::set_settings(&tx, &c, &eng, cs).await.unwrap();
    tx.commit().await.unwrap();
    let finding = |n: usize, title: &str, host: &str, sev: u8, src: Option<&str>| {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap() + Duration::minutes(n as i64);
        let mut v = json!({
            "class_uid": 2004, "category_uid": 2, "activity_id": 1, "severity_id": sev,
            "time": at.timestamp_millis(),
            "metadata": {"version": "1.3.0", "product": {"name": "IDS"}},
            "finding_info": {"uid": format!("benign-{n}"), "title": title},
            "device": {"hostname": host},
        });
        if let Some(ip) = src {
            v["src_endpoint"] = json!({"ip": ip});
        }
        v.to_string()
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let texts: Vec<String> = (0..3)
        .map(|n| finding(n, "Port scan detected", "srv-01", 2, Some("10.9.9.9")))
        .chain([finding(10, "EICAR-Test-File detected", "ws-7", 4, None)])
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    ingest::store_checked(&tx, &c, hook.id, ingest::check("auto", &refs).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(
        drain(&db, &c).await,
        2 * investigation::STEPS.len(),
        "two cases, a round each"
    );

    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let (list, _) = vigil_orchestrator::engine::cases::list(&tx, None, 10, 0)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let of = |word: &str| {
        list.iter()
            .find(|k| k.title.contains(word))
            .unwrap_or_else(|| panic!("no case titled {word}: {list:?}"))
            .id
    };
    let (scan, eicar) = (of("Port scan"), of("EICAR"));
    let r = rec(&tx, scan).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].action, "close_benign");
    assert!(
        r[0].signals
            .iter()
            .any(|s| s.weight < 0.0 && s.name.contains("ip 10.9.9.9 on the tenant's ignore list")),
        "{r:?}"
    );
    assert!(
        rec(&tx, eicar).await.is_empty(),
        "high severity and a benign name: under every threshold"
    );
    let (gs, _) = gates::list(&tx, None, Some(scan), 10, 0).await.unwrap();
    assert_eq!(gs.len(), 1);
    assert_eq!(gs[0].kind, GateKind::CloseCase);
    assert_eq!(gs[0].payload["resolution"], "benign");
    assert_eq!(gs[0].requested_by, "system:investigation");
    assert!(
        gates::list(&tx, None, Some(eicar), 10, 0)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    let close = gs[0].clone();
    tx.commit().await.unwrap();

    // A person approves: the case closes, the follow-up records it, the
    // round is complete.
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let ann = Actor {
        label: "user:ann".into(),
        role: Some(Role::AnalystEdit),
        source_ip: None,
    };
    let any = |_: GateKind| true;
    gates::approve(
        &tx,
        &c,
        &gates::Decider {
            actor: &ann,
            may_decide: &any,
        },
        close.id,
        &close.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(drain(&db, &c).await, 1);
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    assert_eq!(
        vigil_orchestrator::engine::cases::get(&tx, scan)
            .await
            .unwrap()
            .state,
        vigil_orchestrator::engine::state::CaseState::Closed
    );
    let p = investigation::progress(&tx, scan).await.unwrap();
    assert_eq!(p.rounds[0].state, "complete");
    let f = p.rounds[0]
        .steps
        .iter()
        .find(|s| s.kind == investigation::FOLLOW_UP)
        .unwrap();
    assert_eq!(f.output.as_ref().unwrap()["case"], "closed");

    // The tenant weighs its benign detections more: the next round of the
    // EICAR case proposes closing it. Refused settings change nothing.
    let mut a = assess::settings(&tx).await.unwrap();
    assert_eq!(a, assess::Settings::default());
    a.weights.benign_detection = 1.5;
    assert!(assess::set_settings(&tx, &c, &eng, a.clone()).await.is_err());
    a.weights.benign_detection = -1.0;
    assess::set_settings(&tx, &c, &eng, a).await.unwrap();
    assert!(investigation::rerun(&tx, &c, &eng, eicar).await.unwrap());
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let log = vigil_orchestrator::audit::list(&tx, 200, 0).await.unwrap().0;
    assert_eq!(
        log.iter().filter(|e| e.action == "assessment.configure").count(),
        1
    );
    tx.commit().await.unwrap();
    c.advance(investigation::DEBOUNCE + Duration::seconds(1));
    assert_eq!(drain(&db, &c).await, investigation::STEPS.len());
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let r = rec(&tx, eicar).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].action, "close_benign");
    assert!(
        r[0].signals
            .iter()
            .any(|s| s.name.contains("(eicar)") && s.weight == -1.0),
        "{r:?}"
    );
    let (gs, _) = gates::list(&tx, None, Some(eicar), 10, 0).await.unwrap();
    assert_eq!(gs.len(), 1);
    assert_eq!(gs[0].kind, GateKind::CloseCase);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn known_benign_is_proposed_closed_sqlite() {
    known_benign_is_proposed_closed(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn known_benign_is_proposed_closed_postgres() {
    known_benign_is_proposed_closed(TestDb::postgres().await).await;
}
