//! What every event-store test needs: a fresh migrated store, events, and ways to append them.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use event_store::{Append, AppendError, CommandRecord, EventStore, OutboxConnection};
use uuid::Uuid;
use workflow_domain::{
    Aggregate, Description, DisplayName, EventMetadata, Priority, RecordedEvent, Route, Title,
    UserId, Workflow, WorkflowEvent,
};

const AGGREGATE_TYPE: &str = Workflow::TYPE;

pub async fn store() -> EventStore {
    let (_, pool) = test_support::fresh_database("event_store").await;
    let store = EventStore::new(pool, &[workflow_domain::REGISTRATION]);
    store.migrate().await.expect("migrations apply");
    store
}

pub fn metadata(tenant: &str, command_id: Uuid) -> EventMetadata {
    EventMetadata {
        tenant_id: tenant.into(),
        user_id: "alice".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: command_id,
        traceparent: None,
    }
}

pub fn created() -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Low,
        applicant_id: UserId::parse("a", "alice").unwrap(),
        applicant_name: DisplayName::parse("n", "Alice").unwrap(),
        route: Route::of_users("route", ["bob"]).unwrap(),
        definition: None,
        due_date: None,
    }
}

pub async fn append(
    store: &EventStore,
    aggregate_id: Uuid,
    expected_version: i64,
    events: &[WorkflowEvent],
    metadata: &EventMetadata,
) -> Result<CommandRecord, AppendError> {
    store
        .append(Append {
            aggregate_type: AGGREGATE_TYPE,
            aggregate_id,
            expected_version,
            events,
            metadata,
            // The tests name the command by the metadata they pass.
            command_id: metadata.causation_id,
            command_type: "Test",
            occurred_at: chrono::Utc::now(),
        })
        .await
}

/// Creates a new aggregate of tenant `acme`, with a command of its own.
pub async fn append_new(store: &EventStore) -> CommandRecord {
    append(
        store,
        Uuid::new_v4(),
        0,
        &[created()],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap()
}

/// Writes an event row and its outbox row by hand, the way an older build (or a transaction
/// the test controls) would, bypassing `append`. Returns the event's position.
pub async fn insert_raw(
    executor: impl sqlx::PgExecutor<'_>,
    aggregate_id: Uuid,
    version: i64,
    event_type: &str,
    schema_version: i32,
    payload: serde_json::Value,
) -> i64 {
    let metadata = serde_json::to_value(metadata("acme", Uuid::new_v4())).unwrap();
    sqlx::query_scalar(
        "WITH e AS (
             INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
                                 schema_version, payload, metadata, occurred_at)
             VALUES ($1, 'acme', $2, $3, $4, $5, $6, $7, $8, now())
             RETURNING position
         )
         INSERT INTO outbox (position) SELECT position FROM e RETURNING position",
    )
    .bind(Uuid::now_v7())
    .bind(AGGREGATE_TYPE)
    .bind(aggregate_id)
    .bind(version)
    .bind(event_type)
    .bind(schema_version)
    .bind(payload)
    .bind(metadata)
    .fetch_one(executor)
    .await
    .expect("raw event inserted")
}

/// Up to `limit` unpublished events, failing the test on a row this build cannot read.
pub async fn readable(
    outbox: &mut OutboxConnection,
    limit: i64,
) -> Vec<RecordedEvent<WorkflowEvent>> {
    outbox
        .pending(limit, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let stored = row.expect("every outbox row is readable");
            stored
                .with_event(serde_json::from_value(stored.event.clone()).expect("a workflow event"))
        })
        .collect()
}
