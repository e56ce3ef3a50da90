//! Cases: the unit of investigation. (Correlation creates them with the
//! Investigation pipeline; people may also open one by hand.)

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::state::{CaseState, Severity};
use crate::audit::{self, Actor, Event};
use crate::store::TenantTx;
use crate::store::entity::case;
use crate::{Clock, Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub id: Uuid,
    pub title: String,
    pub severity: Severity,
    pub state: CaseState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<case::Model> for Case {
    type Error = Error;
    fn try_from(m: case::Model) -> Result<Self> {
        Ok(Case {
            id: m.id,
            title: m.title,
            severity: m.severity.parse()?,
            state: m.state.parse()?,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// The longest case title.
pub const TITLE_MAX: usize = 300;

pub async fn open(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    title: &str,
    severity: Severity,
) -> Result<Case> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > TITLE_MAX || title.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "title must be 1 to 300 printable characters".into(),
        ));
    }
    let now = clock.now();
    let m = case::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        title: Set(title.to_owned()),
        severity: Set(severity.as_str().to_owned()),
        state: Set(CaseState::Open.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        merged_into: Set(None),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.open",
            target: format!("case:{}", m.id),
            summary: json!({"after": {"title": title, "severity": severity}}),
        },
    )
    .await?;
    m.try_into()
}

/// The case, if it belongs to the transaction's tenant (else NotFound).
pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Case> {
    model(tx, id).await?.try_into()
}

pub(crate) async fn model(tx: &TenantTx, id: Uuid) -> Result<case::Model> {
    case::Entity::find_by_id(id)
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("case"))
}

pub async fn list(
    tx: &TenantTx,
    state: Option<CaseState>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Case>, u64)> {
    // A merged case lives on in the case it was merged into.
    let mut q = case::Entity::find()
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .filter(case::Column::MergedInto.is_null());
    if let Some(s) = state {
        q = q.filter(case::Column::State.eq(s.as_str()));
    }
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_desc(case::Column::UpdatedAt)
        .order_by_desc(case::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((
        rows.into_iter().map(Case::try_from).collect::<Result<_>>()?,
        total,
    ))
}
