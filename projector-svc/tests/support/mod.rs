//! What the projector-svc tests share: a projector against real PostgreSQL and a real broker
//! (`RINGIFLOW_TEST_KAFKA_BROKERS`, as `scripts/test` starts it), each test on its own
//! database, topic and consumer group; and the binary itself for the maintenance commands.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use clap::Parser;
use messaging::{encode, CE_SOURCE_COMMAND_SVC};
use projector_svc::{Application, Settings};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use std::future::Future;
use std::process::Output;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use workflow_domain::{RecordedEvent, WorkflowEvent};

/// Bounds a hang; not a performance assertion.
pub const CATCH_UP: Duration = Duration::from_secs(60);

pub struct Harness {
    pub settings: Settings,
    pub url: String,
    pub pool: PgPool,
    producer: FutureProducer,
}

pub async fn harness() -> Harness {
    if std::env::var_os("TEST_LOG").is_some() {
        let settings = platform::settings::TelemetrySettings {
            log_format: platform::settings::LogFormat::Pretty,
        };
        platform::telemetry::init(&settings);
    }
    let (url, pool) = test_support::fresh_database("projector").await;
    let brokers = std::env::var("RINGIFLOW_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let suffix = Uuid::new_v4().simple().to_string();
    let topic = format!("ringiflow.workflow.events.test-{suffix}");
    let group = format!("ringiflow-projector-test-{suffix}");
    // One partition, so "the committed offset" is a single number to assert on.
    let settings = Settings::parse_from([
        "projector-svc",
        "--read-database-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--kafka-topic",
        &topic,
        "--kafka-topic-partitions",
        "1",
        "--group-id",
        &group,
        "--health-addr",
        "127.0.0.1:0",
        "--allow-dev-jwt-secret",
        "true",
    ]);
    messaging::ensure_topic(&settings.kafka)
        .await
        .expect("create the test topic");
    let producer = messaging::producer_config(&settings.kafka)
        .create()
        .expect("producer");
    Harness {
        settings,
        url,
        pool,
        producer,
    }
}

pub struct Running {
    pub port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    pub async fn start(&self) -> Running {
        let shutdown = CancellationToken::new();
        let app = Application::build(self.settings.clone(), shutdown.clone())
            .await
            .expect("build");
        Running {
            port: app.port(),
            shutdown,
            task: tokio::spawn(app.run_until_stopped()),
        }
    }

    pub async fn send(&self, key: &str, payload: &[u8], headers: OwnedHeaders) {
        let record = FutureRecord::to(&self.settings.kafka.topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    pub async fn publish(&self, event: &RecordedEvent<WorkflowEvent>) {
        let message = encode::<proto::WorkflowCodec>(event, CE_SOURCE_COMMAND_SVC);
        self.send(&message.key, &message.payload, message.headers)
            .await;
    }

    pub async fn version_of(&self, id: Uuid) -> i64 {
        read_model::stored_version(&self.pool, id)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    pub async fn wait_for_version(&self, id: Uuid, version: i64) {
        eventually(&format!("workflow {id} at version {version}"), || async {
            (self.version_of(id).await >= version).then_some(())
        })
        .await;
    }

    /// The group's committed offset of partition 0: the next offset it would read.
    pub fn committed_offset(&self) -> Offset {
        let consumer: BaseConsumer =
            messaging::consumer_config(&self.settings.kafka, &self.settings.group_id)
                .create()
                .unwrap();
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&self.settings.kafka.topic, 0);
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .unwrap();
        committed.elements()[0].offset()
    }

    pub fn dead_letter_topic(&self) -> String {
        messaging::dead_letter::topic_for(&self.settings.kafka.topic)
    }

    /// The dead-letter topic from its beginning, once it holds (at least) `count` messages.
    pub async fn dead_letters(&self, count: usize) -> Vec<OwnedMessage> {
        let group = format!("test-dlq-reader-{}", Uuid::new_v4().simple());
        let consumer: StreamConsumer = messaging::consumer_config(&self.settings.kafka, &group)
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(&self.dead_letter_topic(), 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&partitions).unwrap();
        tokio::time::timeout(CATCH_UP, async {
            let mut read = Vec::new();
            while read.len() < count {
                read.push(consumer.recv().await.expect("read dead letter").detach());
            }
            read
        })
        .await
        .unwrap_or_else(|_| panic!("fewer than {count} dead letters"))
    }

    /// Runs the projector-svc binary against this harness's read database, topic and broker.
    pub async fn command(&self, args: &[&str]) -> Output {
        command(
            args,
            &[
                ("RINGIFLOW_READ_DATABASE_URL", &self.url),
                ("RINGIFLOW_KAFKA_BROKERS", &self.settings.kafka.brokers),
                ("RINGIFLOW_KAFKA_TOPIC", &self.settings.kafka.topic),
            ],
        )
        .await
    }
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("projector stops promptly after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Runs the projector-svc binary the way an operator would.
pub async fn command(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_projector-svc"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run projector-svc")
}

/// grpc.health.v1 status of `service` ("" is the whole server) on the health endpoint.
pub async fn health(
    port: u16,
    service: &str,
) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Channel::from_shared(url).unwrap();
    let mut client = HealthClient::new(channel.connect().await.expect("health endpoint reachable"));
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

/// The dead letters the status API (`ProjectorStatusService/GetStatus`) reports for
/// `projection`, as last measured.
pub async fn dead_letters_reported(port: u16, projection: &str) -> i64 {
    use proto::projector::v1::projector_status_service_client::ProjectorStatusServiceClient;
    let url = format!("http://127.0.0.1:{port}");
    let mut client = ProjectorStatusServiceClient::connect(url)
        .await
        .expect("status endpoint reachable");
    let status = client
        .get_status(proto::projector::v1::GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    status
        .projections
        .iter()
        .find(|status| status.projection == projection)
        .map(|status| status.dead_letters)
        .unwrap_or_else(|| panic!("{projection} not in {status:?}"))
}

/// Polls `probe` until it gives a value, for at most [`CATCH_UP`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(CATCH_UP, async {
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Everything a command printed, for assertion messages.
pub fn printed(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}stderr:\n{}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The metadata of a fresh command by `alice` of `tenant`.
pub fn metadata(tenant: &str) -> workflow_domain::EventMetadata {
    workflow_domain::EventMetadata {
        tenant_id: tenant.into(),
        user_id: "alice".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        traceparent: None,
    }
}

/// Appends one command's events to a workflow of `tenant` at `expected_version`, as `alice`:
/// history written straight into the store, for tests that need one no command can make now.
pub async fn append(
    store: &event_store::EventStore,
    tenant: &str,
    id: Uuid,
    expected_version: i64,
    events: &[workflow_domain::WorkflowEvent],
) {
    let metadata = metadata(tenant);
    store
        .append(event_store::Append {
            aggregate_type: "workflow",
            aggregate_id: id,
            expected_version,
            events,
            metadata: &metadata,
            command_id: Uuid::now_v7(),
            command_type: "Test",
            occurred_at: chrono::Utc::now(),
        })
        .await
        .expect("append");
}

// Each test binary uses its own part of these too.
#[allow(unused_imports)]
pub use test_support::events::{created, recorded as event};
