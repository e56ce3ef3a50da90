//! The storage suite: Gates, the outbox, escalation, durable steps and quorum.

use super::*;

pub(super) async fn gates_bind_hash_and_refuse_self_approval(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
    );
    let any = |_: GateKind| true;

    let tx = db.store.begin_tenant(a).await.unwrap();
    let bad = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "C2 beacon confirmed"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    assert_eq!(g.state, GateState::Pending);
    assert_eq!(
        g.payload_hash,
        gates::payload_hash(
            GateKind::EscalateCritical,
            case_id,
            &json!({"reason": "C2 beacon confirmed"})
        )
    );
    let dup = gates::request(
        &tx,
        &c,
        &bob,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "again"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    tx.commit().await.unwrap();

    // Another tenant sees nothing.
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(matches!(gates::get(&tx, g.id).await, Err(Error::NotFound(_))));
    assert!(matches!(
        gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(cases::get(&tx, case_id).await, Err(Error::NotFound(_))));
    drop(tx);

    let tx = db.store.begin_tenant(a).await.unwrap();
    let own = gates::approve(&tx, &c, &decider(&ann, &any), g.id, &g.payload_hash).await;
    assert!(
        matches!(own, Err(Error::Forbidden(_))),
        "no self-approval: {own:?}"
    );
    let none = |_: GateKind| false;
    assert!(matches!(
        gates::approve(&tx, &c, &decider(&bob, &none), g.id, &g.payload_hash).await,
        Err(Error::Forbidden(_))
    ));
    let stale = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &"0".repeat(64)).await;
    assert!(
        matches!(stale, Err(Error::Conflict(_))),
        "hash mismatch: {stale:?}"
    );
    let done = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed, "internal change applied at once");
    assert_eq!(done.decided_by.as_deref(), Some("user:bob"));
    assert_eq!(done.decided_role.as_deref(), Some("analyst_edit"));
    assert_eq!(
        cases::get(&tx, case_id).await.unwrap().severity,
        Severity::Critical
    );
    let twice = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await;
    assert!(
        matches!(twice, Err(Error::Conflict(_))),
        "illegal transition: {twice:?}"
    );
    let again = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "x"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "already critical");
    tx.commit().await.unwrap();

    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('gate.request', 'gate.approve')"
        )
        .await,
        2
    );
}

pub(super) async fn reject_needs_reason_and_edits_keep_a_diff(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::SecurityEngineer),
    );
    let any = |_: GateKind| true;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::CloseCase,
        json!({"resolution": "benign", "summary": "scanner"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    assert!(matches!(
        gates::reject(&tx, &c, &decider(&bob, &any), g.id, "  ").await,
        Err(Error::Invalid(_))
    ));
    let bad_edit = gates::edit_and_approve(
        &tx,
        &c,
        &decider(&bob, &any),
        g.id,
        json!({"resolution": "nuked"}),
    )
    .await;
    assert!(matches!(bad_edit, Err(Error::Invalid(_))), "{bad_edit:?}");
    let edited = json!({"resolution": "false_positive", "summary": "internal vulnerability scanner"});
    let done = gates::edit_and_approve(&tx, &c, &decider(&bob, &any), g.id, edited.clone())
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed);
    assert_eq!(done.payload, edited);
    assert_ne!(done.payload_hash, g.payload_hash);
    let diff = done.edit_diff.unwrap();
    assert_eq!(diff.as_array().unwrap().len(), 2, "{diff}");
    assert_eq!(diff[0]["pointer"], "/resolution");
    assert_eq!(cases::get(&tx, case_id).await.unwrap().state, CaseState::Closed);
    // A closed case takes no new gates.
    let late = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "x"}),
        gates::ESCALATE_AFTER,
    )
    .await;
    assert!(matches!(late, Err(Error::Conflict(_))));
    tx.commit().await.unwrap();

    // Rejection with a reason is final.
    let case2 = open_case(&db, &c, a).await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g2 = gates::request(
        &tx,
        &c,
        &ann,
        case2,
        GateKind::EscalateCritical,
        json!({"reason": "maybe"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let r = gates::reject(&tx, &c, &decider(&bob, &any), g2.id, "not enough evidence")
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.reason.as_deref()),
        (GateState::Rejected, Some("not enough evidence"))
    );
    assert!(
        gates::approve(&tx, &c, &decider(&bob, &any), g2.id, &g2.payload_hash)
            .await
            .is_err()
    );
    assert_eq!(cases::get(&tx, case2).await.unwrap().severity, Severity::High);
}

pub(super) async fn ticket_writes_run_once_behind_the_guard(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, kill, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let (ann, bob) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
    );
    let admin = person("user:adm", Role::TenantAdmin);
    let any = |_: GateKind| true;
    let vendor = engine_support::Vendor::default();
    let jira = ticket_system(&db, &c, a, "jira").await;
    let payload = json!({"system": "jira", "operation": "create", "integration_id": jira, "fields": {"summary": "Beaconing from host-7"}});

    // Approving an external write while the kill switch is engaged: 423.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::TicketWrite,
        payload.clone(),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    kill::set_tenant(&tx, &c, &admin, true).await.unwrap();
    let blocked = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await;
    assert!(matches!(blocked, Err(Error::KillSwitch(_))), "{blocked:?}");
    kill::set_tenant(&tx, &c, &admin, false).await.unwrap();
    let approved = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(approved.state, GateState::Approved);
    tx.commit().await.unwrap();

    // Write scope off: held, nothing written.
    let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
    assert_eq!((r.executed, r.held), (0, 1));
    // Kill switch engaged after approval: still held.
    vendor.scope.store(true, Ordering::SeqCst);
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &admin, true).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
    // Platform switch alone holds everything too.
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &admin, false).await.unwrap();
    tx.commit().await.unwrap();
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), true)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
    assert!(vendor.calls.lock().unwrap().is_empty(), "no write while held");
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), false)
        .await
        .unwrap();
    ptx.commit().await.unwrap();

    // Released: the write happens, once.
    let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
    assert_eq!(r.executed, 1, "{r:?}");
    for _ in 0..3 {
        assert_eq!(
            outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap(),
            outbox::RunReport::default()
        );
    }
    assert_eq!(
        vendor.calls.lock().unwrap().clone(),
        vec![format!("vigil-gate-{}", g.id)]
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(gates::get(&tx, g.id).await.unwrap().state, GateState::Executed);
    let entry = outbox::of_gate(&tx, g.id).await.unwrap().unwrap();
    assert_eq!(entry.state, "done");
    assert_eq!(entry.result.unwrap()["ticket"], "SOC-1");
}

pub(super) async fn a_worker_dying_mid_write_never_duplicates(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let any = |_: GateKind| true;
    let sn = ticket_system(&db, &c, a, "servicenow").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "servicenow", "operation": "create", "integration_id": sn, "fields": {"short_description": "x"}}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let vendor = engine_support::Vendor::default();
    vendor.scope.store(true, Ordering::SeqCst);
    vendor.hang.store(true, Ordering::SeqCst);
    // The worker is killed mid-write (its future dropped after the vendor
    // accepted the ticket, before Vigil recorded it).
    let run = outbox::run_due(&db.store, &c, &vendor, 10);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), run)
            .await
            .is_err()
    );
    vendor.hang.store(false, Ordering::SeqCst);
    // Within the lease nobody retries ...
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap(),
        outbox::RunReport::default()
    );
    // ... after it, the entry is re-sent with the same key and recorded once.
    c.advance(outbox::LEASE + Duration::seconds(1));
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        1
    );
    let calls = vendor.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], calls[1], "same idempotency key on the retry");
    assert_eq!(
        vendor.tickets.lock().unwrap().len(),
        1,
        "one ticket at the vendor"
    );
    assert_eq!(
        outbox::run_due(&db.store, &c, &vendor, 10)
            .await
            .unwrap()
            .executed,
        0
    );
}

pub(super) async fn transient_failures_retry_then_dead_letter(db: TestDb) {
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use vigil_orchestrator::engine::{gates, outbox, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let any = |_: GateKind| true;
    let jira = ticket_system(&db, &c, a, "jira").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "jira", "operation": "comment", "integration_id": jira, "ticket": "SOC-1", "fields": {"body": "x"}}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let vendor = engine_support::Vendor::default();
    vendor.scope.store(true, Ordering::SeqCst);
    vendor.fail_transient.store(true, Ordering::SeqCst);
    let mut retried = 0;
    let mut dead = 0;
    for _ in 0..20 {
        let r = outbox::run_due(&db.store, &c, &vendor, 10).await.unwrap();
        retried += r.retried;
        dead += r.dead;
        c.advance(Duration::hours(2));
    }
    assert_eq!((retried, dead), (outbox::MAX_ATTEMPTS as usize - 1, 1));
    let tx = db.store.begin_tenant(a).await.unwrap();
    let entry = outbox::of_gate(&tx, g.id).await.unwrap().unwrap();
    assert_eq!(entry.state, "dead");
    assert!(entry.last_error.unwrap().contains("503"));
    assert_eq!(
        gates::get(&tx, g.id).await.unwrap().state,
        GateState::Approved,
        "visible, not executed"
    );
}

pub(super) async fn unanswered_gates_escalate_never_approve(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let g = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "ransomware note"}),
        Duration::hours(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 0);
    c.advance(Duration::minutes(61));
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 1);
    assert_eq!(gates::escalate_overdue(&db.store, &c).await.unwrap(), 0, "once");
    let tx = db.store.begin_tenant(a).await.unwrap();
    let e = gates::get(&tx, g.id).await.unwrap();
    assert_eq!(e.state, GateState::Escalated);
    assert!(e.decided_by.is_none(), "escalation decides nothing");
    let any = |_: GateKind| true;
    let ok = gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        g.id,
        &g.payload_hash,
    )
    .await
    .unwrap();
    assert_eq!(ok.state, GateState::Executed);
}

mod step_support {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::json;
    use vigil_orchestrator::engine::steps::{NewStep, StepContext, StepDone, StepFailure, StepHandler};

    /// Fails transiently until its `fail_until` attempt, then succeeds and
    /// (optionally) enqueues a follow-up. Counts runs per step.
    #[derive(Debug, Default)]
    pub struct Probe {
        pub runs: Mutex<HashMap<uuid::Uuid, usize>>,
    }

    #[async_trait::async_trait]
    impl StepHandler for Probe {
        async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure> {
            *self.runs.lock().unwrap().entry(ctx.step_id).or_default() += 1;
            let fail_until = ctx.input["fail_until"].as_i64().unwrap_or(0) as i32;
            if ctx.input["permanent"].as_bool() == Some(true) {
                return Err(StepFailure {
                    transient: false,
                    message: "bad input".into(),
                });
            }
            if ctx.attempt <= fail_until {
                return Err(StepFailure {
                    transient: true,
                    message: format!("flaky on attempt {}", ctx.attempt),
                });
            }
            let next = match ctx.input["then"].as_str() {
                Some(k) => vec![NewStep::new(k, ctx.case_id, json!({}))],
                None => vec![],
            };
            Ok(StepDone {
                output: json!({"attempt": ctx.attempt}),
                next,
            })
        }
    }
}

fn registry(p: std::sync::Arc<step_support::Probe>) -> vigil_orchestrator::engine::steps::Registry {
    vigil_orchestrator::engine::steps::Registry::default()
        .with("probe", p.clone())
        .with("probe.next", p)
}

fn test_worker(owner: &str) -> vigil_orchestrator::engine::steps::Worker {
    let mut w = vigil_orchestrator::engine::steps::Worker::new(owner);
    w.db_clock = false;
    w
}

pub(super) async fn steps_retry_dead_letter_and_chain(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w1");
    let tx = db.store.begin_tenant(a).await.unwrap();
    let flaky = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"fail_until": 2, "then": "probe.next"})),
    )
    .await
    .unwrap();
    let mut doomed = steps::NewStep::new("probe", None, json!({"fail_until": 99}));
    doomed.max_attempts = 3;
    let doomed = steps::enqueue(&tx, &c, doomed).await.unwrap();
    let orphan = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("nobody.handles.this", None, json!({})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let r = steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    assert_eq!((r.retried, r.dead), (2, 1), "{r:?}");
    // Backoff: nothing is due until time passes.
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0
    );
    for _ in 0..4 {
        c.advance(Duration::minutes(10));
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    }
    let tx = db.store.begin_tenant(a).await.unwrap();
    let f = steps::get(&tx, flaky).await.unwrap();
    assert_eq!((f.state, f.attempts), (StepState::Succeeded, 3));
    let d = steps::get(&tx, doomed).await.unwrap();
    assert_eq!((d.state, d.attempts), (StepState::Dead, 3));
    assert!(d.last_error.unwrap().contains("flaky"));
    assert!(
        steps::get(&tx, orphan)
            .await
            .unwrap()
            .last_error
            .unwrap()
            .contains("no handler")
    );
    let all = steps::list(&tx, None, None, 100).await.unwrap();
    let next = all
        .iter()
        .find(|s| s.kind == "probe.next")
        .expect("the follow-up was enqueued");
    assert_eq!(next.state, StepState::Succeeded);
    // An engineer retries the dead step; it runs again from attempt 1.
    let retried = steps::retry_dead(&tx, &c, &person("user:eng", Role::SecurityEngineer), doomed)
        .await
        .unwrap();
    assert_eq!((retried.state, retried.attempts), (StepState::Pending, 0));
    assert!(
        matches!(
            steps::retry_dead(&tx, &c, &Actor::cli(), flaky).await,
            Err(Error::Conflict(_))
        ),
        "only dead steps"
    );
    tx.commit().await.unwrap();
    assert_eq!(steps::run_once(&db.store, &c, &reg, &w).await.unwrap().retried, 1);
    assert_eq!(probe.runs.lock().unwrap()[&flaky], 3);
}

pub(super) async fn an_expired_lease_passes_the_step_on(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let tx = db.store.begin_tenant(a).await.unwrap();
    // With a follow-up: a fenced result must not start (or enqueue) it.
    let id = steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Worker 1 claims, then "dies" (never records).
    let (w1, w2) = (test_worker("node-1"), test_worker("node-2"));
    let claimed = steps::claim(&db.store, &c, &w1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        steps::claim(&db.store, &c, &w2).await.unwrap().is_empty(),
        "leased"
    );
    c.advance(w1.lease + Duration::seconds(1));
    let taken = steps::claim(&db.store, &c, &w2).await.unwrap();
    assert_eq!(taken.len(), 1, "the lease expired: worker 2 takes over");
    assert_eq!(taken[0].attempts, 2);
    // Worker 1 wakes up late: its result is fenced off.
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w1, &claimed[0])
            .await
            .unwrap(),
        steps::Ran::Fenced
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        steps::list(&tx, None, None, 10).await.unwrap().len(),
        1,
        "the fenced result added no follow-up"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w2, &taken[0])
            .await
            .unwrap(),
        steps::Ran::Succeeded
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(steps::get(&tx, id).await.unwrap().state, StepState::Succeeded);
    let all = steps::list(&tx, None, None, 10).await.unwrap();
    assert_eq!(all.len(), 2, "exactly one follow-up, from worker 2");
    assert!(
        all.iter()
            .any(|s| s.kind == "probe.next" && s.state == StepState::Running)
    );
}

pub(super) async fn steps_wait_for_their_gate_and_the_kill_switch(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{gates, kill, state::*, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w");
    let any = |_: GateKind| true;
    let jira = ticket_system(&db, &c, a, "jira").await;
    let tx = db.store.begin_tenant(a).await.unwrap();
    let approve_me = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "r"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let reject_me = gates::request(
        &tx,
        &c,
        &person("user:ann", Role::AnalystEdit),
        case_id,
        GateKind::TicketWrite,
        json!({"system": "jira", "operation": "create", "integration_id": jira}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let mut after = steps::NewStep::new("probe", Some(case_id), json!({}));
    after.after_gate = Some(approve_me.id);
    let waiting = steps::enqueue(&tx, &c, after.clone()).await.unwrap();
    after.after_gate = Some(reject_me.id);
    let cancelled = steps::enqueue(&tx, &c, after).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "gated steps wait"
    );

    let tx = db.store.begin_tenant(a).await.unwrap();
    gates::reject(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        reject_me.id,
        "no",
    )
    .await
    .unwrap();
    gates::approve(
        &tx,
        &c,
        &decider(&person("user:bob", Role::AnalystEdit), &any),
        approve_me.id,
        &approve_me.payload_hash,
    )
    .await
    .unwrap();
    kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "kill switch: no step starts"
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), true)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0,
        "platform kill switch"
    );
    let ptx = db.store.begin_platform().await.unwrap();
    kill::set_platform(&ptx, &c, &person("user:root", Role::PlatformAdmin), false)
        .await
        .unwrap();
    ptx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().succeeded,
        1,
        "released: it resumes"
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert_eq!(
        steps::get(&tx, waiting).await.unwrap().state,
        StepState::Succeeded
    );
    assert_eq!(
        steps::get(&tx, cancelled).await.unwrap().state,
        StepState::Cancelled
    );
    assert_eq!(probe.runs.lock().unwrap().len(), 1);
}

pub(super) async fn chains_continue_in_place_but_not_under_a_kill_switch(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{kill, state::StepState, steps};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let w = test_worker("w");
    let tx = db.store.begin_tenant(a).await.unwrap();
    steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // One claim, two transitions: the follow-up ran as a continuation.
    let r = steps::run_once(&db.store, &c, &reg, &w).await.unwrap();
    assert_eq!(r.succeeded, 2, "{r:?}");

    // Under a kill switch the follow-up is enqueued, not started.
    let tx = db.store.begin_tenant(a).await.unwrap();
    steps::enqueue(
        &tx,
        &c,
        steps::NewStep::new("probe", None, json!({"then": "probe.next"})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let claimed = steps::claim(&db.store, &c, &w).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let tx = db.store.begin_tenant(a).await.unwrap();
    kill::set_tenant(&tx, &c, &person("user:eng", Role::SecurityEngineer), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_claimed(&db.store, &c, &reg, &w, &claimed[0])
            .await
            .unwrap(),
        steps::Ran::Succeeded
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    let pending = steps::list(&tx, None, Some(StepState::Pending), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the follow-up waits");
    tx.commit().await.unwrap();
    assert_eq!(
        steps::run_once(&db.store, &c, &reg, &w).await.unwrap().claimed(),
        0
    );
}

pub(super) async fn quorum_needs_distinct_approvers_of_the_same_proposal(db: TestDb) {
    use serde_json::json;
    use vigil_orchestrator::engine::{cases, gates, state::*};
    let c = clock();
    let a = tenant(&db, &c, "A").await;
    let case_id = open_case(&db, &c, a).await;
    let admin = person("user:adm", Role::TenantAdmin);
    let any = |_: GateKind| true;
    let (ann, bob, cat, dan) = (
        person("user:ann", Role::AnalystEdit),
        person("user:bob", Role::AnalystEdit),
        person("user:cat", Role::SecurityEngineer),
        person("user:dan", Role::AnalystEdit),
    );
    let tx = db.store.begin_tenant(a).await.unwrap();
    for bad in [0, gates::MAX_QUORUM + 1] {
        assert!(matches!(
            gates::set_quorum(&tx, &c, &admin, GateKind::EscalateCritical, bad).await,
            Err(Error::Invalid(_))
        ));
    }
    gates::set_quorum(&tx, &c, &admin, GateKind::EscalateCritical, 2)
        .await
        .unwrap();
    gates::set_quorum(&tx, &c, &admin, GateKind::CloseCase, 2)
        .await
        .unwrap();
    assert_eq!(gates::quorum(&tx, GateKind::EscalateCritical).await.unwrap(), 2);
    assert_eq!(
        gates::quorum(&tx, GateKind::TicketWrite).await.unwrap(),
        1,
        "default"
    );

    let g = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::EscalateCritical,
        json!({"reason": "r"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    let first = gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(first.state, GateState::Pending, "one of two");
    assert_eq!(gates::approvals(&tx, g.id, &g.payload_hash).await.unwrap(), 1);
    tx.commit().await.unwrap();
    // The same person twice (its own transaction: on PostgreSQL a refused
    // insert ends the transaction, as it does for a request).
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&bob, &any), g.id, &g.payload_hash).await,
            Err(Error::Conflict(_))
        ),
        "the same person twice"
    );
    drop(tx);
    let tx = db.store.begin_tenant(a).await.unwrap();
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&ann, &any), g.id, &g.payload_hash).await,
            Err(Error::Forbidden(_))
        ),
        "the requester"
    );
    let done = gates::approve(&tx, &c, &decider(&cat, &any), g.id, &g.payload_hash)
        .await
        .unwrap();
    assert_eq!(done.state, GateState::Executed, "two distinct approvers");
    assert_eq!(
        cases::get(&tx, case_id).await.unwrap().severity,
        Severity::Critical
    );

    // An edit is a new proposal: approvals of the old one do not count.
    let cg = gates::request(
        &tx,
        &c,
        &ann,
        case_id,
        GateKind::CloseCase,
        json!({"resolution": "benign"}),
        gates::ESCALATE_AFTER,
    )
    .await
    .unwrap();
    gates::approve(&tx, &c, &decider(&bob, &any), cg.id, &cg.payload_hash)
        .await
        .unwrap();
    let edited = gates::edit_and_approve(
        &tx,
        &c,
        &decider(&cat, &any),
        cg.id,
        json!({"resolution": "true_positive"}),
    )
    .await
    .unwrap();
    assert_eq!(
        edited.state,
        GateState::Pending,
        "bob approved the old text; cat's is the only approval of the new one"
    );
    assert!(
        matches!(
            gates::approve(&tx, &c, &decider(&dan, &any), cg.id, &cg.payload_hash).await,
            Err(Error::Conflict(_))
        ),
        "stale hash"
    );
    let closed = gates::approve(&tx, &c, &decider(&dan, &any), cg.id, &edited.payload_hash)
        .await
        .unwrap();
    assert_eq!(closed.state, GateState::Executed);
    assert_eq!(cases::get(&tx, case_id).await.unwrap().state, CaseState::Closed);
    tx.commit().await.unwrap();
    let owner = sea_orm::Database::connect(db.url.clone()).await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gate.approval_recorded'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &owner,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gate.quorum_set'"
        )
        .await,
        2
    );
}

/// Several workers on one PostgreSQL: SKIP LOCKED claims never overlap and
/// every step runs exactly once.
#[tokio::test]
async fn competing_workers_claim_each_step_once() {
    use serde_json::json;
    use vigil_orchestrator::engine::steps;
    let db = TestDb::postgres().await;
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let mut ids = std::collections::HashSet::new();
    for t in [a, b] {
        let tx = db.store.begin_tenant(t).await.unwrap();
        for _ in 0..150 {
            ids.insert(
                steps::enqueue(&tx, &c, steps::NewStep::new("probe", None, json!({})))
                    .await
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
    }
    let probe = std::sync::Arc::new(step_support::Probe::default());
    let reg = registry(probe.clone());
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (store, reg) = (db.store.clone(), reg.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = steps::Worker::new(format!("node-{n}"));
            w.batch = 7;
            let clock = vigil_orchestrator::SystemClock;
            let mut total = 0;
            loop {
                let r = steps::run_once(&store, &clock, &reg, &w).await.unwrap();
                if r.claimed() == 0 {
                    return total;
                }
                assert_eq!(r.fenced, 0);
                total += r.succeeded;
            }
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        succeeded += t.await.unwrap();
    }
    assert_eq!(succeeded, ids.len());
    let runs = probe.runs.lock().unwrap();
    assert_eq!(runs.len(), ids.len());
    assert!(runs.values().all(|n| *n == 1), "a step ran twice");
}

pub(super) async fn cases_are_assigned_and_commented(db: TestDb) {
    use vigil_orchestrator::engine::cases::{self, Assignee, Filter};
    use vigil_orchestrator::ids::UserId;
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let first = open_case(&db, &c, a).await;
    let second = open_case(&db, &c, a).await;
    let ann_actor = person("user:ann", Role::AnalystEdit);
    let works = |r: Role| matches!(r, Role::AnalystEdit | Role::SecurityEngineer);

    let tx = db.store.begin_tenant(a).await.unwrap();
    let ann = identity::add_member(&tx, &c, &Actor::cli(), &email("ann@a.example"), Role::AnalystEdit)
        .await
        .unwrap()
        .user_id;
    let eve = identity::add_member(&tx, &c, &Actor::cli(), &email("eve@a.example"), Role::Executive)
        .await
        .unwrap()
        .user_id;
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(b).await.unwrap();
    let bob = identity::add_member(&tx, &c, &Actor::cli(), &email("bob@b.example"), Role::AnalystEdit)
        .await
        .unwrap()
        .user_id;
    tx.commit().await.unwrap();

    // Assigned to a member who works cases; audited with before and after.
    let tx = db.store.begin_tenant(a).await.unwrap();
    let got = cases::assign(&tx, &c, &ann_actor, first, Some(ann), &works)
        .await
        .unwrap();
    assert_eq!(got.assignee, Some(ann.0));
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(a).await.unwrap();
    let (events, _) = vigil_orchestrator::audit::list(&tx, 100, 0).await.unwrap();
    let e = events
        .iter()
        .find(|e| e.action == "case.assign")
        .expect("audited");
    assert_eq!(e.target, format!("case:{first}"));
    assert_eq!(e.summary["after"]["assignee"], serde_json::json!(ann.0));
    assert!(e.summary["before"]["assignee"].is_null());
    // Refused, each: a role that does not work cases, another tenant's
    // member, nobody at all; the case keeps its assignee.
    for (who, want) in [
        (eve, "invalid"),
        (bob, "not found"),
        (UserId(uuid::Uuid::now_v7()), "not found"),
    ] {
        let r = cases::assign(&tx, &c, &ann_actor, first, Some(who), &works).await;
        match (r, want) {
            (Err(Error::Invalid(_)), "invalid") | (Err(Error::NotFound(_)), "not found") => {}
            (r, _) => panic!("{who:?}: {r:?}"),
        }
    }
    assert_eq!(cases::get(&tx, first).await.unwrap().assignee, Some(ann.0));
    // The queue filters by assignee.
    let mine = Filter {
        assignee: Some(Assignee::User(ann.0)),
        state: None,
        ..Filter::default()
    };
    let (rows, n) = cases::search(&tx, &mine, 50, 0).await.unwrap();
    assert_eq!((n, rows[0].id), (1, first));
    let nobody = Filter {
        assignee: Some(Assignee::Nobody),
        state: None,
        ..Filter::default()
    };
    let (rows, n) = cases::search(&tx, &nobody, 50, 0).await.unwrap();
    assert_eq!((n, rows[0].id), (1, second));
    drop(tx);
    // Another tenant cannot see or assign the case.
    let tx = db.store.begin_tenant(b).await.unwrap();
    let r = cases::assign(
        &tx,
        &c,
        &person("user:bob", Role::AnalystEdit),
        first,
        Some(bob),
        &works,
    )
    .await;
    assert!(matches!(r, Err(Error::NotFound("case"))), "{r:?}");
    let r = cases::comment(&tx, &c, &person("user:bob", Role::AnalystEdit), first, "hi").await;
    assert!(matches!(r, Err(Error::NotFound("case"))), "{r:?}");
    assert!(matches!(
        cases::comments(&tx, first, 50, 0).await,
        Err(Error::NotFound("case"))
    ));
    drop(tx);

    // Comments: a person's text, line breaks and tabs kept, other control
    // characters and empty or oversized text refused.
    let tx = db.store.begin_tenant(a).await.unwrap();
    for bad in [
        "".to_owned(),
        "   \n ".to_owned(),
        "bell\u{7}".to_owned(),
        "nul\u{0}".to_owned(),
        "x".repeat(cases::COMMENT_MAX + 1),
    ] {
        let r = cases::comment(&tx, &c, &ann_actor, first, &bad).await;
        assert!(
            matches!(r, Err(Error::Invalid(_))),
            "{:?}: {r:?}",
            bad.chars().take(8).collect::<String>()
        );
    }
    let k = cases::comment(
        &tx,
        &c,
        &ann_actor,
        first,
        "  Checked ws-7:\r\n\tno persistence found  ",
    )
    .await
    .unwrap();
    assert_eq!(k.body, "Checked ws-7:\n\tno persistence found");
    assert_eq!(k.author, "user:ann");
    let longest = "é".repeat(cases::COMMENT_MAX);
    cases::comment(&tx, &c, &ann_actor, first, &longest)
        .await
        .unwrap();
    c.advance(chrono::Duration::seconds(1));
    cases::comment(&tx, &c, &ann_actor, second, "second case's note")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // After a merge, the survivor lists the merged case's comments too; a
    // comment on the merged case goes to the survivor; the merged case is
    // not assigned on its own.
    let tx = db.store.begin_tenant(a).await.unwrap();
    vigil_orchestrator::pipeline::correlate::merge(&tx, &c, &ann_actor, second, first)
        .await
        .unwrap();
    let late = cases::comment(&tx, &c, &ann_actor, second, "after the merge")
        .await
        .unwrap();
    assert_eq!(late.case_id, first);
    let r = cases::assign(&tx, &c, &ann_actor, second, Some(ann), &works).await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    let (all, total) = cases::comments(&tx, first, 50, 0).await.unwrap();
    assert_eq!(total, 4);
    let bodies: Vec<_> = all
        .iter()
        .map(|k| k.body.chars().take(20).collect::<String>())
        .collect();
    assert_eq!(bodies[0], "Checked ws-7:\n\tno pe");
    assert_eq!(bodies[2], "second case's note");
    assert_eq!(bodies[3], "after the merge");
    assert_eq!(all[2].case_id, second, "provenance kept");
    let (page, total) = cases::comments(&tx, first, 1, 3).await.unwrap();
    assert_eq!(
        (page.len(), total, page[0].body.as_str()),
        (1, 4, "after the merge")
    );
    // Unassigned again.
    let got = cases::assign(&tx, &c, &ann_actor, first, None, &works)
        .await
        .unwrap();
    assert_eq!(got.assignee, None);
    tx.commit().await.unwrap();

    // Saved views: a person's own, replaced by name, bounded in number,
    // named sensibly, deleted only by their owner.
    let tx = db.store.begin_tenant(a).await.unwrap();
    cases::save_view(&tx, &c, ann, "Mine", "assignee=me")
        .await
        .unwrap();
    cases::save_view(&tx, &c, ann, " Mine ", "assignee=me&severity=high")
        .await
        .unwrap();
    let v = cases::views(&tx, ann).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].name.as_str(), v[0].query.as_str()),
        ("Mine", "assignee=me&severity=high")
    );
    assert!(
        cases::views(&tx, eve).await.unwrap().is_empty(),
        "one person's views only"
    );
    for bad in ["".to_owned(), "a\u{7}b".to_owned(), "n".repeat(61)] {
        let r = cases::save_view(&tx, &c, ann, &bad, "q=").await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
    }
    for i in 1..cases::MAX_VIEWS {
        cases::save_view(&tx, &c, ann, &format!("v{i}"), "q=")
            .await
            .unwrap();
    }
    let r = cases::save_view(&tx, &c, ann, "one too many", "q=").await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let r = cases::delete_view(&tx, eve, v[0].id).await;
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    cases::delete_view(&tx, ann, v[0].id).await.unwrap();
    assert_eq!(
        cases::views(&tx, ann).await.unwrap().len() as u64,
        cases::MAX_VIEWS - 1
    );
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(b).await.unwrap();
    assert!(
        cases::views(&tx, ann).await.unwrap().is_empty(),
        "another tenant's views are not seen"
    );
}

/// The queue's page count stops at its cap and says so; a text search with
/// few matches (read first, ordered after) gives the rows, in the order,
/// that the plain query gives, for every sort; a merged case stays out.
pub(super) async fn queue_counts_stop_at_the_cap(db: TestDb) {
    use vigil_orchestrator::engine::cases::{self, Filter, Sort};
    use vigil_orchestrator::engine::state::Severity;
    let c = clock();
    let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
    let ann = person("user:ann", Role::AnalystEdit);
    let tx = db.store.begin_tenant(a).await.unwrap();
    let sev = [
        Severity::Low,
        Severity::Critical,
        Severity::Medium,
        Severity::High,
    ];
    let mut ids = Vec::new();
    for i in 0..9 {
        let title = if i % 3 == 0 {
            format!("Encoded PowerShell on ws-{i}")
        } else {
            format!("Beaconing from ws-{i}")
        };
        ids.push(cases::open(&tx, &c, &ann, &title, sev[i % 4]).await.unwrap().id);
        c.advance(chrono::Duration::minutes(1));
    }
    // Twins: the same instant, so only the id orders them.
    let twins = [
        cases::open(&tx, &c, &ann, "PowerShell encoded twin", Severity::High)
            .await
            .unwrap()
            .id,
        cases::open(&tx, &c, &ann, "PowerShell encoded twin", Severity::High)
            .await
            .unwrap()
            .id,
    ];
    c.advance(chrono::Duration::minutes(1));
    vigil_orchestrator::pipeline::correlate::merge(&tx, &c, &ann, ids[3], ids[0])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(b).await.unwrap();
    cases::open(&tx, &c, &ann, "Encoded PowerShell in B", Severity::High)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let tx = db.store.begin_tenant(a).await.unwrap();
    let all = Filter::default();
    let (rows, n) = cases::search_page(&tx, &all, 3, 0, Some(5)).await.unwrap();
    assert_eq!(
        (rows.len(), n.n, n.exact),
        (3, 5, false),
        "10 live cases, counted to 5"
    );
    let (_, n) = cases::search_page(&tx, &all, 3, 0, Some(10)).await.unwrap();
    assert_eq!((n.n, n.exact), (10, true), "exactly at the cap is exact");
    let (_, n) = cases::search_page(&tx, &all, 3, 0, None).await.unwrap();
    assert_eq!((n.n, n.exact), (10, true));
    for sort in [Sort::Updated, Sort::Created, Sort::Oldest, Sort::Severity] {
        let f = Filter {
            text: "powershell ENCODED".into(),
            sort,
            ..Filter::default()
        };
        for (limit, offset) in [(10, 0), (1, 0), (1, 1), (2, 1), (5, 2), (3, 3)] {
            let (plain, total) = cases::search(&tx, &f, limit, offset).await.unwrap();
            assert_eq!(total, 4, "ws-0, ws-6 and the twins (ws-3 was merged, B's is B's)");
            let ids = |v: &[cases::Case]| v.iter().map(|c| c.id).collect::<Vec<_>>();
            // Counted to the end (few matches) and stopped short (the walk
            // in the queue's order): the same page.
            let (few, n) = cases::search_page(&tx, &f, limit, offset, Some(1000))
                .await
                .unwrap();
            assert_eq!((n.n, n.exact), (total, true));
            assert_eq!(ids(&few), ids(&plain), "{sort:?} {limit} {offset}");
            let (walked, n) = cases::search_page(&tx, &f, limit, offset, Some(1)).await.unwrap();
            assert_eq!((n.n, n.exact), (1, false));
            assert_eq!(ids(&walked), ids(&plain), "walked: {sort:?} {limit} {offset}");
        }
    }
    let f = Filter {
        text: "powershell".into(),
        sort: Sort::Oldest,
        ..Filter::default()
    };
    let (rows, _) = cases::search_page(&tx, &f, 10, 0, Some(1000)).await.unwrap();
    let mut later = twins;
    later.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        rows.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[0], ids[6], later[0], later[1]],
        "oldest first, twins by id (descending)"
    );
    tx.commit().await.unwrap();
}
