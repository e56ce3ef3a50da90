//! Vigil's connectors: permission manifests, vendor clients, and the inputs of
//! the write guard. This crate never touches the database. (Connectors land
//! with the Integrations issue.)
