//! The outside world: a tenant's integrations and their write scopes, the
//! outbox writer over the vendor clients (`vigil_integrations`), the pollers
//! that pull alerts, and outbound notifications.
//!
//! May use: the shared ground, `secrets` (credentials), `engine` (the
//! outbox, kill switches) and `pipeline` (storing pulled alerts).

pub mod connectors;
pub mod integrations;
pub mod notifications;
pub mod pollers;
