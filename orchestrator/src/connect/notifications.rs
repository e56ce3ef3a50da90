//! Outbound notifications: signed webhooks (HMAC-SHA256 over
//! `timestamp.body`, plus an `Idempotency-Key`) to a tenant's
//! `notify_webhook` integrations, e.g. when an unanswered gate escalates.
//!
//! A notification is recorded in the same transaction as the event it
//! announces, one row per integration that subscribes to the event (config
//! `events`, all events when absent). The engine worker sends due rows
//! through the same checks as every external write: the integration's write
//! scope `notify:send` on, no kill switch engaged (held, not dropped, until
//! both hold). A claim moves `run_after` past a lease, in a transaction that
//! re-reads the row; a node that dies mid-send leaves it to be re-sent with
//! the same key, which the receiver can drop.

use chrono::Duration;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;
use uuid::Uuid;
use vigil_integrations::Kind;
use vigil_integrations::notify::Notifier;

use crate::connect::connectors::Connectors;
use crate::connect::integrations;
use crate::engine::kill;
use crate::store::entity::{integration, notification};
use crate::store::{Backend, TenantTx};
use crate::{Clock, Error, Result, TenantId};

pub const LEASE: Duration = Duration::seconds(60);
pub const MAX_ATTEMPTS: i32 = 8;

/// Records `event` for every notification integration of the tenant that
/// subscribes to `name`. `key` makes the event unique (a gate id, …).
pub async fn enqueue(
    tx: &TenantTx,
    clock: &dyn Clock,
    name: &str,
    key: &str,
    mut event: Value,
) -> Result<usize> {
    let hooks = integration::Entity::find()
        .filter(integration::Column::TenantId.eq(tx.tenant().0))
        .filter(integration::Column::Kind.eq(Kind::NotifyWebhook.as_str()))
        .all(&**tx)
        .await?;
    if let Some(o) = event.as_object_mut() {
        o.insert("event".into(), Value::String(name.to_owned()));
    }
    let now = clock.now();
    let mut n = 0;
    for h in hooks {
        let wanted = match h.config.get("events") {
            None => true,
            Some(Value::Array(list)) => list.iter().any(|e| e.as_str() == Some(name)),
            Some(Value::String(one)) => one == name,
            _ => false,
        };
        if !wanted {
            continue;
        }
        notification::Entity::insert(notification::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tx.tenant().0),
            integration_id: Set(h.id),
            event: Set(event.clone()),
            idempotency_key: Set(format!("vigil-{name}-{key}-{}", h.id)),
            state: Set("pending".into()),
            attempts: Set(0),
            run_after: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(notification::Column::IdempotencyKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&**tx)
        .await?;
        n += 1;
    }
    if n > 0 {
        crate::engine::steps::notify(tx).await?;
    }
    Ok(n)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub held: usize,
    pub retried: usize,
    pub dead: usize,
}

async fn due(
    c: &Connectors,
    now: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Vec<(Uuid, TenantId)>> {
    let store = c.store();
    match store.backend() {
        Backend::Postgres => store.pg_due("vigil_due_notifications", now, limit).await,
        Backend::Sqlite => Ok(notification::Entity::find()
            .filter(notification::Column::State.eq("pending"))
            .filter(notification::Column::RunAfter.lte(now))
            .order_by_asc(notification::Column::RunAfter)
            .limit(u64::from(limit))
            .all(store.conn())
            .await?
            .into_iter()
            .map(|n| (n.id, TenantId(n.tenant_id)))
            .collect()),
    }
}

fn backoff(attempts: i32) -> Duration {
    Duration::seconds(5 * (1i64 << attempts.clamp(0, 10))).min(Duration::hours(1))
}

async fn set(
    tx: &TenantTx,
    id: Uuid,
    cols: Vec<(notification::Column, sea_orm::sea_query::SimpleExpr)>,
) -> Result<()> {
    let mut u = notification::Entity::update_many()
        .filter(notification::Column::Id.eq(id))
        .filter(notification::Column::TenantId.eq(tx.tenant().0));
    for (c, v) in cols {
        u = u.col_expr(c, v);
    }
    u.exec(&**tx).await?;
    Ok(())
}

/// Sends every due notification whose checks pass.
pub async fn run_due(c: &Connectors, clock: &dyn Clock, limit: u32) -> Result<SendReport> {
    let mut r = SendReport::default();
    for (id, tenant) in due(c, clock.now(), limit).await? {
        let now = clock.now();
        let store = c.store();
        // Claim (re-reading the row: another node may have it by now).
        let tx = store.begin_tenant(tenant).await?;
        let Some(n) = notification::Entity::find_by_id(id)
            .filter(notification::Column::TenantId.eq(tenant.0))
            .one(&*tx)
            .await?
        else {
            continue;
        };
        if n.state != "pending" || n.run_after > now {
            continue;
        }
        let ks = kill::state(&tx).await?;
        let held = if ks.engaged() {
            Some(ks.describe())
        } else if !integrations::scope_enabled(&tx, n.integration_id, "notify:send").await? {
            Some("the integration's write scope notify:send is disabled".to_owned())
        } else {
            None
        };
        if let Some(why) = held {
            set(
                &tx,
                id,
                vec![(
                    notification::Column::LastError,
                    Expr::value(format!("held: {why}")),
                )],
            )
            .await?;
            tx.commit().await?;
            r.held += 1;
            continue;
        }
        let claimed = notification::Entity::update_many()
            .col_expr(notification::Column::RunAfter, Expr::value(now + LEASE))
            .col_expr(notification::Column::Attempts, Expr::value(n.attempts + 1))
            .filter(notification::Column::Id.eq(id))
            .filter(notification::Column::State.eq("pending"))
            .filter(notification::Column::RunAfter.eq(n.run_after))
            .exec(&*tx)
            .await?;
        tx.commit().await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let attempts = n.attempts + 1;
        // Send, outside any transaction.
        let sent = async {
            let (config, _, secret) = c.open(tenant, n.integration_id).await.map_err(|e| match e {
                Error::NotFound("credential") => {
                    (false, None, "the integration has no signing secret".to_owned())
                }
                e => (true, None, e.to_string()),
            })?;
            let guard = c.guard(tenant, Kind::NotifyWebhook, n.integration_id);
            let client = Notifier::new(&config, secret.as_bytes(), c.http().clone(), guard)
                .map_err(|e| (false, None, e.to_string()))?;
            client
                .send(&n.event, clock.now().timestamp(), &n.idempotency_key)
                .await
                .map_err(|e| (e.transient(), e.retry_after(), e.to_string()))
        }
        .await;
        let done_at = clock.now();
        let tx = store.begin_tenant(tenant).await?;
        match sent {
            Ok(()) => {
                set(
                    &tx,
                    id,
                    vec![
                        (notification::Column::State, Expr::value("sent")),
                        (notification::Column::SentAt, Expr::value(done_at)),
                        (
                            notification::Column::LastError,
                            Expr::value(Option::<String>::None),
                        ),
                    ],
                )
                .await?;
                r.sent += 1;
            }
            Err((transient, retry_after, msg)) if transient && attempts < MAX_ATTEMPTS => {
                let wait = backoff(attempts).max(
                    retry_after
                        .and_then(|d| Duration::from_std(d).ok())
                        .unwrap_or_default(),
                );
                set(
                    &tx,
                    id,
                    vec![
                        (notification::Column::RunAfter, Expr::value(done_at + wait)),
                        (notification::Column::LastError, Expr::value(msg)),
                    ],
                )
                .await?;
                r.retried += 1;
            }
            Err((_, _, msg)) => {
                set(
                    &tx,
                    id,
                    vec![
                        (notification::Column::State, Expr::value("dead")),
                        (notification::Column::LastError, Expr::value(msg)),
                    ],
                )
                .await?;
                r.dead += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(r)
}

/// A tenant's notifications, newest first.
pub async fn list(tx: &TenantTx, limit: u64) -> Result<Vec<notification::Model>> {
    Ok(notification::Entity::find()
        .filter(notification::Column::TenantId.eq(tx.tenant().0))
        .order_by_desc(notification::Column::CreatedAt)
        .limit(limit)
        .all(&**tx)
        .await?)
}
