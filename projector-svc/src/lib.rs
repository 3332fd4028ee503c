//! projector-svc: consumes each context's topic in a consumer group of its own and keeps that
//! context's read model up to date — `ringiflow.workflow.events` into the workflow read model,
//! the System Board's systems, vulnerabilities and tasks topics into theirs — a run of events
//! per read-database transaction (the `projection` pipeline). A Kafka offset is committed only
//! after its event's transaction committed, or after the broker acknowledged the message's copy
//! in the dead-letter topic `<topic>.dlq`, so a crash redelivers, and redelivery is harmless.
//!
//! Alongside the consumer runs the deadline watcher (see [`DeadlineWatcher`]), which escalates
//! overdue steps through command-svc.
//!
//! The same binary carries the maintenance commands of the runbook: listing and replaying dead
//! letters, and rebuilding or verifying the read model from the event store.
#![forbid(unsafe_code)]

mod deadlines;
mod dlq;
mod projector;
mod rebuild;
mod status;

pub use deadlines::{DeadlineSettings, DeadlineWatcher, Round};
pub use projector::MAX_BATCH;
pub use rebuild::ProjectionName;

use anyhow::Context;
use messaging::dead_letter::DeadLetterProducer;
use messaging::KafkaSettings;
use platform::grpc::GrpcRouter;
use platform::settings::TelemetrySettings;
use projection::shadow::Scope;
use proto::projector::v1::projector_status_service_server::{
    ProjectorStatusServiceServer, SERVICE_NAME as STATUS_SERVICE_NAME,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

/// The status API, and the empty name: the whole server's status in grpc.health.v1. Both are
/// turned NOT_SERVING when shutdown begins.
const SERVICES: &[&str] = &[STATUS_SERVICE_NAME, ""];

/// A grpc.health.v1 service name that is SERVING while the read model is complete and
/// NOT_SERVING while any workflow is parked after a dead letter: what a monitor asks about.
/// The projector itself stays healthy (""), so probes do not restart it over data that a person
/// has to look at.
pub const READ_MODEL_HEALTH: &str = "ringiflow.projector.v1.ReadModel";

/// How often the read model's completeness is looked at; `dlq replay` in another process may
/// unpark workflows at any time.
const READ_MODEL_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projector-svc",
    version,
    about = "RingiFlow projector: Kafka events into the read model",
    // Connection settings are accepted after a subcommand too (`projector-svc verify
    // --read-database-url ...`), not only before it.
    mut_arg("read_database_url", |arg| arg.global(true)),
    mut_arg("database_max_connections", |arg| arg.global(true)),
    mut_arg("database_statement_timeout_ms", |arg| arg.global(true)),
    mut_arg("brokers", |arg| arg.global(true)),
    mut_arg("topic", |arg| arg
        .global(true)
        .default_value(workflow_domain::TOPIC)
        .required(false)),
    mut_arg("topic_partitions", |arg| arg.global(true)),
    mut_arg("topic_replication", |arg| arg.global(true)),
    mut_arg("log_format", |arg| arg.global(true)),
    mut_arg("migrate_on_start", |arg| arg.global(true)),
)]
pub struct Settings {
    #[command(flatten)]
    pub database: read_model::DatabaseSettings,
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Consumer group of the workflow projection. One group per projection, so each sees every
    /// event.
    #[arg(
        long,
        env = "RINGIFLOW_KAFKA_GROUP_ID",
        default_value = "ringiflow-projector-workflows"
    )]
    pub group_id: String,
    /// Address of the gRPC health (and reflection) endpoint; port 0 picks a free port.
    #[arg(long, env = "RINGIFLOW_HEALTH_ADDR", default_value = "0.0.0.0:50053")]
    pub health_addr: SocketAddr,
    /// Longest wait of one fetch of the workflow projection when the broker has nothing new
    /// (librdkafka `fetch.wait.max.ms`). Apache Kafka answers a fetch as soon as data arrives,
    /// so there the wait costs nothing; a broker that only looks for new data once per wait
    /// (the local Tansu) finds an event up to this late, and serves an idle consumer's fetch
    /// this often. Short, because the workflow read model is what users re-read after every
    /// click.
    #[arg(long, env = "RINGIFLOW_KAFKA_FETCH_WAIT_MAX_MS", default_value_t = 25)]
    pub kafka_fetch_wait_max_ms: u32,
    /// The same for the System Board's projections. Longer by default: on the local broker
    /// their idle fetches, three projections' worth, took CPU from every other hop of the
    /// workflow's freshness (BENCHMARKS.md), and a board read model a few tens of milliseconds
    /// staler goes unnoticed.
    #[arg(
        long,
        env = "RINGIFLOW_BOARD_KAFKA_FETCH_WAIT_MAX_MS",
        default_value_t = 100
    )]
    pub board_kafka_fetch_wait_max_ms: u32,
    /// How often the offsets of applied batches are committed to the broker. Offsets are
    /// stored after every applied batch; committing them is periodic because every commit
    /// costs the broker a write. A crash redelivers at most this much, which the projection
    /// finds already applied.
    #[arg(
        long,
        env = "RINGIFLOW_KAFKA_COMMIT_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub kafka_commit_interval_ms: u32,
    /// Topics of the System Board's contexts.
    #[command(flatten)]
    pub topics: messaging::ContextTopics,
    /// The System Board's projections consume in the groups `<prefix>-<context>`.
    #[arg(
        long,
        env = "RINGIFLOW_CONTEXT_GROUP_PREFIX",
        default_value = "ringiflow-projector"
    )]
    pub context_group_prefix: String,
    #[command(flatten)]
    pub deadlines: DeadlineSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
    #[command(flatten)]
    pub server: platform::settings::GrpcServerSettings,
    #[command(flatten)]
    pub metrics: platform::settings::MetricsSettings,
    /// Without a command, the projector consumes until SIGTERM or SIGINT.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Settings {
    /// The `fetch.wait.max.ms` of `projection`'s consumer.
    fn fetch_wait_max_ms(&self, projection: ProjectionName) -> u32 {
        match projection {
            ProjectionName::Workflows => self.kafka_fetch_wait_max_ms,
            _ => self.board_kafka_fetch_wait_max_ms,
        }
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Apply the read database's pending migrations and exit (idempotent).
    Migrate,
    /// Dead letters in `<topic>.dlq`.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Rebuild a read model from the event store in shadow tables and switch to them in one
    /// transaction; readers keep being answered throughout.
    Rebuild {
        #[command(flatten)]
        event_store: EventStoreArgs,
        /// The read model to rebuild (`all`: each in turn, each switched on its own).
        #[arg(long, value_enum, default_value_t = ProjectionName::Workflows)]
        projection: ProjectionName,
    },
    /// Rebuild a read model (or part of it) from the event store in shadow tables and print
    /// every difference to the live one; exit status 1 if there is any.
    Verify {
        #[command(flatten)]
        event_store: EventStoreArgs,
        /// The read model to verify (`all`: each in turn).
        #[arg(long, value_enum, default_value_t = ProjectionName::Workflows)]
        projection: ProjectionName,
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this aggregate's rows (a workflow's, a system's, a scan's or a task's).
        #[arg(long)]
        aggregate: Option<Uuid>,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Print one line per dead letter, oldest first, without consuming them.
    List {
        /// Stop after this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Apply dead letters again, in dead-letter order, once their cause is fixed; unpark
    /// workflows none of whose dead letters still fail. Dead letters replayed earlier are
    /// skipped.
    Replay {
        /// Only this workflow's dead letters.
        #[arg(long)]
        aggregate: Option<Uuid>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct EventStoreArgs {
    /// PostgreSQL URL of the event store (read only).
    #[arg(long, env = "RINGIFLOW_EVENT_STORE_URL", hide_env_values = true)]
    pub event_store_url: String,
}

/// The whole program: consume until a signal, or run one maintenance command.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let read_database_url = &settings.database.read_database_url;
    if settings.command.is_some() {
        // A command's output is stdout; its logs must not mix in.
        let _already_installed = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
            )
            .try_init();
    }
    match settings.command.clone() {
        Some(Command::Migrate) => {
            let pool = settings.database.connect_migrated().await?;
            pool.close().await;
            // A command reports on stdout (its logs are warnings and errors only).
            println!(
                "read database schema up to date ({} migrations)",
                read_model::MIGRATOR.iter().count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Dlq {
            command: DlqCommand::List { limit },
        }) => dlq::list(&settings.kafka, limit).await,
        Some(Command::Dlq {
            command: DlqCommand::Replay { aggregate },
        }) => {
            let pool = settings.database.connect_ready().await?;
            dlq::replay(&pool, &settings.kafka, aggregate).await
        }
        Some(Command::Rebuild {
            event_store,
            projection,
        }) => {
            settings.database.connect_ready().await?;
            rebuild::rebuild(read_database_url, &event_store.event_store_url, projection).await
        }
        Some(Command::Verify {
            event_store,
            projection,
            tenant,
            aggregate,
        }) => {
            settings.database.connect_ready().await?;
            let scope = Scope {
                tenant_id: tenant,
                aggregate_id: aggregate,
            };
            rebuild::verify(
                read_database_url,
                &event_store.event_store_url,
                projection,
                scope,
            )
            .await
        }
        None => {
            let telemetry = platform::telemetry::init(&settings.telemetry);
            platform::shutdown::serve_until_signal(telemetry, |shutdown| async move {
                Application::build(settings, shutdown)
                    .await?
                    .run_until_stopped()
                    .await
            })
            .await
            .map(|()| ExitCode::SUCCESS)
        }
    }
}

/// A built projector: connected, migrated, subscribed and bound, not yet consuming.
pub struct Application {
    /// One per followed topic, each in its own consumer group, run until shutdown.
    projectors: Vec<futures::future::BoxFuture<'static, ()>>,
    watcher: Option<DeadlineWatcher>,
    /// Shared by the projector and the watcher; closed once both have stopped.
    pool: PgPool,
    router: GrpcRouter,
    reporter: HealthReporter,
    listener: TcpListener,
    port: u16,
    metrics: Option<platform::metrics::MetricsListener>,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let pool = settings.database.connect_ready().await?;
        let lags = status::Lags::default();
        // The System Board's contexts, each into its read model in a group of its own.
        let [systems, vulnerabilities, tasks] = &system_board::REGISTRATIONS;
        let board = |context| {
            (
                settings.topics.settings(&settings.kafka, context),
                format!("{}-{}", settings.context_group_prefix, context.name),
            )
        };
        let ((systems, systems_group), (scans, scans_group), (tasks, tasks_group)) =
            (board(systems), board(vulnerabilities), board(tasks));
        let following = Following {
            settings: &settings,
            pool: &pool,
            lags: &lags,
            // One producer for every projection's dead letters: each producer has broker
            // connections and a polling thread of its own, and that thread alone used about
            // 1 % of a core while idle (BENCHMARKS.md).
            producer: &messaging::producer_config(&settings.kafka)
                .create()
                .context("cannot create the dead-letter producer")?,
            shutdown: &shutdown,
        };
        let projectors = vec![
            following
                .follow::<proto::WorkflowCodec, read_model::Workflows>(
                    ProjectionName::Workflows,
                    &settings.kafka,
                    &settings.group_id,
                )
                .await?,
            following
                .follow::<proto::SystemCodec, board_read_model::Systems>(
                    ProjectionName::Systems,
                    &systems,
                    &systems_group,
                )
                .await?,
            following
                .follow::<proto::ScanCodec, board_read_model::Scans>(
                    ProjectionName::Scans,
                    &scans,
                    &scans_group,
                )
                .await?,
            following
                .follow::<proto::TaskCodec, board_read_model::Tasks>(
                    ProjectionName::Tasks,
                    &tasks,
                    &tasks_group,
                )
                .await?,
        ];
        let (router, reporter) =
            platform::grpc::router(SERVICES, &[proto::FILE_DESCRIPTOR_SET], &settings.server)
                .await?;
        let router = router.add_service(ProjectorStatusServiceServer::new(status::StatusService {
            lags,
            pool: pool.clone(),
        }));
        // Unknown until the first look at the parked workflows (see `report_completeness`).
        reporter
            .set_service_status(READ_MODEL_HEALTH, tonic_health::ServingStatus::Unknown)
            .await;
        let listener = TcpListener::bind(settings.health_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.health_addr))?;
        let port = listener.local_addr()?.port();
        let watcher = if settings.deadlines.deadline_watcher_enabled {
            Some(DeadlineWatcher::new(
                &settings.deadlines,
                pool.clone(),
                shutdown.clone(),
            )?)
        } else {
            None
        };
        Ok(Self {
            projectors,
            watcher,
            pool,
            router,
            reporter,
            listener,
            port,
            metrics: settings.metrics.listener().await?,
            shutdown,
        })
    }

    /// The port the health endpoint actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where `/metrics` is served, when `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .map(platform::metrics::MetricsListener::address)
    }

    /// Consumes (and watches deadlines) until shutdown, then finishes the in-flight event and
    /// escalation, commits offsets and stops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "projector-svc health endpoint serving");
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.shutdown.clone()));
        }
        let health = tokio::spawn(platform::grpc::serve(
            self.router,
            self.reporter.clone(),
            SERVICES,
            self.listener,
            self.shutdown.clone(),
        ));
        let watcher = self.watcher.map(|watcher| tokio::spawn(watcher.run()));
        let completeness = tokio::spawn(report_completeness(
            self.pool.clone(),
            self.reporter.clone(),
            self.shutdown.clone(),
        ));
        futures::future::join_all(self.projectors).await;
        completeness
            .await
            .context("read-model health task panicked")?;
        if let Some(watcher) = watcher {
            watcher.await.context("deadline watcher task panicked")?;
        }
        self.pool.close().await;
        health.await.context("health endpoint task panicked")?
    }
}

/// What every projector of the process shares.
struct Following<'a> {
    settings: &'a Settings,
    pool: &'a PgPool,
    lags: &'a status::Lags,
    /// Made with [`messaging::producer_config`]; where each projection's dead letters go.
    producer: &'a FutureProducer,
    shutdown: &'a CancellationToken,
}

impl Following<'_> {
    /// A projector of the events on `kafka.topic` (decoded by `C`) into the read model `P`, in
    /// the consumer group `group`: subscribed, ready to run until shutdown.
    async fn follow<C, P>(
        &self,
        projection: ProjectionName,
        kafka: &KafkaSettings,
        group: &str,
    ) -> anyhow::Result<futures::future::BoxFuture<'static, ()>>
    where
        C: es_kernel::EventCodec,
        P: projection::Projection<Event = C::Event>,
    {
        let settings = self.settings;
        // Subscribing to a topic that does not exist yet would leave the group without
        // partitions until the relay first publishes.
        messaging::ensure_topic(kafka)
            .await
            .with_context(|| format!("cannot ensure kafka topic {}", kafka.topic))?;
        messaging::dead_letter::ensure_topic(kafka)
            .await
            .with_context(|| format!("cannot ensure the dead-letter topic of {}", kafka.topic))?;
        let dead_letters = DeadLetterProducer::with_producer(self.producer.clone(), kafka);
        let consumer: StreamConsumer = messaging::consumer_config(kafka, group)
            .set(
                "fetch.wait.max.ms",
                settings.fetch_wait_max_ms(projection).to_string(),
            )
            // librdkafka commits what the projector stored (only offsets of applied batches:
            // `enable.auto.offset.store` stays off), periodically and on revocation.
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                settings.kafka_commit_interval_ms.to_string(),
            )
            .create()
            .context("cannot create the kafka consumer")?;
        consumer
            .subscribe(&[&kafka.topic])
            .with_context(|| format!("cannot subscribe to {}", kafka.topic))?;
        let projector = projector::Projector::<C, P>::new(
            consumer,
            self.pool.clone(),
            dead_letters,
            projection.to_string(),
            self.lags.clone(),
        );
        Ok(Box::pin(projector.run(self.shutdown.clone())))
    }
}

/// Keeps [`READ_MODEL_HEALTH`] up to date until shutdown.
async fn report_completeness(pool: PgPool, reporter: HealthReporter, shutdown: CancellationToken) {
    use tonic_health::ServingStatus;
    let mut reported = None;
    while !shutdown.is_cancelled() {
        match projection::parked_count(&pool).await {
            Ok(parked) => {
                // One table for every projection's parked aggregates: no projection label.
                metrics::gauge!("ringiflow_projector_parked_aggregates").set(parked as f64);
                let status = if parked == 0 {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                if reported != Some(status) {
                    if parked > 0 {
                        tracing::error!(
                            parked,
                            "workflows are parked after dead letters; see `projector-svc dlq list`"
                        );
                    }
                    reporter.set_service_status(READ_MODEL_HEALTH, status).await;
                    reported = Some(status);
                }
            }
            Err(error) => tracing::warn!(error = %error, "cannot count parked workflows"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(READ_MODEL_HEALTH_INTERVAL) => {}
        }
    }
}
