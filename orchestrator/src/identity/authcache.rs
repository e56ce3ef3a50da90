//! The request guard's node-local cache (PostgreSQL): sessions, a person's
//! role per tenant, and API tokens, so an authorized request costs no
//! database round trip for its identity.
//!
//! Invalidation is by the database, not by the code paths that change
//! things: triggers (migration 17) `NOTIFY vigil_authz` when any session,
//! user flag, membership or API token changes, on commit, and every node's
//! [`listen`] task drops its whole cache. The cache is used only while that
//! listener is connected (a lost connection could have lost notifications:
//! the cache is dropped and bypassed until the listener is back), and a
//! value read from the database is stored only if no invalidation arrived
//! while it was being read. A change therefore reaches a node's guard as
//! fast as its notification: on commit plus delivery (sub-millisecond on
//! one host), not at once; the tests bound it. SQLite (one node) never
//! enables the cache: every request reads the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::identity::principal::{ApiPrincipal, SessionInfo};
use crate::{Role, Store};

/// The channel the triggers notify on.
pub const CHANNEL: &str = "vigil_authz";
/// Past this many entries a map is emptied before the next insert.
const MAX_ENTRIES: usize = 100_000;

/// A session as last read from the database.
#[derive(Debug, Clone)]
pub struct CachedSession {
    pub info: SessionInfo,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The idle timeout the session runs under.
    pub idle: chrono::Duration,
}

#[derive(Debug, Default)]
pub struct AuthCache {
    live: AtomicBool,
    generation: AtomicU64,
    sessions: Mutex<HashMap<String, CachedSession>>,
    roles: Mutex<HashMap<(Uuid, Uuid), Option<Role>>>,
    tokens: Mutex<HashMap<String, ApiPrincipal>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

fn put<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, k: K, v: V) {
    let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if m.len() >= MAX_ENTRIES {
        m.clear();
    }
    m.insert(k, v);
}

fn get<K: std::hash::Hash + Eq, V: Clone>(map: &Mutex<HashMap<K, V>>, k: &K) -> Option<V> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(k)
        .cloned()
}

impl AuthCache {
    /// Whether the cache may be used (its listener is connected).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Drops everything; values being read now will not be stored.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        fn clear<K, V>(m: &Mutex<HashMap<K, V>>) {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
        clear(&self.sessions);
        clear(&self.roles);
        clear(&self.tokens);
    }

    fn set_live(&self, live: bool) {
        self.invalidate();
        self.live.store(live, Ordering::Release);
    }

    /// A ticket taken before reading the database: [`Self::store_if`]
    /// stores only if nothing was invalidated since.
    pub fn ticket(&self) -> Option<u64> {
        self.is_live().then(|| self.generation.load(Ordering::Acquire))
    }

    fn valid(&self, ticket: Option<u64>) -> bool {
        ticket.is_some_and(|t| self.is_live() && self.generation.load(Ordering::Acquire) == t)
    }

    fn counted<V>(&self, v: Option<V>) -> Option<V> {
        let c = if v.is_some() { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
        v
    }

    pub fn session(&self, token_hash: &str) -> Option<CachedSession> {
        if !self.is_live() {
            return None;
        }
        self.counted(get(&self.sessions, &token_hash.to_owned()))
    }

    pub fn store_session(&self, ticket: Option<u64>, token_hash: String, s: CachedSession) {
        if self.valid(ticket) {
            put(&self.sessions, token_hash, s);
        }
    }

    /// Records a `last_seen_at` touch this node made.
    pub fn touched(&self, token_hash: &str, at: DateTime<Utc>) {
        if let Some(s) = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(token_hash)
        {
            s.last_seen_at = at;
        }
    }

    /// `Some(role)` cached (the inner `None`: no role in that tenant).
    pub fn role(&self, user: Uuid, tenant: Uuid) -> Option<Option<Role>> {
        if !self.is_live() {
            return None;
        }
        self.counted(get(&self.roles, &(user, tenant)))
    }

    pub fn store_role(&self, ticket: Option<u64>, user: Uuid, tenant: Uuid, role: Option<Role>) {
        if self.valid(ticket) {
            put(&self.roles, (user, tenant), role);
        }
    }

    pub fn token(&self, token_hash: &str) -> Option<ApiPrincipal> {
        if !self.is_live() {
            return None;
        }
        self.counted(get(&self.tokens, &token_hash.to_owned()))
    }

    pub fn store_token(&self, ticket: Option<u64>, token_hash: String, p: ApiPrincipal) {
        if self.valid(ticket) {
            put(&self.tokens, token_hash, p);
        }
    }
}

/// Keeps `cache` in step with the database until the process ends
/// (PostgreSQL; on SQLite it returns at once and the cache stays off).
/// Each (re)connection: LISTEN, then drop everything and go live; any
/// notification drops everything; a lost connection turns the cache off
/// until a new listener is in place.
pub async fn listen(store: Store, cache: std::sync::Arc<AuthCache>) {
    use sea_orm::sqlx::postgres::PgListener;
    if store.backend() != crate::Backend::Postgres {
        return;
    }
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(store.conn().get_postgres_connection_pool()).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        }
        .await;
        match connected {
            Ok(mut l) => {
                cache.set_live(true);
                // `try_recv`: `None` means the connection was lost (and
                // notifications with it).
                while let Ok(Some(_)) = l.try_recv().await {
                    cache.invalidate();
                }
                cache.set_live(false);
                tracing::warn!("authz cache listener lost its connection; cache off until it is back");
            }
            Err(e) => {
                cache.set_live(false);
                tracing::warn!(error = %e, "authz cache listener cannot connect; cache off");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
