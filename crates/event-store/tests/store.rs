//! The event store against a real PostgreSQL.

use event_store::{Append, AppendError, EventStore, OutboxConnection};
use std::sync::Arc;
use uuid::Uuid;
use workflow_domain::{
    Description, DisplayName, EventMetadata, Priority, Route, Title, UserId, WorkflowEvent, AGGREGATE_TYPE,
};

async fn store() -> EventStore {
    let (_, pool) = test_support::fresh_database("event_store").await;
    let store = EventStore::new(pool);
    store.migrate().await.expect("migrations apply");
    store
}

fn metadata(tenant: &str, command_id: Uuid) -> EventMetadata {
    EventMetadata {
        tenant_id: tenant.into(),
        user_id: "alice".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: command_id,
        traceparent: None,
    }
}

fn created() -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Low,
        applicant_id: UserId::parse("a", "alice").unwrap(),
        applicant_name: DisplayName::parse("n", "Alice").unwrap(),
        route: Route::parse("route", ["bob"], |i| i.to_string()).unwrap(),
    }
}

async fn append(
    store: &EventStore,
    aggregate_id: Uuid,
    expected_version: i64,
    events: &[WorkflowEvent],
    metadata: &EventMetadata,
) -> Result<event_store::CommandRecord, AppendError> {
    store
        .append(Append {
            aggregate_type: AGGREGATE_TYPE,
            aggregate_id,
            expected_version,
            events,
            metadata,
            command_type: "Test",
            occurred_at: chrono::Utc::now(),
        })
        .await
}

#[tokio::test]
async fn appended_events_load_back_in_version_order_for_their_tenant_only() {
    let store = store().await;
    let id = Uuid::new_v4();
    let events = [created(), WorkflowEvent::Submitted {}];
    let record = append(&store, id, 0, &events, &metadata("acme", Uuid::new_v4())).await.unwrap();
    assert_eq!(record.version, 2);

    let loaded = store.load("acme", id).await.unwrap();
    assert_eq!(loaded.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(loaded.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), events);
    assert_eq!(loaded.iter().map(|e| e.event_id).collect::<Vec<_>>(), record.event_ids);
    assert!(store.load("other-tenant", id).await.unwrap().is_empty());
}

#[tokio::test]
async fn sixteen_concurrent_appends_at_one_version_have_exactly_one_winner() {
    let store = Arc::new(store().await);
    let id = Uuid::new_v4();
    append(&store, id, 0, &[created()], &metadata("acme", Uuid::new_v4())).await.unwrap();

    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            append(&store, id, 1, &[WorkflowEvent::Submitted {}], &metadata("acme", Uuid::new_v4())).await
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one append may win: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, AppendError::Conflict { expected: 1, current_version: 2 }),
                "losers see a conflict at the current version, got {error:?}"
            );
        }
    }
    let versions: Vec<i64> = store.load("acme", id).await.unwrap().iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2], "no duplicate and no missing version");
}

#[tokio::test]
async fn a_reused_command_id_appends_nothing_and_returns_the_first_result() {
    let store = store().await;
    let id = Uuid::new_v4();
    let command_id = Uuid::new_v4();
    let first = append(&store, id, 0, &[created()], &metadata("acme", command_id)).await.unwrap();
    assert_eq!(store.find_command("acme", command_id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_command("other-tenant", command_id).await.unwrap(), None);

    // A retry that raced past the lookup and decided again on the new state.
    let retry = append(&store, id, 1, &[WorkflowEvent::Submitted {}], &metadata("acme", command_id)).await;
    match retry {
        Err(AppendError::DuplicateCommand(record)) => assert_eq!(record, first),
        other => panic!("expected DuplicateCommand, got {other:?}"),
    }
    assert_eq!(store.load("acme", id).await.unwrap().len(), 1, "the retry appended nothing");
}

#[tokio::test]
async fn the_outbox_hands_out_each_event_until_published_and_elects_one_relay() {
    let store = store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(&store, a, 0, &[created()], &metadata("acme", Uuid::new_v4())).await.unwrap();
    append(&store, b, 0, &[created()], &metadata("acme", Uuid::new_v4())).await.unwrap();
    append(&store, a, 1, &[WorkflowEvent::Submitted {}], &metadata("acme", Uuid::new_v4())).await.unwrap();

    let mut leader = OutboxConnection::try_lead(store.pool()).await.unwrap().expect("first relay leads");
    assert!(OutboxConnection::try_lead(store.pool()).await.unwrap().is_none(), "a second relay must wait");

    let pending = leader.pending(10).await.unwrap();
    let order: Vec<(Uuid, i64)> = pending.iter().map(|e| (e.aggregate_id, e.version)).collect();
    assert_eq!(order, [(a, 1), (b, 1), (a, 2)]);
    leader.mark_published(&[pending[0].position, pending[1].position]).await.unwrap();
    let rest = leader.pending(10).await.unwrap();
    assert_eq!(rest.iter().map(|e| (e.aggregate_id, e.version)).collect::<Vec<_>>(), [(a, 2)]);

    drop(leader);
    // The lock dies with the leader's session.
    let mut taken_over = None;
    for _ in 0..50 {
        taken_over = OutboxConnection::try_lead(store.pool()).await.unwrap();
        if taken_over.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(taken_over.is_some(), "another relay takes over once the leader is gone");
}

#[tokio::test]
async fn recorded_events_cannot_be_changed() {
    let store = store().await;
    let id = Uuid::new_v4();
    append(&store, id, 0, &[created()], &metadata("acme", Uuid::new_v4())).await.unwrap();
    for statement in ["UPDATE events SET event_type = 'X'", "DELETE FROM events", "TRUNCATE events CASCADE"] {
        let result = sqlx::query(statement).execute(store.pool()).await;
        assert!(result.is_err(), "{statement} must be refused");
    }
    assert_eq!(store.load("acme", id).await.unwrap().len(), 1);
}
