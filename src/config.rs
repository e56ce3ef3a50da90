//! Configuration, layered: defaults → TOML file (`--config` / `VIGIL_CONFIG`)
//! → `VIGIL_*` environment → command-line flags. Secrets may also come from a
//! file (`database_url_file` / `VIGIL_DATABASE_URL_FILE`). Unknown keys in the
//! file are an error; the secret values never appear in `Debug` output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (plain HTTP unless `tls_cert` and `tls_key`
    /// are set: loopback or behind a TLS proxy).
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first): with `tls_key`, the port speaks
    /// TLS 1.3 only (re-read on SIGHUP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Allow TLS 1.2 beside 1.3 (for old clients).
    pub tls12: bool,
    /// Where the embedded database, the master key and the lock file live.
    pub data_dir: PathBuf,
    /// PostgreSQL URL (the schema owner); absent: SQLite in `data_dir`.
    pub database_url: Option<SecretString>,
    /// File holding the database URL (a `*_FILE` secret).
    pub database_url_file: Option<PathBuf>,
    /// Pool size of the serving connection pool.
    pub database_max_connections: u32,
    /// Master key file; absent: `data_dir/master.key`, created on first run.
    pub master_key_file: Option<PathBuf>,
    /// The master key being replaced, kept for opening old wrappings while
    /// `vigil admin rewrap-keys` moves everything to the current key.
    pub previous_master_key_file: Option<PathBuf>,
    /// Ed25519 key that signs audit checkpoints; absent: `audit-signing.key`
    /// beside the master key, created on first run.
    pub audit_key_file: Option<PathBuf>,
    /// Base URL used in links Vigil prints (bootstrap, password set).
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// tracing filter directives, e.g. `info` or `vigil=debug`.
    pub log_level: String,
    /// Sign-in attempts (password, second factor, SSO legs) per source
    /// address and minute; 0: unlimited.
    pub rate_sign_in_per_minute: u32,
    /// Failed API tokens, and failed webhook signatures, per source address
    /// and minute before it is refused for a while; 0: unlimited.
    pub rate_failures_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            tls12: false,
            data_dir: PathBuf::from("./vigil-data"),
            database_url: None,
            database_url_file: None,
            database_max_connections: 10,
            master_key_file: None,
            previous_master_key_file: None,
            audit_key_file: None,
            public_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            rate_sign_in_per_minute: 60,
            rate_failures_per_minute: 30,
        }
    }
}

/// Keys that may come from `VIGIL_*` variables (other `VIGIL_*` variables,
/// e.g. the test harness's, are not configuration).
const ENV_KEYS: &[&str] = &[
    "listen",
    "tls_cert",
    "tls_key",
    "tls12",
    "data_dir",
    "database_url",
    "database_url_file",
    "database_max_connections",
    "master_key_file",
    "previous_master_key_file",
    "audit_key_file",
    "public_url",
    "log_format",
    "log_level",
    "rate_sign_in_per_minute",
    "rate_failures_per_minute",
];

/// Values given as command-line flags (highest precedence).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls12: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Loads the layered configuration. `file` is the `--config` path (or
    /// `VIGIL_CONFIG`); a named file that cannot be read is an error.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, Error> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read config file {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
            fig = fig.merge(Toml::string(&text));
        }
        fig = fig
            .merge(Env::prefixed("VIGIL_").only(ENV_KEYS))
            .merge(Serialized::globals(overrides));
        let mut cfg: Config = fig.extract().map_err(|e| {
            let origin = file.map(|p| format!(" in {}", p.display())).unwrap_or_default();
            Error::Config(format!("invalid configuration{origin}: {}", describe(e)))
        })?;
        if let Some(path) = cfg.database_url_file.take() {
            // A flag or variable naming the URL itself wins over the file.
            if overrides.database_url.is_none() && std::env::var_os("VIGIL_DATABASE_URL").is_none() {
                let url = std::fs::read_to_string(&path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read database_url_file {}: {}",
                        path.display(),
                        io_reason(&e)
                    ))
                })?;
                cfg.database_url = Some(SecretString::from(url.trim().to_owned()));
            }
        }
        if cfg.database_max_connections == 0 {
            return Err(Error::Config(
                "database_max_connections must be at least 1".into(),
            ));
        }
        Ok(cfg)
    }

    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    pub fn audit_key_path(&self) -> PathBuf {
        self.audit_key_file.clone().unwrap_or_else(|| {
            let master = self.master_key_path();
            master
                .parent()
                .map(|d| d.join("audit-signing.key"))
                .unwrap_or_else(|| PathBuf::from("audit-signing.key"))
        })
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("vigil.sqlite3")
    }
}

/// figment's errors, one line each, naming the key.
fn describe(e: figment::Error) -> String {
    use figment::error::Kind;
    let all: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            match &e.kind {
                Kind::UnknownField(field, _) => {
                    format!("unknown key `{field}` (known keys: {})", ENV_KEYS.join(", "))
                }
                _ if key.is_empty() => one_line(&e.kind.to_string()),
                _ => format!("key `{key}`: {}", one_line(&e.kind.to_string())),
            }
        })
        .collect();
    all.join("; ")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An io::Error's reason without the "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest
        .split_once('/')
        .map(|(a, t)| (a, format!("/{t}")))
        .unwrap_or((rest, String::new()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(file: Option<&str>, o: &Overrides) -> Result<Config, String> {
        Config::load(file.map(Path::new), o).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_no_configuration() {
        Jail::expect_with(|_| {
            let c = load(None, &Overrides::default()).unwrap();
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(c.data_dir, PathBuf::from("./vigil-data"));
            assert!(c.database_url().is_none());
            assert_eq!(c.master_key_path(), PathBuf::from("./vigil-data/master.key"));
            Ok(())
        });
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "vigil.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\nlog_level = \"debug\"\n",
            )?;
            jail.set_env("VIGIL_DATA_DIR", "/from/env");
            jail.set_env("VIGIL_TEST_DATABASE_URL", "not configuration");
            let c = load(Some("vigil.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.data_dir, PathBuf::from("/from/env"));
            assert_eq!(c.log_level, "debug");
            let flags = Overrides {
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            };
            assert_eq!(
                load(Some("vigil.toml"), &flags).unwrap().data_dir,
                PathBuf::from("/from/flag")
            );
            Ok(())
        });
    }

    #[test]
    fn secrets_from_files_and_never_in_debug() {
        Jail::expect_with(|jail| {
            jail.create_file("db-url", "postgres://vigil:hunter2@db/vigil\n")?;
            jail.set_env("VIGIL_DATABASE_URL_FILE", "db-url");
            let c = load(None, &Overrides::default()).unwrap();
            assert_eq!(c.database_url(), Some("postgres://vigil:hunter2@db/vigil"));
            assert!(!format!("{c:?}").contains("hunter2"));
            jail.set_env("VIGIL_DATABASE_URL_FILE", "missing-file");
            assert!(
                load(None, &Overrides::default())
                    .unwrap_err()
                    .contains("cannot read database_url_file")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("unknown.toml", "listen = \"127.0.0.1:1\"\nlisten_port = 3\n")?;
            let e = load(Some("unknown.toml"), &Overrides::default()).unwrap_err();
            assert!(
                e.contains("unknown key `listen_port`") && e.contains("unknown.toml"),
                "{e}"
            );
            jail.create_file("broken.toml", "listen = [\n")?;
            assert!(
                load(Some("broken.toml"), &Overrides::default())
                    .unwrap_err()
                    .contains("invalid configuration")
            );
            jail.create_file("badaddr.toml", "listen = \"nowhere\"\n")?;
            assert!(
                load(Some("badaddr.toml"), &Overrides::default())
                    .unwrap_err()
                    .contains("listen")
            );
            let e = load(Some("nope.toml"), &Overrides::default()).unwrap_err();
            assert!(e.contains("cannot read config file nope.toml"), "{e}");
            assert!(!e.contains('\n'));
            Ok(())
        });
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x"), "sqlite://x");
    }
}
