//! projector-svc against real PostgreSQL and a real broker (`RINGIFLOW_TEST_KAFKA_BROKERS`, as
//! `scripts/test` starts it), each test on its own database, topic and consumer group.

use chrono::{DateTime, Utc};
use clap::Parser;
use messaging::{encode, CE_SOURCE_COMMAND_SVC};
use projector_svc::{Application, Settings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use uuid::Uuid;
use workflow_domain::{
    Description, DisplayName, EventMetadata, Priority, RecordedEvent, Route, StepNo, Title, UserId,
    WorkflowEvent,
};

/// Bounds a hang; not a performance assertion.
const CATCH_UP: Duration = Duration::from_secs(60);

struct Harness {
    settings: Settings,
    pool: PgPool,
    producer: FutureProducer,
}

async fn harness() -> Harness {
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
    ]);
    messaging::ensure_topic(&settings.kafka)
        .await
        .expect("create the test topic");
    let producer = messaging::producer_config(&settings.kafka)
        .create()
        .expect("producer");
    Harness {
        settings,
        pool,
        producer,
    }
}

struct Running {
    port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    async fn start(&self) -> Running {
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

    async fn send(&self, key: &str, payload: &[u8], headers: rdkafka::message::OwnedHeaders) {
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

    async fn publish(&self, event: &RecordedEvent) {
        let message = encode(event, CE_SOURCE_COMMAND_SVC);
        self.send(&message.key, &message.payload, message.headers)
            .await;
    }

    async fn version_of(&self, id: Uuid) -> i64 {
        read_model::get_workflow(&self.pool, "acme", id)
            .await
            .unwrap()
            .map_or(0, |wf| wf.version)
    }

    async fn wait_for_version(&self, id: Uuid, version: i64) {
        tokio::time::timeout(CATCH_UP, async {
            while self.version_of(id).await < version {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("workflow {id} never reached version {version}"));
    }

    /// The group's committed offset of partition 0: the next offset it would read.
    fn committed_offset(&self) -> Offset {
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
}

impl Running {
    /// grpc.health.v1 status of the whole server (the empty service name).
    async fn health(&self) -> ServingStatus {
        let url = format!("http://127.0.0.1:{}", self.port);
        let channel = tonic::transport::Channel::from_shared(url).unwrap();
        let mut client =
            HealthClient::new(channel.connect().await.expect("health endpoint reachable"));
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        response.into_inner().status()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("projector stops promptly after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn event(id: Uuid, version: i64, event: WorkflowEvent) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::new_v4(),
        position: version,
        aggregate_type: "workflow".into(),
        aggregate_id: id,
        version,
        occurred_at: DateTime::<Utc>::from_timestamp(1_778_400_000 + version, 0).unwrap(),
        metadata: EventMetadata {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            traceparent: None,
        },
        event,
    }
}

fn created() -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Medium,
        applicant_id: UserId::parse("user", "alice").unwrap(),
        applicant_name: DisplayName::parse("name", "アリス").unwrap(),
        route: Route::parse("route", ["bob"], |i| format!("route[{i}]")).unwrap(),
    }
}

#[tokio::test]
async fn events_are_applied_once_poison_is_skipped_and_offsets_are_committed() {
    let h = harness().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let submitted = event(a, 2, WorkflowEvent::Submitted {});
    let assigned = WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        approver_id: UserId::parse("user", "bob").unwrap(),
    };
    h.publish(&event(a, 1, created())).await;
    h.publish(&submitted).await;
    h.publish(&submitted).await; // a redelivery, as after a relay retry
    h.send(
        "garbage",
        b"not a cloudevent",
        rdkafka::message::OwnedHeaders::new(),
    )
    .await;
    h.publish(&event(a, 3, assigned)).await;
    h.publish(&event(b, 1, created())).await;
    let produced = 6;

    let running = h.start().await;
    assert_eq!(running.health().await, ServingStatus::Serving);
    h.wait_for_version(a, 3).await;
    h.wait_for_version(b, 1).await;
    running.stop().await;

    let wf = read_model::get_workflow(&h.pool, "acme", a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (wf.current_step, wf.current_approver_id.as_deref()),
        (Some(1), Some("bob"))
    );
    assert_eq!(
        h.committed_offset(),
        Offset::Offset(produced),
        "everything processed is committed"
    );

    // A restart resumes after the committed offset and picks up new events.
    let running = h.start().await;
    h.publish(&event(b, 2, WorkflowEvent::Submitted {})).await;
    h.wait_for_version(b, 2).await;
    running.stop().await;
    assert_eq!(h.committed_offset(), Offset::Offset(produced + 1));
}

#[tokio::test]
async fn a_gap_holds_its_message_uncommitted_and_shutdown_still_stops() {
    let h = harness().await;
    let id = Uuid::new_v4();
    h.publish(&event(id, 1, created())).await;
    h.publish(&event(id, 3, WorkflowEvent::Submitted {})).await; // version 2 never arrives

    let running = h.start().await;
    h.wait_for_version(id, 1).await;
    // Long enough for several retries of the held-back event.
    tokio::time::sleep(Duration::from_millis(800)).await;
    running.stop().await;

    assert_eq!(h.version_of(id).await, 1, "nothing is applied past a gap");
    assert_eq!(
        h.committed_offset(),
        Offset::Offset(1),
        "the held-back event stays uncommitted"
    );
}
