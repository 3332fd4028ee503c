//! projector-svc: consumes `ringiflow.workflow.events` in a consumer group and keeps the
//! workflow read model up to date, one event per read-database transaction. A Kafka offset is
//! committed only after its event's transaction committed (or the event was set aside as
//! permanently unprocessable), so a crash redelivers, and redelivery is harmless.
#![forbid(unsafe_code)]

mod projector;

use anyhow::Context;
use messaging::KafkaSettings;
use platform::settings::TelemetrySettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// The projector serves no gRPC service of its own; the empty name is the whole server's status
/// in grpc.health.v1, turned NOT_SERVING when shutdown begins.
const SERVICES: &[&str] = &[""];

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projector-svc",
    version,
    about = "RingiFlow projector: Kafka events into the read model"
)]
pub struct Settings {
    #[command(flatten)]
    pub database: read_model::DatabaseSettings,
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Consumer group; one group per projection, so each projection sees every event.
    #[arg(
        long,
        env = "RINGIFLOW_KAFKA_GROUP_ID",
        default_value = "ringiflow-projector-workflows"
    )]
    pub group_id: String,
    /// Address of the gRPC health (and reflection) endpoint; port 0 picks a free port.
    #[arg(long, env = "RINGIFLOW_HEALTH_ADDR", default_value = "0.0.0.0:50053")]
    pub health_addr: SocketAddr,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// A built projector: connected, migrated, subscribed and bound, not yet consuming.
pub struct Application {
    projector: projector::Projector,
    router: Router,
    reporter: HealthReporter,
    listener: TcpListener,
    port: u16,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let pool = settings
            .database
            .connect()
            .await
            .context("cannot connect to the read database")?;
        read_model::migrate(&pool)
            .await
            .context("cannot migrate the read database")?;
        // Subscribing to a topic that does not exist yet would leave the group without
        // partitions until the relay first publishes.
        messaging::ensure_topic(&settings.kafka)
            .await
            .with_context(|| format!("cannot ensure kafka topic {}", settings.kafka.topic))?;
        let consumer: StreamConsumer =
            messaging::consumer_config(&settings.kafka, &settings.group_id)
                .create()
                .context("cannot create the kafka consumer")?;
        consumer
            .subscribe(&[&settings.kafka.topic])
            .with_context(|| format!("cannot subscribe to {}", settings.kafka.topic))?;
        let (router, reporter) = platform::grpc::router(SERVICES).await?;
        let listener = TcpListener::bind(settings.health_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.health_addr))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            projector: projector::Projector::new(consumer, pool),
            router,
            reporter,
            listener,
            port,
            shutdown,
        })
    }

    /// The port the health endpoint actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until shutdown, then finishes the in-flight event, commits offsets and stops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "projector-svc health endpoint serving");
        let health = tokio::spawn(platform::grpc::serve(
            self.router,
            self.reporter,
            SERVICES,
            self.listener,
            self.shutdown.clone(),
        ));
        self.projector.run(&self.shutdown).await;
        health.await.context("health endpoint task panicked")?
    }
}
