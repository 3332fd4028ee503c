//! Schema evolution reaches the read model: events stored in the walking skeleton's payload
//! shapes (a route of user ids, `approver_id`) are upcast by the production chain on the way out
//! of the store, so projecting them gives the same rows as current-shape events.

use event_store::EventStore;
use serde_json::json;
use uuid::Uuid;
use workflow_domain::{Aggregate, Approver, UserId, Workflow};

#[tokio::test]
async fn events_stored_in_an_old_shape_project_like_current_ones() {
    let (_, events_pool) = test_support::fresh_database("upcast_events").await;
    let store = EventStore::new(events_pool.clone(), &[workflow_domain::REGISTRATION]);
    store.migrate().await.unwrap();
    let (_, read_pool) = test_support::fresh_database("upcast_read").await;
    read_model::migrate(&read_pool).await.unwrap();

    let id = Uuid::new_v4();
    let metadata = json!({
        "tenant_id": "acme", "user_id": "alice",
        "correlation_id": Uuid::new_v4(), "causation_id": Uuid::new_v4()
    });
    let v1_created = json!({
        "title": "出張申請：大阪", "description": "", "priority": "High",
        "applicant_id": "alice", "applicant_name": "Alice", "route": ["bob"]
    });
    for (version, event_type, schema_version, payload) in [
        (1, "WorkflowCreated", 1, v1_created),
        (2, "WorkflowSubmitted", 1, json!({})),
        (
            3,
            "WorkflowStepAssigned",
            1,
            json!({ "step": 1, "approver_id": "bob" }),
        ),
    ] {
        sqlx::query(
            "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
                                 schema_version, payload, metadata, occurred_at)
             VALUES ($1, 'acme', 'workflow', $2, $3, $4, $5, $6, $7, now())",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(version as i64)
        .bind(event_type)
        .bind(schema_version)
        .bind(&payload)
        .bind(&metadata)
        .execute(&events_pool)
        .await
        .unwrap();
    }

    for scanned in store
        .scan(&[Workflow::TYPE], None, None, (Uuid::nil(), 0), 100)
        .await
        .unwrap()
    {
        let event = scanned.event.expect("old shapes are upcast, not refused");
        assert_eq!(
            projection::apply::<read_model::Workflows>(&read_pool, &event)
                .await
                .unwrap(),
            projection::ApplyOutcome::Applied
        );
    }
    let row = read_model::get_workflow(&read_pool, "acme", id)
        .await
        .unwrap()
        .expect("projected")
        .workflow;
    assert_eq!(row.applicant_id, "alice");
    assert_eq!(row.applicant_name, "Alice");
    assert_eq!(row.title, "出張申請：大阪");
    assert_eq!(row.version, 3);
    assert_eq!(
        row.current.map(|current| current.assignee),
        Some(Approver::User(UserId::parse("user", "bob").unwrap()))
    );
}
