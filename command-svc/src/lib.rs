//! command-svc: the write side. gRPC `WorkflowCommandService`, `DefinitionCommandService` and
//! `SystemBoardCommandService` over the PostgreSQL event store, the outbox relay that publishes
//! committed events to their contexts' Kafka topics, and the process managers that run the
//! System Board's reactions.
#![forbid(unsafe_code)]

mod board;
mod handler;
pub mod reactions;
mod relay;
mod service;

use anyhow::Context;
use event_store::EventStore;
use messaging::KafkaSettings;
use platform::auth::GrpcAuth;
use platform::metrics::MetricsListener;
use platform::settings::{AuthSettings, MetricsSettings, TelemetrySettings};
use proto::systemboard::v1::system_board_command_service_server::{
    SystemBoardCommandServiceServer, SERVICE_NAME as BOARD_SERVICE_NAME,
};
use proto::workflow::v1::definition_command_service_server::{
    DefinitionCommandServiceServer, SERVICE_NAME as DEFINITION_SERVICE_NAME,
};
use proto::workflow::v1::workflow_command_service_server::{
    WorkflowCommandServiceServer, SERVICE_NAME,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use handler::{CommandContext, CommandHandler, HandleError};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "command-svc",
    version,
    about = "RingiFlow write side: gRPC commands, event store, outbox relay",
    // `command-svc migrate --event-store-url ...` as well as before the subcommand.
    mut_arg("event_store_url", |arg| arg.global(true)),
    mut_arg("log_format", |arg| arg.global(true)),
    mut_arg("topic", |arg| arg.default_value(workflow_domain::TOPIC).required(false)),
)]
pub struct Settings {
    /// gRPC listen address.
    #[arg(long, env = "RINGIFLOW_LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,
    /// PostgreSQL URL of the event store.
    #[arg(
        long,
        env = "RINGIFLOW_EVENT_STORE_URL",
        default_value = "postgres://ringiflow@127.0.0.1:55432/ringiflow_events",
        hide_env_values = true
    )]
    pub event_store_url: String,
    /// Connection pool size for the event store.
    #[arg(long, env = "RINGIFLOW_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// Milliseconds a statement may run before PostgreSQL cancels it, so that the work of a
    /// call the client gave up on stops in the database too; 0 for no limit.
    #[arg(
        long,
        env = "RINGIFLOW_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub database_statement_timeout_ms: u64,
    /// Run the outbox relay in this process (one replica leads at a time either way).
    #[arg(long, env = "RINGIFLOW_RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay_enabled: bool,
    /// Outbox rows the relay publishes per round.
    #[arg(long, env = "RINGIFLOW_RELAY_BATCH_SIZE", default_value_t = 500)]
    pub relay_batch_size: i64,
    /// Hours a published outbox row is kept before the leading relay deletes it.
    #[arg(long, env = "RINGIFLOW_OUTBOX_RETENTION_HOURS", default_value_t = 7 * 24)]
    pub outbox_retention_hours: u32,
    /// Snapshot an aggregate every this many events, so loading it reads the snapshot and the
    /// events after it; 0 disables snapshots.
    #[arg(long, env = "RINGIFLOW_SNAPSHOT_EVERY", default_value_t = 100)]
    pub snapshot_every: u32,
    /// Run the System Board's reactions (the process managers following the systems and
    /// vulnerabilities topics) in this process. Every replica may: they share a consumer group.
    #[arg(long, env = "RINGIFLOW_REACTIONS_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub reactions_enabled: bool,
    /// Appended to the reactions' process-manager names, and so to their consumer groups
    /// (`ringiflow.process.system-board-scans<suffix>`): to run a second, independent set of
    /// reactions against the same topics, as tests do. Empty in a deployment.
    #[arg(
        long,
        env = "RINGIFLOW_REACTIONS_GROUP_SUFFIX",
        default_value = "",
        hide = true
    )]
    pub reactions_group_suffix: String,
    /// URI schemes an attachment's storage URI may use, comma-separated.
    #[arg(
        long,
        env = "RINGIFLOW_ALLOWED_STORAGE_SCHEMES",
        value_delimiter = ',',
        default_value = "https,s3,gs",
        value_parser = storage_scheme
    )]
    pub allowed_storage_schemes: Vec<String>,
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// The System Board contexts' topics (the workflow's is `--kafka-topic`).
    #[command(flatten)]
    pub topics: messaging::ContextTopics,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
    #[command(flatten)]
    pub server: platform::settings::GrpcServerSettings,
    #[command(flatten)]
    pub metrics: MetricsSettings,
    /// Apply the event store's migrations at start. Off where a separate step runs
    /// `command-svc migrate` first (the Helm chart's hook Job), so replicas starting together
    /// never race on the schema; the service then only checks that it was done.
    #[arg(long, env = "RINGIFLOW_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// Without a subcommand the service serves until SIGTERM or SIGINT.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Apply the event store's pending migrations and exit (idempotent).
    Migrate,
}

/// The contexts whose commands this service handles.
pub const CONTEXTS: &[es_kernel::ContextRegistration] = &[
    workflow_domain::REGISTRATION,
    system_board::REGISTRATIONS[0],
    system_board::REGISTRATIONS[1],
    system_board::REGISTRATIONS[2],
];

/// The gRPC services this process serves, reported SERVING until shutdown.
const SERVICES: &[&str] = &[SERVICE_NAME, DEFINITION_SERVICE_NAME, BOARD_SERVICE_NAME];

/// `command-svc migrate`: brings the event store's schema up to date and returns.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&settings.event_store_url)
        .await
        .context("cannot connect to the event store")?;
    let store = EventStore::new(pool.clone(), CONTEXTS);
    store
        .migrate()
        .await
        .context("event store migrations failed")?;
    tracing::info!(
        migrations = event_store::MIGRATOR.iter().count(),
        "event store schema up to date"
    );
    pool.close().await;
    Ok(())
}

/// A URI scheme as RFC 3986 spells it, compared in lower case as attachments store it.
fn storage_scheme(raw: &str) -> Result<String, String> {
    let mut chars = raw.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if valid {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(format!("'{raw}' is not a URI scheme"))
    }
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    router: platform::grpc::GrpcRouter,
    health: tonic_health::server::HealthReporter,
    relay: Option<JoinHandle<()>>,
    reactions: Vec<JoinHandle<()>>,
    metrics: Option<MetricsListener>,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(&settings.event_store_url)
            .context("invalid event store URL")?
            .options([(
                "statement_timeout",
                format!("{}ms", settings.database_statement_timeout_ms),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.database_max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("cannot connect to the event store")?;
        let store = EventStore::new(pool.clone(), CONTEXTS);
        if settings.migrate_on_start {
            // On a connection of its own, without the statement timeout: a migration may
            // rightly take longer than any request.
            migrate(&settings).await?;
        } else {
            let pending = store
                .pending_migrations()
                .await
                .context("cannot read the event store's migrations")?;
            anyhow::ensure!(
                pending.is_empty(),
                "the event store lacks migrations {pending:?} and RINGIFLOW_MIGRATE_ON_START is false: run `command-svc migrate` first"
            );
        }

        // One producer for the relay and every process manager's dead letters: each producer
        // has broker connections and a polling thread of its own, and that thread alone used
        // about 1 % of a core while idle (BENCHMARKS.md).
        let producer: Option<rdkafka::producer::FutureProducer> = (settings.relay_enabled
            || settings.reactions_enabled)
            .then(|| messaging::producer_config(&settings.kafka).create())
            .transpose()
            .context("invalid kafka producer settings")?;
        let [systems, vulnerabilities, tasks] = &system_board::REGISTRATIONS;
        let relay = if let Some(producer) = producer.clone().filter(|_| settings.relay_enabled) {
            let relay = relay::Relay {
                store: store.clone(),
                routes: messaging::Routes::default()
                    .publish::<proto::WorkflowCodec>(
                        <workflow_domain::Workflow as es_kernel::Aggregate>::TYPE,
                        &settings.kafka.topic,
                    )
                    .publish::<proto::SystemCodec>(
                        <system_board::System as es_kernel::Aggregate>::TYPE,
                        settings.topics.topic(systems),
                    )
                    .publish::<proto::ScanCodec>(
                        <system_board::VulnerabilityScan as es_kernel::Aggregate>::TYPE,
                        settings.topics.topic(vulnerabilities),
                    )
                    .publish::<proto::TaskCodec>(
                        <system_board::Task as es_kernel::Aggregate>::TYPE,
                        settings.topics.topic(tasks),
                    ),
                dead_letters: messaging::dead_letter::DeadLetterProducer::with_producer(
                    producer.clone(),
                    &settings.kafka,
                ),
                producer,
                kafka: settings.kafka.clone(),
                batch_size: settings.relay_batch_size,
                outbox_retention: chrono::TimeDelta::hours(settings.outbox_retention_hours.into()),
            };
            Some(tokio::spawn(relay.run(shutdown.clone())))
        } else {
            None
        };

        let handler = CommandHandler::new(store).with_snapshot_every(settings.snapshot_every);
        let reactions = match producer.filter(|_| settings.reactions_enabled) {
            Some(producer) => spawn_reactions(&settings, &handler, &producer, &shutdown),
            None => Vec::new(),
        };
        let auth = GrpcAuth(Arc::new(settings.auth.jwt()?));
        let (router, health) =
            platform::grpc::router(SERVICES, &[proto::FILE_DESCRIPTOR_SET], &settings.server)
                .await?;
        let router = router
            .add_service(WorkflowCommandServiceServer::with_interceptor(
                service::CommandService::new(
                    handler.clone(),
                    settings.allowed_storage_schemes.clone(),
                ),
                auth.clone(),
            ))
            .add_service(DefinitionCommandServiceServer::with_interceptor(
                service::DefinitionService::new(handler.clone()),
                auth.clone(),
            ))
            .add_service(SystemBoardCommandServiceServer::with_interceptor(
                board::BoardCommandService::new(handler),
                auth,
            ));
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let metrics = settings.metrics.listener().await?;
        tracing::info!(
            port,
            relay = settings.relay_enabled,
            reactions = settings.reactions_enabled,
            "command-svc ready"
        );
        Ok(Self {
            listener,
            port,
            router,
            health,
            relay,
            reactions,
            metrics,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where `/metrics` is served, when `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsListener::address)
    }

    /// Serves until the shutdown token is cancelled, then lets in-flight commands, the relay's
    /// current round and the reactions' current commands finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.shutdown.clone()));
        }
        platform::grpc::serve(
            self.router,
            self.health,
            SERVICES,
            self.listener,
            self.shutdown,
        )
        .await?;
        if let Some(relay) = self.relay {
            relay.await.context("relay task failed")?;
        }
        for reactions in self.reactions {
            reactions.await.context("reactions task failed")?;
        }
        Ok(())
    }
}

/// Starts the System Board's process managers: scans for new systems and package lists, tasks
/// and alerts for new scans and critical findings. Each runs its commands through `handler`.
fn spawn_reactions(
    settings: &Settings,
    handler: &CommandHandler,
    producer: &rdkafka::producer::FutureProducer,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let [systems, vulnerabilities, _] = &system_board::REGISTRATIONS;
    let dispatch = reactions::BoardDispatch {
        handler: handler.clone(),
    };
    let following = |context: &es_kernel::ContextRegistration| {
        settings.topics.settings(&settings.kafka, context)
    };
    let name = |base: &str| format!("{base}{}", settings.reactions_group_suffix);
    vec![
        spawn_process(
            process_manager::ProcessManager {
                name: name(reactions::SCANS_PROCESS),
                reactor: reactions::SystemReactions,
                dispatch: dispatch.clone(),
                kafka: following(systems),
                producer: producer.clone(),
            },
            shutdown,
        ),
        spawn_process(
            process_manager::ProcessManager {
                name: name(reactions::TASKS_PROCESS),
                reactor: reactions::ScanReactions,
                dispatch,
                kafka: following(vulnerabilities),
                producer: producer.clone(),
            },
            shutdown,
        ),
    ]
}

fn spawn_process<R, D>(
    process: process_manager::ProcessManager<R, D>,
    shutdown: &CancellationToken,
) -> JoinHandle<()>
where
    R: process_manager::Reactor,
    D: process_manager::Dispatch<R::Reaction>,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let name = process.name.clone();
        match process.run(shutdown).await {
            process_manager::Stopped::Shutdown => {
                tracing::info!(process = %name, "reactions stopped")
            }
            process_manager::Stopped::Kafka(error) => {
                tracing::error!(process = %name, error = %error, "reactions cannot follow their topic")
            }
        }
    })
}
