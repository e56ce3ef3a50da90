//! Foundation benchmarks (BENCHMARKS.md): cold start of `vigil serve` to
//! `/readyz` 200 on SQLite, idle RSS, and `/healthz` requests/s — each next
//! to a plain axum hello-world measured in the same run on the same machine.
//!
//! Reproduce: `cargo build --release --bin vigil && cargo run --release -p vigil-e2e --bin bench-foundation`
//! (`bench-foundation hello` is the hello-world server it spawns.)

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const COLD_STARTS: usize = 15;
const LOAD_SECONDS: u64 = 5;
const CONNECTIONS: usize = 32;

fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().join("vigil");
    assert!(
        bin.exists(),
        "{} missing: cargo build --release --bin vigil",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Spawns a server and returns it once `url` answers 200, with the time taken.
async fn start(mut cmd: Command, url: &str) -> (Child, Duration) {
    let client = reqwest::Client::new();
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    let t0 = Instant::now();
    let child = cmd.spawn().unwrap();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return (child, t0.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn vigil_cmd(dir: &std::path::Path, port: u16) -> Command {
    let mut c = Command::new(vigil_bin());
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("VIGIL_LOG_LEVEL", "warn");
    c
}

fn hello_cmd(port: u16) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["hello", &port.to_string()]);
    c
}

/// Closed-loop load: CONNECTIONS clients, each sending requests back to back.
async fn load(url: &str) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    // Warm up the connections.
    for _ in 0..CONNECTIONS * 4 {
        client.get(url).send().await.unwrap();
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for _ in 0..CONNECTIONS {
        let (client, url, done, stop) = (client.clone(), url.to_owned(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(LOAD_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn hello(port: u16) {
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("hello") {
        return hello(args[2].parse().unwrap()).await;
    }

    // Cold start: a fresh data dir each time (creates the database, the
    // master key, and runs every migration).
    let (mut vigil_starts, mut hello_starts) = (Vec::new(), Vec::new());
    for _ in 0..COLD_STARTS {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (mut child, t) = start(
            vigil_cmd(&dir.path().join("data"), port),
            &format!("http://127.0.0.1:{port}/readyz"),
        )
        .await;
        vigil_starts.push(t);
        child.kill().await.unwrap();
        let port = free_port();
        let (mut child, t) = start(hello_cmd(port), &format!("http://127.0.0.1:{port}/healthz")).await;
        hello_starts.push(t);
        child.kill().await.unwrap();
    }

    // Idle RSS and throughput, one server at a time.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vurl = format!("http://127.0.0.1:{port}/healthz");
    let (mut vchild, _) = start(vigil_cmd(&dir.path().join("data"), port), &vurl).await;
    let vigil_rss = rss_kib(vchild.id().unwrap());
    let vigil_rps = load(&vurl).await;
    let vigil_rss_loaded = rss_kib(vchild.id().unwrap());
    vchild.kill().await.unwrap();

    let port = free_port();
    let hurl = format!("http://127.0.0.1:{port}/healthz");
    let (mut hchild, _) = start(hello_cmd(port), &hurl).await;
    let hello_rss = rss_kib(hchild.id().unwrap());
    let hello_rps = load(&hurl).await;
    hchild.kill().await.unwrap();

    let (vs, hs) = (median(vigil_starts.clone()), median(hello_starts));
    let max_start = vigil_starts.iter().max().unwrap();
    println!("| measure | vigil | axum hello-world (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| cold start → /readyz 200, SQLite, median of {COLD_STARTS} (max) | {:.1} ms ({:.1} ms) | {:.1} ms | {:.2}× | < 1000 ms |",
        vs.as_secs_f64() * 1e3,
        max_start.as_secs_f64() * 1e3,
        hs.as_secs_f64() * 1e3,
        vs.as_secs_f64() / hs.as_secs_f64()
    );
    println!(
        "| idle RSS after start (after load) | {:.1} MiB ({:.1} MiB) | {:.1} MiB | {:.2}× | < 50 MiB |",
        vigil_rss as f64 / 1024.0,
        vigil_rss_loaded as f64 / 1024.0,
        hello_rss as f64 / 1024.0,
        vigil_rss as f64 / hello_rss as f64
    );
    println!(
        "| /healthz requests/s, {CONNECTIONS} keep-alive connections, {LOAD_SECONDS} s | {vigil_rps:.0} | {hello_rps:.0} | {:.2} | ≥ 0.80 |",
        vigil_rps / hello_rps
    );
}
