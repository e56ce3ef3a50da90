//! The audit log becomes a hash chain: one chain per tenant and one for
//! platform events. Each event carries its chain, a gapless sequence number,
//! the previous event's hash and its own (over its canonical form), and the
//! request id of the API call that caused it. `audit_heads` holds each
//! chain's last (seq, hash): the row every writer of that chain locks, so
//! concurrent writers (several nodes on PostgreSQL) get consecutive numbers.
//! `audit_checkpoints` holds the chain's head signed with an Ed25519 key that
//! is not in the database (append-only, like the events).
//!
//! Events written before this migration keep `seq` NULL: they are listed and
//! exported as events from before the chain, and verification says how many.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    Chain,
    TenantId,
    Seq,
    Hash,
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    Id,
    Chain,
    TenantId,
    Seq,
    Hash,
    At,
    KeyId,
    Signature,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            ColumnDef::new(Alias::new("chain")).text().null().to_owned(),
            ColumnDef::new(Alias::new("seq")).big_integer().null().to_owned(),
            ColumnDef::new(Alias::new("prev_hash")).text().null().to_owned(),
            ColumnDef::new(Alias::new("hash")).text().null().to_owned(),
            ColumnDef::new(Alias::new("request_id")).text().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("audit_events"))
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_events_chain_seq")
                    .table(Alias::new("audit_events"))
                    .col(Alias::new("chain"))
                    .col(Alias::new("seq"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(ColumnDef::new(AuditHeads::Chain).text().not_null().primary_key())
                    .col(ColumnDef::new(AuditHeads::TenantId).uuid().null())
                    .col(ColumnDef::new(AuditHeads::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AuditHeads::Hash).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(
                        ColumnDef::new(AuditCheckpoints::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditCheckpoints::Chain).text().not_null())
                    .col(ColumnDef::new(AuditCheckpoints::TenantId).uuid().null())
                    .col(ColumnDef::new(AuditCheckpoints::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AuditCheckpoints::Hash).text().not_null())
                    .col(
                        ColumnDef::new(AuditCheckpoints::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditCheckpoints::KeyId).text().not_null())
                    .col(ColumnDef::new(AuditCheckpoints::Signature).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_checkpoints_chain_seq")
                    .table(AuditCheckpoints::Table)
                    .col(AuditCheckpoints::Chain)
                    .col(AuditCheckpoints::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints \
                     BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints \
                     BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints \
                     FOR EACH ROW EXECUTE FUNCTION vigil_append_only();",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints \
                     FOR EACH STATEMENT EXECUTE FUNCTION vigil_append_only();",
                )
                .await?;
                pg::grant(manager, "audit_heads", "SELECT, INSERT, UPDATE").await?;
                pg::grant(manager, "audit_checkpoints", "SELECT, INSERT").await?;
                for t in ["audit_heads", "audit_checkpoints"] {
                    pg::tenant_rls(manager, t).await?;
                    // The platform chain: visible and writable only inside a
                    // platform-scoped transaction (as platform audit events).
                    db.execute_unprepared(&format!(
                        "CREATE POLICY platform_chain ON {t} \
                         USING (tenant_id IS NULL AND current_setting('vigil.platform', true) = 'on') \
                         WITH CHECK (tenant_id IS NULL AND current_setting('vigil.platform', true) = 'on')"
                    ))
                    .await?;
                }
            }
            DbBackend::MySql => {
                return Err(DbErr::Migration("MySQL is not a supported backend".into()));
            }
            #[allow(unreachable_patterns)]
            _ => return Err(DbErr::Migration("unsupported database backend".into())),
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditCheckpoints::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditHeads::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_audit_events_chain_seq")
                    .table(Alias::new("audit_events"))
                    .to_owned(),
            )
            .await?;
        for col in ["request_id", "hash", "prev_hash", "seq", "chain"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("audit_events"))
                        .drop_column(Alias::new(col))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
