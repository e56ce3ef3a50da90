//! What the pages read fast: a case's merged-in cases by their target (the
//! case page reads them for comments; without it, a walk of every case of
//! the tenant), and the queue sorted by severity from an index (the rank
//! expression the queue orders by, per state and across states).
//!
//! Not here: a trigram index for the title search. Under row level security
//! PostgreSQL uses an index for a condition only when its operator is
//! leakproof, and `LIKE` and `lower()` are not: `pg_trgm` built the index
//! and the application role's search never used it (measured, BENCHMARKS).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The queue's severity order (`engine::cases`, `SEVERITY_RANK`): the same
/// expression, so both backends use the index for it.
const RANK: &str =
    "(CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_cases_merged_into")
                    .table(Alias::new("cases"))
                    .col(Alias::new("tenant_id"))
                    .col(Alias::new("merged_into"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX ix_cases_queue_state_severity ON cases (tenant_id, state, {RANK}, updated_at)"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX ix_cases_queue_severity ON cases (tenant_id, {RANK}, updated_at)"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for ix in ["ix_cases_queue_state_severity", "ix_cases_queue_severity"] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {ix}"))
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ix_cases_merged_into")
                    .table(Alias::new("cases"))
                    .to_owned(),
            )
            .await
    }
}
