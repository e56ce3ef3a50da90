//! Server-rendered pages (askama templates, htmx-boosted forms), one file
//! per area. Pages call the core like the API does and render its refusals
//! as messages ([`crate::web::error::message`]); forms carry the session's
//! CSRF token. Access is declared in [`crate::web::routes`] only.

pub mod assets;
pub mod gates;
pub mod home;
pub mod integrations;
pub mod session;
pub mod setup;
pub mod sso;
