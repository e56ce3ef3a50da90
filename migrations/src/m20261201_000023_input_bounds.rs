//! Bounds on what one input may cost: an alert keeps at most so many
//! observables; how many more it carried is noted on the alert.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("alerts"))
                    .add_column(
                        ColumnDef::new(Alias::new("observables_truncated"))
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("alerts"))
                    .drop_column(Alias::new("observables_truncated"))
                    .to_owned(),
            )
            .await
            .map(|_| ())
    }
}
