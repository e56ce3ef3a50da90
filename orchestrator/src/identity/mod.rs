//! Who someone is and what they may do: accounts, tenants and memberships
//! (`accounts`, re-exported here), password login, sessions, TOTP and
//! recovery codes (`auth`), single sign-on state and provisioning (`sso`),
//! and the request guard's node-local cache (`authcache`).
//!
//! May use: the shared ground (`store`, `audit`, `ids`, `clock`, `error`,
//! `text`) and `secrets` (password hashing, sealing of TOTP and client
//! secrets). Knows nothing of the pipeline, the engine or the connectors.

pub mod accounts;
pub mod auth;
pub mod authcache;
pub mod deletion;
pub mod principal;
pub mod sso;

pub use accounts::*;
