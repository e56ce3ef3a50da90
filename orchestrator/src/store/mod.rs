//! Persistence. One [`Store`] over SQLite (embedded default) or PostgreSQL.
//!
//! * Migrations run on a short-lived *owner* connection ([`Store::migrate`]).
//! * The serving pool ([`Store::connect`]) runs every PostgreSQL session as
//!   the `vigil_app` role (startup option `role=vigil_app`): it owns nothing,
//!   is NOBYPASSRLS, and so is subject to the FORCEd RLS policies.
//! * Tenant-owned tables are reached only through a [`TenantTx`], which sets
//!   `vigil.tenant_id` with `set_config(…, true)` (transaction-local, never per
//!   connection) on PostgreSQL; repositories also filter by the tenant on both
//!   backends, so RLS is the second wall, not the only one.

pub mod controls;
pub mod dump;
pub mod entity;

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use vigil_migrations::{APP_ROLE, Migrator};

use crate::{Result, TenantId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> std::result::Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(format!(
                "unsupported database URL scheme `{scheme}:` (use sqlite: or postgres://)"
            ))
        }
    }
}

/// How to reach the database.
#[derive(Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH?mode=rwc` or `postgres://…` (the owner role; the pool
    /// switches to `vigil_app` itself).
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for StoreOptions {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("backend", &Backend::from_url(&self.url).ok())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The SQLite database inside a data directory.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self::new(format!("sqlite://{}?mode=rwc", path.display()))
    }

    fn backend(&self) -> Result<Backend> {
        Backend::from_url(&self.url).map_err(crate::Error::Invalid)
    }

    fn connect_options(&self, max_connections: u32, as_app_role: bool) -> ConnectOptions {
        let mut o = ConnectOptions::new(self.url.clone());
        o.max_connections(max_connections)
            .min_connections(0)
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.connect_timeout.max(Duration::from_secs(10)))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
        if as_app_role {
            o.map_sqlx_postgres_opts(|o| o.options([("role", APP_ROLE)]).application_name("vigil"));
        } else {
            o.map_sqlx_postgres_opts(|o| o.application_name("vigil-migrate"));
        }
        o
    }
}

/// Key of the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x7669_6769_6c00_0001;

#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    /// Wakes this node's engine worker when a committed transaction made
    /// work due (steps, outbox entries). On PostgreSQL `NOTIFY` also wakes
    /// the other nodes.
    wake: Arc<tokio::sync::Notify>,
    /// SQLite: this process's write transactions take turns in arrival
    /// order. SQLite's own busy handler polls with growing sleeps and no
    /// queue, so under steady writes a waiting transaction could lose the
    /// lock again and again (a webhook delivery waited over a second while
    /// the investigation's steps wrote); a fair queue makes the wait the
    /// writes ahead of it. Other processes on the same file still meet the
    /// busy timeout.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// How long a write transaction waits for its turn (SQLite's busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A write transaction, holding its turn (SQLite) until it ends.
#[derive(Debug)]
pub(crate) struct WriteTx {
    tx: DatabaseTransaction,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        let r = self.tx.commit().await;
        drop(self.turn);
        r
    }
}

impl Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Migrations known to this binary that the database has not applied.
    PendingMigrations(Vec<String>),
}

impl Store {
    /// Resolves when a committed transaction announced new work (see
    /// [`TenantTx::announce_work`]); a wake-up given while nobody waits is kept.
    pub async fn work_announced(&self) {
        self.wake.notified().await;
    }

    /// PostgreSQL: ids due before `now` across tenants, through one of the
    /// narrow SECURITY DEFINER functions `func(due_before, max_rows)` that
    /// return `(id, tenant_id)` (outbox, polls, notifications).
    pub async fn pg_due(
        &self,
        func: &'static str,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<(uuid::Uuid, TenantId)>> {
        use sea_orm::ConnectionTrait;
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                format!("SELECT id, tenant_id FROM {func}($1, $2)"),
                [now.into(), (limit as i32).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<uuid::Uuid>("", "id")?,
                    TenantId(r.try_get::<uuid::Uuid>("", "tenant_id")?),
                ))
            })
            .collect()
    }

    /// Applies all pending migrations using the owner connection. On
    /// PostgreSQL several nodes may call this at once: an advisory lock
    /// serialises them.
    pub async fn migrate(opts: &StoreOptions) -> Result<()> {
        let backend = opts.backend()?;
        let db = Database::connect(opts.connect_options(1, false)).await?;
        let result = async {
            if backend == Backend::Postgres {
                db.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .await?;
            }
            let r = Migrator::up(&db, None).await;
            if backend == Backend::Postgres {
                db.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                    .await?;
            }
            r
        }
        .await;
        db.close().await?;
        Ok(result?)
    }

    /// Opens the serving pool (PostgreSQL: as `vigil_app`).
    pub async fn connect(opts: &StoreOptions) -> Result<Self> {
        let backend = opts.backend()?;
        let db = Database::connect(opts.connect_options(opts.max_connections, true)).await?;
        Ok(Self {
            db,
            backend,
            wake: Arc::default(),
            writer: (backend == Backend::Sqlite).then(Arc::default),
        })
    }

    /// `migrate` then `connect`: what `serve` and the CLI do.
    pub async fn open(opts: &StoreOptions) -> Result<Self> {
        Self::migrate(opts).await?;
        Self::connect(opts).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for statements on platform tables outside a transaction.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn close(self) -> Result<()> {
        Ok(self.db.close().await?)
    }

    /// Database reachable and every migration of this binary applied.
    pub async fn readiness(&self) -> Result<Readiness> {
        self.db.ping().await?;
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT version FROM seaql_migrations",
            ))
            .await?;
        let applied: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "version").ok())
            .collect();
        let pending: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|n| !applied.contains(n))
            .collect();
        Ok(if pending.is_empty() {
            Readiness::Ready
        } else {
            Readiness::PendingMigrations(pending)
        })
    }

    /// Begins a transaction. On SQLite it is `BEGIN IMMEDIATE`: it takes the
    /// write lock up front (waiting up to the busy timeout) instead of
    /// failing with "database is locked" when a read-then-write transaction
    /// cannot upgrade its lock after another connection wrote.
    /// On SQLite it first waits for this process's write turn (see
    /// [`Store`]'s `writer`).
    pub(crate) async fn begin_raw(&self) -> Result<WriteTx, DbErr> {
        let turn = match &self.writer {
            Some(w) => Some(
                tokio::time::timeout(BUSY_TIMEOUT, w.clone().lock_owned())
                    .await
                    .map_err(|_| {
                        DbErr::Custom("database is locked: no write turn within the busy timeout".into())
                    })?,
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => {
                self.db
                    .begin_with_options(sea_orm::TransactionOptions {
                        isolation_level: None,
                        access_mode: None,
                        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    })
                    .await?
            }
            Backend::Postgres => self.db.begin().await?,
        };
        Ok(WriteTx { tx, turn })
    }

    async fn set_local(&self, tx: &DatabaseTransaction, key: &str, value: String) -> Result<(), DbErr> {
        if self.backend == Backend::Postgres {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config($1, $2, true)",
                [key.into(), value.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// A transaction scoped to one tenant: the only way to reach tenant-owned rows.
    pub async fn begin_tenant(&self, tenant: TenantId) -> Result<TenantTx> {
        let w = self.begin_raw().await?;
        self.bind_tenant(w.tx, w.turn, tenant).await
    }

    /// Binds a fresh transaction to a tenant (PostgreSQL: the RLS setting).
    async fn bind_tenant(
        &self,
        tx: DatabaseTransaction,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
        tenant: TenantId,
    ) -> Result<TenantTx> {
        self.set_local(&tx, "vigil.tenant_id", tenant.to_string()).await?;
        Ok(TenantTx {
            tx,
            before_commit: Hooks::default(),
            tenant,
            wake: self.wake.clone(),
            announce: AtomicBool::new(false),
            _turn: turn,
        })
    }

    /// The enabled identity providers owning e-mail `domain` (id, display
    /// name), across tenants, before any tenant is known (the login page's
    /// SSO buttons). PostgreSQL: through the SECURITY DEFINER function
    /// `vigil_sso_providers_for_domain`, which returns nothing else.
    pub(crate) async fn sso_for_domain(&self, domain: &str) -> Result<Vec<(uuid::Uuid, String)>, DbErr> {
        let domain = domain.to_lowercase();
        let stmt = match self.backend {
            Backend::Postgres => Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, name FROM vigil_sso_providers_for_domain($1)",
                [domain.into()],
            ),
            Backend::Sqlite => Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT id, name FROM sso_providers p WHERE p.disabled_at IS NULL AND p.domains IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM json_each(p.domains) d WHERE d.value = ?) ORDER BY p.name, p.id LIMIT 20",
                [domain.into()],
            ),
        };
        let rows = self.db.query_all_raw(stmt).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.try_get::<uuid::Uuid>("", "id").ok()?,
                    r.try_get::<String>("", "name").ok()?,
                ))
            })
            .collect())
    }

    /// The tenant owning row `id` of `table`, for the lookups made before
    /// a tenant is known (a webhook delivery, an SSO callback). PostgreSQL:
    /// through the table's SECURITY DEFINER function `pg_function` (RLS
    /// hides the row until then; the function returns the tenant id only).
    /// Both names are the caller's constants, never input.
    pub(crate) async fn owner_tenant(
        &self,
        pg_function: &'static str,
        table: &'static str,
        id: uuid::Uuid,
    ) -> Result<Option<TenantId>, DbErr> {
        let stmt = match self.backend {
            Backend::Postgres => Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("SELECT {pg_function}($1) AS t"),
                [id.into()],
            ),
            Backend::Sqlite => Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("SELECT tenant_id AS t FROM {table} WHERE id = ?"),
                [id.into()],
            ),
        };
        Ok(self
            .db
            .query_one_raw(stmt)
            .await?
            .and_then(|r| r.try_get::<Option<uuid::Uuid>>("", "t").ok().flatten())
            .map(TenantId))
    }

    /// A read-only transaction scoped to one tenant, for work that only
    /// reads (and must not queue behind writers): on SQLite a deferred
    /// `BEGIN` (readers never block the writer under WAL, unlike
    /// [`Store::begin_tenant`]'s `BEGIN IMMEDIATE`); on PostgreSQL `READ
    /// ONLY`, with the same RLS binding. A write in it fails.
    pub async fn begin_tenant_read(&self, tenant: TenantId) -> Result<TenantTx> {
        let tx = match self.backend {
            Backend::Sqlite => {
                self.db
                    .begin_with_options(sea_orm::TransactionOptions {
                        isolation_level: None,
                        access_mode: None,
                        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Deferred),
                    })
                    .await?
            }
            Backend::Postgres => {
                self.db
                    .begin_with_config(None, Some(sea_orm::AccessMode::ReadOnly))
                    .await?
            }
        };
        self.bind_tenant(tx, None, tenant).await
    }

    /// PostgreSQL only, for the engine's hot path: a raw sqlx transaction
    /// bound to `tenant` exactly as [`Store::begin_tenant`] binds one (the
    /// RLS setting `vigil.tenant_id`, local to the transaction), opened in
    /// ONE round trip: `BEGIN` and `set_config` travel in one message.
    pub(crate) async fn pg_begin_tenant_sqlx(
        &self,
        tenant: TenantId,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        // A UUID's hyphenated form is hex digits and dashes: nothing to escape.
        let sql = format!(
            "BEGIN; SELECT set_config('vigil.tenant_id', '{}', true)",
            tenant.0.hyphenated()
        );
        self.db
            .get_postgres_connection_pool()
            .begin_with(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(sqlx_error)
    }

    /// A transaction on platform tables (tenants, users, sessions, one-time
    /// links) and platform-level audit events. Sees no tenant-owned rows.
    pub async fn begin_platform(&self) -> Result<PlatformTx> {
        let WriteTx { tx, turn } = self.begin_raw().await?;
        self.set_local(&tx, "vigil.platform", "on".into()).await?;
        Ok(PlatformTx {
            tx,
            before_commit: Hooks::default(),
            _turn: turn,
        })
    }

    /// A transaction in which a person may read their own memberships across
    /// tenants (and nothing else tenant-owned).
    pub async fn begin_user(&self, user: UserId) -> Result<PlatformTx> {
        let WriteTx { tx, turn } = self.begin_raw().await?;
        self.set_local(&tx, "vigil.user_id", user.to_string()).await?;
        Ok(PlatformTx {
            tx,
            before_commit: Hooks::default(),
            _turn: turn,
        })
    }
}

/// A transaction bound to one tenant. Repository functions for tenant-owned
/// tables take `&TenantTx` and filter by [`TenantTx::tenant`].
/// Work a transaction does last, just before it commits, in the order it
/// was added (the audit chain: taking its head's lock last means no writer
/// ever waits for the chain while holding it, nor holds it while waiting for
/// another row). Dropped with the transaction when it is rolled back.
#[async_trait::async_trait]
pub trait BeforeCommit: Send {
    async fn run(self: Box<Self>, tx: &DatabaseTransaction) -> Result<()>;
}

#[derive(Default)]
struct Hooks(std::sync::Mutex<Vec<Box<dyn BeforeCommit>>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

impl Hooks {
    fn push(&self, hook: Box<dyn BeforeCommit>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    async fn run(&self, tx: &DatabaseTransaction) -> Result<()> {
        let hooks = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for h in hooks {
            h.run(tx).await?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct TenantTx {
    tx: DatabaseTransaction,
    before_commit: Hooks,
    tenant: TenantId,
    wake: Arc<tokio::sync::Notify>,
    announce: AtomicBool,
    /// SQLite: this transaction's write turn, released when it ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl TenantTx {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Wake this node's engine worker once the transaction commits.
    pub fn announce_work(&self) {
        self.announce.store(true, Ordering::Relaxed);
    }

    /// Runs `hook` just before this transaction commits (see [`BeforeCommit`]).
    pub fn before_commit(&self, hook: Box<dyn BeforeCommit>) {
        self.before_commit.push(hook);
    }

    pub async fn commit(self) -> Result<()> {
        self.before_commit.run(&self.tx).await?;
        self.tx.commit().await?;
        if self.announce.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }
}

impl Deref for TenantTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// A transaction with no tenant set.
#[derive(Debug)]
pub struct PlatformTx {
    tx: DatabaseTransaction,
    before_commit: Hooks,
    /// SQLite: this transaction's write turn, released when it ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PlatformTx {
    /// Runs `hook` just before this transaction commits (see [`BeforeCommit`]).
    pub fn before_commit(&self, hook: Box<dyn BeforeCommit>) {
        self.before_commit.push(hook);
    }

    pub async fn commit(self) -> Result<()> {
        self.before_commit.run(&self.tx).await?;
        Ok(self.tx.commit().await?)
    }
}

impl Deref for PlatformTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// A driver error from a raw sqlx call, as the store's error.
pub(crate) fn sqlx_error(e: sqlx::Error) -> crate::Error {
    crate::Error::Db(DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(e))))
}
