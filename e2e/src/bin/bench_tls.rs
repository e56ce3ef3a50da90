//! TLS cost (BENCHMARKS.md, issue 19): the real binary twice, `vigil demo`
//! over plain HTTP and over TLS 1.3 (`--tls-cert/--tls-key`, a certificate
//! made for the run), each on its own SQLite data dir on the same machine,
//! measured interleaved in the same run:
//! * `/healthz` and `GET /api/v1/cases` (an analyst's API token) requests/s
//!   with 8 concurrent clients on keep-alive connections, TLS as a ratio to
//!   plain HTTP;
//! * new connections/s (one request per connection): TLS handshakes/s, as
//!   a ratio to plain TCP connects.
//!
//! Each figure is the median of 3 interleaved rounds of 4 s.
//!
//! Reproduce: `cargo build --release -p vigil && cargo run --release -p vigil-e2e --bin bench-tls`
//! (the `vigil` binary from target/release; `VIGIL_BIN` overrides).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_e2e::{Server, line_after, run, vigil};

const CLIENTS: usize = 8;
const SECONDS: u64 = 4;
const ROUNDS: usize = 3;

async fn rate(client: reqwest::Client, url: String, token: Option<String>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token, done) = (client.clone(), url.clone(), token.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let mut req = client.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.unwrap();
                assert!(res.status().is_success(), "{url}: {}", res.status());
                res.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / SECONDS as f64
}

fn client(root: Option<&str>, keep_alive: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(30));
    if let Some(pem) = root {
        b = b
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .tls_built_in_root_certs(false);
    }
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

async fn start(dir: &std::path::Path, tls: Option<(&std::path::Path, &std::path::Path)>) -> (Server, String) {
    let mut cmd = vigil(dir);
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG_LEVEL", "warn");
    if let Some((c, k)) = tls {
        cmd.arg("--tls-cert").arg(c).arg("--tls-key").arg(k);
    }
    let server = Server::start(cmd).await.expect("demo starts");
    let out = server.stdout();
    let tenant = line_after(&out, "Demo tenant \"Demo SOC\" (")
        .and_then(|l| l.split(')').next())
        .unwrap()
        .to_owned();
    let mut c = vigil(dir);
    c.args([
        "admin",
        "create-token",
        "--tenant",
        &tenant,
        "--role",
        "analyst_read",
    ]);
    let token = run(c).await.stdout.trim().to_owned();
    (server, token)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let (plain_dir, tls_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cf, kf) = (tls_dir.path().join("c.pem"), tls_dir.path().join("k.pem"));
    std::fs::write(&cf, cert.pem()).unwrap();
    std::fs::write(&kf, key.serialize_pem()).unwrap();
    let (plain, plain_token) = start(plain_dir.path(), None).await;
    let (tls, tls_token) = start(tls_dir.path(), Some((&cf, &kf))).await;
    let pem = cert.pem();

    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("`/healthz`, keep-alive", vec![], vec![]),
        ("`GET /api/v1/cases`, keep-alive", vec![], vec![]),
        ("new connection per request (`/healthz`)", vec![], vec![]),
    ];
    for _ in 0..ROUNDS {
        for (i, (path, token, keep)) in [
            ("/healthz", false, true),
            ("/api/v1/cases?limit=25", true, true),
            ("/healthz", false, false),
        ]
        .into_iter()
        .enumerate()
        {
            let p = rate(
                client(None, keep),
                plain.url(path),
                token.then(|| plain_token.clone()),
            )
            .await;
            let t = rate(
                client(Some(&pem), keep),
                tls.url(path),
                token.then(|| tls_token.clone()),
            )
            .await;
            rows[i].1.push(p);
            rows[i].2.push(t);
        }
    }
    println!(
        "| {CLIENTS} clients, {SECONDS} s × {ROUNDS} rounds | plain HTTP req/s | TLS 1.3 req/s | ratio TLS / plain (median) | ratios of all rounds |"
    );
    println!("|---|---|---|---|---|");
    for (name, p, t) in rows {
        let ratios: Vec<String> = p.iter().zip(&t).map(|(p, t)| format!("{:.2}", t / p)).collect();
        let r = median(p.iter().zip(&t).map(|(p, t)| t / p).collect());
        println!(
            "| {name} | {:.0} | {:.0} | {r:.2} | {} |",
            median(p),
            median(t),
            ratios.join(", ")
        );
    }
    let _ = plain.terminate().await;
    let _ = tls.terminate().await;
}
