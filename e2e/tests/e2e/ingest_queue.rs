//! Group commit of webhook deliveries (`orchestrator::ingest_queue`):
//! deliveries that queue while a transaction is busy share the next one,
//! each still gets its own answer; a full queue refuses with Busy; a
//! combined batch that fails is retried delivery by delivery.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::json;
use uuid::Uuid;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::pipeline::ingest::{self, Accepted};
use vigil_orchestrator::pipeline::ingest_queue::IngestQueue;
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Clock, Error, Role, SystemClock, TenantId, connect::integrations, identity};

fn alert(id: &str) -> String {
    json!({"composite_id": id, "device": {"device_id": id, "hostname": format!("ws-{id}")}, "description": id})
        .to_string()
}

fn checked(ids: &[&str]) -> Vec<ingest::Checked> {
    let texts: Vec<String> = ids.iter().map(|i| alert(i)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    ingest::check("auto", &refs).unwrap()
}

async fn webhook(db: &TestDb) -> (TenantId, Uuid) {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &SystemClock, &Actor::cli(), "T")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let eng = Actor {
        label: "user:eng".into(),
        role: Some(Role::SecurityEngineer),
        source_ip: None,
    };
    let tx = db.store.begin_tenant(t.id).await.unwrap();
    let hook = integrations::create(&tx, &SystemClock, &eng, "webhook", "edr", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (t.id, hook.id)
}

async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..2_000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

type Answer = tokio::task::JoinHandle<vigil_orchestrator::Result<Accepted>>;

fn submit(q: &Arc<IngestQueue>, t: TenantId, hook: Uuid, ids: &[&str]) -> Answer {
    let (q, c) = (q.clone(), checked(ids));
    tokio::spawn(async move { q.submit(t, hook, c).await })
}

async fn alerts(db: &TestDb, t: TenantId) -> i64 {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let n = tx
        .query_one_raw(sea_orm::Statement::from_string(
            tx.get_database_backend(),
            "SELECT count(*) AS n FROM alerts",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    tx.commit().await.unwrap();
    n
}

/// A transaction of the test that stored alert `V` and is still open: it
/// holds SQLite's write lock, or PostgreSQL's correlation lock of the
/// tenant, so the queue's writer waits behind it.
async fn blocker(db: &TestDb, t: TenantId, hook: Uuid) -> (vigil_orchestrator::TenantTx, Uuid) {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let v = ingest::store_checked(&tx, &SystemClock, hook, checked(&["V"]))
        .await
        .unwrap();
    (tx, v.alert_ids[0])
}

async fn deliveries_share_a_commit(db: TestDb) {
    let (t, hook) = webhook(&db).await;
    // Room for 4 waiting alerts.
    let q = IngestQueue::with_limit(db.store.clone(), Arc::new(SystemClock), 4);
    let (held, v) = blocker(&db, t, hook).await;
    let d0 = submit(&q, t, hook, &["W"]);
    until("the writer took W", async || {
        q.writing(hook) && q.waiting(hook) == 0
    })
    .await;
    let d1 = submit(&q, t, hook, &["X", "Y"]);
    let d2 = submit(&q, t, hook, &["Y", "Z"]);
    until("two deliveries wait", async || q.waiting(hook) == 2).await;
    // Full: 4 alerts wait.
    let full = q.submit(t, hook, checked(&["Q"])).await;
    assert!(matches!(full, Err(Error::Busy(_))), "{full:?}");
    held.commit().await.unwrap();

    let a0 = d0.await.unwrap().unwrap();
    assert_eq!((a0.accepted, a0.duplicates), (1, 0));
    let a1 = d1.await.unwrap().unwrap();
    let a2 = d2.await.unwrap().unwrap();
    assert_eq!((a1.accepted, a1.duplicates), (2, 0));
    assert_eq!(
        (a2.accepted, a2.duplicates),
        (1, 1),
        "Y came first in the delivery before"
    );
    assert_eq!(a2.alert_ids[0], a1.alert_ids[1], "the repeat is the first copy");
    assert_eq!(alerts(&db, t).await, 5, "V W X Y Z, once each");

    // Drained: the refused delivery goes through now, and V is known.
    let again = q.submit(t, hook, checked(&["Q", "V"])).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (1, 1));
    assert_eq!(again.alert_ids[1], v);
    assert_eq!(q.waiting(hook), 0);
}

#[tokio::test]
async fn ingest_queue_sqlite() {
    deliveries_share_a_commit(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn ingest_queue_postgres() {
    deliveries_share_a_commit(TestDb::postgres().await).await;
}

/// PostgreSQL: another node's transaction stores alert X after the
/// combined batch looked X up and before it inserts X. The batch fails on
/// the unique key; each delivery is then stored alone, so X's delivery
/// gets "duplicate" and the other delivery is unaffected.
#[tokio::test]
async fn a_failed_batch_is_retried_delivery_by_delivery() {
    use vigil_orchestrator::store::entity::alert;
    let db = TestDb::postgres().await;
    let (t, hook) = webhook(&db).await;
    let q = IngestQueue::new(db.store.clone(), Arc::new(SystemClock));
    let (held, _) = blocker(&db, t, hook).await;
    let d0 = submit(&q, t, hook, &["W"]);
    until("the writer took W", async || {
        q.writing(hook) && q.waiting(hook) == 0
    })
    .await;
    let d1 = submit(&q, t, hook, &["X"]);
    let d2 = submit(&q, t, hook, &["Y"]);
    until("two deliveries wait", async || q.waiting(hook) == 2).await;
    // "Another node" inserts X, uncommitted: it holds X's unique key.
    let other = db.store.begin_tenant(t).await.unwrap();
    let x = checked(&["X"]);
    let x_id = Uuid::now_v7();
    let key = x[0].dedup_key().to_owned();
    alert::ActiveModel {
        id: Set(x_id),
        tenant_id: Set(t.0),
        integration_id: Set(hook),
        format: Set("crowdstrike".into()),
        source_id: Set(Some("X".into())),
        dedup_key: Set(key),
        raw: Set(alert("X")),
        received_at: Set(SystemClock.now()),
        event_at: Set(None),
        placed_by: Set("received".into()),
        observables_truncated: Set(0),
    }
    .insert(&*other)
    .await
    .unwrap();
    held.commit().await.unwrap();
    d0.await.unwrap().unwrap();
    // The combined [X, Y] batch waits on X's key.
    let admin = sea_orm::Database::connect(&db.url).await.unwrap();
    until("the batch waits on X's key", async || {
        admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"alerts\"%'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
            == 1
    })
    .await;
    other.commit().await.unwrap();
    let a1 = d1.await.unwrap().unwrap();
    assert_eq!(
        (a1.accepted, a1.duplicates),
        (0, 1),
        "X was stored by the other node"
    );
    assert_eq!(a1.alert_ids, [x_id]);
    let a2 = d2.await.unwrap().unwrap();
    assert_eq!((a2.accepted, a2.duplicates), (1, 0));
    assert_eq!(alerts(&db, t).await, 4, "V W X Y");
}
