//! `backbeat serve` and `backbeat scheduler --flight-sql`: Arrow Flight SQL for Python, notebooks
//! and BI tools (the server is `backbeat_cluster::flight_sql`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use backbeat_cluster::flight_sql::{BearerToken, FlightSqlOptions, FlightSqlServer, TlsIdentity};
use backbeat_cluster::scheduler_process::{AbortOnDrop, BoundScheduler, SchedulerOptions};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_jobs::pipeline::Stop;
use clap::Args;
use tokio::sync::watch;

use crate::{LakeArgs, SessionArgs};

/// Authentication and TLS of a Flight SQL endpoint.
#[derive(Args, Clone)]
pub struct FlightAuthArgs {
    /// File holding the bearer token clients must send (required unless bound to loopback).
    #[arg(long, env = "BACKBEAT_FLIGHT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves grpc+tls:// with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl FlightAuthArgs {
    fn options(&self, bind: SocketAddr) -> Result<FlightSqlOptions> {
        // The token itself may also come from the environment, never from the command line (where
        // `ps` shows it to every user of the machine).
        let token = match (&self.token_file, std::env::var("BACKBEAT_FLIGHT_TOKEN")) {
            (Some(path), _) => Some(BearerToken::from_file(path)?),
            (None, Ok(secret)) if !secret.is_empty() => {
                Some(BearerToken::new(&secret).context("in BACKBEAT_FLIGHT_TOKEN")?)
            }
            _ => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsIdentity { cert: cert.clone(), key: key.clone() }),
            _ => None,
        };
        Ok(FlightSqlOptions { bind, token, tls })
    }
}

/// Arguments of `backbeat serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address for Flight SQL clients.
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    #[command(flatten)]
    auth: FlightAuthArgs,
    #[command(flatten)]
    session: SessionArgs,
}

/// Flight SQL beside a scheduler.
#[derive(Args)]
pub struct SchedulerFlightArgs {
    /// Also serve Flight SQL on this address (queries run on this scheduler's executors).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:50060", value_name = "ADDR")]
    flight_sql: Option<SocketAddr>,
    #[command(flatten)]
    auth: FlightAuthArgs,
    #[command(flatten)]
    lake: LakeArgs,
}

/// Runs `backbeat serve` until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs, stop: watch::Receiver<Stop>) -> Result<()> {
    let options = args.auth.options(args.bind)?;
    let session = Arc::new(args.session.connect().await?);
    let server = FlightSqlServer::start(session.clone(), options.clone()).await?;
    announce(&server, &options, &session);
    run_until_stopped(server, stop).await
}

/// Runs a scheduler, with Flight SQL beside it when asked.
pub async fn scheduler(bind: SocketAddr, options: SchedulerOptions, flight: SchedulerFlightArgs, stop: watch::Receiver<Stop>) -> Result<()> {
    let scheduler = BoundScheduler::bind_with(bind, &options).await?;
    // Job runs from the lake's history in /api/metrics, for a lake that is there (not created here).
    let _metrics = match crate::run_metrics::spawn(&flight.lake.lake) {
        Ok(task) => Some(AbortOnDrop(task)),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "job-run metrics are off");
            None
        }
    };
    let url = format!("df://{}", scheduler.local_addr());
    let Some(flight_bind) = flight.flight_sql else {
        let mut stop = stop;
        return tokio::select! {
            result = scheduler.serve() => result,
            _ = stop.wait_for(|s| *s != Stop::No) => Ok(()),
        };
    };
    let options = flight.auth.options(flight_bind)?;
    let lake = flight.lake.root()?;
    let scheduler = tokio::spawn(scheduler.serve());
    // The frontend is a client of its own scheduler, like `backbeat sql --cluster`.
    let session = Arc::new(BackbeatSession::connect_lake(ClusterTarget::Remote(url), lake).await?);
    let server = FlightSqlServer::start(session.clone(), options.clone()).await?;
    announce(&server, &options, &session);
    tokio::select! {
        result = scheduler => result.context("scheduler task panicked")?,
        result = run_until_stopped(server, stop) => result,
    }
}

fn announce(server: &FlightSqlServer, options: &FlightSqlOptions, session: &BackbeatSession) {
    let auth = if options.token.is_some() {
        ",\n                     db_kwargs={\"adbc.flight.sql.authorization_header\": \"Bearer \" + TOKEN}"
    } else {
        ""
    };
    eprintln!(
        "Flight SQL on {} (lake {}). From Python:\n  import adbc_driver_flightsql.dbapi as flight\n  conn = flight.connect(\"{}\"{auth})\n  conn.cursor().execute(\"SELECT 1\")",
        server.uri(),
        session.lake().lake_root(),
        server.uri(),
    );
}

async fn run_until_stopped(server: FlightSqlServer, mut stop: watch::Receiver<Stop>) -> Result<()> {
    // The first SIGTERM or Ctrl-C stops taking calls and lets running ones finish; a second one
    // stops waiting for them (main then drops the runtime, and the process exits).
    let _ = stop.wait_for(|s| *s != Stop::No).await;
    tokio::select! {
        result = server.shutdown() => result,
        _ = stop.wait_for(|s| *s == Stop::Cancel) => Ok(()),
    }
}

