//! Vigil's core: domain types, persistence, and (as later issues land) the
//! durable workflow engine, gates, correlation, timelines, drafting and audit.
//!
//! This crate knows nothing about HTTP or HTML. Every query on a tenant-owned
//! table goes through a [`store::TenantTx`], which carries the [`TenantId`]
//! and, on PostgreSQL, sets `vigil.tenant_id` for row level security.

pub mod audit;
pub mod auth;
pub mod authcache;
pub mod clock;
pub mod connectors;
pub mod corpus;
pub mod correlate;
pub mod credentials;
pub mod drafts;
pub mod engine;
pub mod error;
pub mod identity;
pub mod ids;
pub mod ingest;
pub mod ingest_queue;
pub mod integrations;
pub mod iocs;
pub mod notifications;
pub mod observables;
pub mod pollers;
pub mod sso;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;
pub mod timeline;
pub mod vault;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use ids::{Role, TenantId, UserId};
pub use store::{Backend, PlatformTx, Store, StoreOptions, TenantTx};
