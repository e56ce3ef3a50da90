//! Envelope encryption of integration credentials: one data key per tenant,
//! wrapped by the master key; each credential version sealed under it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantKeys {
    Table,
    TenantId,
    WrappedKey,
    CreatedAt,
    RotatedAt,
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    TenantId,
    IntegrationId,
    Version,
    Ciphertext,
    Fingerprint,
    CreatedAt,
    CreatedBy,
    DestroyedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TenantKeys::Table)
                    .col(
                        ColumnDef::new(TenantKeys::TenantId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TenantKeys::WrappedKey).text().not_null())
                    .col(
                        ColumnDef::new(TenantKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantKeys::RotatedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_keys_tenant")
                            .from(TenantKeys::Table, TenantKeys::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Credentials::Table)
                    .col(ColumnDef::new(Credentials::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Credentials::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Credentials::IntegrationId).uuid().not_null())
                    .col(ColumnDef::new(Credentials::Version).integer().not_null())
                    .col(ColumnDef::new(Credentials::Ciphertext).text().null())
                    .col(ColumnDef::new(Credentials::Fingerprint).text().not_null())
                    .col(
                        ColumnDef::new(Credentials::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Credentials::CreatedBy).text().not_null())
                    .col(
                        ColumnDef::new(Credentials::DestroyedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_credentials_integration")
                            .from(Credentials::Table, Credentials::IntegrationId)
                            .to(Alias::new("integrations"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(
                        Index::create()
                            .name("ux_credentials_version")
                            .col(Credentials::IntegrationId)
                            .col(Credentials::Version)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for t in ["tenant_keys", "credentials"] {
                pg::grant(manager, t, "SELECT, INSERT, UPDATE").await?;
                pg::tenant_rls(manager, t).await?;
            }
        }
        Ok(())
    }
}
