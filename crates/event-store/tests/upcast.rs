//! Schema evolution: rows stored in older payload shapes load as current domain events.
//!
//! The chain below gives the domain a longer past than it has: before the production steps
//! (routes of users → route steps, `approver_id` → `assignee`) it puts two made-up shapes of
//! `WorkflowCreated` and one of `WorkflowStepCompleted`, so `WorkflowCreated` is at version 4,
//! `WorkflowStepAssigned` at 2 and `WorkflowStepCompleted` at 2. Older-shaped rows are written
//! by hand the way an older build would have.

mod common;

use common::{append, created, insert_raw, metadata, store};
use es_kernel::upcast::{UpcastError, Upcaster};
use event_store::StoreError;
use serde_json::{json, Value};
use uuid::Uuid;
use workflow_domain::{
    replay, Approver, Decision, Route, Status, StepNo, UserId, Workflow, WorkflowEvent,
};

/// v1 → v2: the applicant was one object; it became two fields.
fn created_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let data = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError("not an object".into()))?;
    let applicant = data
        .remove("applicant")
        .ok_or_else(|| UpcastError("no applicant".into()))?;
    data.insert("applicant_id".into(), applicant["id"].clone());
    data.insert("applicant_name".into(), applicant["name"].clone());
    Ok(payload)
}

/// v2 → v3: `approvers` was renamed `route`.
fn created_v2_to_v3(mut payload: Value) -> Result<Value, UpcastError> {
    let data = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError("not an object".into()))?;
    let approvers = data
        .remove("approvers")
        .ok_or_else(|| UpcastError("no approvers".into()))?;
    data.insert("route".into(), approvers);
    Ok(payload)
}

/// v1 → v2: a boolean became the `decision` enum.
fn step_completed_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let data = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError("not an object".into()))?;
    let approved = data
        .remove("approved")
        .and_then(|a| a.as_bool())
        .ok_or_else(|| UpcastError("no approved".into()))?;
    data.insert(
        "decision".into(),
        json!(if approved { "Approved" } else { "Rejected" }),
    );
    Ok(payload)
}

/// A step of the production chain, reused at the position the made-up past leaves for it.
fn production(event_type: &str) -> fn(Value) -> Result<Value, UpcastError> {
    workflow_domain::UPCASTERS
        .iter()
        .find(|step| step.event_type == event_type && step.from_version == 1)
        .expect("a production step")
        .upcast
}

fn chain() -> &'static [Upcaster] {
    Box::leak(Box::new([
        Upcaster {
            event_type: "WorkflowCreated",
            from_version: 1,
            upcast: created_v1_to_v2,
        },
        Upcaster {
            event_type: "WorkflowCreated",
            from_version: 2,
            upcast: created_v2_to_v3,
        },
        Upcaster {
            event_type: "WorkflowCreated",
            from_version: 3,
            upcast: production("WorkflowCreated"),
        },
        Upcaster {
            event_type: "WorkflowStepAssigned",
            from_version: 1,
            upcast: production("WorkflowStepAssigned"),
        },
        Upcaster {
            event_type: "WorkflowStepCompleted",
            from_version: 1,
            upcast: step_completed_v1_to_v2,
        },
    ]))
}

fn created_v1() -> Value {
    json!({
        "title": "出張申請", "description": "", "priority": "Low",
        "applicant": {"id": "alice", "name": "Alice"},
        "approvers": ["bob"],
    })
}

fn uid(raw: &str) -> UserId {
    UserId::parse("user", raw).unwrap()
}

#[tokio::test]
async fn old_payload_shapes_load_as_current_events_and_fold() {
    let store = store().await.with_upcasters(chain());
    let (id, mid_chain) = (Uuid::new_v4(), Uuid::new_v4());
    let pool = store.pool();
    insert_raw(pool, id, 1, "WorkflowCreated", 1, created_v1()).await;
    insert_raw(pool, id, 2, "WorkflowSubmitted", 1, json!({})).await;
    insert_raw(
        pool,
        id,
        3,
        "WorkflowStepAssigned",
        1,
        json!({"step": 1, "approver_id": "bob"}),
    )
    .await;
    let completed = json!({"step": 1, "approved": true, "decided_by": "bob", "comment": "ok"});
    insert_raw(pool, id, 4, "WorkflowStepCompleted", 1, completed).await;
    insert_raw(pool, id, 5, "WorkflowApproved", 1, json!({})).await;
    // A row written between the two changes starts half-way along the chain.
    let created_v2 = created_v1_to_v2(created_v1()).unwrap();
    insert_raw(pool, mid_chain, 1, "WorkflowCreated", 2, created_v2).await;

    let expected = vec![
        created(),
        WorkflowEvent::Submitted {},
        WorkflowEvent::StepAssigned {
            step: StepNo::FIRST,
            assignee: Approver::User(uid("bob")),
            due_at: None,
        },
        WorkflowEvent::StepCompleted {
            step: StepNo::FIRST,
            decision: Decision::Approved,
            decided_by: uid("bob"),
            comment: "ok".into(),
        },
        WorkflowEvent::Approved {},
    ];
    let loaded: Vec<WorkflowEvent> = store
        .history::<workflow_domain::Workflow>("acme", id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(loaded, expected);
    let workflow = replay::<Workflow>(&loaded).unwrap().expect("created");
    assert_eq!(workflow.status, Status::Approved);
    assert_eq!(workflow.route, Route::of_users("route", ["bob"]).unwrap());
    let mid: Vec<WorkflowEvent> = store
        .history::<workflow_domain::Workflow>("acme", mid_chain, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(mid, [created()]);

    // The relay's read path upcasts too.
    let mut outbox = store.try_lead().await.unwrap().expect("leads");
    let pending: Vec<WorkflowEvent> = outbox
        .pending(10, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_value(e.unwrap().event).unwrap())
        .collect();
    assert_eq!(pending[..5], expected);
    assert_eq!(pending[5], created());
}

#[tokio::test]
async fn appends_record_the_current_version_of_each_event_type() {
    let store = store().await.with_upcasters(chain());
    let id = Uuid::new_v4();
    append(
        &store,
        id,
        0,
        &[created(), WorkflowEvent::Submitted {}],
        &metadata("acme", Uuid::new_v4()),
    )
    .await
    .unwrap();
    let versions: Vec<(String, i32)> = sqlx::query_as(
        "SELECT event_type, schema_version FROM events WHERE aggregate_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        versions,
        [
            ("WorkflowCreated".to_owned(), 4),
            ("WorkflowSubmitted".to_owned(), 1)
        ]
    );
    assert_eq!(
        store
            .history::<workflow_domain::Workflow>("acme", id, 0)
            .await
            .unwrap()
            .len(),
        2,
        "current rows are read as they are"
    );

    // The production chain has never heard of WorkflowCreated v4: a newer build wrote it.
    let production =
        event_store::EventStore::new(store.pool().clone(), &[workflow_domain::REGISTRATION]);
    match production
        .history::<workflow_domain::Workflow>("acme", id, 0)
        .await
    {
        Err(StoreError::UnknownSchema {
            event_type,
            schema_version: 4,
            ..
        }) => {
            assert_eq!(event_type, "WorkflowCreated")
        }
        other => panic!("expected UnknownSchema, got {other:?}"),
    }
    let mut outbox = production.try_lead().await.unwrap().expect("leads");
    // The relay gets the row as unreadable, in its place, rather than an error for them all.
    let pending = outbox.pending(10, &[]).await.unwrap();
    let unreadable = pending
        .iter()
        .find_map(|row| row.as_ref().err())
        .expect("the row of the unknown version is unreadable");
    assert!(
        unreadable.problem.contains("version 4"),
        "{}",
        unreadable.problem
    );
}

#[tokio::test]
async fn unknown_versions_and_malformed_old_payloads_are_typed_errors() {
    let store = store().await.with_upcasters(chain());
    let (future, malformed, unknown_type) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    insert_raw(store.pool(), future, 1, "WorkflowCreated", 5, json!({})).await;
    insert_raw(
        store.pool(),
        malformed,
        1,
        "WorkflowCreated",
        1,
        json!({"title": "no applicant"}),
    )
    .await;
    insert_raw(
        store.pool(),
        unknown_type,
        1,
        "WorkflowArchived",
        1,
        json!({}),
    )
    .await;

    assert!(matches!(
        store
            .history::<workflow_domain::Workflow>("acme", future, 0)
            .await,
        Err(StoreError::UnknownSchema {
            schema_version: 5,
            ..
        })
    ));
    match store
        .history::<workflow_domain::Workflow>("acme", malformed, 0)
        .await
    {
        Err(StoreError::Corrupt { problem, .. }) => {
            assert!(
                problem.contains("WorkflowCreated version 1") && problem.contains("no applicant"),
                "{problem}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store
            .history::<workflow_domain::Workflow>("acme", unknown_type, 0)
            .await,
        Err(StoreError::Corrupt { .. })
    ));
}
