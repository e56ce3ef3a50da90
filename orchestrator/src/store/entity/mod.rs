//! sea-orm entities, one per table. Tenant-owned tables carry `tenant_id`.

pub mod alert;
pub mod api_token;
pub mod audit_event;
pub mod case;
pub mod case_alert;
pub mod case_entity;
pub mod credential;
pub mod draft;
pub mod gate;
pub mod gate_approval;
pub mod integration;
pub mod integration_scope;
pub mod integration_status;
pub mod ioc;
pub mod membership;
pub mod notification;
pub mod observable;
pub mod outbox;
pub mod password_token;
pub mod platform_control;
pub mod session;
pub mod step;
pub mod tenant;
pub mod tenant_control;
pub mod tenant_key;
pub mod user;
