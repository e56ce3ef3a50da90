//! Correlation on event time, with the noise it finds itself:
//!
//! * `alerts.event_at` — where the alert sits in time (its source's event
//!   time, or its receipt time when it has none or it is out of bounds) and
//!   `alerts.placed_by` saying which (`event`, `received`, `out_of_bounds`);
//! * `case_entities` keyed by hour as well: per (entity, case, hour of event
//!   time) the first and last sighting, so "seen within the window of this
//!   alert's time" is an exact test whatever order alerts arrive in;
//! * `entity_hosts` — which hosts each entity was seen with, and when: the
//!   prevalence that lowers an entity's linking weight.
//!
//! Existing data is carried over: event times start as receipt times, and
//! the index and the prevalence are rebuilt from the stored observables,
//! tenant by tenant (row level security applies to the migrating role too).

use std::collections::HashMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{ChronoDateTimeUtc, Uuid};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};

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
    Hour,
    FirstSeen,
    LastSeen,
    ViaAlert,
    Pointer,
}

#[derive(DeriveIden)]
enum EntityHosts {
    Table,
    TenantId,
    Kind,
    Value,
    Host,
    LastSeen,
}

fn ts(manager: &SchemaManager<'_>) -> &'static str {
    match manager.get_database_backend() {
        DbBackend::Postgres => "$",
        _ => "?",
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let pg = manager.get_database_backend() == DbBackend::Postgres;
        for col in [
            ColumnDef::new(Alias::new("event_at"))
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Alias::new("placed_by"))
                .string()
                .not_null()
                .default("received")
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("alerts"))
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(CaseEntities::Table).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CaseEntities::Table)
                    .col(ColumnDef::new(CaseEntities::TenantId).uuid().not_null())
                    .col(ColumnDef::new(CaseEntities::Kind).string().not_null())
                    .col(ColumnDef::new(CaseEntities::Value).string().not_null())
                    .col(ColumnDef::new(CaseEntities::CaseId).uuid().not_null())
                    .col(ColumnDef::new(CaseEntities::Hour).big_integer().not_null())
                    .col(
                        ColumnDef::new(CaseEntities::FirstSeen)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
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
                            .col(CaseEntities::Hour)
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
        manager
            .create_table(
                Table::create()
                    .table(EntityHosts::Table)
                    .col(ColumnDef::new(EntityHosts::TenantId).uuid().not_null())
                    .col(ColumnDef::new(EntityHosts::Kind).string().not_null())
                    .col(ColumnDef::new(EntityHosts::Value).string().not_null())
                    .col(ColumnDef::new(EntityHosts::Host).string().not_null())
                    .col(
                        ColumnDef::new(EntityHosts::LastSeen)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(EntityHosts::TenantId)
                            .col(EntityHosts::Kind)
                            .col(EntityHosts::Value)
                            .col(EntityHosts::Host),
                    )
                    .to_owned(),
            )
            .await?;
        if pg {
            for t in ["case_entities", "entity_hosts"] {
                pg::grant(manager, t, "SELECT, INSERT, UPDATE, DELETE").await?;
                pg::tenant_rls(manager, t).await?;
            }
        }
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE alerts SET event_at = received_at")
            .await?;
        rebuild(manager).await
    }
}

/// Rebuilds the hourly index and the prevalence from what is stored, one
/// tenant per transaction (with its RLS setting on PostgreSQL). Process
/// names never linked and are left out, as before.
async fn rebuild(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let p = ts(manager);
    let arg = |n: usize| if p == "$" { format!("${n}") } else { "?".to_owned() };
    let db = manager.get_connection();
    let tenants = db
        .query_all_raw(Statement::from_string(backend, "SELECT id FROM tenants"))
        .await?;
    for t in tenants {
        let tenant: Uuid = t.try_get("", "id")?;
        let tx = db.begin().await?;
        if backend == DbBackend::Postgres {
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT set_config('vigil.tenant_id', $1, true)",
                [Value::from(tenant.to_string())],
            ))
            .await?;
        }
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT o.kind, o.value, o.pointer, o.alert_id, ca.case_id, a.received_at \
                     FROM observables o JOIN case_alerts ca ON ca.alert_id = o.alert_id \
                     JOIN alerts a ON a.id = o.alert_id \
                     WHERE o.tenant_id = {} AND o.kind <> 'process'",
                    arg(1)
                ),
                [Value::from(tenant)],
            ))
            .await?;
        type Key = (String, String, Uuid, i64);
        let mut index: HashMap<Key, (ChronoDateTimeUtc, ChronoDateTimeUtc, Uuid, String)> = HashMap::new();
        let mut hosts_of: HashMap<Uuid, Vec<String>> = HashMap::new();
        let mut seen: Vec<(String, String, Uuid, ChronoDateTimeUtc)> = Vec::new();
        for r in rows {
            let kind: String = r.try_get("", "kind")?;
            let value: String = r.try_get("", "value")?;
            let pointer: String = r.try_get("", "pointer")?;
            let alert: Uuid = r.try_get("", "alert_id")?;
            let case: Uuid = r.try_get("", "case_id")?;
            let at: ChronoDateTimeUtc = r.try_get("", "received_at")?;
            let hour = at.timestamp().div_euclid(3600);
            let e = index.entry((kind.clone(), value.clone(), case, hour)).or_insert((
                at,
                at,
                alert,
                pointer.clone(),
            ));
            if at < e.0 {
                e.0 = at;
            }
            if at > e.1 {
                e.1 = at;
                e.2 = alert;
                e.3 = pointer;
            }
            if kind == "host" {
                hosts_of.entry(alert).or_default().push(value.clone());
            }
            seen.push((kind, value, alert, at));
        }
        let mut pairs: HashMap<(String, String, String), ChronoDateTimeUtc> = HashMap::new();
        for (kind, value, alert, at) in seen {
            for h in hosts_of.get(&alert).into_iter().flatten() {
                let e = pairs
                    .entry((kind.clone(), value.clone(), h.clone()))
                    .or_insert(at);
                if at > *e {
                    *e = at;
                }
            }
        }
        let index: Vec<_> = index.into_iter().collect();
        for chunk in index.chunks(500) {
            let mut q = Query::insert();
            q.into_table(CaseEntities::Table).columns([
                CaseEntities::TenantId,
                CaseEntities::Kind,
                CaseEntities::Value,
                CaseEntities::CaseId,
                CaseEntities::Hour,
                CaseEntities::FirstSeen,
                CaseEntities::LastSeen,
                CaseEntities::ViaAlert,
                CaseEntities::Pointer,
            ]);
            for ((kind, value, case, hour), (first, last, via, pointer)) in chunk {
                q.values([
                    tenant.into(),
                    kind.clone().into(),
                    value.clone().into(),
                    (*case).into(),
                    (*hour).into(),
                    (*first).into(),
                    (*last).into(),
                    (*via).into(),
                    pointer.clone().into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            }
            tx.execute(&q).await?;
        }
        let pairs: Vec<_> = pairs.into_iter().collect();
        for chunk in pairs.chunks(500) {
            let mut q = Query::insert();
            q.into_table(EntityHosts::Table).columns([
                EntityHosts::TenantId,
                EntityHosts::Kind,
                EntityHosts::Value,
                EntityHosts::Host,
                EntityHosts::LastSeen,
            ]);
            for ((kind, value, host), at) in chunk {
                q.values([
                    tenant.into(),
                    kind.clone().into(),
                    value.clone().into(),
                    host.clone().into(),
                    (*at).into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            }
            tx.execute(&q).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
