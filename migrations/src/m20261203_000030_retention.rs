//! Retention and purge: per-tenant windows (`tenant_controls.retention`), and the
//! audit chain's front may be pruned — only behind a signed checkpoint and
//! only when older than 90 days (the shortest audit window), enforced by
//! the append-only trigger itself, so not even the serving role can delete
//! a recent event or one no checkpoint vouches for. Updates stay refused.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("tenant_controls"))
                    .add_column(ColumnDef::new(Alias::new("retention")).json().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared("DROP TRIGGER audit_events_no_delete")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     WHEN NOT (OLD.seq IS NOT NULL \
                       AND julianday(OLD.at) < julianday('now', '-90 days') \
                       AND OLD.seq <= (SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.chain = OLD.chain)) \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only (only a front older than 90 days behind a signed checkpoint may be pruned)'); END;",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION vigil_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'DELETE' AND OLD.seq IS NOT NULL AND OLD.at < now() - interval '90 days' \
                          AND OLD.seq <= (SELECT max(c.seq) FROM audit_checkpoints c WHERE c.chain = OLD.chain) THEN \
                         RETURN OLD; \
                       END IF; \
                       RAISE EXCEPTION 'audit_events is append-only (only a front older than 90 days behind a signed checkpoint may be pruned)' \
                         USING ERRCODE = 'insufficient_privilege'; \
                     END $$;",
                )
                .await?;
                db.execute_unprepared("DROP TRIGGER audit_events_append_only ON audit_events")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION vigil_audit_guard();",
                )
                .await?;
                pg::grant(manager, "audit_events", "DELETE").await?;
                pg::grant(manager, "drafts", "DELETE").await?;
                // Purge deletes a case with its gates' approvals.
                pg::grant(manager, "gate_approvals", "DELETE").await?;
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
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared("DROP TRIGGER audit_events_no_delete")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER audit_events_append_only ON audit_events")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION vigil_append_only();",
                )
                .await?;
                db.execute_unprepared("DROP FUNCTION vigil_audit_guard()").await?;
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("tenant_controls"))
                    .drop_column(Alias::new("retention"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
