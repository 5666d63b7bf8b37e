//! Arrow Flight SQL for data scientists: pandas, notebooks and BI tools query the lake through
//! ADBC or JDBC, planned by a [`BackbeatSession`] like every other backbeat query.
//!
//! Why our own service rather than Ballista's `ballista-flight-sql` or `datafusion-flight-sql-server`:
//! Ballista's frontend plans inside the scheduler's own session, which knows neither the lake
//! catalog nor the Delta write path nor `lake_sql`'s verbs (and it authenticates nobody by default);
//! `datafusion-flight-sql-server` 0.4.18, the newest, is built on DataFusion 54 and Arrow 58 (we are
//! on 55 and 59) and brings Substrait and federation crates along. arrow-flight's
//! `FlightSqlService` trait, which both of them implement, is already in our build through
//! Ballista, so the protocol costs us only the verbs, in [`service`].
//!
//! The server runs beside a session: `backbeat serve` starts an embedded cluster and serves it (a
//! laptop), `backbeat scheduler --flight-sql` serves the scheduler's cluster (rows stream from the
//! executors through the frontend, batch by batch), and `backbeat run script.py` serves a job
//! script for the length of its run on a loopback port with a one-time token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::session::BackbeatSession;

/// Bearer tokens: loading, the per-call check, and the refusal to serve the open network without one.
pub mod auth;
mod metadata;
/// The Flight SQL verbs on a session.
pub mod service;
mod statements;

pub use auth::BearerToken;

/// Largest message the server reads or writes. Results are sent in ~2 MiB Flight messages whatever
/// their size; this bounds what a client may send (bound parameters, DoPut batches).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct FlightSqlOptions {
    /// Address to listen on (port 0 picks a free one).
    pub bind: SocketAddr,
    /// The token every call must carry; required off loopback.
    pub token: Option<BearerToken>,
    /// Serve TLS with this identity.
    pub tls: Option<TlsIdentity>,
}

/// A running Flight SQL server.
pub struct FlightSqlServer {
    addr: SocketAddr,
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    written: Arc<AtomicU64>,
    task: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
}

impl FlightSqlServer {
    /// Binds and starts serving `session`; returns once the port is open.
    pub async fn start(session: Arc<BackbeatSession>, options: FlightSqlOptions) -> Result<Self> {
        auth::check_bind(options.bind, options.token.as_ref())?;
        let mut builder = Server::builder();
        if let Some(tls) = &options.tls {
            // rustls here is built with two crypto back ends and will not choose; tonic's server
            // config asks for the process default. Installing twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cert = std::fs::read(&tls.cert)
                .with_context(|| format!("cannot read TLS certificate {}", tls.cert.display()))?;
            let key = std::fs::read(&tls.key)
                .with_context(|| format!("cannot read TLS private key {}", tls.key.display()))?;
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .context("invalid TLS certificate or key")?;
        }
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .with_context(|| format!("cannot listen for Flight SQL on {} (is the port in use?)", options.bind))?;
        let addr = listener.local_addr()?;
        let written = Arc::new(AtomicU64::new(0));
        let service = service::BackbeatFlightSql::new(session, written.clone())?;
        let service = FlightServiceServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let service = InterceptedService::new(service, auth::TokenCheck(options.token.clone()));
        let (shutdown, stop) = oneshot::channel::<()>();
        let router = builder.add_service(service);
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stop.await;
                })
                .await
        });
        tracing::info!(%addr, tls = options.tls.is_some(), auth = options.token.is_some(), "Flight SQL listening");
        Ok(Self { addr, tls: options.tls.is_some(), shutdown: Some(shutdown), written, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URI clients connect to: `grpc://host:port`, or `grpc+tls://` with TLS.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "grpc+tls" } else { "grpc" };
        format!("{scheme}://{}", self.addr)
    }

    /// Rows written by the statements served so far (CTAS, INSERT, lake verbs).
    pub fn rows_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Serves until the server fails (it does not stop by itself).
    pub async fn wait(mut self) -> Result<()> {
        let task = &mut self.task;
        task.await.context("Flight SQL server task panicked")?.context("Flight SQL server failed")
    }

    /// Stops accepting calls, lets running ones finish, and returns.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = &mut self.task;
        task.await.context("Flight SQL server task panicked")?.context("Flight SQL server failed")
    }
}
