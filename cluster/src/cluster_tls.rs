//! Mutual TLS between clients, the scheduler and executors: every connection is encrypted and both
//! ends show a certificate signed by the cluster's CA, so a stranger's executor cannot join and a
//! stranger's client cannot submit.
//!
//! **Why a TLS front rather than TLS in the servers.** Ballista 55 builds its servers itself: the
//! scheduler's gRPC and REST share one `axum::serve` on a plain listener, and the executor's gRPC
//! and Flight servers are started inside `start_executor_process`; neither takes a TLS config.
//! Ballista does let the embedding program rewrite every *outgoing* endpoint
//! (`override_create_grpc_client_endpoint`), which is how the clients here speak TLS. On the
//! serving side each process puts a rustls front on its public address and forwards decrypted
//! bytes to the Ballista server listening on 127.0.0.1. An executor keeps its port numbers (it
//! advertises the ports it binds), so with TLS its `--bind` must be a specific address and the
//! server itself binds the same ports on 127.0.0.1.
//!
//! **The credential is the client certificate.** A shared bearer token would have to be checked
//! in gRPC metadata, inside servers that offer no interceptor hook; a certificate signed by the
//! cluster CA is checked in the handshake instead, before a single gRPC byte is read, by the same
//! front. What TLS does not cover: a local user of a cluster host can still reach the plaintext
//! servers on 127.0.0.1, as with Spark's own RPC encryption.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ballista_core::extension::EndpointOverrideFn;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The cluster's certificate, key and CA, PEM files (`--cluster-cert`, `--cluster-key`,
/// `--cluster-ca`). One certificate may serve every process: it must name (SAN) each address the
/// others dial and allow both server and client authentication.
#[derive(Clone)]
pub struct ClusterTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
    files: [PathBuf; 3],
}

impl std::fmt::Debug for ClusterTls {
    /// The file names only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").field("cert", &self.files[0]).field("ca", &self.files[2]).finish_non_exhaustive()
    }
}

static PROCESS_TLS: OnceLock<ClusterTls> = OnceLock::new();

/// Unauthenticated handshakes a front runs at once.
const MAX_PENDING_HANDSHAKES: usize = 256;

impl ClusterTls {
    /// Reads and checks the three PEM files.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<Self> {
        let read = |p: &Path, what: &str| std::fs::read(p).with_context(|| format!("cannot read the cluster {what} {}", p.display()));
        let tls = Self {
            cert: read(cert, "certificate")?,
            key: read(key, "private key")?,
            ca: read(ca, "CA certificate")?,
            files: [cert.to_path_buf(), key.to_path_buf(), ca.to_path_buf()],
        };
        tls.server_config()?;
        tls.client_config()?;
        Ok(tls)
    }

    /// Makes `tls` this process's cluster TLS (first call wins): every session, scheduler and
    /// executor started afterwards uses it.
    pub fn install(tls: ClusterTls) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if PROCESS_TLS.set(tls).is_err() {
            tracing::debug!("cluster TLS was already configured; keeping the first");
        }
    }

    /// This process's cluster TLS, if any.
    pub fn current() -> Option<&'static ClusterTls> {
        PROCESS_TLS.get()
    }

    fn certs(&self, pem: &[u8], file: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", file.display()))?;
        if certs.is_empty() {
            bail!("{} holds no certificate", file.display());
        }
        Ok(certs)
    }

    fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.certs(&self.ca, &self.files[2])? {
            roots.add(cert).with_context(|| format!("{} is not a usable CA certificate", self.files[2].display()))?;
        }
        Ok(roots)
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .with_context(|| format!("{} is not a PEM private key", self.files[1].display()))?;
        Ok((self.certs(&self.cert, &self.files[0])?, key))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The fronts' config: this process's certificate, and a client certificate from the CA
    /// required of every peer. ALPN offers HTTP/2 (gRPC) and HTTP/1.1 (REST).
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), Self::provider())
            .build()
            .context("cannot build the client-certificate check")?;
        let (certs, key) = self.identity()?;
        let mut config = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .with_context(|| format!("{} and {} are not a certificate and its key", self.files[0].display(), self.files[1].display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A client config for plain HTTP/1.1 over TLS (the REST API).
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let (certs, key) = self.identity()?;
        let mut config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(certs, key)
            .context("cannot use the cluster certificate as a client certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Rewrites Ballista's outgoing `http://` endpoints to `https://` with this identity and CA.
    pub fn endpoint_override(&self) -> EndpointOverrideFn {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key));
        Arc::new(move |endpoint: tonic::transport::Endpoint| {
            let uri = endpoint.uri().to_string();
            let https = match uri.strip_prefix("http://") {
                Some(rest) => format!("https://{rest}"),
                None => uri,
            };
            // A new endpoint (tonic cannot change only the scheme): Ballista's client defaults again,
            // the shuffle windows included (64 MiB connection, 16 MiB stream).
            Ok(tonic::transport::Endpoint::from_shared(https)?
                .connect_timeout(Duration::from_secs(20))
                .tcp_nodelay(true)
                .tcp_keepalive(Some(Duration::from_secs(3600)))
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true)
                .initial_connection_window_size(Some(64 * 1024 * 1024))
                .initial_stream_window_size(Some(16 * 1024 * 1024))
                .tls_config(tls.clone())?)
        })
    }

    /// Accepts TLS connections on `listener` and forwards each, decrypted, to `inner` (a
    /// Ballista server on loopback). A peer without a certificate from the CA is dropped in the
    /// handshake, with a warning naming it.
    pub fn spawn_front(&self, listener: TcpListener, inner: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
        let acceptor = TlsAcceptor::from(Arc::new(self.server_config()?));
        // Handshakes not yet authenticated, at most: a peer without a certificate cannot hold more
        // than this many sockets (each for at most the 10 s handshake timeout).
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
        let public = listener.local_addr()?;
        tracing::info!(%public, %inner, "TLS front listening");
        Ok(tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(%public, error = %e, "TLS front: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, %public, "TLS front: {MAX_PENDING_HANDSHAKES} handshakes pending; connection dropped");
                    continue;
                };
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    drop(permit);
                    let mut tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::warn!(%peer, %public, error = %e, "TLS handshake refused"),
                        Err(_) => return tracing::warn!(%peer, %public, "TLS handshake timed out"),
                    };
                    let mut server = match TcpStream::connect(inner).await {
                        Ok(server) => server,
                        Err(e) => return tracing::warn!(%inner, error = %e, "TLS front: the server behind it is not answering"),
                    };
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        }))
    }
}

/// A plain HTTP/1.0 GET over TLS with the cluster identity (the scheduler's REST API behind its
/// front). Returns the body of a 200 answer.
pub fn https_get(tls: &ClusterTls, host: &str, port: u16, path: &str) -> std::result::Result<String, String> {
    use std::io::{Read, Write};
    let config = tls.client_config().map_err(|e| format!("{e:#}"))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("'{host}' is not a host name: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' resolves to no address"))?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| format!("TLS to {host}:{port}: {e}"))?;
    let mut response = Vec::new();
    // A peer that closes without close_notify still sent a whole HTTP/1.0 answer.
    if let Err(e) = stream.read_to_end(&mut response) {
        if response.is_empty() {
            return Err(format!("TLS to {host}:{port}: {e}"));
        }
    }
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("not an HTTP response from {host}:{port}"))?;
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        _ => Err(format!("HTTP status '{}' from {host}:{port}{path}", head.lines().next().unwrap_or_default())),
    }
}
