//! Server-rendered pages (askama templates, htmx-boosted forms), one file
//! per area. Pages call the core like the API does and render its refusals
//! as messages ([`crate::web::error::message`]); forms carry the session's
//! CSRF token. Access is declared in [`crate::web::routes`] only; what
//! surrounds every page (navigation, kill-switch banner) is [`chrome`].

pub mod assets;
pub mod audit;
pub mod briefs;
pub mod cases;
pub mod chrome;
pub mod controls;
pub mod dashboard;
pub mod gates;
pub mod home;
pub mod integrations;
pub mod members;
pub mod people;
pub mod session;
pub mod settings;
pub mod setup;
pub mod sso;
pub mod sso_admin;
pub mod tuning;
