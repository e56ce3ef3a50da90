//! Correlation: which alert belongs to which case and why (provenance), and
//! where a merged case went.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CaseAlerts {
    Table,
    Id,
    TenantId,
    CaseId,
    AlertId,
    JoinedAt,
    JoinedBy,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    MergedInto,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CaseAlerts::Table)
                    .col(ColumnDef::new(CaseAlerts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CaseAlerts::TenantId).uuid().not_null())
                    .col(ColumnDef::new(CaseAlerts::CaseId).uuid().not_null())
                    .col(ColumnDef::new(CaseAlerts::AlertId).uuid().not_null().unique_key())
                    .col(
                        ColumnDef::new(CaseAlerts::JoinedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CaseAlerts::JoinedBy).json().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_case_alerts_alert")
                            .from(CaseAlerts::Table, CaseAlerts::AlertId)
                            .to(Alias::new("alerts"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_case_alerts_case")
                            .from(CaseAlerts::Table, CaseAlerts::CaseId)
                            .to(Alias::new("cases"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_case_alerts_case")
                    .table(CaseAlerts::Table)
                    .col(CaseAlerts::CaseId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .add_column(ColumnDef::new(Cases::MergedInto).uuid().null())
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "case_alerts", "SELECT, INSERT, UPDATE, DELETE").await?;
            pg::tenant_rls(manager, "case_alerts").await?;
        }
        Ok(())
    }
}
