//! TLS termination: `vigil serve --tls-cert FILE --tls-key FILE` (or
//! `tls_cert`/`tls_key`, `VIGIL_TLS_CERT`/`VIGIL_TLS_KEY`) speaks TLS 1.3
//! with rustls (TLS 1.2 too only with `--tls12`; 1.0 and 1.1 never).
//!
//! * The certificate and key are checked at start-up: readable PEM, the
//!   key matching the certificate, the certificate valid now. Each problem
//!   is a one-line start-up error.
//! * `SIGHUP` re-reads both files: new handshakes use the new pair, open
//!   connections keep theirs; a pair that fails the checks is logged and
//!   the old one kept.
//! * Handshakes run in their own tasks with a deadline, so a client that
//!   stalls mid-handshake holds nothing but its own task; a plain-HTTP
//!   request on the TLS port gets a clear refusal in the API's error shape.
//! * With TLS on, the public URL is `https://…`: cookies are `Secure` and
//!   pages send HSTS (the web layer keys both on the public URL).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};
use vigil_orchestrator::Clock;

use crate::Error;

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Where the certificate and key are read from, and whether TLS 1.2 is
/// allowed beside 1.3.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub allow_tls12: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the pair: PEM certificates (the leaf first), a PEM
/// private key that matches the leaf, and the leaf valid at `clock`'s now.
pub fn load(files: &Files, clock: &dyn Clock) -> Result<CertifiedKey, Error> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| {
            Error::Config(format!(
                "cannot read the TLS certificate {}: {e}",
                shown(&files.cert)
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "the TLS certificate {} is not PEM: {e}",
                shown(&files.cert)
            ))
        })?;
    let Some(leaf) = certs.first() else {
        return Err(Error::Config(format!(
            "the TLS certificate file {} holds no certificate",
            shown(&files.cert)
        )));
    };
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| Error::Config(format!("cannot read the TLS key {}: {e}", shown(&files.key))))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Config(format!("the TLS key {} is not usable: {e}", shown(&files.key))))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        Error::Config(format!(
            "the TLS certificate {} cannot be parsed: {e}",
            shown(&files.cert)
        ))
    })?;
    let now = clock.now().timestamp();
    let validity = parsed.validity();
    if now > validity.not_after.timestamp() {
        return Err(Error::Config(format!(
            "the TLS certificate {} expired on {}",
            shown(&files.cert),
            validity.not_after
        )));
    }
    if now < validity.not_before.timestamp() {
        return Err(Error::Config(format!(
            "the TLS certificate {} is not valid before {}",
            shown(&files.cert),
            validity.not_before
        )));
    }
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|_| {
        Error::Config(format!(
            "the TLS key {} does not match the certificate {}",
            shown(&files.key),
            shown(&files.cert)
        ))
    })?;
    Ok(ck)
}

/// The current certificate, swapped on reload.
#[derive(Debug)]
pub struct Reloading(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

impl Reloading {
    /// Reads the files again; on success new handshakes use the new pair.
    pub fn reload(&self, files: &Files, clock: &dyn Clock) -> Result<(), Error> {
        let ck = load(files, clock)?;
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ck);
        Ok(())
    }
}

/// The server's TLS configuration over a reloadable certificate.
pub fn server_config(files: &Files, clock: &dyn Clock) -> Result<(Arc<ServerConfig>, Arc<Reloading>), Error> {
    let resolver = Arc::new(Reloading(RwLock::new(Arc::new(load(files, clock)?))));
    let versions: &[&'static rustls::SupportedProtocolVersion] = if files.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), resolver))
}

/// A TLS listener for `axum::serve`: TCP connections are accepted and
/// handshaken in their own tasks (each within [`HANDSHAKE_DEADLINE`]);
/// finished ones are handed over in arrival order.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// What a plain-HTTP request on the TLS port gets.
fn refusal(local: SocketAddr) -> String {
    let body = format!(
        "{{\"error\":{{\"code\":\"tls_required\",\"message\":\"this port speaks HTTPS only: use https://{local}/\"}}}}"
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(256);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait, then go on.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let shake = async {
                        // A TLS connection opens with a handshake record (22).
                        let mut first = [0u8; 1];
                        match stream.peek(&mut first).await {
                            Ok(1) if first[0] == 22 => {}
                            Ok(1) => {
                                let mut s = stream;
                                let _ = s.write_all(refusal(local).as_bytes()).await;
                                let _ = s.shutdown().await;
                                return None;
                            }
                            _ => return None,
                        }
                        acceptor.accept(stream).await.ok()
                    };
                    if let Ok(Some(tls)) = tokio::time::timeout(HANDSHAKE_DEADLINE, shake).await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            acceptor: task,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Re-reads the pair on every SIGHUP until the task is aborted.
pub fn reload_on_hangup(
    resolver: Arc<Reloading>,
    files: Files,
    clock: Arc<dyn Clock>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::Io(format!("cannot install the SIGHUP handler: {e}")))?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match resolver.reload(&files, clock.as_ref()) {
                Ok(()) => info!(cert = %files.cert.display(), "TLS certificate reloaded"),
                Err(e) => warn!(error = %e, "TLS certificate not reloaded; the previous one stays"),
            }
        }
    }))
}
