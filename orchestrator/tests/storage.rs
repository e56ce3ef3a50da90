//! The storage suite: every test body runs against SQLite and PostgreSQL.
//! PostgreSQL runs as the `vigil_app` role, so row level security applies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::identity::{self, LinkPurpose};
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::secrets::credentials::PasswordPolicy;
use vigil_orchestrator::store::Readiness;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Backend, Clock, Error, ManualClock, Role, TenantId};

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap())
}

fn cheap() -> PasswordPolicy {
    PasswordPolicy {
        memory_kib: 1024,
        iterations: 1,
        min_length: 12,
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn tenant(db: &TestDb, clock: &ManualClock, name: &str) -> TenantId {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, clock, &Actor::cli(), name)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t.id
}

async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn migrations_are_current(db: TestDb) {
    assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
}

/// SQLite: write transactions take turns (a fair queue in front of the one
/// write lock) and a transaction gives its turn back however it ends —
/// committed, rolled back, or dropped (a handler that returned early).
/// PostgreSQL: writers do not wait for each other's turn.
async fn write_transactions_take_turns_and_give_them_back(db: TestDb) {
    let c = clock();
    let t = tenant(&db, &c, "turns").await;
    let held = db.store.begin_tenant(t).await.unwrap();
    let store = db.store.clone();
    let next = tokio::spawn(async move {
        let tx = store.begin_tenant(t).await.unwrap();
        tx.commit().await.unwrap();
    });
    let within = |s| std::time::Duration::from_millis(s);
    if db.store.backend() == Backend::Sqlite {
        tokio::time::sleep(within(300)).await;
        assert!(!next.is_finished(), "the second writer waits its turn");
        drop(held);
        tokio::time::timeout(within(10_000), next)
            .await
            .expect("the turn comes back when a transaction is dropped")
            .unwrap();
    } else {
        tokio::time::timeout(within(10_000), next)
            .await
            .expect("no turn to wait for")
            .unwrap();
        drop(held);
    }
    let tx = db.store.begin_tenant(t).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = db.store.begin_platform().await.unwrap();
    tx.commit().await.unwrap();
    let tx = db.store.begin_tenant(t).await.unwrap();
    tx.commit().await.unwrap();
}

mod engine_support {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::{Value, json};
    use vigil_orchestrator::engine::outbox::{WriteError, Writer};
    use vigil_orchestrator::{Result, TenantId, TenantTx};

    /// A vendor stand-in that counts writes and drops duplicates by
    /// idempotency key, as a vendor honouring the key would.
    #[derive(Debug, Default)]
    pub struct Vendor {
        pub scope: AtomicBool,
        pub hang: AtomicBool,
        pub fail_transient: AtomicBool,
        pub calls: Mutex<Vec<String>>,
        pub tickets: Mutex<HashMap<String, usize>>,
    }

    #[async_trait::async_trait]
    impl Writer for Vendor {
        async fn scope_enabled(&self, _: &TenantTx, _: &str, _: &Value) -> Result<bool> {
            Ok(self.scope.load(Ordering::SeqCst))
        }
        async fn write(&self, _: TenantId, _: &str, _: &Value, key: &str) -> Result<Value, WriteError> {
            self.calls.lock().unwrap().push(key.to_owned());
            if self.fail_transient.load(Ordering::SeqCst) {
                return Err(WriteError::transient("503 from vendor"));
            }
            let n = {
                let mut t = self.tickets.lock().unwrap();
                let len = t.len();
                *t.entry(key.to_owned()).or_insert(len + 1)
            };
            if self.hang.load(Ordering::SeqCst) {
                // The vendor has the ticket; the worker dies before recording.
                std::future::pending::<()>().await;
            }
            Ok(json!({"ticket": format!("SOC-{n}")}))
        }
    }
}

fn decider<'a>(
    actor: &'a Actor,
    may: &'a (dyn Fn(vigil_orchestrator::engine::state::GateKind) -> bool + Sync),
) -> vigil_orchestrator::engine::gates::Decider<'a> {
    vigil_orchestrator::engine::gates::Decider {
        actor,
        may_decide: may,
    }
}

/// An evidence item of `case` (as the investigation's collect step stores one).
async fn seed_evidence(
    tx: &vigil_orchestrator::store::TenantTx,
    case: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
    response: &str,
) {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use vigil_orchestrator::store::entity::evidence;
    evidence::Entity::insert(evidence::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(case),
        round: Set(1),
        integration_id: Set(uuid::Uuid::now_v7()),
        source: Set("graylog.messages".into()),
        subject: Set("host:ws-1".into()),
        request: Set("GET /api/search/universal/absolute?query=\"ws-1\"".into()),
        status: Set("collected".into()),
        response: Set(Some(response.into())),
        error: Set(None),
        collected_at: Set(at),
    })
    .exec(&**tx)
    .await
    .unwrap();
}

fn person(label: &str, role: Role) -> Actor {
    Actor {
        label: label.into(),
        role: Some(role),
        source_ip: None,
    }
}

/// A ticket system integration (Jira or ServiceNow) for ticket-write gates.
async fn ticket_system(db: &TestDb, c: &ManualClock, t: TenantId, kind: &str) -> uuid::Uuid {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let config = if kind == "jira" {
        serde_json::json!({"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"})
    } else {
        serde_json::json!({"instance_url": "https://acme.service-now.com", "username": "vigil"})
    };
    let i = vigil_orchestrator::connect::integrations::create(
        &tx,
        c,
        &person("user:eng", Role::SecurityEngineer),
        kind,
        &format!("{kind} tickets"),
        config,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    i.id
}

async fn open_case(db: &TestDb, c: &ManualClock, t: TenantId) -> uuid::Uuid {
    use vigil_orchestrator::engine::{cases, state::Severity};
    let tx = db.store.begin_tenant(t).await.unwrap();
    let case = cases::open(
        &tx,
        c,
        &person("user:ann", Role::AnalystEdit),
        "Beaconing from host-7",
        Severity::High,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    case.id
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::TestDb::new(super::Backend::Sqlite).await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::TestDb::new(super::Backend::Postgres).await).await } )*
        }
    };
}

#[path = "storage/identity.rs"]
mod identity_suite;
use identity_suite::{
    api_tokens_bind_tenant_and_role, audit_log_is_append_only, bootstrap_creates_exactly_one_platform_admin,
    login_locks_out_and_audits, members_are_tenant_scoped, password_links_are_one_time_and_expire,
    sessions_expire_and_log_out, tenant_session_limits, tenants_create_get_list,
    totp_enrols_rotates_and_refuses_replay,
};
#[path = "storage/engine.rs"]
mod engine_suite;
use engine_suite::{
    a_worker_dying_mid_write_never_duplicates, an_expired_lease_passes_the_step_on,
    cases_are_assigned_and_commented, chains_continue_in_place_but_not_under_a_kill_switch,
    gates_bind_hash_and_refuse_self_approval, queue_counts_stop_at_the_cap,
    quorum_needs_distinct_approvers_of_the_same_proposal, reject_needs_reason_and_edits_keep_a_diff,
    steps_retry_dead_letter_and_chain, steps_wait_for_their_gate_and_the_kill_switch,
    ticket_writes_run_once_behind_the_guard, transient_failures_retry_then_dead_letter,
    unanswered_gates_escalate_never_approve,
};
#[path = "storage/connect.rs"]
mod connect_suite;
use connect_suite::{
    credentials_are_enveloped_rotated_and_revoked, integrations_start_read_only_and_writes_are_opt_in,
};
#[path = "storage/pipeline.rs"]
mod pipeline_suite;
use pipeline_suite::{alerts_sharing_entities_join_one_case, correlation_lookups_stay_indexed};
#[path = "storage/audit.rs"]
mod audit_suite;
use audit_suite::{
    an_action_whose_audit_event_fails_does_not_happen, audit_chain_is_gapless_under_concurrent_writers,
    audit_exports_verify_on_their_own, audit_tampering_is_named, pages_read_what_the_model_reads,
    purge_erases_a_case_an_entity_and_old_telemetry,
    retention_deletes_what_expired_and_the_chain_still_verifies, tenant_deletion_leaves_no_row_behind,
    the_request_log_keeps_thirty_days,
};
#[path = "storage/sso_rules.rs"]
mod sso_rules;
use sso_rules::sso_links_and_roles_follow_the_rules;

on_both_backends!(
    sso_links_and_roles_follow_the_rules,
    migrations_are_current,
    write_transactions_take_turns_and_give_them_back,
    tenants_create_get_list,
    members_are_tenant_scoped,
    api_tokens_bind_tenant_and_role,
    password_links_are_one_time_and_expire,
    bootstrap_creates_exactly_one_platform_admin,
    audit_log_is_append_only,
    login_locks_out_and_audits,
    sessions_expire_and_log_out,
    tenant_session_limits,
    totp_enrols_rotates_and_refuses_replay,
    gates_bind_hash_and_refuse_self_approval,
    reject_needs_reason_and_edits_keep_a_diff,
    ticket_writes_run_once_behind_the_guard,
    a_worker_dying_mid_write_never_duplicates,
    transient_failures_retry_then_dead_letter,
    unanswered_gates_escalate_never_approve,
    steps_retry_dead_letter_and_chain,
    an_expired_lease_passes_the_step_on,
    steps_wait_for_their_gate_and_the_kill_switch,
    chains_continue_in_place_but_not_under_a_kill_switch,
    quorum_needs_distinct_approvers_of_the_same_proposal,
    cases_are_assigned_and_commented,
    queue_counts_stop_at_the_cap,
    integrations_start_read_only_and_writes_are_opt_in,
    credentials_are_enveloped_rotated_and_revoked,
    alerts_sharing_entities_join_one_case,
    correlation_lookups_stay_indexed,
    audit_chain_is_gapless_under_concurrent_writers,
    an_action_whose_audit_event_fails_does_not_happen,
    audit_tampering_is_named,
    audit_exports_verify_on_their_own,
    pages_read_what_the_model_reads,
    the_request_log_keeps_thirty_days,
    retention_deletes_what_expired_and_the_chain_still_verifies,
    purge_erases_a_case_an_entity_and_old_telemetry,
    tenant_deletion_leaves_no_row_behind,
);

/// Row level security, proven as the application role with the
/// application's own filters bypassed (raw SQL without WHERE tenant_id).
mod rls {
    use super::*;

    #[tokio::test]
    async fn app_role_is_unprivileged() {
        let db = TestDb::postgres().await;
        let row = db
            .store
            .conn()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS who, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get::<String>("", "who").unwrap(),
            vigil_migrations::APP_ROLE
        );
        assert!(!row.try_get::<bool>("", "rolsuper").unwrap());
        assert!(!row.try_get::<bool>("", "rolbypassrls").unwrap());
        // It owns nothing.
        let owned = count(
            db.store.conn(),
            "SELECT COUNT(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user",
        )
        .await;
        assert_eq!(owned, 0);
    }

    #[tokio::test]
    async fn every_tenant_table_has_forced_rls() {
        let db = TestDb::postgres().await;
        let rows = db
            .store
            .conn()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT c.relname::text AS t, c.relrowsecurity AS on_, c.relforcerowsecurity AS forced \
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attname = 'tenant_id' AND NOT a.attisdropped \
                 ORDER BY 1",
            ))
            .await
            .unwrap();
        let mut tables = Vec::new();
        for r in rows {
            let t: String = r.try_get("", "t").unwrap();
            assert!(r.try_get::<bool>("", "on_").unwrap(), "{t}: RLS not enabled");
            assert!(r.try_get::<bool>("", "forced").unwrap(), "{t}: RLS not forced");
            tables.push(t);
        }
        let mut declared: Vec<_> = vigil_migrations::TENANT_TABLES
            .iter()
            .map(|s| s.to_string())
            .collect();
        declared.sort();
        assert_eq!(
            tables, declared,
            "every table with tenant_id is declared a tenant table"
        );
    }

    #[tokio::test]
    async fn tenants_cannot_see_or_write_each_other() {
        let db = TestDb::postgres().await;
        let c = clock();
        let (a, b) = (tenant(&db, &c, "A").await, tenant(&db, &c, "B").await);
        for (t, who) in [(a, "ann@a.example"), (b, "bob@b.example")] {
            let tx = db.store.begin_tenant(t).await.unwrap();
            identity::add_member(&tx, &c, &Actor::cli(), &email(who), Role::AnalystEdit)
                .await
                .unwrap();
            identity::issue_api_token(&tx, &c, &Actor::cli(), "t", Role::AnalystRead)
                .await
                .unwrap();
            // Engine rows: a case, an approved ticket write (gate + outbox), a kill-switch record.
            use vigil_orchestrator::engine::{cases, gates, kill, state::*};
            let tickets = vigil_orchestrator::connect::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "servicenow",
                "Tickets",
                serde_json::json!({"instance_url": "https://s.example", "username": "u"}),
            )
            .await
            .unwrap();
            let case = cases::open(
                &tx,
                &c,
                &person("user:ann", Role::AnalystEdit),
                "c",
                Severity::Low,
            )
            .await
            .unwrap();
            let g = gates::request(
                &tx,
                &c,
                &person("user:ann", Role::AnalystEdit),
                case.id,
                GateKind::TicketWrite,
                serde_json::json!({"system": "servicenow", "operation": "create", "integration_id": tickets.id}),
                gates::ESCALATE_AFTER,
            )
            .await
            .unwrap();
            let any = |_: GateKind| true;
            gates::approve(
                &tx,
                &c,
                &decider(&person("user:bob", Role::AnalystEdit), &any),
                g.id,
                &g.payload_hash,
            )
            .await
            .unwrap();
            kill::set_tenant(&tx, &c, &person("user:adm", Role::TenantAdmin), true)
                .await
                .unwrap();
            vigil_orchestrator::engine::steps::enqueue(
                &tx,
                &c,
                vigil_orchestrator::engine::steps::NewStep::new(
                    "probe",
                    Some(case.id),
                    serde_json::json!({}),
                ),
            )
            .await
            .unwrap();
            vigil_orchestrator::connect::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "notify_webhook",
                "Pager",
                serde_json::json!({"url": "https://hooks.example/vigil"}),
            )
            .await
            .unwrap();
            vigil_orchestrator::pipeline::iocs::import(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "csv",
                "ip,198.51.100.7",
            )
            .await
            .unwrap();
            assert_eq!(
                vigil_orchestrator::connect::notifications::enqueue(
                    &tx,
                    &c,
                    "gate.escalated",
                    "x",
                    serde_json::json!({})
                )
                .await
                .unwrap(),
                1
            );
            let integ = vigil_orchestrator::connect::integrations::create(
                &tx,
                &c,
                &person("user:eng", Role::SecurityEngineer),
                "jira",
                "Jira",
                serde_json::json!({"base_url": "https://j.example", "email": "e"}),
            )
            .await
            .unwrap();
            vigil_orchestrator::connect::integrations::set_scope(
                &tx,
                &c,
                &person("user:adm", Role::TenantAdmin),
                integ.id,
                "issue:create",
                true,
            )
            .await
            .unwrap();
            let master = vigil_orchestrator::secrets::credentials::MasterKey::generate();
            vigil_orchestrator::secrets::vault::set(
                &tx,
                &c,
                &master,
                &person("user:eng", Role::SecurityEngineer),
                integ.id,
                b"secret",
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // An alert, through a real signed delivery.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let (hook, secret) = vigil_orchestrator::connect::integrations::create_with_secret(
                &tx,
                &c,
                &master,
                &person("user:eng", Role::SecurityEngineer),
                "webhook",
                "hook",
                serde_json::json!({}),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let body = br#"{"class_uid": 2004, "finding_info": {"uid": "f"}, "device": {"hostname": "h-1"}}"#;
            let ts = c.now().timestamp().to_string();
            let sig = vigil_orchestrator::pipeline::ingest::sign(secret.unwrap().as_bytes(), &ts, body);
            let alert = vigil_orchestrator::pipeline::ingest::receive(
                &db.store,
                &c,
                &master,
                vigil_orchestrator::pipeline::ingest::Delivery {
                    integration: hook.id,
                    timestamp: Some(&ts),
                    signature: Some(&sig),
                    body,
                    source_ip: None,
                },
            )
            .await
            .unwrap()
            .alert_ids[0];
            // A draft of the case the alert opened.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let mut case = None;
            for k in vigil_orchestrator::engine::cases::list(&tx, None, 100, 0)
                .await
                .unwrap()
                .0
            {
                if vigil_orchestrator::pipeline::correlate::alerts_of(&tx, k.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|(a, _)| *a == alert)
                {
                    case = Some(k.id);
                }
            }
            let case = case.unwrap();
            vigil_orchestrator::pipeline::drafts::generate(&tx, &c, case)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // An SSO provider, a login in flight, and a linked identity.
            let tx = db.store.begin_tenant(t).await.unwrap();
            let p = vigil_orchestrator::identity::sso::create_provider(
                &tx,
                &c,
                &master,
                &person("user:adm", Role::TenantAdmin),
                vigil_orchestrator::identity::sso::NewProvider {
                    name: "idp".into(),
                    issuer: "https://idp.example".into(),
                    client_id: "vigil".into(),
                    client_secret: Some("s".into()),
                    algorithms: vec!["RS256".into()],
                    group_claim: "groups".into(),
                    role_map: vec![("soc".into(), Role::AnalystEdit)],
                    trust_idp_mfa: false,
                    scopes: Vec::new(),
                    domains: vec!["example.com".into()],
                },
            )
            .await
            .unwrap();
            vigil_orchestrator::identity::sso::remember_login(
                &tx,
                &c,
                p.id,
                &format!("state-{t}"),
                "b",
                "n",
                "v",
            )
            .await
            .unwrap();
            let who = vigil_integrations::oidc::Identity {
                issuer: "https://idp.example".into(),
                subject: "sub".into(),
                email: Some(format!("sso-{}@example.com", t.0.simple())),
                email_verified: true,
                groups: vec!["soc".into()],
                amr: vec![],
            };
            vigil_orchestrator::identity::sso::admit(&tx, &c, &p, &who, None)
                .await
                .unwrap();
            vigil_orchestrator::identity::sso::first_use_of_assertion(&tx, &c, p.id, "assertion-1", None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // A logged API request (api_requests).
            let tx = db.store.begin_tenant(t).await.unwrap();
            vigil_orchestrator::audit::requests::record(
                &tx,
                &[vigil_orchestrator::audit::requests::Request {
                    at: c.now(),
                    method: "GET".into(),
                    route: "/api/v1/cases".into(),
                    status: 200,
                    ms: 1.5,
                    actor: "token:x".into(),
                    request_id: "r".into(),
                }],
            )
            .await
            .unwrap();
            // An evidence item of a case (evidence).
            seed_evidence(&tx, uuid::Uuid::now_v7(), c.now(), r#"{"messages": []}"#).await;
            // A comment on the case (case_comments).
            cases::comment(
                &tx,
                &c,
                &person("user:ann", Role::AnalystEdit),
                case,
                "looked at it",
            )
            .await
            .unwrap();
            // A saved view of the queue (saved_views).
            cases::save_view(
                &tx,
                &c,
                vigil_orchestrator::UserId(uuid::Uuid::now_v7()),
                "open",
                "state=",
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // The audit chain's head is signed (audit_checkpoints).
            vigil_orchestrator::audit::chain::checkpoint(
                &db.store,
                vigil_orchestrator::audit::chain::Scope::Tenant(t),
                &vigil_orchestrator::audit::chain::SigningKey::generate(),
                &c,
                vigil_orchestrator::audit::chain::Policy::default(),
                true,
            )
            .await
            .unwrap()
            .unwrap();
        }
        // Under B's setting, raw unfiltered queries see only B's rows.
        let tx = db.store.begin_tenant(b).await.unwrap();
        for table in vigil_migrations::TENANT_TABLES {
            let n = count(&*tx, &format!("SELECT COUNT(*) AS n FROM {table}")).await;
            let mine = count(
                &*tx,
                &format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = '{b}'"),
            )
            .await;
            assert!(n > 0 && n == mine, "{table}: {n} visible, {mine} are B's");
        }
        // Writing a row for A while acting as B is refused.
        let forged = tx
            .execute_unprepared(&format!(
                "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, created_at, created_by) \
                 VALUES ('{}', '{a}', 'x', 'tenant_admin', 'h', now(), 'mallory')",
                uuid::Uuid::new_v4()
            ))
            .await;
        assert!(forged.is_err(), "cross-tenant insert must be refused");
        drop(tx);
        // Updating A's memberships from B's transaction touches nothing.
        let tx = db.store.begin_tenant(b).await.unwrap();
        let res = tx
            .execute_unprepared(&format!(
                "UPDATE memberships SET role = 'tenant_admin' WHERE tenant_id = '{a}'"
            ))
            .await
            .unwrap();
        assert_eq!(res.rows_affected(), 0);
        tx.commit().await.unwrap();

        // With no tenant set: nothing visible, nothing writable.
        for table in vigil_migrations::TENANT_TABLES {
            assert_eq!(
                count(db.store.conn(), &format!("SELECT COUNT(*) AS n FROM {table}")).await,
                0,
                "{table}"
            );
        }
        let orphan = db
            .store
            .conn()
            .execute_unprepared(&format!(
                "INSERT INTO memberships (id, tenant_id, user_id, role, created_at) \
                 SELECT '{}', '{a}', id, 'tenant_admin', now() FROM users LIMIT 1",
                uuid::Uuid::new_v4()
            ))
            .await;
        assert!(orphan.is_err(), "insert without tenant must be refused");
        // The setting is transaction-local: it does not leak to the next
        // statement on the same pooled connection.
        let tx = db.store.begin_tenant(a).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            count(db.store.conn(), "SELECT COUNT(*) AS n FROM memberships").await,
            0
        );
    }
}
