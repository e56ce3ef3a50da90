//! Outbound notifications (signed webhooks): one row per event and
//! notification integration, sent by the engine worker with retries.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    TenantId,
    IntegrationId,
    Event,
    IdempotencyKey,
    State,
    Attempts,
    RunAfter,
    LastError,
    CreatedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(ColumnDef::new(Notifications::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Notifications::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Notifications::IntegrationId).uuid().not_null())
                    .col(ColumnDef::new(Notifications::Event).json().not_null())
                    .col(
                        ColumnDef::new(Notifications::IdempotencyKey)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Notifications::State).string().not_null())
                    .col(
                        ColumnDef::new(Notifications::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Notifications::RunAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Notifications::LastError).text().null())
                    .col(
                        ColumnDef::new(Notifications::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Notifications::SentAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notifications_integration")
                            .from(Notifications::Table, Notifications::IntegrationId)
                            .to(Alias::new("integrations"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_notifications_due")
                    .table(Notifications::Table)
                    .col(Notifications::State)
                    .col(Notifications::RunAfter)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            pg::grant(manager, "notifications", "SELECT, INSERT, UPDATE").await?;
            pg::tenant_rls(manager, "notifications").await?;
            db.execute_unprepared(
                "CREATE FUNCTION vigil_due_notifications(due_before timestamptz, max_rows integer) \
                 RETURNS TABLE (id uuid, tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER \
                 SET search_path = public, pg_temp AS $$ \
                   SELECT n.id, n.tenant_id FROM notifications n \
                   WHERE n.state = 'pending' AND n.run_after <= due_before \
                   ORDER BY n.run_after LIMIT max_rows $$",
            )
            .await?;
            db.execute_unprepared(
                "REVOKE ALL ON FUNCTION vigil_due_notifications(timestamptz, integer) FROM PUBLIC",
            )
            .await?;
            db.execute_unprepared(&format!(
                "GRANT EXECUTE ON FUNCTION vigil_due_notifications(timestamptz, integer) TO {}",
                crate::APP_ROLE
            ))
            .await?;
        }
        Ok(())
    }
}
