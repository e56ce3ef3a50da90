//! The case queue's orders: a tenant's cases by last change and by
//! opening, each with and without the state filter, served from an index
//! (the queue pages through 100,000 cases without sorting them).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &[&str]); 3] = [
    (
        "ix_cases_queue_state_updated",
        &["tenant_id", "state", "updated_at"],
    ),
    ("ix_cases_queue_updated", &["tenant_id", "updated_at"]),
    ("ix_cases_queue_created", &["tenant_id", "created_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, cols) in INDEXES {
            let mut ix = Index::create();
            ix.name(name).table(Alias::new("cases"));
            for c in cols {
                ix.col(Alias::new(*c));
            }
            manager.create_index(ix.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new("cases")).to_owned())
                .await?;
        }
        Ok(())
    }
}
