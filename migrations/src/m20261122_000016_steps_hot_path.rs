//! The step queue's hot path on PostgreSQL: `steps` drops its foreign key
//! to `tenants`. Every step transition inserts a row, and the key check made
//! each insert take `FOR KEY SHARE` on the tenant's one row: all workers of
//! a tenant locked the same row in every transaction (MultiXact churn),
//! which capped throughput at 8+ concurrent workflows. What the key
//! guarded still holds: RLS (`WITH CHECK`) binds `steps.tenant_id` to the
//! transaction's tenant, and tenants are never deleted (offboarding is not
//! built; when it is, it deletes a tenant's steps itself). SQLite (one
//! node, no such contention) keeps the key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE steps DROP CONSTRAINT IF EXISTS fk_steps_tenant")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE steps ADD CONSTRAINT fk_steps_tenant FOREIGN KEY (tenant_id) \
                     REFERENCES tenants (id) ON DELETE CASCADE",
                )
                .await?;
        }
        Ok(())
    }
}
