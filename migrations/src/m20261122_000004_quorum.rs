//! N-of-M approval: each approval of a gate is a row bound to the payload
//! hash it approved; the tenant's quorum per gate kind lives with its
//! controls.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GateApprovals {
    Table,
    Id,
    TenantId,
    GateId,
    Approver,
    ApproverRole,
    PayloadHash,
    At,
}

#[derive(DeriveIden)]
enum TenantControls {
    Table,
    GateQuorum,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GateApprovals::Table)
                    .col(ColumnDef::new(GateApprovals::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(GateApprovals::TenantId).uuid().not_null())
                    .col(ColumnDef::new(GateApprovals::GateId).uuid().not_null())
                    .col(ColumnDef::new(GateApprovals::Approver).text().not_null())
                    .col(ColumnDef::new(GateApprovals::ApproverRole).text().null())
                    .col(ColumnDef::new(GateApprovals::PayloadHash).text().not_null())
                    .col(
                        ColumnDef::new(GateApprovals::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_gate_approvals_gate")
                            .from(GateApprovals::Table, GateApprovals::GateId)
                            .to(Alias::new("gates"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(
                        Index::create()
                            .name("ux_gate_approvals_once")
                            .col(GateApprovals::GateId)
                            .col(GateApprovals::Approver)
                            .col(GateApprovals::PayloadHash)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TenantControls::Table)
                    .add_column(ColumnDef::new(TenantControls::GateQuorum).json().null())
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "gate_approvals", "SELECT, INSERT").await?;
            pg::tenant_rls(manager, "gate_approvals").await?;
        }
        Ok(())
    }
}
