//! Integrations and their write scopes. An integration is created
//! read-only; a row in `integration_scopes` exists only while a Tenant Admin
//! has that write scope enabled.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integrations {
    Table,
    Id,
    TenantId,
    Kind,
    Name,
    Config,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum IntegrationScopes {
    Table,
    Id,
    TenantId,
    IntegrationId,
    Scope,
    EnabledAt,
    EnabledBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Integrations::Table)
                    .col(ColumnDef::new(Integrations::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Integrations::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Integrations::Kind).text().not_null())
                    .col(ColumnDef::new(Integrations::Name).text().not_null())
                    .col(ColumnDef::new(Integrations::Config).json().not_null())
                    .col(
                        ColumnDef::new(Integrations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Integrations::CreatedBy).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_integrations_tenant")
                            .from(Integrations::Table, Integrations::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(
                        Index::create()
                            .name("ux_integrations_name")
                            .col(Integrations::TenantId)
                            .col(Integrations::Name)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IntegrationScopes::Table)
                    .col(
                        ColumnDef::new(IntegrationScopes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(IntegrationScopes::TenantId).uuid().not_null())
                    .col(ColumnDef::new(IntegrationScopes::IntegrationId).uuid().not_null())
                    .col(ColumnDef::new(IntegrationScopes::Scope).text().not_null())
                    .col(
                        ColumnDef::new(IntegrationScopes::EnabledAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(IntegrationScopes::EnabledBy).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_integration_scopes_integration")
                            .from(IntegrationScopes::Table, IntegrationScopes::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(
                        Index::create()
                            .name("ux_integration_scopes_once")
                            .col(IntegrationScopes::IntegrationId)
                            .col(IntegrationScopes::Scope)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for t in ["integrations", "integration_scopes"] {
                pg::grant(manager, t, "SELECT, INSERT, UPDATE, DELETE").await?;
                pg::tenant_rls(manager, t).await?;
            }
        }
        Ok(())
    }
}
