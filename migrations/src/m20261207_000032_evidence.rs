//! Evidence items: what the investigation collected through a tenant's
//! integrations' read scopes (a CrowdStrike device record, a Graylog
//! search), each vendor response kept verbatim with the request that got
//! it, or the reason it could not be collected. One row per (case, round,
//! integration, subject): a retried step finds what it already has.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Evidence {
    Table,
    Id,
    TenantId,
    CaseId,
    Round,
    IntegrationId,
    Source,
    Subject,
    Request,
    Status,
    Response,
    Error,
    CollectedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Evidence::Table)
                    .col(ColumnDef::new(Evidence::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Evidence::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Evidence::CaseId).uuid().not_null())
                    .col(ColumnDef::new(Evidence::Round).big_integer().not_null())
                    .col(ColumnDef::new(Evidence::IntegrationId).uuid().not_null())
                    .col(ColumnDef::new(Evidence::Source).text().not_null())
                    .col(ColumnDef::new(Evidence::Subject).text().not_null())
                    .col(ColumnDef::new(Evidence::Request).text().not_null())
                    .col(ColumnDef::new(Evidence::Status).text().not_null())
                    .col(ColumnDef::new(Evidence::Response).text())
                    .col(ColumnDef::new(Evidence::Error).text())
                    .col(
                        ColumnDef::new(Evidence::CollectedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_evidence_round_subject")
                    .table(Evidence::Table)
                    .col(Evidence::TenantId)
                    .col(Evidence::CaseId)
                    .col(Evidence::Round)
                    .col(Evidence::IntegrationId)
                    .col(Evidence::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_evidence_tenant_collected")
                    .table(Evidence::Table)
                    .col(Evidence::TenantId)
                    .col(Evidence::CollectedAt)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "evidence", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "evidence").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Evidence::Table).to_owned())
            .await?;
        Ok(())
    }
}
