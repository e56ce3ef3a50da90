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
    let f = Filter {
        state,
        ..Filter::default()
    };
    search(tx, &f, limit, offset).await
}

/// How the case queue is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most recently changed first (the default).
    #[default]
    Updated,
    /// Newest first.
    Created,
    /// Oldest first (what has waited longest).
    Oldest,
    /// Most severe first, then most recently changed.
    Severity,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "updated" => Sort::Updated,
            "created" => Sort::Created,
            "oldest" => Sort::Oldest,
            "severity" => Sort::Severity,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown sort {other:?} (updated, created, oldest, severity)"
                )));
            }
        })
    }
}

/// What the case queue shows: every filter optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<CaseState>,
    pub severity: Option<Severity>,
    /// Words the title contains (case-insensitive, every word).
    pub text: String,
    /// Opened at or after.
    pub since: Option<DateTime<Utc>>,
    pub sort: Sort,
}

/// `text` as a LIKE pattern matching it anywhere, its wildcards escaped.
fn like_anywhere(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The case queue: the tenant's live cases (merged ones live on in their
/// target) matching `f`, one page of them and how many match.
pub async fn search(tx: &TenantTx, f: &Filter, limit: u64, offset: u64) -> Result<(Vec<Case>, u64)> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Order};
    let mut q = case::Entity::find()
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .filter(case::Column::MergedInto.is_null());
    if let Some(s) = f.state {
        q = q.filter(case::Column::State.eq(s.as_str()));
    }
    if let Some(s) = f.severity {
        q = q.filter(case::Column::Severity.eq(s.as_str()));
    }
    if let Some(t) = f.since {
        q = q.filter(case::Column::CreatedAt.gte(t));
    }
    for word in f.text.split_whitespace().take(8) {
        q = q.filter(
            Expr::expr(Func::lower(Expr::col(case::Column::Title)))
                .like(LikeExpr::new(like_anywhere(word)).escape('\\')),
        );
    }
    let total = q.clone().count(&**tx).await?;
    let q = match f.sort {
        Sort::Updated => q.order_by_desc(case::Column::UpdatedAt),
        Sort::Created => q.order_by_desc(case::Column::CreatedAt),
        Sort::Oldest => q.order_by_asc(case::Column::CreatedAt),
        Sort::Severity => q
            .order_by(
                Expr::cust(
                    "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END",
                ),
                Order::Desc,
            )
            .order_by_desc(case::Column::UpdatedAt),
    };
    let rows = q
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
