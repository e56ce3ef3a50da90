//! End-to-end harness: runs the real `vigil` binary (the one cargo built next
//! to this test, or `VIGIL_BIN`) as a child process and talks to it over HTTP.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod browser;
pub use vigil::sim;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};

/// Bound on how long a server may take to come up or go down before the
/// test gives up (a liveness bound, not a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `vigil` binary under test.
pub fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/vigil; a bench
    // binary sits beside it (target/<profile>/<bench>).
    let exe = std::env::current_exe().expect("current exe");
    let beside = exe.parent().map(|d| d.join("vigil")).filter(|b| b.exists());
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = beside.unwrap_or_else(|| profile_dir.join("vigil"));
    assert!(
        bin.exists(),
        "{} not built: run `cargo build --bin vigil` (./test.sh does)",
        bin.display()
    );
    bin
}

/// A `vigil` command in `cwd`, with no inherited VIGIL_* configuration.
pub fn vigil(cwd: &Path) -> Command {
    let mut c = Command::new(vigil_bin());
    c.current_dir(cwd).kill_on_drop(true).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VIGIL_") {
            c.env_remove(&k);
        }
    }
    c.env("NO_COLOR", "1");
    c
}

/// Output of a command that ran to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(mut cmd: Command) -> Finished {
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("command finished in time")
        .expect("spawn");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    output: Arc<Notify>,
    /// The readers of stdout and stderr; they end at EOF.
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

fn pump<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: R,
    buf: Arc<Mutex<String>>,
    mut ready: Option<oneshot::Sender<String>>,
    output: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("Vigil listening on ")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(addr.trim().to_owned());
            }
            {
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
            output.notify_waiters();
        }
    })
}

impl Server {
    /// Spawns `cmd` and waits until it prints its listening address.
    pub async fn start(mut cmd: Command) -> Result<Server, Finished> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vigil");
        let (stdout, stderr) = (
            Arc::new(Mutex::new(String::new())),
            Arc::new(Mutex::new(String::new())),
        );
        let (tx, rx) = oneshot::channel();
        let output = Arc::new(Notify::new());
        let pumps = [
            pump(
                child.stdout.take().unwrap(),
                stdout.clone(),
                Some(tx),
                output.clone(),
            ),
            pump(child.stderr.take().unwrap(), stderr.clone(), None, output.clone()),
        ];
        match tokio::time::timeout(PATIENCE, rx).await {
            Ok(Ok(base)) => Ok(Server {
                child,
                base,
                stdout,
                stderr,
                output,
                pumps: pumps.into(),
            }),
            _ => {
                let status = tokio::time::timeout(PATIENCE, child.wait())
                    .await
                    .expect("exit")
                    .expect("wait");
                // The pumps end at EOF, once the child has exited.
                for p in pumps {
                    let _ = tokio::time::timeout(PATIENCE, p).await;
                }
                Err(Finished {
                    status,
                    stdout: stdout.lock().unwrap().clone(),
                    stderr: stderr.lock().unwrap().clone(),
                })
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the server's stderr contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str) {
        let wait = async {
            loop {
                let notified = self.output.notified();
                if self.stderr().contains(needle) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("stderr never showed {needle:?}"));
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self) -> (ExitStatus, String, String) {
        kill(self.pid(), "TERM");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait");
        // Everything the process wrote before exiting: its last lines may
        // still be in the pipes when `wait` returns.
        for p in std::mem::take(&mut self.pumps) {
            let _ = tokio::time::timeout(PATIENCE, p).await;
        }
        (status, self.stdout(), self.stderr())
    }
}

/// Sends a signal with kill(1) (`unsafe_code` is forbidden in this workspace).
pub fn kill(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The line after `prefix` in `text`, trimmed.
pub fn line_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .map(str::trim)
}

/// A URL found in `text` containing `needle`.
pub fn find_url(text: &str, needle: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(needle))
        .map(str::to_owned)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A PostgreSQL cluster of the test's own (initdb in a temp dir, on a free
/// port), so a test may restart it without disturbing anyone else. As root
/// the server runs as the `postgres` user (or `nobody`).
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    uid: Option<String>,
}

impl PrivateCluster {
    fn cmd(&self, tool: &str) -> std::process::Command {
        let exe = self.bin.join(tool);
        match &self.uid {
            Some(u) => {
                let mut c = std::process::Command::new("setpriv");
                c.args([
                    format!("--reuid={u}"),
                    format!("--regid={u}"),
                    "--clear-groups".into(),
                    "--".into(),
                ])
                .arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        }
    }

    fn run(&self, mut c: std::process::Command) {
        let out = c.output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{:?}: {}{}",
            c,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (./test.sh installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let uid = root.then(|| {
            std::process::Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map_or_else(
                    || "65534".to_owned(),
                    |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
                )
        });
        if let Some(u) = &uid {
            let ok = std::process::Command::new("chown")
                .arg(u)
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let me = PrivateCluster { bin, dir, port, uid };
        let data = me.dir.path().join("data");
        let mut init = me.cmd("initdb");
        init.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        me.run(init);
        me.pg_ctl("start");
        me
    }

    fn pg_ctl(&self, action: &str) {
        let mut c = self.cmd("pg_ctl");
        c.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-m", "fast", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .arg(action);
        self.run(c);
    }

    /// Restarts the server (fast shutdown: open connections are cut).
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut c = self.cmd("pg_ctl");
        c.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

/// The latency of a bare single-row INSERT, each its own committed
/// transaction, offered open-loop at `rate` per second for `length` on the
/// database at `url` (its own table, dropped after): the floor under any
/// write path's latency on that database that day. Returns p50 and p99.
pub async fn single_insert_latency(
    url: &str,
    rate: u64,
    length: std::time::Duration,
) -> (std::time::Duration, std::time::Duration) {
    use sea_orm::ConnectionTrait;
    let owner = sea_orm::Database::connect(url).await.expect("connect");
    owner
        .execute_unprepared("CREATE TABLE bench_single (id TEXT PRIMARY KEY, raw TEXT NOT NULL)")
        .await
        .expect("create");
    let backend = owner.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "INSERT INTO bench_single (id, raw) VALUES ($1, $2)"
    } else {
        "INSERT INTO bench_single (id, raw) VALUES (?, ?)"
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = Vec::new();
    for _ in 0..(rate as u128 * length.as_millis() / 1000) {
        tick.tick().await;
        let db = owner.clone();
        pending.push(tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [uuid::Uuid::new_v4().to_string().into(), "{}".into()],
            ))
            .await
            .expect("insert");
            t0.elapsed()
        }));
    }
    let mut lat = Vec::with_capacity(pending.len());
    for p in pending {
        lat.push(p.await.expect("join"));
    }
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let out = (at(0.5), at(0.99));
    owner
        .execute_unprepared("DROP TABLE bench_single")
        .await
        .expect("drop");
    owner.close().await.expect("close");
    out
}

/// The batched-INSERT ceiling of the ingest benchmarks: `texts` INSERTed
/// `per_tx` rows per transaction into a bare two-column table
/// (`bench_ceiling`, created here) of the database at the owner URL `url`.
/// Returns rows/s.
pub async fn batched_insert_ceiling(url: &str, texts: &[String], per_tx: usize) -> f64 {
    use sea_orm::ConnectionTrait;
    let owner = sea_orm::Database::connect(url).await.expect("connect");
    owner
        .execute_unprepared("CREATE TABLE bench_ceiling (id TEXT PRIMARY KEY, raw TEXT NOT NULL)")
        .await
        .expect("create");
    let backend = owner.get_database_backend();
    let start = std::time::Instant::now();
    for chunk in texts.chunks(per_tx) {
        let tx = sea_orm::TransactionTrait::begin(&owner).await.expect("begin");
        let mut sql = String::from("INSERT INTO bench_ceiling (id, raw) VALUES ");
        let mut vals: Vec<sea_orm::Value> = vec![];
        for (k, t) in chunk.iter().enumerate() {
            if k > 0 {
                sql.push(',');
            }
            if backend == sea_orm::DbBackend::Postgres {
                sql.push_str(&format!("(${}, ${})", 2 * k + 1, 2 * k + 2));
            } else {
                sql.push_str("(?, ?)");
            }
            vals.push(uuid::Uuid::new_v4().to_string().into());
            vals.push(t.clone().into());
        }
        tx.execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, vals))
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
    let rate = texts.len() as f64 / start.elapsed().as_secs_f64();
    owner.close().await.expect("close");
    rate
}
