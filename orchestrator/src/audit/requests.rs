//! The API request log: one row per request made in a tenant — method,
//! route template, status, duration, actor and request id; never bodies,
//! never raw paths or query strings (they can carry one-time tokens).
//! Readable by the tenant's admin; kept [`RETENTION`].

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use crate::store::entity::api_request;
use crate::{Result, TenantTx};

/// How long a request stays in the log.
pub fn retention() -> Duration {
    Duration::days(30)
}

/// One request, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = RequestLogEntry)]
pub struct Request {
    pub at: DateTime<Utc>,
    pub method: String,
    /// The route template (`/api/v1/cases/{id}`), never the raw path.
    pub route: String,
    pub status: u16,
    pub ms: f64,
    /// `user:<id>`, `token:<id>`.
    pub actor: String,
    pub request_id: String,
}

/// Stores a batch of the tenant's requests.
pub async fn record(tx: &TenantTx, rows: &[Request]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let models = rows.iter().map(|r| api_request::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        at: Set(r.at),
        method: Set(crate::text::title(&r.method, 16, "?")),
        route: Set(crate::text::title(&r.route, 200, "?")),
        status: Set(i32::from(r.status)),
        ms: Set(r.ms),
        actor: Set(crate::text::title(&r.actor, 80, "?")),
        request_id: Set(crate::text::title(&r.request_id, 64, "?")),
    });
    api_request::Entity::insert_many(models).exec(&**tx).await?;
    Ok(())
}

/// The tenant's requests, newest first, with the total count.
pub async fn list(tx: &TenantTx, limit: u64, offset: u64) -> Result<(Vec<Request>, u64)> {
    let q = api_request::Entity::find().filter(api_request::Column::TenantId.eq(tx.tenant().0));
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_desc(api_request::Column::At)
        .order_by_desc(api_request::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    Ok((
        rows.into_iter()
            .map(|r| Request {
                at: r.at,
                method: r.method,
                route: r.route,
                status: u16::try_from(r.status).unwrap_or(0),
                ms: r.ms,
                actor: r.actor,
                request_id: r.request_id,
            })
            .collect(),
        total,
    ))
}

/// Deletes the tenant's requests logged before `before`; how many.
pub async fn prune(tx: &TenantTx, before: DateTime<Utc>) -> Result<u64> {
    Ok(api_request::Entity::delete_many()
        .filter(api_request::Column::TenantId.eq(tx.tenant().0))
        .filter(api_request::Column::At.lt(before))
        .exec(&**tx)
        .await?
        .rows_affected)
}
