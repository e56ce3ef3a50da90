//! The API request log: one row per request made in a tenant (method, route
//! template, status, duration, actor, request id; never bodies or query
//! strings), readable by that tenant's admin, kept 30 days.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiRequests {
    Table,
    Id,
    TenantId,
    At,
    Method,
    Route,
    Status,
    Ms,
    Actor,
    RequestId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiRequests::Table)
                    .col(ColumnDef::new(ApiRequests::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiRequests::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(ApiRequests::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ApiRequests::Method).text().not_null())
                    .col(ColumnDef::new(ApiRequests::Route).text().not_null())
                    .col(ColumnDef::new(ApiRequests::Status).integer().not_null())
                    .col(ColumnDef::new(ApiRequests::Ms).double().not_null())
                    .col(ColumnDef::new(ApiRequests::Actor).text().not_null())
                    .col(ColumnDef::new(ApiRequests::RequestId).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_requests_tenant_at")
                    .table(ApiRequests::Table)
                    .col(ApiRequests::TenantId)
                    .col(ApiRequests::At)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "api_requests", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "api_requests").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiRequests::Table).to_owned())
            .await?;
        Ok(())
    }
}
