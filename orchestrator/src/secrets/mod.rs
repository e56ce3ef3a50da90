//! Keys and secrets: random secrets, token hashes, Argon2id, the master key
//! and the `Kms` that wraps tenant data keys (`credentials`); integration
//! credentials sealed under those data keys (`vault`).
//!
//! May use: the shared ground only.

pub mod credentials;
pub mod vault;
