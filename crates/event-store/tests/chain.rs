//! `EventStore::chain`: every event of one correlation id, across aggregates and their types,
//! in recorded order, for its own tenant only. Events here are plain JSON of made-up aggregate
//! types: the chain reads envelopes, never payloads.

use chrono::Utc;
use es_kernel::EventMetadata;
use event_store::{Append, EventStore};
use serde_json::{json, Value};
use uuid::Uuid;

async fn store() -> EventStore {
    let (_, pool) = test_support::fresh_database("event_store_chain").await;
    let store = EventStore::new(pool, &[]);
    store.migrate().await.expect("migrations apply");
    store
}

fn metadata(tenant: &str, user: &str, correlation_id: Uuid, causation_id: Uuid) -> EventMetadata {
    EventMetadata {
        tenant_id: tenant.into(),
        user_id: user.into(),
        correlation_id,
        causation_id,
        traceparent: None,
    }
}

fn event(event_type: &str) -> Value {
    json!({ "type": event_type, "data": { "n": 1 } })
}

/// Appends `events` to a new aggregate of `aggregate_type`; returns its id and the event ids.
async fn append(
    store: &EventStore,
    aggregate_type: &str,
    events: &[Value],
    metadata: &EventMetadata,
) -> (Uuid, Vec<Uuid>) {
    let aggregate_id = Uuid::new_v4();
    let record = store
        .append(Append {
            aggregate_type,
            aggregate_id,
            expected_version: 0,
            events,
            metadata,
            command_id: Uuid::new_v4(),
            command_type: "Test",
            occurred_at: Utc::now(),
        })
        .await
        .expect("append");
    (aggregate_id, record.event_ids)
}

#[tokio::test]
async fn a_chain_spans_aggregates_in_recorded_order_for_its_tenant_only() {
    let store = store().await;
    let correlation = Uuid::new_v4();
    let command = Uuid::new_v4();
    // A person's command, then the platform's reaction to its event, then a reaction to that.
    let (first, first_events) = append(
        &store,
        "alpha",
        &[event("AlphaStarted"), event("AlphaChanged")],
        &metadata("acme", "olga", correlation, command),
    )
    .await;
    let (second, second_events) = append(
        &store,
        "beta",
        &[event("BetaOpened")],
        &metadata("acme", "platform", correlation, first_events[0]),
    )
    .await;
    // Noise: another chain of the tenant, and another tenant's events under the same id.
    append(
        &store,
        "alpha",
        &[event("AlphaStarted")],
        &metadata("acme", "olga", Uuid::new_v4(), Uuid::new_v4()),
    )
    .await;
    append(
        &store,
        "gamma",
        &[event("GammaSeen")],
        &metadata("globex", "eve", correlation, Uuid::new_v4()),
    )
    .await;
    let (third, third_events) = append(
        &store,
        "gamma",
        &[event("GammaSeen")],
        &metadata("acme", "platform", correlation, second_events[0]),
    )
    .await;

    let chain = store.chain("acme", correlation, 100).await.unwrap();
    let summary: Vec<(Uuid, &str, &str, Uuid, i64, Uuid, &str)> = chain
        .iter()
        .map(|link| {
            assert_eq!(link.correlation_id, correlation);
            (
                link.event_id,
                link.event_type.as_str(),
                link.aggregate_type.as_str(),
                link.aggregate_id,
                link.version,
                link.causation_id,
                link.user_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                first_events[0],
                "AlphaStarted",
                "alpha",
                first,
                1,
                command,
                "olga"
            ),
            (
                first_events[1],
                "AlphaChanged",
                "alpha",
                first,
                2,
                command,
                "olga"
            ),
            (
                second_events[0],
                "BetaOpened",
                "beta",
                second,
                1,
                first_events[0],
                "platform"
            ),
            (
                third_events[0],
                "GammaSeen",
                "gamma",
                third,
                1,
                second_events[0],
                "platform"
            ),
        ]
    );
    assert!(chain
        .windows(2)
        .all(|w| w[0].occurred_at <= w[1].occurred_at));

    // The limit bounds the read; the prefix is the oldest.
    let two = store.chain("acme", correlation, 2).await.unwrap();
    assert_eq!(two, chain[..2].to_vec());
    // Another tenant sees only its own event; a tenant without the id sees nothing.
    let other = store.chain("globex", correlation, 100).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].user_id, "eve");
    assert!(store
        .chain("initech", correlation, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .chain("acme", Uuid::new_v4(), 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_chain_is_found_through_the_correlation_index() {
    let store = store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let explained: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT event_id FROM events
         WHERE tenant_id = 'acme' AND metadata->>'correlation_id' = 'x' ORDER BY position",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(
        explained
            .iter()
            .any(|line| line.contains("events_tenant_correlation")),
        "{explained:#?}"
    );
}
