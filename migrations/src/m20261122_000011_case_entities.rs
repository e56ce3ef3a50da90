//! The correlation index: which entity was last seen in which case, when,
//! and through which alert. A new alert finds the cases it joins with one
//! indexed lookup per linking entity, however many alerts share it (the
//! alternative, scanning every alert that ever had the entity, is quadratic).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::pg;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CaseEntities {
    Table,
    TenantId,
    Kind,
    Value,
    CaseId,
    LastSeen,
    ViaAlert,
    Pointer,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CaseEntities::Table)
                    .col(ColumnDef::new(CaseEntities::TenantId).uuid().not_null())
                    .col(ColumnDef::new(CaseEntities::Kind).string().not_null())
                    .col(ColumnDef::new(CaseEntities::Value).string().not_null())
                    .col(ColumnDef::new(CaseEntities::CaseId).uuid().not_null())
                    .col(
                        ColumnDef::new(CaseEntities::LastSeen)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CaseEntities::ViaAlert).uuid().not_null())
                    .col(ColumnDef::new(CaseEntities::Pointer).string().not_null())
                    .primary_key(
                        Index::create()
                            .col(CaseEntities::TenantId)
                            .col(CaseEntities::Kind)
                            .col(CaseEntities::Value)
                            .col(CaseEntities::CaseId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_case_entities_case")
                            .from(CaseEntities::Table, CaseEntities::CaseId)
                            .to(Alias::new("cases"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_case_entities_case")
                    .table(CaseEntities::Table)
                    .col(CaseEntities::CaseId)
                    .to_owned(),
            )
            .await?;
        // Index what is already correlated (the latest alert per entity and case).
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO case_entities (tenant_id, kind, value, case_id, last_seen, via_alert, pointer) \
                 SELECT o.tenant_id, o.kind, o.value, ca.case_id, a.received_at, a.id, o.pointer \
                 FROM observables o \
                 JOIN case_alerts ca ON ca.alert_id = o.alert_id \
                 JOIN alerts a ON a.id = o.alert_id \
                 WHERE o.kind <> 'process' AND NOT EXISTS ( \
                   SELECT 1 FROM observables o2 \
                   JOIN case_alerts ca2 ON ca2.alert_id = o2.alert_id \
                   JOIN alerts a2 ON a2.id = o2.alert_id \
                   WHERE o2.tenant_id = o.tenant_id AND o2.kind = o.kind AND o2.value = o.value \
                     AND ca2.case_id = ca.case_id \
                     AND (a2.received_at > a.received_at OR (a2.received_at = a.received_at AND (a2.id > a.id OR (a2.id = a.id AND o2.id > o.id))))) ",
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            pg::grant(manager, "case_entities", "SELECT, INSERT, UPDATE, DELETE").await?;
            pg::tenant_rls(manager, "case_entities").await?;
        }
        Ok(())
    }
}
