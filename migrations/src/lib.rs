//! Vigil's schema. One migration tree serves SQLite and PostgreSQL: tables are
//! built with sea-query (portable types); PostgreSQL additionally gets the
//! application role, grants, and row level security, applied by [`pg`].
//!
//! Invariant: every tenant-owned table has a `tenant_id` column and, on
//! PostgreSQL, RLS ENABLEd and FORCEd with a policy on the per-transaction
//! setting `vigil.tenant_id` that matches nothing when the setting is unset.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_foundation;
mod m20261122_000002_engine;
mod m20261122_000003_steps;
mod m20261122_000004_quorum;
mod m20261122_000005_integrations;
mod m20261122_000006_credentials;
mod m20261122_000007_alerts;
mod m20261122_000008_observables;
mod m20261122_000009_correlation;
mod m20261122_000010_integration_status;
mod m20261122_000011_case_entities;
mod m20261122_000012_notifications;
mod m20261122_000013_correlation_settings;
mod m20261122_000014_iocs;
mod m20261122_000015_drafts;
mod m20261122_000016_steps_hot_path;
mod m20261122_000017_authz_notify;
mod m20261122_000018_recovery_codes;
mod m20261122_000019_sso;
mod m20261122_000020_session_limits;
mod m20261122_000021_saml;
mod m20261201_000022_sign_in_hardening;
mod m20261201_000023_input_bounds;
mod m20261202_000024_event_time;
mod m20261202_000025_case_queue;
mod m20261202_000026_draft_edits;
mod m20261202_000027_sso_discovery;
mod m20261203_000028_audit_chain;
mod m20261203_000029_api_requests;
mod m20261203_000030_retention;
mod m20261203_000031_tenant_deletion;
mod m20261207_000032_evidence;
mod m20261207_000033_assessment;
mod m20261207_000034_steps_by_case;
mod m20261207_000035_case_work;
mod m20261207_000036_saved_views;
mod m20261207_000037_page_speed;
pub mod pg;

/// Name of the PostgreSQL role the server runs every request as: owns nothing,
/// NOSUPERUSER, NOBYPASSRLS.
pub const APP_ROLE: &str = "vigil_app";

/// Short hash of the migration sources (build time); harnesses key migrated
/// template databases on it.
pub const SCHEMA_FINGERPRINT: &str = env!("VIGIL_SCHEMA_FINGERPRINT");

/// Tables that carry a `tenant_id` and are protected by RLS on PostgreSQL.
/// Append only: a migration reads a prefix of this list as it stood then.
pub const TENANT_TABLES: &[&str] = &[
    "memberships",
    "api_tokens",
    "audit_events",
    "cases",
    "gates",
    "outbox",
    "tenant_controls",
    "steps",
    "gate_approvals",
    "integrations",
    "integration_scopes",
    "tenant_keys",
    "credentials",
    "alerts",
    "observables",
    "case_alerts",
    "integration_status",
    "case_entities",
    "notifications",
    "iocs",
    "drafts",
    "sso_providers",
    "sso_logins",
    "sso_identities",
    "sso_assertions",
    "entity_hosts",
    "audit_heads",
    "audit_checkpoints",
    "api_requests",
    "evidence",
    "case_comments",
    "saved_views",
];

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_engine::Migration),
            Box::new(m20261122_000003_steps::Migration),
            Box::new(m20261122_000004_quorum::Migration),
            Box::new(m20261122_000005_integrations::Migration),
            Box::new(m20261122_000006_credentials::Migration),
            Box::new(m20261122_000007_alerts::Migration),
            Box::new(m20261122_000008_observables::Migration),
            Box::new(m20261122_000009_correlation::Migration),
            Box::new(m20261122_000010_integration_status::Migration),
            Box::new(m20261122_000011_case_entities::Migration),
            Box::new(m20261122_000012_notifications::Migration),
            Box::new(m20261122_000013_correlation_settings::Migration),
            Box::new(m20261122_000014_iocs::Migration),
            Box::new(m20261122_000015_drafts::Migration),
            Box::new(m20261122_000016_steps_hot_path::Migration),
            Box::new(m20261122_000017_authz_notify::Migration),
            Box::new(m20261122_000018_recovery_codes::Migration),
            Box::new(m20261122_000019_sso::Migration),
            Box::new(m20261122_000020_session_limits::Migration),
            Box::new(m20261122_000021_saml::Migration),
            Box::new(m20261201_000022_sign_in_hardening::Migration),
            Box::new(m20261201_000023_input_bounds::Migration),
            Box::new(m20261202_000024_event_time::Migration),
            Box::new(m20261202_000025_case_queue::Migration),
            Box::new(m20261202_000026_draft_edits::Migration),
            Box::new(m20261202_000027_sso_discovery::Migration),
            Box::new(m20261203_000028_audit_chain::Migration),
            Box::new(m20261203_000029_api_requests::Migration),
            Box::new(m20261203_000030_retention::Migration),
            Box::new(m20261203_000031_tenant_deletion::Migration),
            Box::new(m20261207_000032_evidence::Migration),
            Box::new(m20261207_000033_assessment::Migration),
            Box::new(m20261207_000034_steps_by_case::Migration),
            Box::new(m20261207_000035_case_work::Migration),
            Box::new(m20261207_000036_saved_views::Migration),
            Box::new(m20261207_000037_page_speed::Migration),
        ]
    }
}
