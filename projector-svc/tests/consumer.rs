//! The consume → apply → commit loop against a real broker and PostgreSQL.

mod support;

use rdkafka::{Message, Offset};
use std::time::Duration;
use support::{created, event, eventually, harness, health};
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;
use workflow_domain::{Approver, RecordedEvent, StepNo, UserId, WorkflowEvent};

fn assigned() -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
        due_at: None,
    }
}

#[tokio::test]
async fn events_are_applied_once_poison_is_set_aside_and_offsets_are_committed() {
    let h = harness().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let submitted = event(a, 2, WorkflowEvent::Submitted {});
    h.publish(&event(a, 1, created())).await;
    h.publish(&submitted).await;
    h.publish(&submitted).await; // a redelivery, as after a relay retry
    h.send(
        "garbage",
        b"not a cloudevent",
        rdkafka::message::OwnedHeaders::new(),
    )
    .await;
    h.publish(&event(a, 3, assigned())).await;
    h.publish(&event(b, 1, created())).await;
    let produced = 6;

    let running = h.start().await;
    assert_eq!(health(running.port, "").await, ServingStatus::Serving);
    eventually("the read model reported complete", || async {
        (health(running.port, projector_svc::READ_MODEL_HEALTH).await == ServingStatus::Serving)
            .then_some(())
    })
    .await;
    h.wait_for_version(a, 3).await;
    h.wait_for_version(b, 1).await;
    running.stop().await;

    let wf = read_model::get_workflow(&h.pool, "acme", a)
        .await
        .unwrap()
        .unwrap()
        .workflow;
    let current = wf.current.expect("a step is waiting");
    assert_eq!(
        (current.step, current.assignee),
        (1, Approver::User(UserId::parse("user", "bob").unwrap()))
    );
    assert_eq!(
        h.committed_offset(),
        Offset::Offset(produced),
        "everything processed is committed"
    );
    let dead = h.dead_letters(1).await;
    assert_eq!(dead[0].payload(), Some(&b"not a cloudevent"[..]));

    // A restart resumes after the committed offset and picks up new events.
    let running = h.start().await;
    h.publish(&event(b, 2, WorkflowEvent::Submitted {})).await;
    h.wait_for_version(b, 2).await;
    running.stop().await;
    assert_eq!(h.committed_offset(), Offset::Offset(produced + 1));
}

#[tokio::test]
async fn an_early_event_is_buffered_committed_and_applied_after_its_predecessor() {
    let h = harness().await;
    let id = Uuid::new_v4();
    let events = [
        event(id, 1, created()),
        event(id, 2, WorkflowEvent::Submitted {}),
        event(id, 3, assigned()),
    ];
    h.publish(&events[0]).await;
    h.publish(&events[2]).await; // version 2 has not arrived yet

    let running = h.start().await;
    h.wait_for_version(id, 1).await;
    support::eventually("the early event committed", || async {
        (h.committed_offset() == Offset::Offset(2)).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(h.version_of(id).await, 1, "nothing is applied past a gap");
    let buffered: Vec<i64> = sqlx::query_scalar("SELECT version FROM pending_events")
        .fetch_all(&h.pool)
        .await
        .unwrap();
    assert_eq!(
        buffered,
        [3],
        "the early event waits in the buffer, not in the partition"
    );

    // After a restart, the missing version brings the buffered one along.
    let running = h.start().await;
    h.publish(&events[1]).await;
    h.wait_for_version(id, 3).await;
    running.stop().await;
    let buffered: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_events")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(buffered, 0);
}

#[tokio::test]
async fn duplicated_and_reordered_delivery_ends_like_in_order_delivery() {
    let h = harness().await;
    let id = Uuid::new_v4();
    let events: Vec<RecordedEvent<WorkflowEvent>> = vec![
        event(id, 1, created()),
        event(id, 2, WorkflowEvent::Submitted {}),
        event(id, 3, assigned()),
    ];
    // In order, straight into a reference database.
    let (_, reference) = test_support::fresh_database("projector_reference").await;
    read_model::migrate(&reference).await.unwrap();
    for e in &events {
        projection::apply::<read_model::Workflows>(&reference, e)
            .await
            .unwrap();
    }
    let expected = read_model::get_workflow(&reference, "acme", id)
        .await
        .unwrap()
        .unwrap();

    // v3, v1, v2, v2, v1 through the broker.
    for i in [2, 0, 1, 1, 0] {
        h.publish(&events[i]).await;
    }
    let running = h.start().await;
    h.wait_for_version(id, 3).await;
    support::eventually("all five committed", || async {
        (h.committed_offset() == Offset::Offset(5)).then_some(())
    })
    .await;
    running.stop().await;
    let projected = read_model::get_workflow(&h.pool, "acme", id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(projected, expected);
    // Nothing went to the dead-letter topic: its partition is empty.
    let consumer: rdkafka::consumer::BaseConsumer =
        messaging::consumer_config(&h.settings.kafka, "watermarks")
            .create()
            .unwrap();
    let (low, high) = rdkafka::consumer::Consumer::fetch_watermarks(
        &consumer,
        &h.dead_letter_topic(),
        0,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(low, high);
}
