//! The `vigil` binary's library: CLI, configuration, start-up, the HTTP layer
//! (JSON API and server-rendered pages) and the glue to the core.
//!
//! The web layer holds no business rule: handlers parse, call
//! `vigil_orchestrator`, and render.

pub mod app;
pub mod audit;
pub mod authz;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod demo;
pub mod export;
pub mod sim;
pub mod tls;
pub mod web;

/// Start-up and CLI errors. Each displays as one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    DataDir(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        addr: std::net::SocketAddr,
        reason: String,
    },
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    Core(#[from] vigil_orchestrator::Error),
    #[error("{0}")]
    Io(String),
    /// `vigil audit verify` found a break.
    #[error("audit chain broken: {0}")]
    AuditBroken(String),
}
