//! Observables extracted from alerts, each with the JSON pointer of the
//! field it came from (its evidence), indexed for correlation.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Observables {
    Table,
    Id,
    TenantId,
    AlertId,
    Kind,
    Value,
    Pointer,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Observables::Table)
                    .col(ColumnDef::new(Observables::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Observables::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Observables::AlertId).uuid().not_null())
                    .col(ColumnDef::new(Observables::Kind).text().not_null())
                    .col(ColumnDef::new(Observables::Value).text().not_null())
                    .col(ColumnDef::new(Observables::Pointer).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_observables_alert")
                            .from(Observables::Table, Observables::AlertId)
                            .to(Alias::new("alerts"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_observables_entity")
                    .table(Observables::Table)
                    .col(Observables::TenantId)
                    .col(Observables::Kind)
                    .col(Observables::Value)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_observables_alert")
                    .table(Observables::Table)
                    .col(Observables::AlertId)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "observables", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "observables").await?;
        }
        Ok(())
    }
}
