//! SAML providers: the IdP's metadata on the provider row, and the replay
//! cache of assertion ids (each accepted once, kept until it expires).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SsoAssertions {
    Table,
    ProviderId,
    AssertionId,
    TenantId,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("sso_providers"))
                    .add_column(ColumnDef::new(Alias::new("idp_metadata")).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoAssertions::Table)
                    .col(ColumnDef::new(SsoAssertions::ProviderId).uuid().not_null())
                    .col(ColumnDef::new(SsoAssertions::AssertionId).text().not_null())
                    .col(ColumnDef::new(SsoAssertions::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(SsoAssertions::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SsoAssertions::ProviderId)
                            .col(SsoAssertions::AssertionId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_assertions_provider")
                            .from(SsoAssertions::Table, SsoAssertions::ProviderId)
                            .to(Alias::new("sso_providers"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "sso_assertions", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "sso_assertions").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SsoAssertions::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("sso_providers"))
                    .drop_column(Alias::new("idp_metadata"))
                    .to_owned(),
            )
            .await
            .map(|_| ())
    }
}
