//! A tenant's settings kept as JSON in its `tenant_controls` row (one
//! column per subject: correlation, retention, assessment): read with the
//! subject's defaults until set, replaced with before/after audited.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, QuerySelect};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::audit::{self, Actor, Event};
use crate::store::TenantTx;
use crate::store::entity::tenant_control::{self, Column};
use crate::{Clock, Error, Result};

/// The tenant's settings in `column`, or `T::default()` until set.
pub async fn read<T: DeserializeOwned + Default>(tx: &TenantTx, column: Column, what: &str) -> Result<T> {
    let v: Option<Option<Value>> = tenant_control::Entity::find_by_id(tx.tenant().0)
        .select_only()
        .column(column)
        .into_tuple()
        .one(&**tx)
        .await?;
    match v.flatten() {
        Some(v) => serde_json::from_value(v).map_err(|e| Error::Invalid(format!("stored {what}: {e}"))),
        None => Ok(T::default()),
    }
}

/// Replaces the tenant's settings in `column` (validated by the caller) and
/// records `action` with the settings before and after.
pub async fn write<T: Serialize>(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    column: Column,
    action: &'static str,
    before: &T,
    new: &T,
) -> Result<()> {
    let value = serde_json::to_value(new).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut row = tenant_control::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        ..Default::default()
    };
    match column {
        Column::Correlation => row.correlation = Set(Some(value)),
        Column::Retention => row.retention = Set(Some(value)),
        Column::Assessment => row.assessment = Set(Some(value)),
        other => return Err(Error::Invalid(format!("{other:?} is not a settings column"))),
    }
    tenant_control::Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::TenantId)
                .update_column(column)
                .to_owned(),
        )
        .exec_without_returning(&**tx)
        .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action,
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"before": before, "after": new}),
        },
    )
    .await
}
