//! Test harness: a fresh, migrated database per test on either backend.
//!
//! * SQLite: a file in a temp dir (real file, WAL, like production).
//! * PostgreSQL: a uuid-named database cloned from a template migrated once
//!   per schema fingerprint, dropped when the [`TestDb`] is dropped. The
//!   server is `VIGIL_TEST_DATABASE_URL` (a superuser/owner URL), else
//!   `postgres://postgres@127.0.0.1:5432/postgres` if it answers. The test
//!   command (`./test.sh`) starts a throwaway cluster when neither exists.
//!
//! The store a test gets is the serving pool, i.e. PostgreSQL sessions run
//! as the NOBYPASSRLS `vigil_app` role.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

use crate::store::{Backend, Store, StoreOptions};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL has a scheme");
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

/// The admin (superuser or database owner) URL of the test PostgreSQL.
pub fn pg_admin_url() -> String {
    std::env::var("VIGIL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

async fn admin_conn(url: &str) -> DatabaseConnection {
    let mut o = ConnectOptions::new(url.to_owned());
    o.max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(o).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL for tests is not reachable at {url}: {e}. Run ./test.sh (it starts one) \
             or set VIGIL_TEST_DATABASE_URL"
        )
    })
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,sqlx=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A migrated database that lives as long as this value.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    /// Owner URL of this database (for migrations, superuser checks, or a
    /// server process under test).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = StoreOptions::sqlite_file(&dir.path().join("vigil.sqlite3"));
        let store = Store::open(&opts).await.expect("migrate sqlite");
        Self {
            store,
            url: opts.url.clone(),
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres() -> Self {
        init_tracing();
        let admin_url = pg_admin_url();
        let name = Self::create_pg_database(&admin_url).await;
        let url = with_database(&admin_url, &name);
        let store = Store::connect(&StoreOptions::new(url.clone()))
            .await
            .expect("connect to test database");
        Self {
            store,
            url,
            _dir: None,
            pg: Some((admin_url, name)),
        }
    }

    /// Creates `vigil_test_<uuid>` from the template for this schema,
    /// migrating the template first if this is the first test to need it.
    pub async fn create_pg_database(admin_url: &str) -> String {
        let admin = admin_conn(admin_url).await;
        let template = format!("vigil_tpl_{}", vigil_migrations::SCHEMA_FINGERPRINT);
        // Serialise template creation across test processes.
        admin
            .execute_unprepared("SELECT pg_advisory_lock(7669676901)")
            .await
            .expect("advisory lock");
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT 1 AS one FROM pg_database WHERE datname = '{template}'"),
            ))
            .await
            .expect("query pg_database")
            .is_some();
        if !exists {
            let building = format!("{template}_building");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await
                .expect("drop");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {building}"))
                .await
                .expect("create template");
            Store::migrate(&StoreOptions::new(with_database(admin_url, &building)))
                .await
                .expect("migrate template");
            admin
                .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .await
                .expect("rename template");
        }
        admin
            .execute_unprepared("SELECT pg_advisory_unlock(7669676901)")
            .await
            .expect("advisory unlock");
        let name = format!("vigil_test_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("clone template");
        let _ = admin.close().await;
        name
    }

    /// Drops a database created by [`TestDb::create_pg_database`].
    pub fn drop_pg_database(admin_url: &str, name: &str) {
        let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
        // Drop may run during a panic or inside a runtime: use a thread with
        // its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = admin_conn(&admin_url).await;
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            });
        })
        .join();
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            Self::drop_pg_database(&admin, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
    }
}
