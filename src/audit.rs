//! `vigil audit …` and the server's checkpointer: the CLI side of the audit
//! chain (the chain itself is the core's `audit::chain`).

use std::sync::Arc;
use std::time::Duration;

use vigil_orchestrator::audit::{self, chain};
use vigil_orchestrator::{Clock, Store, SystemClock, TenantId};

use crate::Error;
use crate::cli::AuditCommand;
use crate::config::Config;
use crate::datadir::DataDir;

async fn open(cfg: &Config) -> Result<(Store, chain::SigningKey), Error> {
    let opened = crate::app::open(cfg, false).await?;
    let mut dir = opened.dir;
    dir.keep();
    Ok((opened.store, opened.audit_key))
}

/// How often the server looks for chain heads due a checkpoint.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// Signs due chain heads every [`CHECKPOINT_EVERY`] until `stop`, then signs
/// every head that moved (so a clean shutdown leaves nothing unsigned).
pub async fn checkpointer(
    store: Store,
    key: chain::SigningKey,
    clock: Arc<dyn Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let policy = chain::Policy::default();
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        match chain::checkpoint_all(&store, &key, clock.as_ref(), policy, force).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(signed = n, "audit checkpoints signed"),
            Err(e) => tracing::warn!(error = %e, "audit checkpoint round failed"),
        }
        if force {
            return;
        }
    }
}

/// A progress bar on a terminal (hidden otherwise).
fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

fn print_report(r: &chain::Report) {
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!("seq {a}..{b}"),
        _ => "no events".to_owned(),
    };
    let mut extra = Vec::new();
    if let Some(p) = r.pruned_before {
        extra.push(format!("pruned before seq {p} behind a signed checkpoint"));
    }
    if r.unchained > 0 {
        extra.push(format!(
            "{} events from before the chain (not verifiable)",
            r.unchained
        ));
    }
    if !r.key_checked {
        extra.push("checkpoints not checked: no key".to_owned());
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("; {}", extra.join("; "))
    };
    match &r.broken {
        None => println!(
            "{}: ok: {} events ({range}), {} signed checkpoints{extra}",
            r.chain, r.events, r.checkpoints
        ),
        Some(b) => println!("{}: BROKEN at {b}{extra}", r.chain),
    }
}

/// The installation's signing key, without opening the store.
fn signing_key(cfg: &Config) -> Result<chain::SigningKey, Error> {
    let mut dir = DataDir::prepare(&cfg.data_dir)?;
    let key = dir.audit_key(&cfg.audit_key_path(), cfg.audit_key_file.is_some())?;
    dir.keep();
    Ok(key)
}

/// `vigil audit verify|checkpoint|key`.
pub async fn run(cfg: Config, cmd: AuditCommand) -> Result<(), Error> {
    let clock = SystemClock;
    let policy = chain::Policy::default();
    match cmd {
        AuditCommand::Key => {
            let public = signing_key(&cfg)?.public();
            println!("{}", public.to_hex());
            eprintln!("key id {}", public.key_id());
            Ok(())
        }
        AuditCommand::Checkpoint => {
            let (store, key) = open(&cfg).await?;
            let n = chain::checkpoint_all(&store, &key, &clock, policy, true).await?;
            println!("{n} chain heads signed");
            store.close().await?;
            Ok(())
        }
        AuditCommand::Verify {
            tenant,
            platform,
            file,
            key,
        } => {
            let given = match key.as_deref() {
                Some(k) => {
                    Some(chain::PublicKey::from_hex(k).map_err(|e| Error::Config(format!("--key: {e}")))?)
                }
                None => None,
            };
            if let Some(path) = file {
                let public = match given {
                    Some(k) => k,
                    None => signing_key(&cfg)?.public(),
                };
                let f = std::fs::File::open(&path)
                    .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let pb = bar(len, "verifying export");
                let report = audit::export::verify(
                    std::io::BufReader::new(pb.wrap_read(f)),
                    Some(public),
                    Some(policy.max_unsigned()),
                )?;
                pb.finish_and_clear();
                print_report(&report);
                return broken(&[report]);
            }
            let (store, own) = open(&cfg).await?;
            let public = given.unwrap_or_else(|| own.public());
            let scopes = if let Some(t) = tenant {
                let id = uuid::Uuid::parse_str(t.trim())
                    .map_err(|_| Error::Config(format!("--tenant: {t:?} is not a tenant id")))?;
                vec![chain::Scope::Tenant(TenantId(id))]
            } else if platform {
                vec![chain::Scope::Platform]
            } else {
                chain::scopes(&store).await?
            };
            let mut reports = Vec::new();
            for scope in scopes {
                let pb = bar(0, &scope.chain().chars().take(24).collect::<String>());
                let report = chain::verify(
                    &store,
                    scope,
                    Some(public.clone()),
                    &clock,
                    policy,
                    &mut |done, total| {
                        pb.set_length(total);
                        pb.set_position(done);
                    },
                )
                .await?;
                pb.finish_and_clear();
                print_report(&report);
                reports.push(report);
            }
            store.close().await?;
            broken(&reports)
        }
    }
}

fn broken(reports: &[chain::Report]) -> Result<(), Error> {
    let bad: Vec<String> = reports
        .iter()
        .filter_map(|r| r.broken.as_ref().map(|b| format!("{} at {b}", r.chain)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::AuditBroken(bad.join("; ")))
    }
}
