//! Raw alerts: each stored verbatim (it is the evidence), deduplicated per
//! integration by a key derived from the source's own alert id.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    TenantId,
    IntegrationId,
    Format,
    SourceId,
    DedupKey,
    Raw,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .col(ColumnDef::new(Alerts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Alerts::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Alerts::IntegrationId).uuid().not_null())
                    .col(ColumnDef::new(Alerts::Format).text().not_null())
                    .col(ColumnDef::new(Alerts::SourceId).text().null())
                    .col(ColumnDef::new(Alerts::DedupKey).text().not_null())
                    .col(ColumnDef::new(Alerts::Raw).text().not_null())
                    .col(
                        ColumnDef::new(Alerts::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alerts_integration")
                            .from(Alerts::Table, Alerts::IntegrationId)
                            .to(Alias::new("integrations"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(
                        Index::create()
                            .name("ux_alerts_dedup")
                            .col(Alerts::IntegrationId)
                            .col(Alerts::DedupKey)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "alerts", "SELECT, INSERT, DELETE").await?;
            pg::tenant_rls(manager, "alerts").await?;
            let db = manager.get_connection();
            // Ingest is authenticated by the webhook's signature, which
            // lives in the integration's tenant: this is the one lookup
            // made before a tenant is known (the tenant id only).
            db.execute_unprepared(
                "CREATE FUNCTION vigil_integration_tenant(integration uuid) RETURNS uuid \
                 LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$ \
                   SELECT tenant_id FROM integrations WHERE id = integration $$",
            )
            .await?;
            db.execute_unprepared("REVOKE ALL ON FUNCTION vigil_integration_tenant(uuid) FROM PUBLIC")
                .await?;
            db.execute_unprepared(&format!(
                "GRANT EXECUTE ON FUNCTION vigil_integration_tenant(uuid) TO {}",
                crate::APP_ROLE
            ))
            .await?;
        }
        Ok(())
    }
}
