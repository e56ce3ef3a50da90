//! Pollers: each pollable integration (CrowdStrike alerts, Graylog events)
//! is pulled on its schedule from a stored cursor. A poll claims its
//! integration by a conditional update (one node polls it at a time; a node
//! that dies mid-poll leaves the claim to lapse after [`POLL_LEASE`]), pulls
//! pages, and stores the alerts and the new cursor in ONE transaction: no
//! gap, and no duplicate (the cursor is inclusive; ingest drops repeats by
//! source id). A failure leaves the cursor unchanged, records a clear error
//! on the integration's status, and backs off (honouring `Retry-After`).
//!
//! Polling is reading: it goes on while a kill switch is engaged (actions
//! stop, evidence keeps arriving).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;
use vigil_integrations::Kind;
use vigil_integrations::client::ClientError;
use vigil_integrations::{crowdstrike, graylog};

use crate::connect::connectors::Connectors;
use crate::pipeline::ingest;
use crate::store::entity::integration_status;
use crate::store::{Backend, Store};
use crate::{Clock, Error, Result, TenantId};

/// How long a claimed poll holds its integration.
pub const POLL_LEASE: Duration = Duration::minutes(5);
/// Default schedule when the config sets no `poll_seconds`.
pub const DEFAULT_EVERY: Duration = Duration::seconds(60);
/// How far back the very first poll of an integration reaches.
pub const FIRST_LOOKBACK: Duration = Duration::hours(24);
/// Pages per poll (100 alerts each); the rest waits for the next round.
pub const MAX_PAGES: usize = 20;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub polled: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub failed: usize,
}

async fn due(store: &Store, now: DateTime<Utc>, limit: u32) -> Result<Vec<(Uuid, TenantId)>> {
    match store.backend() {
        Backend::Postgres => store.pg_due("vigil_due_polls", now, limit).await,
        Backend::Sqlite => Ok(integration_status::Entity::find()
            .filter(integration_status::Column::NextPollAt.lte(now))
            .order_by_asc(integration_status::Column::NextPollAt)
            .limit(u64::from(limit))
            .all(store.conn())
            .await?
            .into_iter()
            .map(|s| (s.integration_id, TenantId(s.tenant_id)))
            .collect()),
    }
}

/// Polls every integration that is due.
pub async fn run_due(c: &Connectors, clock: &dyn Clock, limit: u32) -> Result<PollReport> {
    let mut report = PollReport::default();
    for (id, tenant) in due(c.store(), clock.now(), limit).await? {
        match poll_one(c, clock, tenant, id).await? {
            Some(Ok((stored, dup))) => {
                report.polled += 1;
                report.stored += stored;
                report.duplicates += dup;
            }
            Some(Err(_)) => report.failed += 1,
            None => {}
        }
    }
    Ok(report)
}

fn every(config: &Value) -> Duration {
    config
        .get("poll_seconds")
        .and_then(Value::as_i64)
        .map_or(DEFAULT_EVERY, Duration::seconds)
}

fn backoff(failures: i32) -> Duration {
    Duration::seconds(30 * (1i64 << failures.clamp(0, 7))).min(Duration::hours(1))
}

/// One pull: what was fetched and where the next one starts.
struct Pulled {
    raws: Vec<Box<RawValue>>,
    cursor: Option<String>,
    more: bool,
}

/// A failed pull: the message for the status, and when the vendor asked
/// to be called again.
type Failed = (String, Option<Duration>);

async fn pull(
    c: &Connectors,
    tenant: TenantId,
    id: Uuid,
    since: &str,
    now: DateTime<Utc>,
) -> Result<Pulled, Failed> {
    let (config, kind, secret) = c.open(tenant, id).await.map_err(|e| match e {
        Error::NotFound("credential") => ("the integration has no credential: set one".to_owned(), None),
        e => (e.to_string(), None),
    })?;
    let guard = c.guard(tenant, kind, id);
    let mut out = Pulled {
        raws: vec![],
        cursor: Some(since.to_owned()),
        more: false,
    };
    let to_err = |e: ClientError| {
        (
            e.to_string(),
            e.retry_after().and_then(|d| Duration::from_std(d).ok()),
        )
    };
    match kind {
        Kind::Crowdstrike => {
            let f = crowdstrike::Falcon::new(&config, &secret, c.http().clone(), guard).map_err(to_err)?;
            let mut offset = 0;
            for _ in 0..MAX_PAGES {
                let p = f
                    .alerts_since(Some(since), offset, crowdstrike::PAGE)
                    .await
                    .map_err(to_err)?;
                offset += p.alerts.len();
                out.raws.extend(p.alerts);
                out.cursor = Ord::max(p.cursor, out.cursor.take());
                out.more = p.more;
                if !p.more {
                    break;
                }
            }
        }
        Kind::Graylog => {
            let g = graylog::Graylog::new(&config, &secret, c.http().clone(), guard).map_err(to_err)?;
            let until = now.to_rfc3339_opts(SecondsFormat::Millis, true);
            for page in 1..=MAX_PAGES {
                let p = g.events_since(since, &until, page).await.map_err(to_err)?;
                out.raws.extend(p.events);
                out.cursor = Ord::max(p.cursor, out.cursor.take());
                out.more = p.more;
                if !p.more {
                    break;
                }
            }
        }
        k => return Err((format!("{k} does not poll"), None)),
    }
    Ok(out)
}

/// Claims and polls one integration. `None`: another node has it, or it is
/// not due. `Some(Err)`: the poll failed (recorded on the status).
async fn poll_one(
    c: &Connectors,
    clock: &dyn Clock,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<Result<(usize, usize), String>>> {
    let store = c.store();
    let now = clock.now();
    // 1. Claim.
    let tx = store.begin_tenant(tenant).await?;
    let Some(st) = integration_status::Entity::find_by_id(id)
        .filter(integration_status::Column::TenantId.eq(tenant.0))
        .one(&*tx)
        .await?
    else {
        return Ok(None);
    };
    let Some(seen) = st.next_poll_at.filter(|t| *t <= now) else {
        return Ok(None);
    };
    let claimed = integration_status::Entity::update_many()
        .col_expr(
            integration_status::Column::NextPollAt,
            Expr::value(now + POLL_LEASE),
        )
        .filter(integration_status::Column::IntegrationId.eq(id))
        .filter(integration_status::Column::NextPollAt.eq(seen))
        .exec(&*tx)
        .await?;
    tx.commit().await?;
    if claimed.rows_affected != 1 {
        return Ok(None);
    }
    let since = st
        .cursor
        .clone()
        .unwrap_or_else(|| (now - FIRST_LOOKBACK).to_rfc3339_opts(SecondsFormat::Millis, true));

    // 2. Pull (no transaction open while the vendor answers).
    let pulled = pull(c, tenant, id, &since, now).await;

    // 3. Store alerts + cursor together, or record the failure.
    let tx = store.begin_tenant(tenant).await?;
    let integ = crate::connect::integrations::get(&tx, id).await?;
    let done_at = clock.now();
    let stored: Result<(usize, usize), Failed> = match pulled {
        Ok(p) => {
            let declared = match integ.kind {
                Kind::Crowdstrike => "crowdstrike",
                _ => "graylog",
            };
            let raws: Vec<&str> = p.raws.iter().map(|r| r.get()).collect();
            match ingest::check(declared, &raws) {
                Ok(checked) => {
                    let n = checked.len();
                    let acc = ingest::store_checked(&tx, clock, id, checked).await?;
                    debug_assert_eq!(acc.accepted + acc.duplicates, n);
                    let next = if p.more {
                        done_at
                    } else {
                        done_at + every(&integ.config)
                    };
                    integration_status::Entity::update_many()
                        .col_expr(integration_status::Column::Cursor, Expr::value(p.cursor))
                        .col_expr(integration_status::Column::NextPollAt, Expr::value(next))
                        .col_expr(integration_status::Column::LastOkAt, Expr::value(done_at))
                        .col_expr(
                            integration_status::Column::LastError,
                            Expr::value(Option::<String>::None),
                        )
                        .col_expr(integration_status::Column::Failures, Expr::value(0))
                        .col_expr(
                            integration_status::Column::Pulled,
                            Expr::col(integration_status::Column::Pulled).add(acc.accepted as i64),
                        )
                        .filter(integration_status::Column::IntegrationId.eq(id))
                        .exec(&*tx)
                        .await?;
                    Ok((acc.accepted, acc.duplicates))
                }
                Err(e) => Err((format!("the vendor sent an alert Vigil cannot read: {e}"), None)),
            }
        }
        Err(e) => Err(e),
    };
    if let Err((msg, retry_after)) = &stored {
        let failures = st.failures + 1;
        let wait = backoff(failures).max(retry_after.unwrap_or_default());
        tracing::warn!(integration = %id, error = %msg, "poll failed; cursor unchanged");
        integration_status::Entity::update_many()
            .col_expr(
                integration_status::Column::NextPollAt,
                Expr::value(done_at + wait),
            )
            .col_expr(integration_status::Column::LastError, Expr::value(msg.clone()))
            .col_expr(integration_status::Column::LastErrorAt, Expr::value(done_at))
            .col_expr(integration_status::Column::Failures, Expr::value(failures))
            .filter(integration_status::Column::IntegrationId.eq(id))
            .exec(&*tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(stored.map_err(|(m, _)| m)))
}
