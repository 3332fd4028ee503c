//! End to end over GraphQL: gateway → command-svc → event store → relay → broker → projector →
//! read DB → query-svc → gateway, all real.

use serde_json::json;
use tests::{eventually, spawn_stack};

#[tokio::test]
async fn an_approved_workflow_travels_the_whole_pipeline() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let carol = stack.token("acme", "carol");

    let id = stack
        .create_workflow(&alice, "出張申請：大阪", &["bob", "carol"])
        .await;
    let draft = stack.workflow_at_version(&alice, &id, 1).await;
    assert_eq!(draft["status"], "DRAFT");
    assert_eq!(draft["title"], "出張申請：大阪");
    assert_eq!(
        draft["applicant"],
        json!({ "userId": "alice", "displayName": "alice san" })
    );

    assert_eq!(
        stack.submit(&alice, &id).await.ok()["submitWorkflow"]["version"],
        3
    );
    assert_eq!(
        stack.approve(&bob, &id, 1).await.ok()["approveStep"]["version"],
        5
    );
    let waiting_for_carol = stack.workflow_at_version(&alice, &id, 5).await;
    assert_eq!(waiting_for_carol["status"], "IN_PROGRESS");
    assert_eq!(waiting_for_carol["currentStep"], 2);
    assert_eq!(waiting_for_carol["currentApproverId"], "carol");

    assert_eq!(
        stack.approve(&carol, &id, 2).await.ok()["approveStep"]["version"],
        7
    );
    let approved = stack.workflow_at_version(&alice, &id, 7).await;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["currentStep"], serde_json::Value::Null);
    let steps: Vec<_> = approved["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["status"].clone(), s["decidedBy"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (json!("APPROVED"), json!("bob")),
            (json!("APPROVED"), json!("carol"))
        ]
    );

    let listed = stack
        .graphql(
            Some(&alice),
            "{ workflows(status: APPROVED, first: 10) { edges { cursor node { id status } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await
        .ok();
    let edges = listed["workflows"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], id.as_str());
    assert_eq!(listed["workflows"]["pageInfo"]["hasNextPage"], false);

    let in_store: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.event_store)
            .await
            .unwrap();
    assert_eq!(in_store, 7, "every decision is in the event store");
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&stack.event_store)
            .await
            .unwrap();
    assert_eq!(unpublished, 0, "the relay published the whole outbox");
}

#[tokio::test]
async fn a_rejection_ends_the_workflow_and_needs_a_reason() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = stack
        .create_workflow(&alice, "Purchase: laptop", &["bob", "carol"])
        .await;
    stack.submit(&alice, &id).await.ok();

    let no_reason = stack.reject(&bob, &id, 1, "   ").await;
    assert_eq!(no_reason.error_code(), "INVALID_ARGUMENT");
    assert_eq!(no_reason.errors[0]["extensions"]["field"], "reason");

    assert_eq!(
        stack.reject(&bob, &id, 1, "over budget").await.ok()["rejectStep"]["version"],
        5
    );
    let rejected = stack.workflow_at_version(&alice, &id, 5).await;
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["steps"][0]["status"], "REJECTED");
    assert_eq!(rejected["steps"][0]["comment"], "over budget");
    assert_eq!(rejected["steps"][1]["status"], "WAITING");

    let after_the_end = stack.approve(&bob, &id, 1).await;
    assert_eq!(after_the_end.error_code(), "FAILED_PRECONDITION");
}

#[tokio::test]
async fn only_the_steps_approver_may_decide_it() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack
        .create_workflow(&alice, "Leave request", &["bob"])
        .await;
    stack.submit(&alice, &id).await.ok();

    for intruder in ["carol", "alice"] {
        let attempt = stack.approve(&stack.token("acme", intruder), &id, 1).await;
        assert_eq!(
            attempt.error_code(),
            "PERMISSION_DENIED",
            "{intruder} must not approve bob's step"
        );
    }
    let versions: i64 =
        sqlx::query_scalar("SELECT max(version) FROM events WHERE aggregate_id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.event_store)
            .await
            .unwrap();
    assert_eq!(versions, 3, "refused decisions append nothing");
}

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_a_workflow() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack
        .create_workflow(&alice, "Confidential", &["bob"])
        .await;
    stack.workflow_at_version(&alice, &id, 1).await;

    let outsider = stack.token("globex", "bob");
    assert_eq!(
        stack.workflow(&outsider, &id).await.error_code(),
        "NOT_FOUND"
    );
    let listed = stack
        .graphql(
            Some(&outsider),
            "{ workflows(first: 50) { edges { node { id } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(
        listed["workflows"]["edges"],
        json!([]),
        "another tenant's list is empty"
    );
    assert_eq!(stack.submit(&outsider, &id).await.error_code(), "NOT_FOUND");
    // Same user id, other tenant: still not the approver of acme's step.
    stack.submit(&alice, &id).await.ok();
    assert_eq!(
        stack.approve(&outsider, &id, 1).await.error_code(),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn bad_credentials_and_bad_input_get_clear_codes() {
    let stack = spawn_stack().await;
    let anonymous = stack
        .graphql(
            None,
            "{ workflows(first: 5) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(anonymous.error_code(), "UNAUTHENTICATED");
    let forged = stack
        .graphql(
            Some("not-a-jwt"),
            "{ workflows(first: 5) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(forged.error_code(), "UNAUTHENTICATED");

    let alice = stack.token("acme", "alice");
    let no_route = stack
        .graphql(
            Some(&alice),
            "mutation { createWorkflow(input: { title: \"x\", route: [] }) { workflowId } }",
            json!({}),
        )
        .await;
    assert_eq!(no_route.error_code(), "INVALID_ARGUMENT");
    assert_eq!(no_route.errors[0]["extensions"]["field"], "route");
    let bad_id = stack.workflow(&alice, "not-a-uuid").await;
    assert_eq!(bad_id.error_code(), "INVALID_ARGUMENT");
    let unknown = stack
        .workflow(&alice, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_eq!(unknown.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn retries_are_idempotent_and_stale_writers_conflict() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = stack
        .create_workflow(&alice, "Retry me", &["bob", "carol"])
        .await;
    stack.submit(&alice, &id).await.ok();

    let command_id = uuid::Uuid::new_v4().to_string();
    let approve = "mutation($id: ID!, $cmd: ID!) { approveStep(input: { commandId: $cmd, workflowId: $id, step: 1 }) { version eventIds } }";
    let vars = json!({ "id": id, "cmd": command_id });
    let first = stack.graphql(Some(&bob), approve, vars.clone()).await.ok();
    let retry = stack.graphql(Some(&bob), approve, vars).await.ok();
    assert_eq!(first, retry, "a retry returns the first result");

    let stale = stack
        .graphql(
            Some(&alice),
            "mutation($id: ID!) { submitWorkflow(input: { workflowId: $id, expectedVersion: 3 }) { version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(stale.error_code(), "CONFLICT");
    assert_eq!(stale.errors[0]["extensions"]["currentVersion"], "5");

    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.event_store)
            .await
            .unwrap();
    assert_eq!(count, 5, "the retry appended nothing");
    let projected = eventually("read model at version 5", || async {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM workflows WHERE id = $1::uuid")
                .bind(&id)
                .fetch_optional(&stack.read_db)
                .await
                .unwrap();
        version.filter(|v| *v == 5)
    })
    .await;
    assert_eq!(projected, 5);
}
