//! The assessment's per-tenant settings (`tenant_controls.assessment`:
//! signal weights, thresholds, known-benign detection names; None: the
//! defaults of `pipeline::assess`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("tenant_controls"))
                    .add_column(ColumnDef::new(Alias::new("assessment")).json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("tenant_controls"))
                    .drop_column(Alias::new("assessment"))
                    .to_owned(),
            )
            .await
    }
}
