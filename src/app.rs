//! Start-up, the commands, and shutdown.
//!
//! `serve` binds the port first, then prepares the data directory, takes its
//! lock (SQLite), loads or creates the master key and migrates the database.
//! Any failure leaves nothing this run created behind (see [`DataDir`]).

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::identity::{self, BOOTSTRAP_LINK_TTL, LinkPurpose, PASSWORD_LINK_TTL};
use vigil_orchestrator::ids::Email;
use vigil_orchestrator::secrets::credentials::MasterKey;
use vigil_orchestrator::{Clock, Role, Store, StoreOptions, SystemClock, TenantId, secrets::vault};

use crate::cli::{AdminCommand, Cli, Command};
use crate::config::{Config, LogFormat, io_reason, redact_url};
use crate::datadir::DataDir;
use crate::web::{self, AppState};
use crate::{Error, demo};

pub async fn run(cli: Cli) -> Result<(), Error> {
    let cfg = Config::load(cli.global.config.as_deref(), &cli.overrides())?;
    init_logging(&cfg)?;
    match cli.command {
        Command::Serve(_) => serve(cfg, false).await,
        Command::Demo(_) => serve(cfg, true).await,
        Command::Migrate => {
            let opened = open(&cfg, false).await?;
            opened.store.close().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(cmd) => admin(cfg, cmd).await,
        Command::Audit(cmd) => crate::audit::run(cfg, cmd).await,
    }
}

fn init_logging(cfg: &Config) -> Result<(), Error> {
    use tracing_subscriber::EnvFilter;
    let directives = format!("{},sqlx=warn,sea_orm=warn,sea_orm_migration=warn", cfg.log_level);
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| Error::Config(format!("invalid log_level `{}`: {e}", cfg.log_level)))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// What a command needs from the local store.
pub(crate) struct Opened {
    pub(crate) dir: DataDir,
    pub(crate) store: Store,
    pub(crate) master_key: MasterKey,
    pub(crate) audit_key: vigil_orchestrator::audit::chain::SigningKey,
}

pub(crate) async fn open(cfg: &Config, exclusive: bool) -> Result<Opened, Error> {
    let mut dir = DataDir::prepare(&cfg.data_dir)?;
    let opts = match cfg.database_url() {
        Some(url) => {
            vigil_orchestrator::Backend::from_url(url).map_err(Error::Config)?;
            StoreOptions::new(url)
        }
        None => {
            if exclusive {
                dir.lock()?;
            }
            let path = cfg.sqlite_path();
            dir.create_private_file(&path)?;
            StoreOptions::sqlite_file(&path)
        }
    };
    let mut master_key = dir.master_key(&cfg.master_key_path(), cfg.master_key_file.is_some())?;
    if let Some(prev) = &cfg.previous_master_key_file {
        master_key = master_key.with_previous(dir.master_key(prev, true)?);
    }
    let audit_key = dir.audit_key(&cfg.audit_key_path(), cfg.audit_key_file.is_some())?;
    let mut opts = opts;
    opts.max_connections = cfg.database_max_connections;
    let store = Store::open(&opts).await.map_err(|e| {
        let reason = match e {
            vigil_orchestrator::Error::Db(db) => db.to_string(),
            other => other.to_string(),
        };
        Error::Database(format!(
            "cannot open database {}: {}",
            redact_url(&opts.url),
            reason.split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    })?;
    Ok(Opened {
        dir,
        store,
        master_key,
        audit_key,
    })
}

async fn serve(cfg: Config, demo: bool) -> Result<(), Error> {
    // Signal handlers first: a SIGTERM that arrives while starting must
    // still mean "drain and exit 0", never the default abrupt death.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Io(format!("cannot install the SIGTERM handler: {e}")))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::Listen {
            addr: cfg.listen,
            reason: io_reason(&e),
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    // TLS: the certificate and key are checked before anything else starts.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let files = crate::tls::Files {
                cert: cert.clone(),
                key: key.clone(),
                allow_tls12: cfg.tls12,
            };
            let (config, resolver) = crate::tls::server_config(&files, &SystemClock)?;
            Some((files, config, resolver))
        }
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "tls_cert and tls_key go together: set both, or neither for plain HTTP".into(),
            ));
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let Opened {
        mut dir,
        store,
        master_key,
        audit_key,
    } = open(&cfg, true).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_owned();

    // The demo's loopback CrowdStrike and Graylog live as long as the server.
    let mut _estate = None;
    if demo {
        let seeded = demo::seed(&store, clock.as_ref(), &master_key).await?;
        _estate = Some(demo::estate(&store, clock.as_ref(), &master_key, seeded.tenant.id).await?);
        print!("{}", seeded.render(&public_url));
    }
    if identity::bootstrap_needed(store.conn()).await? {
        let token = identity::issue_link(
            store.conn(),
            clock.as_ref(),
            LinkPurpose::Bootstrap,
            None,
            BOOTSTRAP_LINK_TTL,
        )
        .await?;
        println!(
            "First run: no platform admin exists yet. Open this one-time link (valid 24 h) to create one:"
        );
        println!("  {public_url}/setup/bootstrap/{token}");
    }
    dir.keep();

    let backend = store.backend();
    let authz = crate::authz::Authorizer::load().await?;
    let state = AppState::new(
        store.clone(),
        clock,
        public_url,
        master_key,
        authz,
        Default::default(),
    )
    .with_limits(web::limits::Quotas {
        sign_in_per_minute: cfg.rate_sign_in_per_minute,
        failures_per_minute: cfg.rate_failures_per_minute,
    })
    .with_audit_key(audit_key.public());
    let auth_cache_listener = state.spawn_auth_cache_listener();
    // Rate-limit refusals: one audit row per (kind, address) a minute.
    let limits_flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = state.limits.flush(&state.store, state.clock.as_ref()).await {
                    tracing::warn!(error = %e, "cannot audit rate-limit refusals");
                }
                state.limits.shrink();
            }
        })
    };
    println!("Vigil listening on {scheme}://{addr}");
    info!(%addr, ?backend, data_dir = %dir.path().display(), "vigil started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = vigil_orchestrator::connect::connectors::Connectors::new(
        store.clone(),
        state.master_key.clone(),
        state.clock.clone(),
    )?;
    let worker = tokio::spawn(engine_worker(
        store.clone(),
        state.clock.clone(),
        writer,
        stop_rx.clone(),
    ));
    let checkpointer = tokio::spawn(crate::audit::checkpointer(
        store.clone(),
        audit_key,
        state.clock.clone(),
        stop_rx,
    ));
    let app = web::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut hangup = None;
    let served = match tls {
        Some((files, config, resolver)) => {
            use axum::serve::ListenerExt;
            hangup = Some(crate::tls::reload_on_hangup(
                resolver,
                files,
                state.clock.clone(),
            )?);
            let listener = crate::tls::TlsListener::new(listener, config)
                .map_err(|e| Error::Io(e.to_string()))?
                .tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal(term))
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal(term))
                .await
        }
    }
    .map_err(|e| Error::Io(format!("server error: {e}")));
    if let Some(h) = hangup {
        h.abort();
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let _ = checkpointer.await;
    auth_cache_listener.abort();
    limits_flusher.abort();
    served?;
    store.close().await?;
    info!("vigil stopped");
    drop(dir);
    Ok(())
}

/// The engine's background work: due steps (claimed under a lease), approved
/// writes in the outbox (through the one guard), and escalation of
/// unanswered gates. On PostgreSQL, `LISTEN vigil_steps` wakes it as soon as
/// a step is due; polling every few seconds is the fallback (and the only
/// wake-up on SQLite). A failed round is logged and retried next round.
async fn engine_worker(
    store: Store,
    clock: Arc<dyn Clock>,
    writer: vigil_orchestrator::connect::connectors::Connectors,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use vigil_orchestrator::engine::{gates, outbox, steps};
    let worker = steps::Worker::new(format!(
        "{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    // The investigation's steps (a step of an unknown kind is
    // dead-lettered, visibly).
    let registry =
        vigil_orchestrator::pipeline::investigation::registry(steps::Registry::default(), writer.clone());
    let mut listener = listen(&store).await;
    // Retention runs at start and then hourly.
    let mut retention_due = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()).map_err(|e| e.to_string()),
                None => std::future::pending().await,
            }
        };
        let mut lost = false;
        tokio::select! {
            _ = tick.tick() => {}
            _ = store.work_announced() => {}
            r = notified => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
                    lost = true;
                }
            }
            _ = stop.changed() => return,
        }
        if lost {
            listener = None;
        } else if listener.is_none() {
            listener = listen(&store).await;
        }
        // Drain due steps (each round claims a batch).
        loop {
            match steps::run_once(&store, clock.as_ref(), &registry, &worker).await {
                Ok(r) if r.claimed() > 0 => info!(?r, "step round"),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "step round failed");
                    break;
                }
            }
        }
        // Approved writes, through the one guard, to the vendors.
        match outbox::run_due(&store, clock.as_ref(), &writer, 100).await {
            Ok(r) if r != outbox::RunReport::default() => info!(?r, "outbox round"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox round failed"),
        }
        // Signed notification webhooks (escalated gates, …).
        match vigil_orchestrator::connect::notifications::run_due(&writer, clock.as_ref(), 100).await {
            Ok(r) if r != vigil_orchestrator::connect::notifications::SendReport::default() => {
                info!(?r, "notification round")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "notification round failed"),
        }
        // Pollers whose schedule is due (CrowdStrike, Graylog).
        match vigil_orchestrator::connect::pollers::run_due(&writer, clock.as_ref(), 20).await {
            Ok(r) if r != vigil_orchestrator::connect::pollers::PollReport::default() => {
                info!(?r, "poll round")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "poll round failed"),
        }
        if std::time::Instant::now() >= retention_due {
            retention_due = std::time::Instant::now() + std::time::Duration::from_secs(3_600);
            match vigil_orchestrator::identity::deletion::run_due(&store, clock.as_ref()).await {
                Ok(done) if !done.is_empty() => info!(?done, "tenants deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "tenant deletion round failed"),
            }
            match vigil_orchestrator::pipeline::retention::run_all(&store, clock.as_ref()).await {
                Ok(d) if d != vigil_orchestrator::pipeline::retention::Deleted::default() => {
                    info!(?d, "retention run")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention run failed"),
            }
        }
        match gates::escalate_overdue(&store, clock.as_ref()).await {
            Ok(0) => {}
            Ok(n) => info!(escalated = n, "unanswered gates escalated"),
            Err(e) => tracing::warn!(error = %e, "gate escalation round failed"),
        }
    }
}

/// A `LISTEN vigil_steps` connection on PostgreSQL (None on SQLite, or when
/// it cannot be had right now: the worker then polls and tries again).
async fn listen(store: &Store) -> Option<sea_orm::sqlx::postgres::PgListener> {
    if store.backend() != vigil_orchestrator::Backend::Postgres {
        return None;
    }
    let pool = store.conn().get_postgres_connection_pool();
    let mut l = match sea_orm::sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "no LISTEN connection; polling");
            return None;
        }
    };
    match l.listen(vigil_orchestrator::engine::steps::NOTIFY_CHANNEL).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN failed; polling");
            None
        }
    }
}

/// SIGTERM or Ctrl-C: stop accepting, let in-flight requests finish.
async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    info!("shutdown requested; draining in-flight requests");
}

async fn admin(cfg: Config, cmd: AdminCommand) -> Result<(), Error> {
    let Opened {
        mut dir,
        store,
        master_key,
        ..
    } = open(&cfg, false).await?;
    dir.keep();
    let clock = SystemClock;
    let actor = Actor::cli();
    if let AdminCommand::ExportTenant { tenant, out } = &cmd {
        let exported = async {
            let tenant: TenantId = tenant.parse()?;
            crate::export::export_tenant(&store, &clock, &actor, tenant, out).await
        }
        .await;
        store.close().await?;
        let m = exported?;
        let tables = m["tables"].as_array().cloned().unwrap_or_default();
        let rows: u64 = tables.iter().filter_map(|x| x["rows"].as_u64()).sum();
        println!("{}: {rows} rows of {} tables", out.display(), tables.len());
        return Ok(());
    }
    let result = async {
        match cmd {
            AdminCommand::CreateTenant { name } => {
                let tx = store.begin_platform().await?;
                let t = identity::create_tenant(&tx, &clock, &actor, &name).await?;
                tx.commit().await?;
                println!("{}", t.id);
            }
            AdminCommand::CreateUser { tenant, email, role } => {
                let tenant: TenantId = tenant.parse()?;
                let role: Role = role.parse()?;
                let email = Email::parse(&email)?;
                let tx = store.begin_tenant(tenant).await?;
                let member = identity::add_member(&tx, &clock, &actor, &email, role).await?;
                let token = identity::issue_link(
                    &*tx,
                    &clock,
                    LinkPurpose::SetPassword,
                    Some(member.user_id),
                    PASSWORD_LINK_TTL,
                )
                .await?;
                tx.commit().await?;
                let base = cfg
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", cfg.listen))
                    .trim_end_matches('/')
                    .to_owned();
                println!("{base}/setup/password/{token}");
            }
            AdminCommand::ExportTenant { .. } => {}
            AdminCommand::RewrapKeys => {
                // Every tenant's data key and every TOTP secret, moved under
                // the current master key (each tenant in its own
                // transaction: the server keeps serving throughout).
                let mut tenants = 0;
                for t in identity::list_tenants(store.conn()).await? {
                    let tx = store.begin_tenant(t.id).await?;
                    if vault::rewrap_data_key(&tx, &master_key).await? {
                        tenants += 1;
                    }
                    tx.commit().await?;
                }
                let totp = vigil_orchestrator::identity::auth::reseal_totp(&store, &master_key).await?;
                let tx = store.begin_platform().await?;
                vigil_orchestrator::audit::record_platform(
                    &tx,
                    &clock,
                    &actor,
                    vigil_orchestrator::audit::Event {
                        action: "master_key.rewrap",
                        target: "installation".into(),
                        summary: serde_json::json!({"tenant_data_keys": tenants, "totp_secrets": totp}),
                    },
                )
                .await?;
                tx.commit().await?;
                println!("re-wrapped {tenants} tenant data keys and {totp} TOTP secrets under the current master key");
            }
            AdminCommand::CreateToken { tenant, role, name } => {
                let tenant: TenantId = tenant.parse()?;
                let role: Role = role.parse()?;
                let tx = store.begin_tenant(tenant).await?;
                let (_, token) = identity::issue_api_token(&tx, &clock, &actor, &name, role).await?;
                tx.commit().await?;
                println!("{token}");
            }
        }
        Ok::<(), vigil_orchestrator::Error>(())
    }
    .await;
    store.close().await?;
    Ok(result?)
}
