//! Steps by case: the investigation asks, in every ingest transaction that
//! touches a case, for the case's latest round, and the case page lists a
//! case's steps. Without an index both scanned every step of every tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_steps_case")
                    .table(Alias::new("steps"))
                    .col(Alias::new("case_id"))
                    .col(Alias::new("kind"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_steps_case")
                    .table(Alias::new("steps"))
                    .to_owned(),
            )
            .await
    }
}
