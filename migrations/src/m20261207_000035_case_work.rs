//! Working a case: who it is assigned to (`cases.assignee`, a member of the
//! tenant, or none) and the analysts' comments on it (`case_comments`:
//! append only for the application; retention and purge delete them).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CaseComments {
    Table,
    Id,
    TenantId,
    CaseId,
    Author,
    Body,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("cases"))
                    .add_column(ColumnDef::new(Alias::new("assignee")).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cases_tenant_assignee")
                    .table(Alias::new("cases"))
                    .col(Alias::new("tenant_id"))
                    .col(Alias::new("assignee"))
                    .col(Alias::new("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CaseComments::Table)
                    .col(ColumnDef::new(CaseComments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CaseComments::TenantId).uuid().not_null())
                    .col(ColumnDef::new(CaseComments::CaseId).uuid().not_null())
                    .col(ColumnDef::new(CaseComments::Author).text().not_null())
                    .col(ColumnDef::new(CaseComments::Body).text().not_null())
                    .col(
                        ColumnDef::new(CaseComments::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_case_comments_case")
                    .table(CaseComments::Table)
                    .col(CaseComments::TenantId)
                    .col(CaseComments::CaseId)
                    .col(CaseComments::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_case_comments_created")
                    .table(CaseComments::Table)
                    .col(CaseComments::TenantId)
                    .col(CaseComments::CreatedAt)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "case_comments", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "case_comments").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CaseComments::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_cases_tenant_assignee")
                    .table(Alias::new("cases"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("cases"))
                    .drop_column(Alias::new("assignee"))
                    .to_owned(),
            )
            .await
    }
}
