//! Foundation schema: tenants, users, memberships, sessions, API tokens,
//! one-time password links, and the audit event seam (append-only).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    IsPlatformAdmin,
    CreatedAt,
    DisabledAt,
    FailedLogins,
    LockedUntil,
    TotpSecret,
    TotpEnabledAt,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    ActiveTenantId,
    MfaVerifiedAt,
    CsrfToken,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    TenantId,
    Name,
    Role,
    TokenHash,
    CreatedAt,
    CreatedBy,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum PasswordTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    At,
    Actor,
    ActorRole,
    Action,
    Target,
    Summary,
    SourceIp,
}

fn id<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).uuid().not_null().primary_key().to_owned()
}

fn ts<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().null().to_owned()
}

fn text<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).text().not_null().to_owned()
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(id(Tenants::Id))
                    .col(text(Tenants::Name).unique_key().to_owned())
                    .col(text(Tenants::Status))
                    .col(ts(Tenants::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(text(Users::Email).unique_key().to_owned())
                    .col(ColumnDef::new(Users::DisplayName).text().null())
                    .col(ColumnDef::new(Users::PasswordHash).text().null())
                    .col(
                        ColumnDef::new(Users::IsPlatformAdmin)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ts(Users::CreatedAt))
                    .col(ts_null(Users::DisabledAt))
                    .col(
                        ColumnDef::new(Users::FailedLogins)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts_null(Users::LockedUntil))
                    // AES-256-GCM under the master key, bound to the user id.
                    .col(ColumnDef::new(Users::TotpSecret).text().null())
                    .col(ts_null(Users::TotpEnabledAt))
                    .col(ColumnDef::new(Users::TotpLastStep).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(id(Memberships::Id))
                    .col(ColumnDef::new(Memberships::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Memberships::UserId).uuid().not_null())
                    .col(text(Memberships::Role))
                    .col(ts(Memberships::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_memberships_tenant",
                        (Memberships::Table, Memberships::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_memberships_user",
                        (Memberships::Table, Memberships::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .index(
                        Index::create()
                            .name("ux_memberships_tenant_user")
                            .col(Memberships::TenantId)
                            .col(Memberships::UserId)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(id(Sessions::Id))
                    .col(text(Sessions::TokenHash).unique_key().to_owned())
                    .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                    .col(ColumnDef::new(Sessions::ActiveTenantId).uuid().null())
                    .col(ts_null(Sessions::MfaVerifiedAt))
                    .col(text(Sessions::CsrfToken))
                    .col(ts(Sessions::CreatedAt))
                    .col(ts(Sessions::LastSeenAt))
                    .col(ts(Sessions::ExpiresAt))
                    .foreign_key(&mut fk(
                        "fk_sessions_user",
                        (Sessions::Table, Sessions::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(id(ApiTokens::Id))
                    .col(ColumnDef::new(ApiTokens::TenantId).uuid().not_null())
                    .col(text(ApiTokens::Name))
                    .col(text(ApiTokens::Role))
                    .col(text(ApiTokens::TokenHash).unique_key().to_owned())
                    .col(ts(ApiTokens::CreatedAt))
                    .col(ColumnDef::new(ApiTokens::CreatedBy).text().not_null())
                    .col(ts_null(ApiTokens::RevokedAt))
                    .col(ts_null(ApiTokens::LastUsedAt))
                    .foreign_key(&mut fk(
                        "fk_api_tokens_tenant",
                        (ApiTokens::Table, ApiTokens::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasswordTokens::Table)
                    .col(id(PasswordTokens::Id))
                    .col(ColumnDef::new(PasswordTokens::UserId).uuid().null())
                    .col(text(PasswordTokens::Purpose))
                    .col(text(PasswordTokens::TokenHash).unique_key().to_owned())
                    .col(ts(PasswordTokens::CreatedAt))
                    .col(ts(PasswordTokens::ExpiresAt))
                    .col(ts_null(PasswordTokens::UsedAt))
                    .foreign_key(&mut fk(
                        "fk_password_tokens_user",
                        (PasswordTokens::Table, PasswordTokens::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // No foreign key to tenants: audit rows outlive what they describe.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(id(AuditEvents::Id))
                    .col(ColumnDef::new(AuditEvents::TenantId).uuid().null())
                    .col(ts(AuditEvents::At))
                    .col(text(AuditEvents::Actor))
                    .col(ColumnDef::new(AuditEvents::ActorRole).text().null())
                    .col(text(AuditEvents::Action))
                    .col(text(AuditEvents::Target))
                    .col(ColumnDef::new(AuditEvents::Summary).json().not_null())
                    .col(ColumnDef::new(AuditEvents::SourceIp).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_tenant_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION vigil_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION vigil_append_only();",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
                     FOR EACH STATEMENT EXECUTE FUNCTION vigil_append_only();",
                )
                .await?;

                pg::ensure_app_role(manager).await?;
                for t in [
                    "tenants",
                    "users",
                    "memberships",
                    "sessions",
                    "api_tokens",
                    "password_tokens",
                ] {
                    pg::grant(manager, t, "SELECT, INSERT, UPDATE, DELETE").await?;
                }
                pg::grant(manager, "audit_events", "SELECT, INSERT").await?;
                // This migration's own tenant tables (a migration never reads
                // a list that later migrations extend).
                for t in ["memberships", "api_tokens", "audit_events"] {
                    pg::tenant_rls(manager, t).await?;
                }
                // A person may list their own memberships across tenants
                // (tenant picker at login); writes stay tenant-scoped.
                db.execute_unprepared(
                    "CREATE POLICY own_memberships ON memberships FOR SELECT \
                     USING (user_id = NULLIF(current_setting('vigil.user_id', true), '')::uuid)",
                )
                .await?;
                // Platform-level audit events (no tenant) are visible and
                // writable only inside a platform-scoped transaction.
                db.execute_unprepared(
                    "CREATE POLICY platform_events ON audit_events \
                     USING (tenant_id IS NULL AND current_setting('vigil.platform', true) = 'on') \
                     WITH CHECK (tenant_id IS NULL AND current_setting('vigil.platform', true) = 'on')",
                )
                .await?;
            }
            DbBackend::MySql => {
                return Err(DbErr::Migration("MySQL is not a supported backend".into()));
            }
            #[allow(unreachable_patterns)]
            _ => return Err(DbErr::Migration("unsupported database backend".into())),
        }
        Ok(())
    }
}
