//! Per-tenant correlation settings (window, entity weights, threshold,
//! ignore list), kept with the tenant's other controls.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantControls {
    Table,
    Correlation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TenantControls::Table)
                    .add_column(ColumnDef::new(TenantControls::Correlation).json().null())
                    .to_owned(),
            )
            .await
    }
}
