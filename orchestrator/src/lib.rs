//! Vigil's core: domain types, persistence, and (as later issues land) the
//! durable workflow engine, gates, correlation, timelines, drafting and audit.
//!
//! This crate knows nothing about HTTP or HTML. Every query on a tenant-owned
//! table goes through a [`store::TenantTx`], which carries the [`TenantId`]
//! and, on PostgreSQL, sets `vigil.tenant_id` for row level security.

// The bounded contexts, one folder each (each folder's module doc says what
// it owns and what it may use) ...
pub mod connect;
pub mod engine;
pub mod identity;
pub mod pipeline;
pub mod secrets;

// ... on the shared ground.
pub mod audit;
pub mod clock;
pub mod error;
pub mod ids;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;

// The flat paths of before the folders, for the crates outside the core
// (the web layer, the tests, the fuzz targets) until they use the folder
// paths; code inside the core uses the folder paths.
pub use connect::{connectors, integrations, notifications, pollers};
pub use identity::{auth, authcache, sso};
pub use pipeline::{corpus, correlate, drafts, ingest, ingest_queue, iocs, observables, timeline};
pub use secrets::{credentials, vault};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use ids::{Role, TenantId, UserId};
pub use store::{Backend, PlatformTx, Store, StoreOptions, TenantTx};
