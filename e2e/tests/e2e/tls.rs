//! `vigil serve --tls-cert --tls-key` (issue 19): TLS 1.3 only unless
//! `--tls12`; TLS 1.0/1.1 and plain HTTP refused (the latter in the error
//! shape); HSTS and `Secure` cookies with TLS on; a stalled handshake holds
//! no one up; SIGHUP re-reads the certificate without dropping an open
//! connection (a broken pair is refused and the old one kept); a bad
//! certificate, a key that does not match, or an expired certificate is a
//! one-line start-up error. Certificates are made per test (rcgen); the
//! clients are rustls (reqwest, tokio-rustls) and OpenSSL's s_client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_e2e::{Server, line_after, run, vigil};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in
/// `dir` named `name.crt` / `name.key`; `expired` makes one that ended in 2021.
fn pair(dir: &Path, name: &str, expired: bool) -> (PathBuf, PathBuf, String) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.pem())
}

fn client(root_pem: &str, max: Option<reqwest::tls::Version>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    if let Some(v) = max {
        b = b.max_tls_version(v);
    }
    b.build().unwrap()
}

fn serve(dir: &Path, cert: &Path, key: &Path, extra: &[&str], demo: bool) -> tokio::process::Command {
    let mut cmd = vigil(dir);
    cmd.args([if demo { "demo" } else { "serve" }, "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(extra);
    cmd
}

/// A request on one TLS connection (kept open by the caller).
async fn get_on(conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, path: &str) -> String {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer on the open connection")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn connect(addr: &str, root_pem: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_tls13_reloads_on_sighup_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = pair(dir.path(), "a", false);
    let server = Server::start(serve(dir.path(), &cert, &key, &[], true))
        .await
        .expect("demo over TLS starts");
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    let addr = server.base.trim_start_matches("https://").to_owned();

    // TLS 1.3: health, HSTS; the session cookie is Secure.
    let c = client(&pem, None);
    let res = c.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000");
    let out = server.stdout();
    let password = line_after(&out, "analyst_edit")
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_owned();
    let res = c
        .post(server.url("/login"))
        .form(&[
            ("email", "analyst-edit@demo.vigil.test"),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // TLS 1.2 is refused unless allowed; 1.1 always (OpenSSL's client,
    // its own floor lowered so the server is the one that says no).
    let old = client(&pem, Some(reqwest::tls::Version::TLS_1_2));
    let e = old.get(server.url("/healthz")).send().await.unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    let s = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr,
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&s.stdout),
        String::from_utf8_lossy(&s.stderr)
    );
    assert!(!s.status.success(), "{said}");
    // The server answered the 1.1 hello with an alert (rustls: handshake
    // failure); no cipher was agreed.
    assert!(
        said.contains("alert handshake failure") || said.contains("alert protocol version"),
        "the server's alert: {said}"
    );
    assert!(said.contains("Cipher is (NONE)"), "{said}");

    // Plain HTTP on the TLS port: a clear refusal in the error shape.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut plain = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut plain))
        .await
        .unwrap()
        .unwrap();
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    assert!(plain.contains("\"code\":\"tls_required\""), "{plain}");

    // A client that stalls mid-handshake holds no one up.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled.write_all(&[22, 3, 1]).await.unwrap();
    for _ in 0..3 {
        let res = client(&pem, None)
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    // SIGHUP: a new pair for new handshakes; the open connection goes on.
    let mut open = connect(&addr, &pem).await;
    assert!(get_on(&mut open, "/healthz").await.starts_with("HTTP/1.1 200"));
    let (_, _, pem_b) = {
        let (c2, k2, p2) = pair(dir.path(), "b", false);
        std::fs::copy(&c2, &cert).unwrap();
        std::fs::copy(&k2, &key).unwrap();
        (c2, k2, p2)
    };
    vigil_e2e::kill(server.pid(), "HUP");
    server.wait_for_stderr("TLS certificate reloaded").await;
    let res = client(&pem_b, None)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "new handshakes present the new certificate");
    assert!(
        client(&pem, None)
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is no longer presented"
    );
    assert!(
        get_on(&mut open, "/healthz").await.starts_with("HTTP/1.1 200"),
        "the connection made before the reload still answers"
    );
    // A broken pair on SIGHUP: refused, the current one stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    vigil_e2e::kill(server.pid(), "HUP");
    server.wait_for_stderr("TLS certificate not reloaded").await;
    let res = client(&pem_b, None)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(stalled);
    assert!(server.terminate().await.0.success());
}

#[tokio::test]
async fn tls12_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = pair(dir.path(), "a", false);
    let server = Server::start(serve(dir.path(), &cert, &key, &["--tls12"], false))
        .await
        .expect("serve over TLS starts");
    let res = client(&pem, Some(reqwest::tls::Version::TLS_1_2))
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(server.terminate().await.0.success());
}

#[tokio::test]
async fn bad_certificates_are_one_line_start_up_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = pair(dir.path(), "good", false);
    let (_, other_key, _) = pair(dir.path(), "other", false);
    let (old_cert, old_key, _) = pair(dir.path(), "old", true);
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.crt");
    for (c, k, says) in [
        (&missing, &key, "cannot read the TLS certificate"),
        (&garbage, &key, "the TLS certificate"),
        (&empty, &key, "holds no certificate"),
        (&cert, &other_key, "does not match the certificate"),
        (&old_cert, &old_key, "expired on"),
    ] {
        let f = run(serve(dir.path(), c, k, &[], false)).await;
        assert!(!f.status.success(), "{says}: {f:?}");
        let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {:?}", f.stderr);
        assert!(lines[0].contains(says), "{says}: {}", lines[0]);
    }
    // Both or neither.
    let mut cmd = vigil(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("VIGIL_TLS_CERT", &cert);
    let f = run(cmd).await;
    assert!(!f.status.success());
    assert!(
        f.stderr.contains("tls_cert and tls_key go together"),
        "{}",
        f.stderr
    );
}
