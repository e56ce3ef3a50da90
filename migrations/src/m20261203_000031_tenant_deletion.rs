//! Tenant deletion: a tenant scheduled for deletion (`deletion_due_at`)
//! may have every row removed once its grace period is over — its audit
//! chain and checkpoints included, which the append-only triggers otherwise
//! refuse. The serving role gets DELETE on every tenant table (deletion
//! removes rows from each).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A tenant whose deletion is due (by the database's clock).
const DUE_PG: &str =
    "EXISTS (SELECT 1 FROM tenants t WHERE t.id = OLD.tenant_id AND t.deletion_due_at < now())";
const DUE_SQLITE: &str = "EXISTS (SELECT 1 FROM tenants t WHERE t.id = OLD.tenant_id \
     AND t.deletion_due_at IS NOT NULL AND julianday(t.deletion_due_at) < julianday('now'))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("tenants"))
                    .add_column(
                        ColumnDef::new(Alias::new("deletion_due_at"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared("DROP TRIGGER audit_events_no_delete")
                    .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     WHEN NOT ((OLD.seq IS NOT NULL \
                       AND julianday(OLD.at) < julianday('now', '-90 days') \
                       AND OLD.seq <= (SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.chain = OLD.chain)) \
                       OR {DUE_SQLITE}) \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only (only a front older than 90 days behind a signed checkpoint may be pruned)'); END;"
                ))
                .await?;
                db.execute_unprepared("DROP TRIGGER audit_checkpoints_no_delete")
                    .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints \
                     WHEN NOT {DUE_SQLITE} \
                     BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;"
                ))
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE OR REPLACE FUNCTION vigil_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'DELETE' AND OLD.seq IS NOT NULL AND OLD.at < now() - interval '90 days' \
                          AND OLD.seq <= (SELECT max(c.seq) FROM audit_checkpoints c WHERE c.chain = OLD.chain) THEN \
                         RETURN OLD; \
                       END IF; \
                       IF TG_OP = 'DELETE' AND {DUE_PG} THEN \
                         RETURN OLD; \
                       END IF; \
                       RAISE EXCEPTION 'audit_events is append-only (only a front older than 90 days behind a signed checkpoint may be pruned)' \
                         USING ERRCODE = 'insufficient_privilege'; \
                     END $$;"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION vigil_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'DELETE' AND {DUE_PG} THEN \
                         RETURN OLD; \
                       END IF; \
                       RAISE EXCEPTION 'audit_checkpoints is append-only' USING ERRCODE = 'insufficient_privilege'; \
                     END $$;"
                ))
                .await?;
                db.execute_unprepared("DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints \
                     FOR EACH ROW EXECUTE FUNCTION vigil_checkpoint_guard();",
                )
                .await?;
                // Frozen: the tenant tables that existed at this migration (the
                // first 29 of the list); a later table grants DELETE itself.
                for t in &crate::TENANT_TABLES[..29] {
                    pg::grant(manager, t, "DELETE").await?;
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

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("tenant deletion cannot be migrated down".into()))
    }
}
