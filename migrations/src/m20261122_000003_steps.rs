//! Durable workflow steps. Every step is a row; workers claim due steps
//! under a lease (PostgreSQL: FOR UPDATE SKIP LOCKED, deadline from the
//! database clock); an expired lease makes the step claimable again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    Id,
    TenantId,
    CaseId,
    Kind,
    State,
    Input,
    Output,
    Attempts,
    MaxAttempts,
    RunAfter,
    LeaseOwner,
    LeaseExpiresAt,
    AfterGateId,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Steps::Table)
                    .col(ColumnDef::new(Steps::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Steps::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Steps::CaseId).uuid().null())
                    .col(ColumnDef::new(Steps::Kind).text().not_null())
                    .col(ColumnDef::new(Steps::State).text().not_null())
                    .col(ColumnDef::new(Steps::Input).json().not_null())
                    .col(ColumnDef::new(Steps::Output).json().null())
                    .col(ColumnDef::new(Steps::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Steps::MaxAttempts).integer().not_null())
                    .col(
                        ColumnDef::new(Steps::RunAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Steps::LeaseOwner).text().null())
                    .col(
                        ColumnDef::new(Steps::LeaseExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Steps::AfterGateId).uuid().null())
                    .col(ColumnDef::new(Steps::LastError).text().null())
                    .col(
                        ColumnDef::new(Steps::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Steps::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_steps_tenant")
                            .from(Steps::Table, Steps::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_steps_due")
                    .table(Steps::Table)
                    .col(Steps::State)
                    .col(Steps::RunAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_steps_gate")
                    .table(Steps::Table)
                    .col(Steps::AfterGateId)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "steps", "SELECT, INSERT, UPDATE, DELETE").await?;
            pg::tenant_rls(manager, "steps").await?;
            let db = manager.get_connection();
            // The engine's claim: due steps across tenants whose tenant (and
            // the platform) has no kill switch engaged, locked with SKIP
            // LOCKED so concurrent workers never claim the same step, leased
            // until a deadline on the database clock (or `at`, for tests).
            // Returns only what the worker needs to open the tenant's
            // transaction; the step's work then runs under RLS.
            db.execute_unprepared(
                "CREATE FUNCTION vigil_claim_steps(owner text, max_rows integer, lease_seconds integer, at timestamptz) \
                 RETURNS TABLE (id uuid, tenant_id uuid, attempts integer, lease_expires_at timestamptz) \
                 LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$ \
                   WITH t AS (SELECT COALESCE(at, now()) AS now), \
                   due AS ( \
                     SELECT s.id FROM steps s, t \
                     WHERE ((s.state = 'pending' AND s.run_after <= t.now) \
                         OR (s.state = 'running' AND s.lease_expires_at <= t.now)) \
                       AND NOT EXISTS (SELECT 1 FROM platform_controls p WHERE p.kill_switch_engaged_at IS NOT NULL) \
                       AND NOT EXISTS (SELECT 1 FROM tenant_controls c WHERE c.tenant_id = s.tenant_id AND c.kill_switch_engaged_at IS NOT NULL) \
                     ORDER BY s.run_after \
                     LIMIT max_rows \
                     FOR UPDATE OF s SKIP LOCKED) \
                   UPDATE steps s SET state = 'running', lease_owner = owner, attempts = s.attempts + 1, \
                          lease_expires_at = t.now + make_interval(secs => lease_seconds), updated_at = t.now \
                   FROM due, t WHERE s.id = due.id \
                   RETURNING s.id, s.tenant_id, s.attempts, s.lease_expires_at $$",
            )
            .await?;
            db.execute_unprepared(
                "REVOKE ALL ON FUNCTION vigil_claim_steps(text, integer, integer, timestamptz) FROM PUBLIC",
            )
            .await?;
            db.execute_unprepared(&format!(
                "GRANT EXECUTE ON FUNCTION vigil_claim_steps(text, integer, integer, timestamptz) TO {}",
                crate::APP_ROLE
            ))
            .await?;
        }
        Ok(())
    }
}
