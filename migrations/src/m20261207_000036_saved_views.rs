//! Saved views of the case queue: a person's named filters (the queue's
//! query string), per tenant. Preferences, not records: not audited.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SavedViews {
    Table,
    Id,
    TenantId,
    UserId,
    Name,
    Query,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SavedViews::Table)
                    .col(ColumnDef::new(SavedViews::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(SavedViews::TenantId).uuid().not_null())
                    .col(ColumnDef::new(SavedViews::UserId).uuid().not_null())
                    .col(ColumnDef::new(SavedViews::Name).text().not_null())
                    .col(ColumnDef::new(SavedViews::Query).text().not_null())
                    .col(
                        ColumnDef::new(SavedViews::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_saved_views_name")
                    .table(SavedViews::Table)
                    .col(SavedViews::TenantId)
                    .col(SavedViews::UserId)
                    .col(SavedViews::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "saved_views", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "saved_views").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SavedViews::Table).to_owned())
            .await?;
        Ok(())
    }
}
