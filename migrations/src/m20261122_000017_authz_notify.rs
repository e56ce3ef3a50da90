//! PostgreSQL: every change to what the request guard resolves (a session's
//! user, tenant, MFA state, CSRF token or expiry; a user's disabling, MFA
//! or platform-admin flag; a membership; an API token) announces itself on
//! `vigil_authz` when it commits, whatever code path made it. Each node's
//! guard cache (`orchestrator::authcache`) listens and drops everything it
//! holds. A session's `last_seen_at` touch is not such a change.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TRIGGERS: &[(&str, &str, &str)] = &[
    (
        "authz_sessions",
        "sessions",
        "DELETE OR UPDATE OF token_hash, user_id, active_tenant_id, mfa_verified_at, csrf_token, expires_at",
    ),
    (
        "authz_users",
        "users",
        "DELETE OR UPDATE OF email, is_platform_admin, disabled_at, totp_enabled_at",
    ),
    ("authz_memberships", "memberships", "INSERT OR DELETE OR UPDATE"),
    (
        "authz_api_tokens",
        "api_tokens",
        "DELETE OR UPDATE OF tenant_id, role, token_hash, revoked_at",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE FUNCTION vigil_authz_changed() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('vigil_authz', ''); RETURN NULL; END $$",
        )
        .await?;
        for (name, table, events) in TRIGGERS {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {name} AFTER {events} ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION vigil_authz_changed()"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (name, table, _) in TRIGGERS {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
                .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS vigil_authz_changed()")
            .await?;
        Ok(())
    }
}
