//! Per-integration status: the poller's schedule and stored cursor, and the
//! last success or error (shown on the integration). One row per
//! integration, created with it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationStatus {
    Table,
    IntegrationId,
    TenantId,
    Cursor,
    NextPollAt,
    LastOkAt,
    LastError,
    LastErrorAt,
    Failures,
    Pulled,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IntegrationStatus::Table)
                    .col(
                        ColumnDef::new(IntegrationStatus::IntegrationId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(IntegrationStatus::TenantId).uuid().not_null())
                    .col(ColumnDef::new(IntegrationStatus::Cursor).string().null())
                    .col(
                        ColumnDef::new(IntegrationStatus::NextPollAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(IntegrationStatus::LastOkAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(IntegrationStatus::LastError).text().null())
                    .col(
                        ColumnDef::new(IntegrationStatus::LastErrorAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(IntegrationStatus::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(IntegrationStatus::Pulled)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_integration_status_integration")
                            .from(IntegrationStatus::Table, IntegrationStatus::IntegrationId)
                            .to(Alias::new("integrations"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_integration_status_due")
                    .table(IntegrationStatus::Table)
                    .col(IntegrationStatus::NextPollAt)
                    .to_owned(),
            )
            .await?;
        // Integrations made before this migration get their row; pollers
        // start at once.
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO integration_status (integration_id, tenant_id, next_poll_at, failures, pulled) \
             SELECT id, tenant_id, CASE WHEN kind IN ('crowdstrike', 'graylog') THEN created_at END, 0, 0 \
             FROM integrations",
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "integration_status", "SELECT, INSERT, UPDATE").await?;
            pg::tenant_rls(manager, "integration_status").await?;
            // The poller's one cross-tenant read: which integrations are due
            // (ids only); each poll then runs under its tenant's RLS.
            db.execute_unprepared(
                "CREATE FUNCTION vigil_due_polls(due_before timestamptz, max_rows integer) \
                 RETURNS TABLE (id uuid, tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER \
                 SET search_path = public, pg_temp AS $$ \
                   SELECT s.integration_id, s.tenant_id FROM integration_status s \
                   WHERE s.next_poll_at <= due_before \
                   ORDER BY s.next_poll_at LIMIT max_rows $$",
            )
            .await?;
            db.execute_unprepared("REVOKE ALL ON FUNCTION vigil_due_polls(timestamptz, integer) FROM PUBLIC")
                .await?;
            db.execute_unprepared(&format!(
                "GRANT EXECUTE ON FUNCTION vigil_due_polls(timestamptz, integer) TO {}",
                crate::APP_ROLE
            ))
            .await?;
        }
        Ok(())
    }
}
