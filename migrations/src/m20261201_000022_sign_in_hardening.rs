//! Sign-in hardening: second-factor attempt counters (per user, with a lock
//! that also holds the next password login; per session, which ends after
//! too many), the throttle of password logins by e-mail (accounts that do
//! not exist are locked out like real ones, so the answers are equal), and
//! the SSO provider's account-linking rules (the e-mail domains it owns,
//! whether its SAML e-mail is authoritative), extra OIDC scopes, a disabled
//! state, and the provider each SSO session came from (its sessions end
//! when it is disabled or removed).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Key,
    Failures,
    LockedUntil,
    UpdatedAt,
}

fn columns() -> Vec<(&'static str, ColumnDef)> {
    let c = |n: &str| ColumnDef::new(Alias::new(n)).to_owned();
    vec![
        (
            "users",
            c("mfa_failures").integer().not_null().default(0).to_owned(),
        ),
        (
            "users",
            c("mfa_locked_until").timestamp_with_time_zone().null().to_owned(),
        ),
        (
            "sessions",
            c("mfa_failures").integer().not_null().default(0).to_owned(),
        ),
        ("sessions", c("sso_provider_id").uuid().null().to_owned()),
        ("sso_providers", c("domains").json().null().to_owned()),
        (
            "sso_providers",
            c("email_authoritative")
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ),
        ("sso_providers", c("scopes").json().null().to_owned()),
        (
            "sso_providers",
            c("disabled_at").timestamp_with_time_zone().null().to_owned(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER.
        for (table, mut col) in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .col(
                        ColumnDef::new(LoginThrottle::Key)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(LoginThrottle::Failures).integer().not_null())
                    .col(
                        ColumnDef::new(LoginThrottle::LockedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(LoginThrottle::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "login_throttle", "SELECT, INSERT, UPDATE, DELETE").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginThrottle::Table).to_owned())
            .await?;
        for (table, col) in columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new(col.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
