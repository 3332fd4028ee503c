//! The System Board's command side over real gRPC, against a real event store and broker: the
//! commands people send, and the cascade of reactions command-svc runs itself (scan, review
//! task, remediation task and alert), each exactly once however often its cause is delivered.
//! Every test has its own database, topics and consumer groups.

use chrono::TimeDelta;
use clap::Parser;
use command_svc::{Application, Settings};
use es_kernel::{derived_id, RecordedEvent};
use event_store::EventStore;
use platform::auth::Identity;
use platform::errors::{code_of, metadata_of, ErrorCode};
use proto::systemboard::v1::system_board_command_service_client::SystemBoardCommandServiceClient;
use proto::systemboard::v1::{
    Environment, Package, RecordFindingRequest, RegisterSystemRequest, UpdatePackagesRequest,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::future::Future;
use std::time::Duration;
use system_board::reactions::{purpose, REMEDIATION_DAYS};
use system_board::{
    ScanEvent, Severity, System, SystemEvent, Task, TaskEvent, TaskKind, TaskPriority,
    VulnerabilityScan,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

/// Bounds a hang; not a performance assertion.
const CATCH_UP: Duration = Duration::from_secs(60);

/// One test's database and topics; apps started on them share both.
struct Harness {
    url: String,
    store: EventStore,
    brokers: String,
    suffix: String,
    systems_topic: String,
    vulnerabilities_topic: String,
    tasks_topic: String,
}

struct Running {
    port: u16,
    settings: Settings,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn harness() -> Harness {
    if std::env::var_os("TEST_LOG").is_some() {
        platform::telemetry::init(&platform::settings::TelemetrySettings {
            log_format: platform::settings::LogFormat::Pretty,
        });
    }
    let (url, pool) = test_support::fresh_database("command_board").await;
    let suffix = Uuid::new_v4().simple().to_string();
    Harness {
        url,
        store: EventStore::new(pool, command_svc::CONTEXTS),
        brokers: std::env::var("RINGIFLOW_TEST_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:19092".to_owned()),
        systems_topic: format!("test.systems.{suffix}"),
        vulnerabilities_topic: format!("test.vulnerabilities.{suffix}"),
        tasks_topic: format!("test.tasks.{suffix}"),
        suffix,
    }
}

impl Harness {
    /// An Application on port 0 whose reactions use consumer groups named by `group`.
    async fn start(&self, group: &str) -> Running {
        let topics = format!(
            "systems={},vulnerabilities={},tasks={}",
            self.systems_topic, self.vulnerabilities_topic, self.tasks_topic
        );
        let settings = Settings::parse_from([
            "command-svc",
            "--listen-addr",
            "127.0.0.1:0",
            "--event-store-url",
            &self.url,
            "--kafka-brokers",
            &self.brokers,
            "--kafka-topic",
            &format!("test.workflow.{}", self.suffix),
            "--kafka-topic-partitions",
            "1",
            "--context-topic",
            &topics,
            "--reactions-group-suffix",
            &format!(".test-{}-{group}", self.suffix),
            "--allow-dev-jwt-secret",
            "true",
        ]);
        let shutdown = CancellationToken::new();
        let app = Application::build(settings.clone(), shutdown.clone())
            .await
            .expect("build");
        Running {
            port: app.port(),
            settings,
            shutdown,
            task: tokio::spawn(app.run_until_stopped()),
        }
    }

    async fn history<A: es_kernel::Aggregate>(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Vec<RecordedEvent<A::Event>> {
        self.store.history::<A>(tenant, id, 0).await.unwrap()
    }

    /// The history of `id` once it holds at least `count` events.
    async fn wait_for<A: es_kernel::Aggregate>(
        &self,
        tenant: &str,
        id: Uuid,
        count: usize,
    ) -> Vec<RecordedEvent<A::Event>> {
        eventually(&format!("{} {id} with {count} events", A::TYPE), || async {
            let history = self.history::<A>(tenant, id).await;
            (history.len() >= count).then_some(history)
        })
        .await
    }

    /// Produces a copy of every message on `topic` (partition 0) again: a redelivery of each.
    async fn redeliver(&self, running: &Running, topic: &str) -> i64 {
        let kafka = messaging::KafkaSettings {
            topic: topic.to_owned(),
            ..running.settings.kafka.clone()
        };
        let reader: BaseConsumer =
            messaging::consumer_config(&kafka, &format!("test-copier-{}", Uuid::new_v4()))
                .create()
                .unwrap();
        let (_, end) = reader
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        reader.assign(&partitions).unwrap();
        let producer: FutureProducer = messaging::producer_config(&kafka).create().unwrap();
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        let mut copied = 0;
        loop {
            let message = match reader.poll(Duration::from_millis(100)) {
                Some(message) => message.unwrap(),
                None => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "cannot read {topic}"
                    );
                    continue;
                }
            };
            let mut record = FutureRecord::to(topic).payload(message.payload().unwrap_or(&[]));
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(headers) = message.headers() {
                record = record.headers(headers.detach());
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(error, _)| error)
                .expect("produce a copy");
            copied += 1;
            if message.offset() + 1 >= end {
                return copied;
            }
        }
    }
}

impl Running {
    async fn client(&self) -> SystemBoardCommandServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap();
        SystemBoardCommandServiceClient::new(channel)
    }

    /// `message` as `user` of `tenant` holding `roles`, in the request chain `correlation_id`.
    fn request<T>(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
        correlation_id: Uuid,
        message: T,
    ) -> tonic::Request<T> {
        let identity = Identity {
            tenant_id: tenant.into(),
            user_id: user.into(),
            display_name: user.to_uppercase(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
        };
        let token = self
            .settings
            .auth
            .jwt()
            .unwrap()
            .issue(&identity, chrono::Duration::hours(1))
            .unwrap();
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        metadata.insert(
            "x-correlation-id",
            correlation_id.to_string().parse().unwrap(),
        );
        request
    }

    /// The committed offset of the reactions' group `process` on partition 0 of `topic`
    /// reaches `end`: everything before it was handled.
    async fn wait_until_handled(&self, process: &str, topic: &str, end: i64) {
        let group = format!(
            "ringiflow.process.{process}{}",
            self.settings.reactions_group_suffix
        );
        let kafka = messaging::KafkaSettings {
            topic: topic.to_owned(),
            ..self.settings.kafka.clone()
        };
        let consumer: BaseConsumer = messaging::consumer_config(&kafka, &group).create().unwrap();
        eventually(&format!("{group} at offset {end} of {topic}"), || {
            let mut partitions = TopicPartitionList::new();
            partitions.add_partition(topic, 0);
            let committed = consumer
                .committed_offsets(partitions, Duration::from_secs(10))
                .unwrap();
            let done = matches!(committed.elements()[0].offset(), Offset::Offset(at) if at >= end);
            async move { done.then_some(()) }
        })
        .await;
    }

    async fn wait_for_end_offset(&self, topic: &str, end: i64) {
        eventually(&format!("{end} messages on {topic}"), || {
            let at = self.end_offset(topic);
            async move { (at >= end).then_some(()) }
        })
        .await;
    }

    fn end_offset(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer = messaging::consumer_config(
            &self.settings.kafka,
            &format!("test-watermarks-{}", Uuid::new_v4()),
        )
        .create()
        .unwrap();
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap()
            .1
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("command-svc stops promptly after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Polls `probe` until it yields, for at most [`CATCH_UP`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn package(name: &str, version: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
    }
}

fn register(owner: &str) -> RegisterSystemRequest {
    RegisterSystemRequest {
        command_id: Uuid::new_v4().to_string(),
        system_id: String::new(),
        name: "Payroll API".into(),
        owner: owner.into(),
        environment: Environment::Production as i32,
        packages: vec![package("log4j-core", "2.14.1"), package("openssl", "3.0.7")],
    }
}

/// Everything the cascade of one registration and one critical finding made.
struct Cascade {
    system_id: Uuid,
    scan_id: Uuid,
    review_task_id: Uuid,
    remediation_task_id: Uuid,
}

const TENANT: &str = "acme";

/// Registers a system, waits for its scan and review task, records a critical finding and
/// waits for the remediation task and the alert, checking every step's ids and metadata.
async fn run_cascade(harness: &Harness, app: &Running) -> Cascade {
    let mut client = app.client().await;
    let registration = Uuid::new_v4();
    let registered = client
        .register_system(app.request(TENANT, "olga", &[], registration, register("olga")))
        .await
        .expect("register")
        .into_inner();
    assert_eq!(registered.version, 1);
    let system_id: Uuid = registered.aggregate_id.parse().unwrap();

    let system = harness.history::<System>(TENANT, system_id).await;
    let registered_event = &system[0];
    assert!(matches!(
        registered_event.event,
        SystemEvent::Registered { .. }
    ));
    assert_eq!(registered_event.metadata.correlation_id, registration);

    // SystemRegistered → a scan of its packages.
    let scan_id = derived_id(registered_event.event_id, purpose::SCAN);
    let scan = harness
        .wait_for::<VulnerabilityScan>(TENANT, scan_id, 1)
        .await;
    let initiated = &scan[0];
    match &initiated.event {
        ScanEvent::Initiated {
            system_id: scanned,
            packages,
            ..
        } => {
            assert_eq!(scanned.as_uuid(), system_id);
            assert_eq!(packages.len(), 2);
        }
        other => panic!("expected VulnScanInitiated, got {other:?}"),
    }
    assert_reaction(initiated, registration, registered_event.event_id);

    // VulnScanInitiated → a scan-review task.
    let review_task_id = derived_id(initiated.event_id, purpose::REVIEW_TASK);
    let review = harness.wait_for::<Task>(TENANT, review_task_id, 1).await;
    match &review[0].event {
        TaskEvent::Created {
            kind,
            scan_id: for_scan,
            ..
        } => {
            assert_eq!(*kind, TaskKind::ScanReview);
            assert_eq!(for_scan.as_uuid(), scan_id);
        }
        other => panic!("expected TaskCreated, got {other:?}"),
    }
    assert_reaction(&review[0], registration, initiated.event_id);

    // A critical finding, recorded by security staff in a request chain of its own.
    let finding = Uuid::new_v4();
    let recorded = client
        .record_finding(app.request(
            TENANT,
            "sam",
            &[system_board::SECURITY_ROLE],
            finding,
            RecordFindingRequest {
                command_id: Uuid::new_v4().to_string(),
                scan_id: scan_id.to_string(),
                expected_version: Some(1),
                cve: "CVE-2021-44228".into(),
                cvss_tenths: 98,
                package: "log4j-core".into(),
            },
        ))
        .await
        .expect("record finding")
        .into_inner();
    assert_eq!(recorded.aggregate_id, scan_id.to_string());
    assert_eq!(recorded.version, 2);
    let detected = harness.history::<VulnerabilityScan>(TENANT, scan_id).await[1].clone();
    assert!(matches!(
        detected.event,
        ScanEvent::VulnerabilityDetected {
            severity: Severity::Critical,
            ..
        }
    ));
    assert_eq!(detected.metadata.correlation_id, finding);

    // VulnerabilityDetected (CRITICAL) → a HIGH remediation task due three days later…
    let remediation_task_id = derived_id(detected.event_id, purpose::REMEDIATION_TASK);
    let remediation = harness
        .wait_for::<Task>(TENANT, remediation_task_id, 1)
        .await;
    match &remediation[0].event {
        TaskEvent::Created {
            kind,
            priority,
            due_at,
            cve,
            ..
        } => {
            assert_eq!(*kind, TaskKind::Remediation);
            assert_eq!(*priority, TaskPriority::High);
            assert_eq!(
                *due_at,
                detected.occurred_at + TimeDelta::days(REMEDIATION_DAYS)
            );
            assert_eq!(REMEDIATION_DAYS, 3);
            assert_eq!(cve.as_ref().map(|cve| cve.as_str()), Some("CVE-2021-44228"));
        }
        other => panic!("expected TaskCreated, got {other:?}"),
    }
    assert_reaction(&remediation[0], finding, detected.event_id);

    // …and a security alert on the system.
    let system = harness.wait_for::<System>(TENANT, system_id, 2).await;
    let alert = &system[1];
    assert!(
        matches!(alert.event, SystemEvent::SecurityAlertRaised { .. }),
        "expected SystemSecurityAlertRaised, got {:?}",
        alert.event
    );
    assert_reaction(alert, finding, detected.event_id);

    Cascade {
        system_id,
        scan_id,
        review_task_id,
        remediation_task_id,
    }
}

/// A reaction's event: recorded by the platform in its cause's request chain, caused by it.
fn assert_reaction<E>(event: &RecordedEvent<E>, correlation_id: Uuid, causation_id: Uuid) {
    assert_eq!(event.metadata.tenant_id, TENANT);
    assert_eq!(event.metadata.user_id, command_svc::reactions::SYSTEM_USER);
    assert_eq!(event.metadata.correlation_id, correlation_id);
    assert_eq!(event.metadata.causation_id, causation_id);
}

/// How many events each aggregate of the cascade holds.
async fn counts(harness: &Harness, cascade: &Cascade) -> [usize; 4] {
    [
        harness
            .history::<System>(TENANT, cascade.system_id)
            .await
            .len(),
        harness
            .history::<VulnerabilityScan>(TENANT, cascade.scan_id)
            .await
            .len(),
        harness
            .history::<Task>(TENANT, cascade.review_task_id)
            .await
            .len(),
        harness
            .history::<Task>(TENANT, cascade.remediation_task_id)
            .await
            .len(),
    ]
}

#[tokio::test]
async fn a_registration_and_a_critical_finding_cascade_through_the_reactions() {
    let harness = harness().await;
    let app = harness.start("a").await;
    let cascade = run_cascade(&harness, &app).await;
    // Registered + alert; initiated + finding; one event per task.
    assert_eq!(counts(&harness, &cascade).await, [2, 2, 1, 1]);
    app.stop().await;
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let harness = harness().await;
    let app = harness.start("a").await;
    let cascade = run_cascade(&harness, &app).await;
    let before = counts(&harness, &cascade).await;
    assert_eq!(before, [2, 2, 1, 1]);
    // Registered and alert; initiated and finding: once the relay has published them all.
    let (systems, vulnerabilities) = (2, 2);
    app.wait_for_end_offset(&harness.systems_topic, systems)
        .await;
    app.wait_for_end_offset(&harness.vulnerabilities_topic, vulnerabilities)
        .await;
    app.wait_until_handled(
        command_svc::reactions::SCANS_PROCESS,
        &harness.systems_topic,
        systems,
    )
    .await;
    app.wait_until_handled(
        command_svc::reactions::TASKS_PROCESS,
        &harness.vulnerabilities_topic,
        vulnerabilities,
    )
    .await;

    // A copy of every message, to the running reactions.
    assert_eq!(harness.redeliver(&app, &harness.systems_topic).await, 2);
    assert_eq!(
        harness
            .redeliver(&app, &harness.vulnerabilities_topic)
            .await,
        2
    );
    app.wait_until_handled(
        command_svc::reactions::SCANS_PROCESS,
        &harness.systems_topic,
        systems + 2,
    )
    .await;
    app.wait_until_handled(
        command_svc::reactions::TASKS_PROCESS,
        &harness.vulnerabilities_topic,
        vulnerabilities + 2,
    )
    .await;
    assert_eq!(counts(&harness, &cascade).await, before);
    app.stop().await;

    // A restart in fresh consumer groups: every message, originals and copies, once more.
    let again = harness.start("b").await;
    let systems = again.end_offset(&harness.systems_topic);
    let vulnerabilities = again.end_offset(&harness.vulnerabilities_topic);
    again
        .wait_until_handled(
            command_svc::reactions::SCANS_PROCESS,
            &harness.systems_topic,
            systems,
        )
        .await;
    again
        .wait_until_handled(
            command_svc::reactions::TASKS_PROCESS,
            &harness.vulnerabilities_topic,
            vulnerabilities,
        )
        .await;
    assert_eq!(counts(&harness, &cascade).await, before);
    again.stop().await;
}

#[tokio::test]
async fn refused_commands_answer_with_the_contract_codes() {
    let harness = harness().await;
    let app = harness.start("a").await;
    let mut client = app.client().await;
    let request = register("olga");
    let registered = client
        .register_system(app.request(TENANT, "olga", &[], Uuid::new_v4(), request.clone()))
        .await
        .unwrap()
        .into_inner();
    // A retry without a client-chosen id lands on the same system, and appends nothing.
    let retried = client
        .register_system(app.request(TENANT, "olga", &[], Uuid::new_v4(), request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, registered);
    let system_id = registered.aggregate_id.clone();

    // A CVSS above 10.0, named as the request names it.
    let refused = client
        .record_finding(app.request(
            TENANT,
            "sam",
            &[system_board::SECURITY_ROLE],
            Uuid::new_v4(),
            RecordFindingRequest {
                command_id: Uuid::new_v4().to_string(),
                scan_id: Uuid::new_v4().to_string(),
                expected_version: None,
                cve: "CVE-2021-44228".into(),
                cvss_tenths: 105,
                package: "log4j-core".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(code_of(&refused), ErrorCode::InvalidArgument);
    assert_eq!(metadata_of(&refused)["field"], "cvss_tenths");

    // A bad package names its place in the list.
    let mut bad_package = register("olga");
    bad_package.packages.push(package("zlib", "1 .2"));
    let refused = client
        .register_system(app.request(TENANT, "olga", &[], Uuid::new_v4(), bad_package))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(metadata_of(&refused)["field"], "packages[2].version");

    let update = |tenant: &str, user: &str| {
        app.request(
            tenant,
            user,
            &[],
            Uuid::new_v4(),
            UpdatePackagesRequest {
                command_id: Uuid::new_v4().to_string(),
                system_id: system_id.clone(),
                expected_version: None,
                packages: vec![package("log4j-core", "2.17.1")],
            },
        )
    };
    // Another tenant's system is as unknown as a missing one.
    let refused = client
        .update_packages(update("globex", "olga"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert_eq!(code_of(&refused), ErrorCode::NotFound);
    // Only the owner (or an administrator) updates the packages.
    let refused = client
        .update_packages(update(TENANT, "mallory"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(code_of(&refused), ErrorCode::PermissionDenied);
    let updated = client
        .update_packages(update(TENANT, "olga"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.aggregate_id, system_id);
    assert_eq!(updated.version, 2);
    app.stop().await;
}
