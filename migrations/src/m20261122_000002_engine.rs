//! The workflow engine's tables: cases, gates (approval requests binding a
//! payload hash), the outbox of approved external writes, and the kill
//! switches (per tenant; platform-wide).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Cases {
    Table,
    Id,
    TenantId,
    Title,
    Severity,
    State,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Gates {
    Table,
    Id,
    TenantId,
    CaseId,
    Kind,
    State,
    Payload,
    PayloadHash,
    RequestedBy,
    RequestedAt,
    EscalateAt,
    EscalatedAt,
    DecidedBy,
    DecidedRole,
    DecidedAt,
    Reason,
    EditDiff,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    TenantId,
    GateId,
    Action,
    Payload,
    IdempotencyKey,
    State,
    Attempts,
    RunAfter,
    LastError,
    Result,
    CreatedAt,
    ExecutedAt,
}

#[derive(DeriveIden)]
enum TenantControls {
    Table,
    TenantId,
    KillSwitchEngagedAt,
    KillSwitchEngagedBy,
}

#[derive(DeriveIden)]
enum PlatformControls {
    Table,
    Id,
    KillSwitchEngagedAt,
    KillSwitchEngagedBy,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

fn fk_tenant(name: &str, table: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("tenant_id"))
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Cases::Table)
                    .col(ColumnDef::new(Cases::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Cases::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Cases::Title).text().not_null())
                    .col(ColumnDef::new(Cases::Severity).text().not_null())
                    .col(ColumnDef::new(Cases::State).text().not_null())
                    .col(
                        ColumnDef::new(Cases::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Cases::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(&mut fk_tenant("fk_cases_tenant", Cases::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cases_tenant_state")
                    .table(Cases::Table)
                    .col(Cases::TenantId)
                    .col(Cases::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Gates::Table)
                    .col(ColumnDef::new(Gates::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Gates::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Gates::CaseId).uuid().not_null())
                    .col(ColumnDef::new(Gates::Kind).text().not_null())
                    .col(ColumnDef::new(Gates::State).text().not_null())
                    .col(ColumnDef::new(Gates::Payload).json().not_null())
                    .col(ColumnDef::new(Gates::PayloadHash).text().not_null())
                    .col(ColumnDef::new(Gates::RequestedBy).text().not_null())
                    .col(
                        ColumnDef::new(Gates::RequestedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Gates::EscalateAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Gates::EscalatedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Gates::DecidedBy).text().null())
                    .col(ColumnDef::new(Gates::DecidedRole).text().null())
                    .col(ColumnDef::new(Gates::DecidedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Gates::Reason).text().null())
                    .col(ColumnDef::new(Gates::EditDiff).json().null())
                    .foreign_key(&mut fk_tenant("fk_gates_tenant", Gates::Table))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_gates_case")
                            .from(Gates::Table, Gates::CaseId)
                            .to(Cases::Table, Cases::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_gates_tenant_state")
                    .table(Gates::Table)
                    .col(Gates::TenantId)
                    .col(Gates::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(ColumnDef::new(Outbox::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Outbox::TenantId).uuid().not_null())
                    // One outbox entry per gate, ever: the first wall against a second write.
                    .col(ColumnDef::new(Outbox::GateId).uuid().not_null().unique_key())
                    .col(ColumnDef::new(Outbox::Action).text().not_null())
                    .col(ColumnDef::new(Outbox::Payload).json().not_null())
                    .col(
                        ColumnDef::new(Outbox::IdempotencyKey)
                            .text()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Outbox::State).text().not_null())
                    .col(ColumnDef::new(Outbox::Attempts).integer().not_null().default(0))
                    .col(
                        ColumnDef::new(Outbox::RunAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Outbox::LastError).text().null())
                    .col(ColumnDef::new(Outbox::Result).json().null())
                    .col(
                        ColumnDef::new(Outbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Outbox::ExecutedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut fk_tenant("fk_outbox_tenant", Outbox::Table))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_gate")
                            .from(Outbox::Table, Outbox::GateId)
                            .to(Gates::Table, Gates::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenantControls::Table)
                    .col(
                        ColumnDef::new(TenantControls::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantControls::KillSwitchEngagedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(TenantControls::KillSwitchEngagedBy).text().null())
                    .foreign_key(&mut fk_tenant("fk_tenant_controls_tenant", TenantControls::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PlatformControls::Table)
                    .col(
                        ColumnDef::new(PlatformControls::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PlatformControls::KillSwitchEngagedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PlatformControls::KillSwitchEngagedBy)
                            .text()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("INSERT INTO platform_controls (id) VALUES (1)")
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            for t in ["cases", "gates", "outbox", "tenant_controls"] {
                pg::grant(manager, t, "SELECT, INSERT, UPDATE, DELETE").await?;
                pg::tenant_rls(manager, t).await?;
            }
            pg::grant(manager, "platform_controls", "SELECT, UPDATE").await?;
            // The engine's one cross-tenant read: which outbox entries are
            // due, across tenants (ids only). Each entry is then executed in
            // its own tenant's transaction, under RLS.
            db.execute_unprepared(
                "CREATE FUNCTION vigil_due_outbox(due_before timestamptz, max_rows integer) \
                 RETURNS TABLE (id uuid, tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER \
                 SET search_path = public, pg_temp AS $$ \
                   SELECT o.id, o.tenant_id FROM outbox o \
                   WHERE o.state IN ('pending', 'executing') AND o.run_after <= due_before \
                   ORDER BY o.run_after LIMIT max_rows $$",
            )
            .await?;
            db.execute_unprepared(
                "REVOKE ALL ON FUNCTION vigil_due_outbox(timestamptz, integer) FROM PUBLIC",
            )
            .await?;
            db.execute_unprepared(&format!(
                "GRANT EXECUTE ON FUNCTION vigil_due_outbox(timestamptz, integer) TO {}",
                crate::APP_ROLE
            ))
            .await?;
        }
        Ok(())
    }
}
