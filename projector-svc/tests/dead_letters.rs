//! Dead letters end to end: produced to `<topic>.dlq` with their original bytes and the
//! reason, their workflow parked, listed and replayed by the binary's `dlq` commands.

mod support;

use messaging::dead_letter::DeadLetter;
use messaging::{encode, CE_SOURCE_COMMAND_SVC};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{Message, Offset};
use support::{created, event, eventually, harness, printed, stdout};
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;
use workflow_domain::{Approver, RecordedEvent, StepNo, UserId, WorkflowEvent};

/// Every header of a message as (key, value) text pairs, in order.
fn headers(message: &OwnedMessage) -> Vec<(String, String)> {
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    })
}

fn as_message(event: &RecordedEvent<WorkflowEvent>) -> OwnedMessage {
    let out = encode::<proto::WorkflowCodec>(event, CE_SOURCE_COMMAND_SVC);
    OwnedMessage::new(
        Some(out.payload),
        Some(out.key.into_bytes()),
        String::new(),
        rdkafka::Timestamp::NotAvailable,
        0,
        0,
        Some(out.headers),
    )
}

/// Each dead letter's kind and the offset of its original, in order.
fn kinds(dead: &[OwnedMessage]) -> Vec<(Option<String>, Option<i64>)> {
    dead.iter()
        .map(|m| {
            let read = DeadLetter::read(m);
            (read.kind, read.original_offset)
        })
        .collect()
}

async fn parked(pool: &sqlx::PgPool, id: Uuid) -> Option<(Option<Uuid>, i64)> {
    sqlx::query_as(
        "SELECT first_event_id, dead_letters FROM parked_aggregates WHERE aggregate_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn poison_is_dead_lettered_its_workflow_parked_and_a_replay_repairs_it() {
    let h = harness().await;
    let (a, b, c, d) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let a_submitted = event(a, 2, WorkflowEvent::Submitted {});
    let assigned = || WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
        due_at: None,
    };

    h.publish(&event(a, 1, created())).await; // 0
                                              // 1: a's version 2 with its CloudEvents headers intact but a payload that is not protobuf.
    let malformed = encode::<proto::WorkflowCodec>(&a_submitted, CE_SOURCE_COMMAND_SVC);
    let garbage = b"\xff\xff\xff not protobuf";
    h.send(&malformed.key, garbage, malformed.headers.clone())
        .await;
    let a_assigned = event(a, 3, assigned());
    h.publish(&a_assigned).await; // 2: after the hole: parked
    h.publish(&event(b, 1, created())).await; // 3
                                              // 4: a type this projector does not know yet.
    let newer = encode::<proto::WorkflowCodec>(&event(c, 1, created()), CE_SOURCE_COMMAND_SVC);
    let renamed = headers(&as_message(&event(c, 1, created())))
        .into_iter()
        .fold(OwnedHeaders::new(), |copy, (key, value)| {
            let value = if key == "ce_type" {
                "WorkflowReopened".to_owned()
            } else {
                value
            };
            copy.insert(Header {
                key: &key,
                value: Some(&value),
            })
        });
    h.send(&newer.key, &newer.payload, renamed).await;
    h.publish(&event(d, 1, created())).await; // 5
                                              // 6: contradicts the read model: the route has one step only.
    let contradiction = event(
        d,
        2,
        WorkflowEvent::StepAssigned {
            step: StepNo::parse("step", 5).unwrap(),
            assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
            due_at: None,
        },
    );
    h.publish(&contradiction).await;
    h.publish(&event(b, 2, WorkflowEvent::Submitted {})).await; // 7

    let running = h.start().await;
    // Other workflows keep being applied around the poison.
    h.wait_for_version(b, 2).await;
    h.wait_for_version(d, 1).await;
    let dead = h.dead_letters(4).await;
    eventually("everything committed", || async {
        (h.committed_offset() == Offset::Offset(8)).then_some(())
    })
    .await;
    assert_eq!(
        h.version_of(a).await,
        1,
        "nothing applied on top of the hole"
    );

    // The malformed message, byte for byte, with why and where from.
    assert_eq!(dead[0].key(), Some(a.to_string().as_bytes()));
    assert_eq!(dead[0].payload(), Some(&garbage[..]));
    let original = headers(&as_message(&a_submitted));
    let copied = headers(&dead[0]);
    assert_eq!(
        copied[..original.len()],
        original[..],
        "original headers first"
    );
    let read = DeadLetter::read(&dead[0]);
    assert_eq!(read.kind.as_deref(), Some("undecodable"));
    assert!(
        read.error.as_deref().is_some_and(|e| e.contains("payload")),
        "{read:?}"
    );
    assert_eq!(
        read.original_topic.as_deref(),
        Some(h.settings.kafka.topic.as_str())
    );
    assert_eq!(
        (read.original_partition, read.original_offset),
        (Some(0), Some(1))
    );
    let at = read.dead_lettered_at.as_deref().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).expect("dead_lettered_at is RFC 3339");
    assert_eq!(
        copied
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("ringiflow_"))
            .count(),
        6
    );

    assert_eq!(
        kinds(&dead),
        [
            (Some("undecodable".into()), Some(1)),
            (Some("parked".into()), Some(2)),
            (Some("unknown_event_type".into()), Some(4)),
            (Some("contradiction".into()), Some(6)),
        ]
    );
    assert_eq!(
        dead[1].payload(),
        Some(
            encode::<proto::WorkflowCodec>(&a_assigned, CE_SOURCE_COMMAND_SVC)
                .payload
                .as_slice()
        )
    );
    assert_eq!(
        parked(&h.pool, a).await,
        Some((Some(a_submitted.event_id), 2))
    );
    assert!(parked(&h.pool, c).await.is_some());
    assert_eq!(
        parked(&h.pool, d).await,
        Some((Some(contradiction.event_id), 1))
    );

    // The cause is fixed: a's version 2 is published again, intact. a is parked, so it goes to
    // the dead-letter topic behind the others instead of being applied out of band.
    h.publish(&a_submitted).await;
    let dead = h.dead_letters(5).await;
    assert_eq!(DeadLetter::read(&dead[4]).kind.as_deref(), Some("parked"));
    assert_eq!(h.version_of(a).await, 1);

    let reported = || async { support::dead_letters_reported(running.port, "workflows").await };
    eventually("the status API to count 5 dead letters", || async {
        (reported().await == 5).then_some(())
    })
    .await;

    let list = h.command(&["dlq", "list"]).await;
    assert!(list.status.success(), "{}", printed(&list));
    let lines: Vec<String> = stdout(&list).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5, "{}", printed(&list));
    assert!(
        lines[0].starts_with(&format!(
            "0/0 from {}/0/1 key={a} ce_type=WorkflowSubmitted ce_id={} kind=undecodable error=",
            h.settings.kafka.topic, a_submitted.event_id
        )),
        "{}",
        lines[0]
    );
    let limited = h.command(&["dlq", "list", "--limit", "2"]).await;
    assert_eq!(stdout(&limited).lines().count(), 2, "{}", printed(&limited));

    // Replaying a's dead letters: version 3 waits for version 2, the fixed version 2 applies
    // and brings it along, and the malformed copy is superseded by it.
    let replay = h
        .command(&["dlq", "replay", "--aggregate", &a.to_string()])
        .await;
    assert!(replay.status.success(), "{}", printed(&replay));
    assert!(
        stdout(&replay).contains(
            "replayed 3 (applied 1, already applied 0, buffered 1, superseded 1); \
             skipped 0 replayed earlier; still failing 0; unparked 1 workflow(s)"
        ),
        "{}",
        printed(&replay)
    );
    assert_eq!(h.version_of(a).await, 3);
    assert_eq!(parked(&h.pool, a).await, None);
    let outcomes: Vec<(i64, String)> = sqlx::query_as(
        "SELECT dlq_offset, outcome FROM dlq_replayed WHERE dlq_topic = $1 ORDER BY dlq_offset",
    )
    .bind(h.dead_letter_topic())
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [
            (0, "superseded".to_owned()),
            (1, "buffered".to_owned()),
            (4, "applied".to_owned())
        ]
    );

    // The replayed ones no longer count as dead letters; the two still failing do.
    eventually(
        "the status API to count the 2 dead letters left",
        || async { (reported().await == 2).then_some(()) },
    )
    .await;

    // A second replay skips what is settled; the rest of the topic still fails and says so.
    let again = h.command(&["dlq", "replay"]).await;
    assert_eq!(again.status.code(), Some(1), "{}", printed(&again));
    let out = stdout(&again);
    assert!(out.contains("replayed 0 (applied 0, already applied 0, buffered 0, superseded 0); skipped 3 replayed earlier; still failing 2;"), "{}", printed(&again));
    assert!(
        out.contains(&format!("key={c} ce_type=WorkflowReopened")),
        "{out}"
    );
    assert!(
        out.contains(&format!("key={d} ce_type=WorkflowStepAssigned")),
        "{out}"
    );
    assert!(parked(&h.pool, c).await.is_some() && parked(&h.pool, d).await.is_some());

    // Unparked, a takes new events live again.
    h.publish(&event(
        a,
        4,
        WorkflowEvent::StepCompleted {
            step: StepNo::FIRST,
            decision: workflow_domain::Decision::Approved,
            decided_by: UserId::parse("user", "bob").unwrap(),
            comment: String::new(),
        },
    ))
    .await;
    h.wait_for_version(a, 4).await;
    running.stop().await;
}

#[tokio::test]
async fn an_event_the_read_database_refuses_stops_only_its_workflow() {
    let h = harness().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Decodes, and the fold accepts it, but PostgreSQL stores no NUL in text: the kind of value
    // that once froze every tenant's read side behind one batch retried forever.
    let refused = event(
        b,
        4,
        WorkflowEvent::StepCompleted {
            step: StepNo::FIRST,
            decision: workflow_domain::Decision::Approved,
            decided_by: UserId::parse("user", "bob").unwrap(),
            comment: "ok\u{0}".to_owned(),
        },
    );
    for message in [
        event(a, 1, created()),
        event(b, 1, created()),
        event(b, 2, WorkflowEvent::Submitted {}),
        event(
            b,
            3,
            WorkflowEvent::StepAssigned {
                step: StepNo::FIRST,
                assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
                due_at: None,
            },
        ),
        refused.clone(),
        event(b, 5, WorkflowEvent::Approved {}),
        event(c, 1, created()),
        event(a, 2, WorkflowEvent::Submitted {}),
    ] {
        h.publish(&message).await;
    }
    let running = h.start().await;

    // Every other workflow, before and after it in the same batch, is applied.
    h.wait_for_version(a, 2).await;
    h.wait_for_version(c, 1).await;
    eventually("everything committed", || async {
        (h.committed_offset() == Offset::Offset(8)).then_some(())
    })
    .await;
    assert_eq!(
        h.version_of(b).await,
        3,
        "nothing of b from the refused event on"
    );
    assert!(parked(&h.pool, b).await.is_some(), "b is parked");
    assert!(parked(&h.pool, a).await.is_none());

    let dead = h.dead_letters(2).await;
    assert_eq!(
        kinds(&dead),
        [
            (Some("refused".into()), Some(4)),
            (Some("parked".into()), Some(5))
        ]
    );
    let listed = h.command(&["dlq", "list"]).await;
    assert!(listed.status.success(), "{}", printed(&listed));
    assert!(
        stdout(&listed).contains(&refused.event_id.to_string()),
        "{}",
        printed(&listed)
    );
    // The projector stays up; the read model says it is incomplete.
    assert_eq!(
        support::health(running.port, "").await,
        ServingStatus::Serving
    );
    eventually("the read model reported incomplete", || async {
        (support::health(running.port, projector_svc::READ_MODEL_HEALTH).await
            == ServingStatus::NotServing)
            .then_some(())
    })
    .await;
    running.stop().await;
}
