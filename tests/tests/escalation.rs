//! End to end: the deadline watcher inside projector-svc escalates a step whose deadline has
//! passed — once per assignment — and leaves a step that is not due yet alone. A deadline in
//! the past is a history no command can produce, so that workflow's events are appended to the
//! event store directly; the relay publishes them like any others.

use chrono::{DateTime, Duration, Utc};
use event_store::{Append, EventStore};
use serde_json::{json, Value};
use std::time::Duration as StdDuration;
use tests::{eventually, spawn_stack, TestStack};
use uuid::Uuid;
use workflow_domain::{
    Approver, Description, DisplayName, EventMetadata, Priority, RawApprover, RawStep, Route,
    StepNo, Title, UserId, WorkflowEvent,
};

/// Created, submitted and assigned to bob with a deadline two hours ago, as if the SLA of one
/// hour had run out an hour ago.
async fn append_overdue_workflow(stack: &TestStack) -> Uuid {
    let id = Uuid::new_v4();
    let route = Route::parse(
        "route",
        [RawStep {
            approver: Some(RawApprover::User("bob")),
            sla_hours: Some(1),
        }],
        |i, part| format!("route[{i}].{part}"),
    )
    .unwrap();
    let events = [
        WorkflowEvent::Created {
            title: Title::parse("title", "稟議：期限切れ").unwrap(),
            description: Description::parse("description", "e2e").unwrap(),
            priority: Priority::High,
            applicant_id: UserId::parse("user", "alice").unwrap(),
            applicant_name: DisplayName::parse("name", "alice san").unwrap(),
            route,
            definition: None,
            due_date: None,
        },
        WorkflowEvent::Submitted {},
        WorkflowEvent::StepAssigned {
            step: StepNo::FIRST,
            assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
            // To the nanosecond, as command-svc computes deadlines.
            due_at: Some(Utc::now() - Duration::hours(2)),
        },
    ];
    let metadata = EventMetadata {
        tenant_id: "acme".into(),
        user_id: "alice".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        traceparent: None,
    };
    EventStore::new(stack.event_store.clone(), &[workflow_domain::REGISTRATION])
        .append(Append {
            aggregate_type: "workflow",
            aggregate_id: id,
            expected_version: 0,
            events: &events,
            metadata: &metadata,
            command_id: metadata.causation_id,
            command_type: "CreateWorkflow",
            occurred_at: Utc::now() - Duration::hours(3),
        })
        .await
        .expect("append the overdue workflow");
    id
}

/// The workflow's deadline fields as the read side shows them; `None` until it is projected.
async fn deadlines(stack: &TestStack, token: &str, id: &str) -> Option<Value> {
    let response = stack
        .graphql(
            Some(token),
            "query($id: ID!) { workflow(id: $id) { version currentDueAt currentEscalatedAt
               steps { dueAt escalatedAt } } }",
            json!({ "id": id }),
        )
        .await;
    response
        .data
        .get("workflow")
        .filter(|w| !w.is_null())
        .cloned()
}

/// Polls until the read side shows the workflow at `version` or later with its current
/// assignment escalated, and returns the workflow.
async fn escalated_at(stack: &TestStack, token: &str, id: &str, version: i64) -> Value {
    eventually(
        &format!("workflow {id} escalated at version {version}"),
        || async {
            let workflow = deadlines(stack, token, id).await?;
            (workflow["version"].as_i64() >= Some(version)
                && !workflow["currentEscalatedAt"].is_null())
            .then_some(workflow)
        },
    )
    .await
}

/// The escalations in the event store, by the user that sent them.
async fn escalations_by(stack: &TestStack, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT metadata->>'user_id' FROM events
         WHERE aggregate_id = $1 AND event_type = 'WorkflowEscalated' ORDER BY version",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_all(&stack.event_store)
    .await
    .unwrap()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_watcher_escalates_an_overdue_step_once_per_assignment_and_leaves_the_rest_alone() {
    let stack = spawn_stack().await;
    let (alice, bob) = (stack.token("acme", "alice"), stack.token("acme", "bob"));
    let not_due = stack
        .graphql(
            Some(&alice),
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId } }",
            json!({ "input": { "title": "稟議：期限内", "route": [{ "approverUserId": "bob", "slaHours": 24 }] } }),
        )
        .await
        .ok()["createWorkflow"]["workflowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let not_due_version = stack
        .submit(&alice, &not_due)
        .await
        .version("submitWorkflow");
    let id = append_overdue_workflow(&stack).await.to_string();

    let workflow = escalated_at(&stack, &alice, &id, 4).await;
    assert_eq!(
        workflow["version"], 4,
        "one event on top of the three appended"
    );
    assert_eq!(
        workflow["steps"][0]["escalatedAt"],
        workflow["currentEscalatedAt"]
    );
    assert!(time(&workflow["currentDueAt"]) < time(&workflow["currentEscalatedAt"]));
    assert_eq!(escalations_by(&stack, &id).await, ["deadline-watcher"]);

    // Several more scans (every 200 ms) find nothing left to do.
    tokio::time::sleep(StdDuration::from_millis(1_500)).await;
    assert_eq!(deadlines(&stack, &alice, &id).await.unwrap()["version"], 4);
    assert_eq!(escalations_by(&stack, &id).await.len(), 1);
    let untouched = stack
        .workflow_at_version(&alice, &not_due, not_due_version)
        .await;
    assert_eq!(untouched["version"], not_due_version);
    let untouched = deadlines(&stack, &alice, &not_due).await.unwrap();
    assert!(time(&untouched["currentDueAt"]) > Utc::now());
    assert_eq!(untouched["currentEscalatedAt"], Value::Null);
    assert!(escalations_by(&stack, &not_due).await.is_empty());

    // A delegation hands the step on with the same (passed) deadline: a new assignment, which
    // is escalated in its turn.
    let delegated = stack
        .command(
            &bob,
            "delegateStep",
            json!({ "workflowId": id, "step": 1, "toUserId": "dave" }),
        )
        .await
        .version("delegateStep");
    assert_eq!(delegated, 6);
    let workflow = escalated_at(&stack, &alice, &id, delegated + 1).await;
    assert_eq!(workflow["version"], 7);
    assert_eq!(escalations_by(&stack, &id).await.len(), 2);
}
