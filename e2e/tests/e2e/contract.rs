//! Contract tests: every vendor client (the code that would talk to the real
//! vendor) against its loopback simulator, including the vendor's error
//! responses, token expiry, revoked credentials and a scope disabled
//! mid-flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use vigil_e2e::sim::{self, Fault};
use vigil_integrations::client::{ClientError, FixedScopes, Guard, Http, Scopes};
use vigil_integrations::crowdstrike::Falcon;
use vigil_integrations::graylog::Graylog;
use vigil_integrations::jira::Jira;
use vigil_integrations::notify::Notifier;
use vigil_integrations::servicenow::ServiceNow;
use vigil_integrations::{Kind, signing};

fn http() -> Http {
    Http::new(Duration::from_secs(10)).unwrap()
}

fn guard(kind: Kind, on: &[&'static str]) -> Guard {
    Guard::new(kind, Arc::new(FixedScopes(on.to_vec())))
}

/// Enabled for the first `n` checks, then disabled: a Tenant Admin turning
/// the scope off while a write is under way.
#[derive(Debug)]
struct OffAfter(AtomicUsize);

#[async_trait::async_trait]
impl Scopes for OffAfter {
    async fn enabled(&self, _: &'static str) -> Result<bool, String> {
        Ok(self.0.fetch_sub(1, Ordering::SeqCst) > 0)
    }
}

#[tokio::test]
async fn jira_client_against_its_simulator() {
    let (run, jira) = sim::jira::start("soc@acme.example", "tok").await;
    let cfg = json!({"base_url": run.base(), "email": "soc@acme.example"});
    let all = ["issue:create", "issue:comment", "issue:transition"];
    let c = Jira::new(&cfg, "tok", http(), guard(Kind::Jira, &all)).unwrap();

    let a = c
        .create_issue(
            "SOC",
            "Beaconing",
            "host-7 beacons\nevery 60 s",
            "Task",
            "vigil-gate-1",
        )
        .await
        .unwrap();
    assert_eq!(a.key, "SOC-1");
    // A retry with the same key (say, after a crash) finds the first issue.
    let again = c
        .create_issue("SOC", "Beaconing", "host-7 beacons", "Task", "vigil-gate-1")
        .await
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(
        jira.issues()[0].fields["description"]["content"][1]["content"][0]["text"],
        "every 60 s"
    );

    c.comment("SOC-1", "Contained.", "vigil-gate-2").await.unwrap();
    c.comment("SOC-1", "Contained.", "vigil-gate-2").await.unwrap();
    assert_eq!(
        jira.issues()[0].comments.len(),
        1,
        "a repeated comment is dropped"
    );
    c.transition("SOC-1", "31").await.unwrap();
    assert_eq!(jira.issues()[0].status, "Done");
    assert_eq!(
        c.get_issue("SOC-1").await.unwrap()["fields"]["status"]["name"],
        "Done"
    );
    assert!(matches!(
        c.transition("SOC-1", "99").await,
        Err(ClientError::Rejected(400, m)) if m.contains("not valid")
    ));
    assert!(matches!(c.get_issue("SOC-404").await, Err(ClientError::NotFound)));
    assert!(
        c.transition("../x", "31").await.is_err(),
        "keys are path segments"
    );

    // The vendor's errors, each mapped to what the outbox does with it.
    run.control.push(Fault::Status(429, Some(7)));
    let e = c.get_issue("SOC-1").await.unwrap_err();
    assert_eq!(e, ClientError::RateLimited(Duration::from_secs(7)));
    assert!(e.transient());
    run.control.push(Fault::Status(503, None));
    let e = c.get_issue("SOC-1").await.unwrap_err();
    assert!(matches!(e, ClientError::Server(503)) && e.transient());
    run.control.push(Fault::Garbage);
    assert!(matches!(c.get_issue("SOC-1").await, Err(ClientError::Garbage(_))));
    run.control.push(Fault::Huge);
    assert_eq!(c.get_issue("SOC-1").await.unwrap_err(), ClientError::TooLarge);
    let quick = Jira::new(
        &cfg,
        "tok",
        Http::new(Duration::from_millis(300)).unwrap(),
        guard(Kind::Jira, &all),
    )
    .unwrap();
    run.control.push(Fault::Slow(Duration::from_secs(3)));
    let e = quick.get_issue("SOC-1").await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout(_)) && e.transient(), "{e:?}");

    // A refused credential and a missing permission are not retried.
    let bad = Jira::new(&cfg, "wrong", http(), guard(Kind::Jira, &all)).unwrap();
    let e = bad.get_issue("SOC-1").await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized(401)) && !e.transient());
    jira.read_only.store(true, Ordering::SeqCst);
    let e = c
        .create_issue("SOC", "x", "y", "Task", "vigil-gate-3")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Forbidden) && !e.transient());
    jira.read_only.store(false, Ordering::SeqCst);

    // Scopes: refused in the client, before anything is sent.
    let before = run.control.requests();
    let ro = Jira::new(&cfg, "tok", http(), guard(Kind::Jira, &[])).unwrap();
    assert_eq!(
        ro.create_issue("SOC", "x", "y", "Task", "vigil-gate-4")
            .await
            .unwrap_err(),
        ClientError::ScopeDisabled("issue:create")
    );
    assert_eq!(
        ro.transition("SOC-1", "11").await.unwrap_err(),
        ClientError::ScopeDisabled("issue:transition")
    );
    assert_eq!(run.control.requests(), before, "nothing reached the vendor");
    assert!(ro.get_issue("SOC-1").await.is_ok(), "read scopes are always on");

    // Disabled mid-flight: enabled when the write started, off before its
    // POST: the lookup went out, the create did not.
    let flip = Jira::new(
        &cfg,
        "tok",
        http(),
        Guard::new(Kind::Jira, Arc::new(OffAfter(AtomicUsize::new(1)))),
    )
    .unwrap();
    let before = run.control.requests();
    assert_eq!(
        flip.create_issue("SOC", "x", "y", "Task", "vigil-gate-5")
            .await
            .unwrap_err(),
        ClientError::ScopeDisabled("issue:create")
    );
    assert_eq!(
        run.control.log()[before..],
        ["GET /rest/api/3/search/jql".to_owned()]
    );
    assert_eq!(jira.issues().len(), 1);

    // A scope whose state cannot be read (the database away): no write goes
    // out, and the refusal is transient (the outbox tries again later), not
    // a "disabled" that would dead-letter an approved write.
    let unread = Jira::new(&cfg, "tok", http(), Guard::new(Kind::Jira, Arc::new(Unreadable))).unwrap();
    let before = run.control.requests();
    let e = unread
        .create_issue("SOC", "x", "y", "Task", "vigil-gate-6")
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::ScopeUnreadable("issue:create", _)),
        "{e:?}"
    );
    assert!(e.transient());
    assert_eq!(run.control.requests(), before, "nothing reached the vendor");
    assert_eq!(jira.issues().len(), 1);
}

/// A scope store that cannot answer.
#[derive(Debug)]
struct Unreadable;

#[async_trait::async_trait]
impl Scopes for Unreadable {
    async fn enabled(&self, _: &'static str) -> Result<bool, String> {
        Err("connection reset".into())
    }
}

#[tokio::test]
async fn servicenow_client_against_its_simulator() {
    let (run, sn) = sim::servicenow::start("vigil", "pw").await;
    let cfg = json!({"instance_url": run.base(), "username": "vigil", "assignment_group": "SOC"});
    let c = ServiceNow::new(
        &cfg,
        "pw",
        http(),
        guard(Kind::Servicenow, &["incident:create", "incident:update"]),
    )
    .unwrap();
    let fields = json!({"short_description": "Beaconing from host-7", "urgency": "2"});
    let i = c.create(&fields, "vigil-gate-1").await.unwrap();
    assert_eq!(i.number, "INC0010001");
    assert_eq!(
        c.create(&fields, "vigil-gate-1").await.unwrap(),
        i,
        "a retry finds its incident"
    );
    assert_eq!(sn.incidents().len(), 1);
    assert_eq!(sn.incidents()[0]["correlation_id"], "vigil-gate-1");
    assert_eq!(sn.incidents()[0]["assignment_group"], "SOC");
    c.update(&i.sys_id, &json!({"state": "6", "close_notes": "benign"}))
        .await
        .unwrap();
    assert_eq!(c.get(&i.sys_id).await.unwrap()["state"], "6");
    assert!(matches!(c.get("0000").await, Err(ClientError::NotFound)));
    // Fields Vigil does not write are refused before sending.
    let before = run.control.requests();
    assert!(matches!(
        c.update(&i.sys_id, &json!({"caller_id": "x"})).await,
        Err(ClientError::Rejected(400, _))
    ));
    assert!(matches!(
        c.create(&json!({"urgency": "1"}), "vigil-gate-2").await,
        Err(ClientError::Rejected(400, _))
    ));
    assert_eq!(run.control.requests(), before);
    // Errors.
    let bad = ServiceNow::new(
        &cfg,
        "nope",
        http(),
        guard(Kind::Servicenow, &["incident:create"]),
    )
    .unwrap();
    assert_eq!(
        bad.create(&fields, "vigil-gate-3").await.unwrap_err(),
        ClientError::Unauthorized(401)
    );
    run.control.push(Fault::Status(500, None));
    assert!(c.create(&fields, "vigil-gate-4").await.unwrap_err().transient());
    let ro = ServiceNow::new(&cfg, "pw", http(), guard(Kind::Servicenow, &["incident:create"])).unwrap();
    assert_eq!(
        ro.update(&i.sys_id, &json!({"state": "2"})).await.unwrap_err(),
        ClientError::ScopeDisabled("incident:update")
    );
    assert_eq!(sn.incidents().len(), 1);
}

#[tokio::test]
async fn crowdstrike_client_against_its_simulator() {
    let (run, cs) = sim::crowdstrike::start("cid", "secret").await;
    cs.add_alerts((0..250).map(|n| {
        sim::crowdstrike::alert(
            n,
            &format!("2026-11-22T10:{:02}:{:02}.000Z", n / 60, n % 60),
            "host-7",
            "ab",
        )
    }));
    let cfg = json!({"base_url": run.base(), "client_id": "cid"});
    let c = Falcon::new(&cfg, "secret", http(), guard(Kind::Crowdstrike, &[])).unwrap();

    // Pull everything, page by page.
    let mut seen = std::collections::BTreeSet::new();
    let mut offset = 0;
    loop {
        let p = c.alerts_since(None, offset, 100).await.unwrap();
        offset += p.alerts.len();
        for a in &p.alerts {
            let a: serde_json::Value = serde_json::from_str(a.get()).unwrap();
            seen.insert(a["composite_id"].as_str().unwrap().to_owned());
        }
        if !p.more {
            assert_eq!(p.cursor.as_deref(), Some("2026-11-22T10:04:09.000Z"));
            break;
        }
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(*cs.tokens_issued.lock().unwrap(), 1, "one token, cached");
    // From a cursor: the alert at the cursor again (dropped as a duplicate
    // by ingest), then only newer ones.
    let p = c
        .alerts_since(Some("2026-11-22T10:04:00.000Z"), 0, 100)
        .await
        .unwrap();
    assert_eq!(p.alerts.len(), 10);
    assert!(!p.more);

    // The token expires at the vendor: one 401, a new token, same answer.
    cs.expire_tokens();
    let again = c
        .alerts_since(Some("2026-11-22T10:04:00.000Z"), 0, 100)
        .await
        .unwrap();
    assert_eq!(again.alerts.len(), 10);
    assert_eq!(*cs.tokens_issued.lock().unwrap(), 2);

    // Containment is a write: refused without the scope, sent with it.
    let before = run.control.requests();
    assert_eq!(
        c.contain("dev0001").await.unwrap_err(),
        ClientError::ScopeDisabled("hosts:contain")
    );
    assert_eq!(run.control.requests(), before);
    let w = Falcon::new(
        &cfg,
        "secret",
        http(),
        guard(Kind::Crowdstrike, &["hosts:contain"]),
    )
    .unwrap();
    w.contain("dev0001").await.unwrap();
    assert_eq!(*cs.contained.lock().unwrap(), ["dev0001"]);

    // Rate limits and vendor failures are transient; garbage is not.
    run.control.push(Fault::Status(429, Some(3)));
    assert_eq!(
        c.alerts_since(None, 0, 10).await.unwrap_err().retry_after(),
        Some(Duration::from_secs(3))
    );
    run.control.push(Fault::Status(502, None));
    assert!(c.alerts_since(None, 0, 10).await.unwrap_err().transient());
    run.control.push(Fault::Garbage);
    assert!(!c.alerts_since(None, 0, 10).await.unwrap_err().transient());

    // Identity Protection (GraphQL): a user by display name, an e-mail or
    // DOMAIN\\name by secondary display name; the name is a variable, so a
    // name that is GraphQL syntax stays a name.
    cs.identities.lock().unwrap().extend([
        sim::crowdstrike::identity("m.rossi", "corp.example", &["DomainAdminsRole"], 0.5),
        sim::crowdstrike::identity("x\") { nodes } } #", "corp.example", &[], 0.1),
    ]);
    let l = c.identity_entity("m.rossi").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&l.body).unwrap();
    assert_eq!(
        v["data"]["entities"]["nodes"][0]["roles"][0]["type"],
        "DomainAdminsRole"
    );
    assert!(l.request.contains("primaryDisplayNames"), "{}", l.request);
    let l = c.identity_entity("CORP.EXAMPLE\\m.rossi").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&l.body).unwrap();
    assert_eq!(v["data"]["entities"]["nodes"][0]["primaryDisplayName"], "m.rossi");
    assert!(l.request.contains("secondaryDisplayNames"), "{}", l.request);
    let l = c.identity_entity("x\") { nodes } } #").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&l.body).unwrap();
    assert_eq!(
        v["data"]["entities"]["nodes"].as_array().unwrap().len(),
        1,
        "matched as a name"
    );
    let l = c.identity_entity("nobody").await.unwrap();
    assert!(l.body.contains(r#""nodes":[]"#), "{}", l.body);
    // A control character is refused before any call.
    let before = run.control.requests();
    assert!(matches!(
        c.identity_entity("a\u{7}b").await.unwrap_err(),
        ClientError::Garbage(_)
    ));
    assert_eq!(run.control.requests(), before);
    // A GraphQL error on HTTP 200 is a refusal, not evidence; a vendor
    // failure is transient.
    run.control.push(Fault::Garbage);
    assert!(!c.identity_entity("m.rossi").await.unwrap_err().transient());
    run.control.push(Fault::Status(503, None));
    assert!(c.identity_entity("m.rossi").await.unwrap_err().transient());

    // Revoked at the vendor: the refresh is refused, clearly.
    cs.revoke();
    let e = c.alerts_since(None, 0, 10).await.unwrap_err();
    assert_eq!(e, ClientError::Unauthorized(401));
    assert!(!e.transient());
}

#[tokio::test]
async fn graylog_client_against_its_simulator() {
    let (run, gl) = sim::graylog::start("gltoken").await;
    gl.events.lock().unwrap().extend((0..130).map(|n| {
        sim::graylog::event(
            n,
            &format!("2026-11-22T09:{:02}:{:02}.000Z", n / 60, n % 60),
            "web-1",
            "203.0.113.9",
        )
    }));
    let cfg = json!({"base_url": run.base()});
    let c = Graylog::new(&cfg, "gltoken", http(), guard(Kind::Graylog, &[])).unwrap();
    let p1 = c
        .events_since("2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z", 1)
        .await
        .unwrap();
    assert_eq!((p1.events.len(), p1.more), (100, true));
    let p2 = c
        .events_since("2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z", 2)
        .await
        .unwrap();
    assert_eq!((p2.events.len(), p2.more), (30, false));
    assert_eq!(p2.cursor.as_deref(), Some("2026-11-22T09:02:09.000Z"));
    let bad = Graylog::new(&cfg, "nope", http(), guard(Kind::Graylog, &[])).unwrap();
    assert_eq!(
        bad.events_since("2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z", 1)
            .await
            .unwrap_err(),
        ClientError::Unauthorized(401)
    );
    run.control.push(Fault::Status(503, None));
    assert!(c.events_since("a", "b", 1).await.unwrap_err().transient());
}

#[tokio::test]
async fn notification_webhooks_are_signed() {
    let (run, rx) = sim::notify::start(b"whsec_test").await;
    let cfg = json!({"url": format!("{}/hook", run.base())});
    let n = Notifier::new(
        &cfg,
        b"whsec_test",
        http(),
        guard(Kind::NotifyWebhook, &["notify:send"]),
    )
    .unwrap();
    let ev = json!({"event": "gate.escalated", "gate": "g1"});
    n.send(&ev, 1_800_000_000, "vigil-notify-1").await.unwrap();
    n.send(&ev, 1_800_000_000, "vigil-notify-1").await.unwrap();
    assert_eq!(rx.received.lock().unwrap().len(), 1);
    assert_eq!(*rx.repeats.lock().unwrap(), 1);
    let forged = Notifier::new(
        &cfg,
        b"other",
        http(),
        guard(Kind::NotifyWebhook, &["notify:send"]),
    )
    .unwrap();
    assert_eq!(
        forged.send(&ev, 1, "k").await.unwrap_err(),
        ClientError::Unauthorized(401)
    );
    let off = Notifier::new(&cfg, b"whsec_test", http(), guard(Kind::NotifyWebhook, &[])).unwrap();
    assert_eq!(
        off.send(&ev, 1, "k2").await.unwrap_err(),
        ClientError::ScopeDisabled("notify:send")
    );
    assert!(signing::verify_signature(
        b"k",
        "1",
        b"{}",
        &signing::sign(b"k", "1", b"{}")
    ));
}
