//! query-svc: `ringiflow.workflow.v1.WorkflowQueryService` and
//! `ringiflow.systemboard.v1.SystemBoardQueryService` over the read database, and over the event
//! store for workflow histories and the board's causal chains only. Every answer is limited to
//! the caller's tenant.
#![forbid(unsafe_code)]

mod board;
mod convert;
mod service;
mod watch;

use anyhow::Context;
use event_store::EventStore;
use platform::auth::GrpcAuth;
use platform::grpc::GrpcRouter;
use platform::settings::{AuthSettings, TelemetrySettings};
use proto::systemboard::v1::system_board_query_service_server::{
    self, SystemBoardQueryServiceServer,
};
use proto::workflow::v1::workflow_query_service_server::{self, WorkflowQueryServiceServer};
use read_model::freshness::Freshness;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

/// Reported SERVING through grpc.health.v1 while the server runs.
const SERVICES: &[&str] = &[
    workflow_query_service_server::SERVICE_NAME,
    system_board_query_service_server::SERVICE_NAME,
];

/// Pooled connections to the event store, which only histories and causal chains read. The gateway prices a
/// history accordingly, so one request cannot queue many of them.
const EVENT_STORE_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "query-svc",
    version,
    about = "RingiFlow read side: gRPC queries over the read model",
    // `query-svc migrate --read-database-url ...` as well as before the subcommand.
    mut_arg("read_database_url", |arg| arg.global(true)),
    mut_arg("log_format", |arg| arg.global(true)),
)]
pub struct Settings {
    /// Address the gRPC server listens on; port 0 picks a free port.
    #[arg(long, env = "RINGIFLOW_LISTEN_ADDR", default_value = "0.0.0.0:50052")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub database: read_model::DatabaseSettings,
    /// PostgreSQL URL of the event store, read (only) for workflow histories and causal chains.
    #[arg(
        long,
        env = "RINGIFLOW_EVENT_STORE_URL",
        default_value = "postgres://ringiflow@127.0.0.1:55432/ringiflow_events",
        hide_env_values = true
    )]
    pub event_store_url: String,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
    #[command(flatten)]
    pub server: platform::settings::GrpcServerSettings,
    #[command(flatten)]
    pub metrics: platform::settings::MetricsSettings,
    /// Without a subcommand the service serves until SIGTERM or SIGINT.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Apply the read database's pending migrations and exit (idempotent).
    Migrate,
}

/// `query-svc migrate`: brings the read database's schema up to date and returns.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = settings.database.connect_migrated().await?;
    tracing::info!(
        migrations = read_model::MIGRATOR.iter().count(),
        "read database schema up to date"
    );
    pool.close().await;
    Ok(())
}

/// A built, bound, not yet serving query service.
pub struct Application {
    router: GrpcRouter,
    reporter: HealthReporter,
    listener: TcpListener,
    port: u16,
    pool: PgPool,
    metrics: Option<platform::metrics::MetricsListener>,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects to the read database, brings its schema up to date and binds the listener.
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let pool = settings.database.connect_ready().await?;
        let freshness = Freshness::listen(&pool)
            .await
            .context("cannot listen for read-model notifications")?;
        // Lazy and small: histories are occasional reads, and the service must start (and
        // answer everything else) while the event store is away. Its statements time out like
        // the read database's.
        let events = EventStore::new(
            settings
                .database
                .pool_options(EVENT_STORE_CONNECTIONS)
                .connect_lazy_with(
                    settings
                        .database
                        .connect_options(&settings.event_store_url)
                        .context("invalid event store url")?,
                ),
            &[
                workflow_domain::REGISTRATION,
                system_board::REGISTRATIONS[0],
                system_board::REGISTRATIONS[1],
                system_board::REGISTRATIONS[2],
            ],
        );
        let changes = watch::ChangeFeed::listen(pool.clone(), shutdown.clone())
            .await
            .context("cannot listen for the change feed")?;
        let (router, reporter) =
            platform::grpc::router(SERVICES, &[proto::FILE_DESCRIPTOR_SET], &settings.server)
                .await?;
        let auth = GrpcAuth(Arc::new(settings.auth.jwt()?));
        let board = SystemBoardQueryServiceServer::with_interceptor(
            board::BoardQueryService::new(pool.clone(), events.clone()),
            auth.clone(),
        );
        let queries = WorkflowQueryServiceServer::with_interceptor(
            service::QueryService::new(pool.clone(), freshness, events, changes),
            auth,
        );
        let router = router.add_service(queries).add_service(board);
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let metrics = settings.metrics.listener().await?;
        Ok(Self {
            router,
            reporter,
            listener,
            port,
            pool,
            metrics,
            shutdown,
        })
    }

    /// The port actually bound (useful when configured with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where `/metrics` is served, when `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .map(platform::metrics::MetricsListener::address)
    }

    /// Serves until the shutdown token is cancelled and in-flight calls have finished.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "query-svc serving");
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.shutdown.clone()));
        }
        let served = platform::grpc::serve(
            self.router,
            self.reporter,
            SERVICES,
            self.listener,
            self.shutdown,
        )
        .await;
        self.pool.close().await;
        served
    }
}
