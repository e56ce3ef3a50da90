//! The command line of PRODUCT.md ("CLI").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Human-in-the-loop security investigation orchestrator"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, so `admin` acts on the store `serve` uses.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory (SQLite database, master key) [env: VIGIL_DATA_DIR] [default: ./vigil-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of the embedded SQLite [env: VIGIL_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// TOML configuration file
    #[arg(long, global = true, value_name = "FILE", env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format [env: VIGIL_LOG_FORMAT]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: VIGIL_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS (TLS 1.3) with this PEM certificate chain, leaf first; re-read on SIGHUP [env: VIGIL_TLS_CERT]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert [env: VIGIL_TLS_KEY]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Allow TLS 1.2 beside 1.3 [env: VIGIL_TLS12]
    #[arg(long)]
    pub tls12: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Serve with a demo tenant, one user per role, and sample data
    Demo(ServeArgs),
    /// Operator commands on the local store
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit chain: verify it, sign its heads, print the public key
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify audit chains (every chain of the store, one tenant's, the
    /// platform's, or an export file); names the first broken sequence
    /// number and why, and exits non-zero on any break
    Verify {
        /// Only this tenant's chain
        #[arg(long, conflicts_with_all = ["platform", "file"])]
        tenant: Option<String>,
        /// Only the platform chain
        #[arg(long, conflicts_with = "file")]
        platform: bool,
        /// A JSON Lines export (GET /api/v1/audit/export?format=jsonl) instead of the store
        #[arg(long, value_name = "EXPORT.jsonl")]
        file: Option<std::path::PathBuf>,
        /// The checkpoint public key (hex, from `vigil audit key`); default:
        /// the key of this installation's audit signing key file
        #[arg(long, value_name = "PUBKEY")]
        key: Option<String>,
    },
    /// Sign the head of every chain that moved since its last checkpoint, now
    Checkpoint,
    /// Print the checkpoint public key (hex) and its id, for auditors
    Key,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a tenant; prints its id
    CreateTenant {
        /// Tenant name (unique)
        name: String,
    },
    /// Create a user in a tenant; prints a one-time password-set link
    CreateUser {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// tenant_admin | security_engineer | analyst_edit | analyst_read | executive
        #[arg(long)]
        role: String,
    },
    /// After a master-key rotation (new key as `master_key_file`, old one as
    /// `previous_master_key_file`): re-wrap every tenant data key and TOTP
    /// secret under the new key, online
    RewrapKeys,
    /// Every row a tenant owns as one tar archive: a JSON Lines file per
    /// table and manifest.json with row counts and SHA-256 per file
    ExportTenant {
        #[arg(long)]
        tenant: String,
        /// The archive to write (must not exist)
        #[arg(long, value_name = "FILE.tar")]
        out: std::path::PathBuf,
    },
    /// Issue an API token for a service account; prints the token once
    CreateToken {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        let serve = match &self.command {
            Command::Serve(a) | Command::Demo(a) => Some(a),
            _ => None,
        };
        Overrides {
            listen: serve.and_then(|a| a.listen),
            tls_cert: serve.and_then(|a| a.tls_cert.clone()),
            tls_key: serve.and_then(|a| a.tls_key.clone()),
            tls12: serve.and_then(|a| a.tls12.then_some(true)),
            data_dir: self.global.data_dir.clone(),
            database_url: self.global.database_url.clone(),
            log_format: self.global.log_format,
        }
    }
}
