//! Edit-then-approve of a draft keeps what the person changed: the edited
//! version points at the version it came from and carries the diff.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            ColumnDef::new(Alias::new("edited_from")).uuid().null().to_owned(),
            ColumnDef::new(Alias::new("edit_diff"))
                .json_binary()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("drafts"))
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["edit_diff", "edited_from"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("drafts"))
                        .drop_column(Alias::new(col))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
