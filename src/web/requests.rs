//! The API request log's writer: the access log hands each request made in
//! a tenant to a bounded queue; one task stores them in batches (a second,
//! or 1,000 requests) and prunes what is older than 30 days every hour. A
//! full queue drops the row (counted, logged): the request log never slows
//! or fails a request; the audit log, not this, is the record of changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vigil_orchestrator::audit::chain;
use vigil_orchestrator::audit::requests::{self, Request};
use vigil_orchestrator::{Clock, Store, TenantId};

/// Who a request was made by, in which tenant: set on the response by the
/// guard, read by the access log.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub tenant: TenantId,
    pub actor: String,
}

#[derive(Debug)]
pub struct RequestLog {
    queue: tokio::sync::mpsc::Sender<(TenantId, Request)>,
    dropped: AtomicU64,
    /// Rows queued so far, and (from the writer) rows handled so far —
    /// stored, or given up on after a failed batch.
    queued: AtomicU64,
    handled: tokio::sync::watch::Receiver<u64>,
}

const QUEUE: usize = 10_000;

impl RequestLog {
    /// Starts the writer (it stops when the last sender is dropped).
    pub fn spawn(store: Store, clock: Arc<dyn Clock>) -> Arc<Self> {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let (handled_tx, handled) = tokio::sync::watch::channel(0);
        tokio::spawn(writer(store, clock, rx, handled_tx));
        Arc::new(Self {
            queue: tx,
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            handled,
        })
    }

    /// Waits until every row queued before the call has been handled
    /// (tests: the log is read after the requests it records).
    pub async fn settled(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        let mut handled = self.handled.clone();
        let _ = handled.wait_for(|n| *n >= target).await;
    }

    pub fn push(&self, tenant: TenantId, r: Request) {
        if self.queue.try_send((tenant, r)).is_ok() {
            self.queued.fetch_add(1, Ordering::SeqCst);
        } else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "request log queue full; requests not logged");
            }
        }
    }
}

async fn writer(
    store: Store,
    clock: Arc<dyn Clock>,
    mut rx: tokio::sync::mpsc::Receiver<(TenantId, Request)>,
    handled: tokio::sync::watch::Sender<u64>,
) {
    let mut prune = tokio::time::interval(Duration::from_secs(3_600));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(1_000);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 1_000) => {
                if n == 0 {
                    return;
                }
                // Let a burst gather for up to a second.
                let deadline = tokio::time::sleep(Duration::from_secs(1));
                tokio::pin!(deadline);
                while batch.len() < 1_000 {
                    tokio::select! {
                        _ = &mut deadline => break,
                        m = rx.recv_many(&mut batch, 1_000) => if m == 0 { break },
                    }
                }
                let n_rows = batch.len() as u64;
                let mut by_tenant: HashMap<TenantId, Vec<Request>> = HashMap::new();
                for (t, r) in batch.drain(..) {
                    by_tenant.entry(t).or_default().push(r);
                }
                for (t, rows) in by_tenant {
                    if let Err(e) = store_rows(&store, t, &rows).await {
                        tracing::warn!(error = %e, tenant = %t, rows = rows.len(), "cannot store the request log");
                    }
                }
                handled.send_modify(|n| *n += n_rows);
            }
            _ = prune.tick() => {
                let before = clock.now() - requests::retention();
                if let Err(e) = prune_all(&store, before).await {
                    tracing::warn!(error = %e, "request log pruning failed");
                }
            }
        }
    }
}

async fn store_rows(store: &Store, t: TenantId, rows: &[Request]) -> vigil_orchestrator::Result<()> {
    let tx = store.begin_tenant(t).await?;
    requests::record(&tx, rows).await?;
    tx.commit().await
}

async fn prune_all(store: &Store, before: chrono::DateTime<chrono::Utc>) -> vigil_orchestrator::Result<()> {
    for scope in chain::scopes(store).await? {
        if let Some(t) = scope.tenant() {
            let tx = store.begin_tenant(t).await?;
            requests::prune(&tx, before).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}
