//! sea-orm entities, one per table. Tenant-owned tables carry `tenant_id`.

pub mod api_token;
pub mod audit_event;
pub mod membership;
pub mod password_token;
pub mod session;
pub mod tenant;
pub mod user;
