//! Group commit for webhook deliveries. A delivery that passed
//! [`crate::pipeline::ingest::verify`] joins its integration's queue; one writer task
//! per integration (per node) stores everything queued in ONE transaction
//! and answers each delivery once that transaction has committed. At low
//! rates a batch is one delivery, so nothing waits for company; under load
//! the deliveries that arrive while a transaction commits share the next
//! one, which is what keeps a tenant's correlation (serialised: see
//! `correlate::serialize_tenant`) and the commit's flush from queueing
//! deliveries one by one.
//!
//! Isolation between senders is kept: if a combined batch fails (a
//! concurrent node stored one of its alerts first, or any other error),
//! each delivery is retried alone in a transaction of its own, so a
//! delivery's answer is what it would have been had it come alone. A
//! delivery is answered only after its alerts are committed; if its sender
//! hangs up first, its alerts are stored all the same (the sender's retry
//! then gets duplicates). The queue is bounded: beyond
//! [`IngestQueue::MAX_QUEUED`] alerts waiting per integration a delivery is
//! refused with [`Error::Busy`] (503 + `Retry-After`), nothing stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::pipeline::ingest::{Accepted, Checked, Stored, store_items};
use crate::{Clock, Error, Result, Store, TenantId};

struct Job {
    checked: Vec<Checked>,
    reply: oneshot::Sender<Result<Accepted>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    alerts: usize,
    writing: bool,
}

/// Per-integration queues of verified deliveries and their writer tasks.
pub struct IngestQueue {
    store: Store,
    clock: Arc<dyn Clock>,
    queues: Mutex<HashMap<Uuid, Queue>>,
    max_queued: usize,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue")
            .field("max_queued", &self.max_queued)
            .finish_non_exhaustive()
    }
}

/// If a writer task ends abnormally (a panic, or the runtime shutting
/// down), the deliveries still queued behind it are answered "busy, retry"
/// (by dropping them) and the next delivery starts a new writer.
struct Writing<'a> {
    queue: &'a IngestQueue,
    integration: Uuid,
    armed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.queue.lock().remove(&self.integration);
        }
    }
}

impl IngestQueue {
    /// Alerts that may wait per integration before deliveries are refused.
    pub const MAX_QUEUED: usize = 50_000;
    /// Most alerts one combined transaction takes (a delivery is never
    /// split; one larger than this goes alone).
    pub const BATCH_ALERTS: usize = 5_000;

    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Arc<Self> {
        Self::with_limit(store, clock, Self::MAX_QUEUED)
    }

    pub fn with_limit(store: Store, clock: Arc<dyn Clock>, max_queued: usize) -> Arc<Self> {
        Arc::new(Self {
            store,
            clock,
            queues: Mutex::default(),
            max_queued,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Queue>> {
        // A panic while holding this lock leaves plain data behind; go on.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a verified delivery's alerts (deduplicated, correlated) and
    /// answers once they are committed.
    pub async fn submit(
        self: &Arc<Self>,
        tenant: TenantId,
        integration: Uuid,
        checked: Vec<Checked>,
    ) -> Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        {
            let mut qs = self.lock();
            let q = qs.entry(integration).or_default();
            if q.alerts > 0 && q.alerts + checked.len() > self.max_queued {
                return Err(Error::Busy(format!(
                    "{} alerts of this integration are waiting to be stored; retry shortly",
                    q.alerts
                )));
            }
            q.alerts += checked.len();
            q.jobs.push(Job { checked, reply });
            if !q.writing {
                q.writing = true;
                let me = self.clone();
                tokio::spawn(async move { me.write(tenant, integration).await });
            }
        }
        answer
            .await
            .map_err(|_| Error::Busy("the ingest writer stopped; retry the delivery".into()))?
    }

    /// The writer task: takes what is queued, stores it, answers, until
    /// the queue is empty.
    async fn write(self: Arc<Self>, tenant: TenantId, integration: Uuid) {
        let mut writing = Writing {
            queue: &self,
            integration,
            armed: true,
        };
        loop {
            let batch = {
                let mut qs = self.lock();
                let Some(q) = qs.get_mut(&integration) else {
                    writing.armed = false;
                    return;
                };
                let mut take = 0;
                let mut alerts = 0;
                for j in &q.jobs {
                    if take > 0 && alerts + j.checked.len() > Self::BATCH_ALERTS {
                        break;
                    }
                    alerts += j.checked.len();
                    take += 1;
                }
                if take == 0 {
                    // Under the same lock a submit checks `writing`: no
                    // delivery can be left behind without a writer.
                    qs.remove(&integration);
                    writing.armed = false;
                    return;
                }
                q.alerts -= alerts;
                q.jobs.drain(..take).collect::<Vec<Job>>()
            };
            self.store_batch(tenant, integration, batch).await;
        }
    }

    /// Deliveries of an integration waiting for a writer (not counting
    /// the batch being written).
    pub fn waiting(&self, integration: Uuid) -> usize {
        self.lock().get(&integration).map_or(0, |q| q.jobs.len())
    }

    /// Whether a writer task is storing (or about to store) deliveries of
    /// the integration.
    pub fn writing(&self, integration: Uuid) -> bool {
        self.lock().get(&integration).is_some_and(|q| q.writing)
    }

    async fn store_batch(&self, tenant: TenantId, integration: Uuid, batch: Vec<Job>) {
        if batch.len() > 1 {
            let all: Vec<&Checked> = batch.iter().flat_map(|j| &j.checked).collect();
            match self.store_once(tenant, integration, &all).await {
                Ok(stored) => {
                    let mut at = 0;
                    for j in batch {
                        let n = j.checked.len();
                        let _ = j.reply.send(Ok(Accepted::of(&stored[at..at + n])));
                        at += n;
                    }
                    return;
                }
                Err(e) => tracing::debug!(
                    "ingest: a combined batch of {} deliveries failed ({e}); storing each alone",
                    batch.len()
                ),
            }
        }
        for j in batch {
            let one: Vec<&Checked> = j.checked.iter().collect();
            let answer = self
                .store_once(tenant, integration, &one)
                .await
                .map(|s| Accepted::of(&s));
            let _ = j.reply.send(answer);
        }
    }

    async fn store_once(
        &self,
        tenant: TenantId,
        integration: Uuid,
        checked: &[&Checked],
    ) -> Result<Vec<Stored>> {
        let tx = self.store.begin_tenant(tenant).await?;
        let stored = store_items(&tx, self.clock.as_ref(), integration, checked).await?;
        tx.commit().await?;
        Ok(stored)
    }
}
