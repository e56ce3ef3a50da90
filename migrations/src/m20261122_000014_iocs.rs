//! Per-tenant indicator lists (IOCs): hashes, IPs, domains, URLs, imported
//! from CSV or STIX 2.1. An alert entity matching one is a signal.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Iocs {
    Table,
    Id,
    TenantId,
    Kind,
    Value,
    Source,
    Description,
    CreatedAt,
    CreatedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Iocs::Table)
                    .col(ColumnDef::new(Iocs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Iocs::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Iocs::Kind).string().not_null())
                    .col(ColumnDef::new(Iocs::Value).string().not_null())
                    .col(ColumnDef::new(Iocs::Source).string().not_null())
                    .col(ColumnDef::new(Iocs::Description).text().null())
                    .col(
                        ColumnDef::new(Iocs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Iocs::CreatedBy).string().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_iocs_entity")
                    .table(Iocs::Table)
                    .col(Iocs::TenantId)
                    .col(Iocs::Kind)
                    .col(Iocs::Value)
                    .unique()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "iocs", "SELECT, INSERT, UPDATE, DELETE").await?;
            pg::tenant_rls(manager, "iocs").await?;
        }
        Ok(())
    }
}
