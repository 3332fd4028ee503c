//! The pipeline under faults: contention, a broker outage, and services killed with SIGKILL.
//! Every test asserts on data — the event store, the read model, Kafka offsets — never on logs.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;
use tests::grpc::{until_acknowledged, CommandClient};
use tests::process::{free_port, wait_for_port, workspace_binary, Broker, Service};
use tests::{eventually, spawn_stack, spawn_stack_on, TestStack};
use uuid::Uuid;

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// Versions of one aggregate in the event store, in order.
async fn stored_versions(pool: &sqlx::PgPool, workflow_id: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM events WHERE aggregate_id = $1::uuid ORDER BY version")
        .bind(workflow_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until the read model holds every aggregate of the event store at its latest version.
async fn read_model_caught_up(events: &sqlx::PgPool, read: &sqlx::PgPool) -> HashMap<Uuid, i64> {
    let expected: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT aggregate_id, max(version) FROM events GROUP BY aggregate_id",
    )
    .fetch_all(events)
    .await
    .unwrap()
    .into_iter()
    .collect();
    eventually("read model equal to the event store", || async {
        let projected: HashMap<Uuid, i64> =
            sqlx::query_as::<_, (Uuid, i64)>("SELECT id, version FROM workflows")
                .fetch_all(read)
                .await
                .ok()?
                .into_iter()
                .collect();
        (projected == expected).then_some(projected)
    })
    .await
}

#[tokio::test]
async fn thirty_two_clients_deciding_one_step_have_exactly_one_winner() {
    let stack = spawn_stack().await;
    let mut alice = CommandClient::new(stack.command_port, &stack.token("acme", "alice"));
    let id = alice
        .create(&new_id(), "Contended", &["bob", "carol"])
        .await
        .unwrap()
        .workflow_id;
    alice.submit(&new_id(), &id).await.unwrap();

    let bob = CommandClient::new(stack.command_port, &stack.token("acme", "bob"));
    let attempts = (0..32).map(|_| {
        let mut bob = bob.clone();
        let id = id.clone();
        tokio::spawn(async move { bob.approve(&new_id(), &id, 1).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one decision wins: {results:?}"
    );
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        let code = platform::errors::code_of(status).as_str();
        assert!(
            matches!(code, "CONFLICT" | "FAILED_PRECONDITION"),
            "losers get CONFLICT or FAILED_PRECONDITION, got {status:?}"
        );
    }
    assert_eq!(
        stored_versions(&stack.event_store, &id).await,
        (1..=5).collect::<Vec<_>>(),
        "no duplicate or missing version"
    );
}

/// Consumer lag of the projector's group: high watermark minus committed offset, summed.
fn consumer_lag(stack: &TestStack) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.brokers)
        .set("group.id", &stack.group)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(&stack.topic), Duration::from_secs(5))
        .ok()?;
    let partitions = metadata.topics().first()?.partitions().len() as i32;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(&stack.topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .ok()?;
    let mut lag = 0;
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(&stack.topic, partition, Duration::from_secs(5))
            .ok()?;
        let done = match committed.find_partition(&stack.topic, partition)?.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        };
        lag += high - done;
    }
    Some(lag)
}

#[tokio::test]
async fn commands_keep_succeeding_while_the_broker_is_down_and_nothing_is_lost() {
    let mut broker = Broker::start().await;
    let stack = spawn_stack_on(&broker.address()).await;
    let mut alice = CommandClient::new(stack.command_port, &stack.token("acme", "alice"));

    let before = alice
        .create(&new_id(), "before the outage", &["bob"])
        .await
        .unwrap();
    stack
        .workflow_at_version(&stack.token("acme", "alice"), &before.workflow_id, 1)
        .await;

    broker.stop();
    let mut during = Vec::new();
    for i in 0..10 {
        let created = alice
            .create(&new_id(), &format!("during the outage {i}"), &["bob"])
            .await
            .expect("commands succeed without the broker");
        alice
            .submit(&new_id(), &created.workflow_id)
            .await
            .expect("commands succeed without the broker");
        during.push(created.workflow_id);
    }
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&stack.event_store)
        .await
        .unwrap();
    assert!(
        waiting > 0,
        "events wait in the outbox while the broker is down"
    );
    // Long enough for the relay's producer to notice the broker is gone and start reconnecting.
    tokio::time::sleep(Duration::from_secs(3)).await;

    broker.restart().await;
    let projected = read_model_caught_up(&stack.event_store, &stack.read_db).await;
    for id in &during {
        assert_eq!(
            projected[&id.parse::<Uuid>().unwrap()],
            3,
            "workflow {id} fully projected"
        );
    }
    eventually("outbox drained", || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&stack.event_store)
                .await
                .ok()?;
        (left == 0).then_some(())
    })
    .await;
    eventually("consumer lag back to zero", || async {
        (consumer_lag(&stack)? == 0).then_some(())
    })
    .await;
}

/// The stack as OS processes that can be SIGKILLed: command-svc (with the relay) and
/// projector-svc. Reads go straight to the databases, which is what the assertions need.
struct ProcessStack {
    command: Service,
    command_port: u16,
    projector: Service,
    events_url: String,
    read_url: String,
    events: sqlx::PgPool,
    read: sqlx::PgPool,
}

impl ProcessStack {
    async fn start() -> Self {
        let (events_url, events) = test_support::fresh_database("crash_events").await;
        let (read_url, read) = test_support::fresh_database("crash_read").await;
        let suffix = Uuid::new_v4().simple().to_string();
        let topic = format!("ringiflow.workflow.events.crash-{suffix}");
        let group = format!("ringiflow-projector-crash-{suffix}");
        let brokers = tests::kafka_brokers();
        let command_port = free_port();
        let command_addr = format!("127.0.0.1:{command_port}");
        let health_addr = format!("127.0.0.1:{}", free_port());
        // The System Board's topics and groups of this stack alone, as `spawn_stack` gives its.
        let context_topics = format!(
            "systems=test.systems.{suffix},vulnerabilities=test.vulnerabilities.{suffix},\
             tasks=test.tasks.{suffix}"
        );
        let context_groups = format!("ringiflow-projector-crash-{suffix}");
        let reactions_suffix = format!(".crash-{suffix}");
        let kafka = [
            ("RINGIFLOW_KAFKA_BROKERS", brokers.as_str()),
            ("RINGIFLOW_KAFKA_TOPIC", topic.as_str()),
            ("RINGIFLOW_KAFKA_TOPIC_PARTITIONS", "3"),
            ("RINGIFLOW_CONTEXT_TOPICS", context_topics.as_str()),
        ];
        let command = Service::new(
            "command-svc",
            workspace_binary("command-svc"),
            &[],
            &[
                [
                    ("RINGIFLOW_LISTEN_ADDR", command_addr.as_str()),
                    ("RINGIFLOW_EVENT_STORE_URL", events_url.as_str()),
                    (
                        "RINGIFLOW_REACTIONS_GROUP_SUFFIX",
                        reactions_suffix.as_str(),
                    ),
                ]
                .as_slice(),
                &kafka,
            ]
            .concat(),
        );
        let projector = Service::new(
            "projector-svc",
            workspace_binary("projector-svc"),
            &[],
            &[
                [
                    ("RINGIFLOW_HEALTH_ADDR", health_addr.as_str()),
                    ("RINGIFLOW_READ_DATABASE_URL", read_url.as_str()),
                    ("RINGIFLOW_KAFKA_GROUP_ID", group.as_str()),
                    ("RINGIFLOW_CONTEXT_GROUP_PREFIX", context_groups.as_str()),
                ]
                .as_slice(),
                &kafka,
            ]
            .concat(),
        );
        let mut stack = Self {
            command,
            command_port,
            projector,
            events_url,
            read_url,
            events,
            read,
        };
        stack.command.start();
        wait_for_port(command_port, "command-svc").await;
        stack.projector.start();
        stack
    }
}

#[tokio::test]
async fn killing_services_at_random_loses_no_acknowledged_command() {
    let mut stack = ProcessStack::start().await;
    let jwt = platform::auth::Jwt::local_development();
    let token = |user: &str| {
        jwt.issue(
            &platform::auth::Identity {
                tenant_id: "acme".into(),
                user_id: user.into(),
                display_name: user.into(),
                roles: vec![],
            },
            chrono::Duration::hours(1),
        )
        .expect("the development secret signs")
    };
    let alice = CommandClient::new(stack.command_port, &token("alice"));
    let bob = CommandClient::new(stack.command_port, &token("bob"));

    // The client: create → submit → approve, each command retried with its own id until the
    // service acknowledges it. Every acknowledged result is remembered.
    let client = tokio::spawn(async move {
        let mut acknowledged: Vec<(String, i64)> = Vec::new();
        for i in 0..40 {
            let (create_id, submit_id, approve_id) = (new_id(), new_id(), new_id());
            let title = format!("crash test {i}");
            let created = until_acknowledged(|| {
                let (mut a, id, title) = (alice.clone(), create_id.clone(), title.clone());
                async move { a.create(&id, &title, &["bob"]).await }
            })
            .await
            .expect("create is eventually acknowledged");
            let wf = created.workflow_id.clone();
            until_acknowledged(|| {
                let (mut a, id, wf) = (alice.clone(), submit_id.clone(), wf.clone());
                async move { a.submit(&id, &wf).await }
            })
            .await
            .expect("submit is eventually acknowledged");
            let approved = until_acknowledged(|| {
                let (mut b, id, wf) = (bob.clone(), approve_id.clone(), wf.clone());
                async move { b.approve(&id, &wf, 1).await }
            })
            .await
            .expect("approve is eventually acknowledged");
            acknowledged.push((wf, approved.version));
        }
        acknowledged
    });

    // The killer: SIGKILL one of the services at random moments, restart it shortly after.
    let mut rounds = 0;
    while !client.is_finished() && rounds < 12 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(200..900))).await;
        let victim = if rand::random_bool(0.5) {
            &mut stack.command
        } else {
            &mut stack.projector
        };
        victim.kill();
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..400))).await;
        victim.start();
        rounds += 1;
    }
    let acknowledged = client.await.expect("client finished");
    assert_eq!(acknowledged.len(), 40);
    assert!(rounds > 0, "at least one service was killed");

    let projected = read_model_caught_up(&stack.events, &stack.read).await;
    for (workflow_id, version) in &acknowledged {
        assert_eq!(*version, 5, "approve of a one-step route ends at version 5");
        assert_eq!(projected[&workflow_id.parse::<Uuid>().unwrap()], *version);
        assert_eq!(
            stored_versions(&stack.events, workflow_id).await,
            (1..=5).collect::<Vec<_>>()
        );
    }
    let statuses: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM workflows")
        .fetch_all(&stack.read)
        .await
        .unwrap();
    assert_eq!(statuses, ["APPROVED"]);

    let verify = tokio::process::Command::new(workspace_binary("projector-svc"))
        .arg("verify")
        .env("RINGIFLOW_READ_DATABASE_URL", &stack.read_url)
        .args(["--event-store-url", &stack.events_url])
        .output()
        .await
        .expect("verify runs");
    assert!(
        verify.status.success(),
        "verify found differences:\n{}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    stack.command.kill();
    stack.projector.kill();
}
