//! Per-tenant session limits: idle and absolute timeouts (NULL: the
//! defaults, 30 min and 12 h). A session keeps the idle limit it runs under.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER.
        for (table, column) in [
            ("tenants", "session_idle_secs"),
            ("tenants", "session_absolute_secs"),
            ("sessions", "idle_secs"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(ColumnDef::new(Alias::new(column)).integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("sessions", "idle_secs"),
            ("tenants", "session_absolute_secs"),
            ("tenants", "session_idle_secs"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
