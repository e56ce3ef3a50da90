//! Single sign-on: per-tenant OpenID Connect providers, the logins in
//! flight (state, nonce and PKCE verifier, one-time, bound to the browser
//! that started them), and the link from an IdP subject to a Vigil user.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SsoProviders {
    Table,
    Id,
    TenantId,
    Protocol,
    Name,
    Issuer,
    ClientId,
    ClientSecret,
    Algorithms,
    GroupClaim,
    RoleMap,
    TrustIdpMfa,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum SsoLogins {
    Table,
    StateHash,
    TenantId,
    ProviderId,
    BrowserHash,
    Nonce,
    PkceVerifier,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SsoIdentities {
    Table,
    Id,
    TenantId,
    ProviderId,
    Subject,
    UserId,
    CreatedAt,
    LastLoginAt,
}

fn ts(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SsoProviders::Table)
                    .col(ColumnDef::new(SsoProviders::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(SsoProviders::TenantId).uuid().not_null())
                    .col(ColumnDef::new(SsoProviders::Protocol).string().not_null())
                    .col(ColumnDef::new(SsoProviders::Name).string().not_null())
                    .col(ColumnDef::new(SsoProviders::Issuer).text().not_null())
                    .col(ColumnDef::new(SsoProviders::ClientId).text().not_null())
                    .col(ColumnDef::new(SsoProviders::ClientSecret).text().null())
                    .col(ColumnDef::new(SsoProviders::Algorithms).json().not_null())
                    .col(ColumnDef::new(SsoProviders::GroupClaim).string().not_null())
                    .col(ColumnDef::new(SsoProviders::RoleMap).json().not_null())
                    .col(ColumnDef::new(SsoProviders::TrustIdpMfa).boolean().not_null())
                    .col(ts(SsoProviders::CreatedAt))
                    .col(ColumnDef::new(SsoProviders::CreatedBy).string().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_providers_tenant")
                            .from(SsoProviders::Table, SsoProviders::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoLogins::Table)
                    .col(
                        ColumnDef::new(SsoLogins::StateHash)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SsoLogins::TenantId).uuid().not_null())
                    .col(ColumnDef::new(SsoLogins::ProviderId).uuid().not_null())
                    .col(ColumnDef::new(SsoLogins::BrowserHash).text().not_null())
                    .col(ColumnDef::new(SsoLogins::Nonce).text().not_null())
                    .col(ColumnDef::new(SsoLogins::PkceVerifier).text().not_null())
                    .col(ts(SsoLogins::CreatedAt))
                    .col(ts(SsoLogins::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_logins_provider")
                            .from(SsoLogins::Table, SsoLogins::ProviderId)
                            .to(SsoProviders::Table, SsoProviders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SsoIdentities::Table)
                    .col(ColumnDef::new(SsoIdentities::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(SsoIdentities::TenantId).uuid().not_null())
                    .col(ColumnDef::new(SsoIdentities::ProviderId).uuid().not_null())
                    .col(ColumnDef::new(SsoIdentities::Subject).text().not_null())
                    .col(ColumnDef::new(SsoIdentities::UserId).uuid().not_null())
                    .col(ts(SsoIdentities::CreatedAt))
                    .col(ts(SsoIdentities::LastLoginAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_identities_provider")
                            .from(SsoIdentities::Table, SsoIdentities::ProviderId)
                            .to(SsoProviders::Table, SsoProviders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_identities_user")
                            .from(SsoIdentities::Table, SsoIdentities::UserId)
                            .to(Alias::new("users"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_sso_identities_subject")
                    .table(SsoIdentities::Table)
                    .col(SsoIdentities::ProviderId)
                    .col(SsoIdentities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A session opened by SSO is confined to its provider's tenant.
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("sessions"))
                    .add_column(ColumnDef::new(Alias::new("bound_tenant_id")).uuid().null())
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for t in ["sso_providers", "sso_logins", "sso_identities"] {
                pg::grant(manager, t, "SELECT, INSERT, UPDATE, DELETE").await?;
                pg::tenant_rls(manager, t).await?;
            }
            // A callback arrives before its tenant is known: the provider
            // id in its path names it (the tenant id only), as for ingest.
            pg::tenant_lookup_function(manager, "vigil_sso_provider_tenant", "sso_providers").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS vigil_sso_provider_tenant(uuid)")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("sessions"))
                    .drop_column(Alias::new("bound_tenant_id"))
                    .to_owned(),
            )
            .await?;
        for t in [
            SsoIdentities::Table.into_iden(),
            SsoLogins::Table.into_iden(),
            SsoProviders::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
