//! Drafts: versioned briefs of a case, every sentence citing evidence;
//! drafts until a person approves them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Drafts {
    Table,
    Id,
    TenantId,
    CaseId,
    Version,
    Body,
    State,
    Drafter,
    CreatedAt,
    DecidedBy,
    DecidedAt,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Drafts::Table)
                    .col(ColumnDef::new(Drafts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Drafts::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Drafts::CaseId).uuid().not_null())
                    .col(ColumnDef::new(Drafts::Version).integer().not_null())
                    .col(ColumnDef::new(Drafts::Body).json().not_null())
                    .col(ColumnDef::new(Drafts::State).string().not_null())
                    .col(ColumnDef::new(Drafts::Drafter).string().not_null())
                    .col(
                        ColumnDef::new(Drafts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Drafts::DecidedBy).string().null())
                    .col(
                        ColumnDef::new(Drafts::DecidedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Drafts::Reason).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_drafts_case")
                            .from(Drafts::Table, Drafts::CaseId)
                            .to(Alias::new("cases"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_drafts_case_version")
                    .table(Drafts::Table)
                    .col(Drafts::CaseId)
                    .col(Drafts::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "drafts", "SELECT, INSERT, UPDATE").await?;
            pg::tenant_rls(manager, "drafts").await?;
        }
        Ok(())
    }
}
