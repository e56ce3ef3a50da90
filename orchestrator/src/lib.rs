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
pub mod canonical;
pub mod clock;
pub mod error;
pub mod ids;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;

// The types nearly every caller names.
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use ids::{Role, TenantId, UserId};
pub use store::{Backend, PlatformTx, Store, StoreOptions, TenantTx};
