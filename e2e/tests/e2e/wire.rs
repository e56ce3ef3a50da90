//! Issue 13 over real connections to the real binary (`vigil demo` on
//! SQLite): every route × principal × hostile mutations answers (never a
//! dropped connection, never a 5xx), API refusals in the error shape;
//! requests malformed below HTTP semantics (a broken request line, huge
//! headers, a stalled request) leave the server serving; its memory stays
//! bounded across the sweep.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_e2e::{Server, http, line_after, run, vigil};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends raw bytes, returns what came back (maybe nothing) within 5 s.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hostile_requests_over_the_wire() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("demo starts");
    let out = server.stdout();
    let tenant = out
        .split("Demo tenant \"Demo SOC\" (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_owned();
    let mut tokens = Vec::new();
    for role in [
        "tenant_admin",
        "security_engineer",
        "analyst_edit",
        "analyst_read",
        "executive",
    ] {
        let mut c = vigil(cwd.path());
        c.args(["admin", "create-token", "--tenant", &tenant, "--role", role]);
        tokens.push(run(c).await.stdout.trim().to_owned());
    }
    // A person's session (analyst_edit: no second factor needed).
    let line = line_after(&out, "analyst_edit").unwrap();
    let password = line.split_whitespace().nth(1).unwrap().to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("email", "analyst-edit@demo.vigil.test"),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = {
        let page = client
            .get(server.url("/mfa"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .map(|v| v.split('"').next().unwrap().to_owned())
            .unwrap_or_default()
    };

    let rss_before = rss_kib(server.pid());
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, String)> = vec![
        (
            "application/json",
            "{\"title\": \"\\u0000\", \"name\": \"\\u0000\"}".into(),
        ),
        (
            "application/json",
            "{\"title\": 1e999, \"quorum\": -18446744073709551617}".into(),
        ),
        ("application/json", big),
        ("application/json", deep),
        ("application/json", "{\"a\":".into()),
        ("text/plain", "hello".into()),
        (
            "application/x-www-form-urlencoded",
            "csrf=x&email=%00&password=%FF&code=%00".into(),
        ),
    ];
    let (_, table) = vigil::web::routes();
    let mut routes: Vec<_> = table.keys().cloned().collect();
    routes.sort_by_key(|(m, p)| (p.to_string(), m.to_string()));
    let mut sent = 0;
    for (method, path) in routes {
        if path == "/logout" {
            continue;
        }
        for id in ["%00", "x", "00000000-0000-0000-0000-000000000000", "%E2%80%AE%FF"] {
            let p = ["{token}", "{id}", "{scope}", "{user_id}", "{integration_id}"]
                .iter()
                .fold(path.to_string(), |p, k| p.replace(k, id));
            let url = server.url(&format!("{p}?limit=99999999999999999999&offset=-1"));
            let principals = 2 + tokens.len();
            for who in 0..principals {
                let mut r = client.request(method.clone(), &url);
                r = match who {
                    0 => r,
                    1 => r.header("cookie", &cookie).header("x-csrf-token", &csrf),
                    n => r.bearer_auth(&tokens[n - 2]),
                };
                if method != axum::http::Method::GET {
                    let (ct, b) = &bodies[(sent + who) % bodies.len()];
                    r = r.header("content-type", *ct).body(b.clone());
                }
                let res = r
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {url}: the connection failed: {e}"));
                let status = res.status();
                let is_json = res
                    .headers()
                    .get("content-type")
                    .is_some_and(|c| c.to_str().unwrap().starts_with("application/json"));
                assert!(
                    res.headers().contains_key("x-content-type-options"),
                    "{method} {url}"
                );
                let body = res.text().await.unwrap();
                assert!(!status.is_server_error(), "{method} {url} → {status} {body}");
                if p.starts_with("/api/") && status.is_client_error() {
                    assert!(is_json, "{method} {url} → {status}: {body}");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    assert!(v["error"]["code"].is_string(), "{method} {url}: {body}");
                }
                sent += 1;
            }
            if !path.contains('{') {
                break;
            }
        }
    }
    assert!(sent > 1_000, "{sent}");

    // Below HTTP semantics: hyper refuses these itself; the server lives on.
    let addr = server.base.trim_start_matches("http://").to_owned();
    for bytes in [
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(2_000_000)).into_bytes(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
        b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n".to_vec(),
    ] {
        let answer = raw(&addr, &bytes).await;
        assert!(
            answer.is_empty() || (answer.starts_with("HTTP/1.1 ") && !answer.starts_with("HTTP/1.1 5")),
            "{:?} → {answer}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
        );
        assert_eq!(http().get(server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    }
    // A stalled request (headers never finished) does not hold the server.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    assert_eq!(
        http().get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    drop(stalled);

    // Memory: the sweep (megabyte bodies among them) leaves it bounded.
    let rss_after = rss_kib(server.pid());
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let (status, _, stderr) = server.terminate().await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
