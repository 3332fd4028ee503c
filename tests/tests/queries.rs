//! The read side over GraphQL: the inbox, search (Japanese and English), the dashboard and the
//! list's filters, each for the caller's tenant only.

use serde_json::{json, Value};
use tests::{spawn_stack, TestStack};

async fn query(stack: &TestStack, token: &str, query: &str, variables: Value) -> Value {
    stack.graphql(Some(token), query, variables).await.ok()
}

fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn inbox_search_dashboard_and_filters_answer_for_the_callers_tenant_only() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let erin = stack.token_with_roles("acme", "erin", &["manager"]);
    let outsider = stack.token_with_roles("globex", "bob", &["manager"]);

    let trip = stack
        .create_workflow(&alice, "出張申請：大阪", &["bob"])
        .await;
    let server = stack
        .graphql(
            Some(&alice),
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId } }",
            json!({ "input": { "title": "Server purchase", "priority": "URGENT",
                               "route": [{ "approverRole": "manager" }] } }),
        )
        .await
        .ok()["createWorkflow"]["workflowId"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [&trip, &server] {
        let version = stack.submit(&alice, id).await.version("submitWorkflow");
        stack.workflow_at_version(&alice, id, version).await;
    }

    // Several lookups in one request (one batched call to query-svc behind the gateway).
    let both = query(
        &stack,
        &alice,
        "query($a: ID!, $b: ID!) { a: workflow(id: $a) { id title } b: workflow(id: $b) { id title } }",
        json!({ "a": trip, "b": server }),
    )
    .await;
    assert_eq!(both["a"]["title"], "出張申請：大阪");
    assert_eq!(both["b"]["title"], "Server purchase");
    let lookup = "query($id: ID!) { workflow(id: $id) { id } }";
    assert_eq!(
        stack
            .graphql(Some(&outsider), lookup, json!({ "id": trip }))
            .await
            .error_code(),
        "NOT_FOUND"
    );
    let malformed = stack
        .graphql(Some(&alice), lookup, json!({ "id": "not-a-uuid" }))
        .await;
    assert_eq!(malformed.error_code(), "INVALID_ARGUMENT");
    assert_eq!(malformed.errors[0]["extensions"]["field"], "id");

    let inbox = "{ myTasks { totalCount edges { node { id currentStep } } } }";
    let bobs = query(&stack, &bob, inbox, json!({})).await;
    assert_eq!(ids(&bobs["myTasks"]), [trip.as_str()]);
    assert_eq!(bobs["myTasks"]["totalCount"], 1);
    let erins = query(&stack, &erin, inbox, json!({})).await;
    assert_eq!(
        ids(&erins["myTasks"]),
        [server.as_str()],
        "through the manager role"
    );
    assert_eq!(
        query(&stack, &outsider, inbox, json!({})).await["myTasks"]["totalCount"],
        0
    );

    let search = "query($text: String!) { searchWorkflows(text: $text) { totalCount edges { matched node { id } } } }";
    let found = query(&stack, &alice, search, json!({ "text": "出張" })).await;
    assert_eq!(ids(&found["searchWorkflows"]), [trip.as_str()]);
    assert_eq!(found["searchWorkflows"]["edges"][0]["matched"], "TITLE");
    let found = query(&stack, &alice, search, json!({ "text": "SERVER" })).await;
    assert_eq!(ids(&found["searchWorkflows"]), [server.as_str()]);
    assert_eq!(
        query(&stack, &outsider, search, json!({ "text": "出張" })).await["searchWorkflows"]
            ["totalCount"],
        0
    );
    let empty = stack
        .graphql(Some(&alice), search, json!({ "text": "  " }))
        .await;
    assert_eq!(empty.error_code(), "INVALID_ARGUMENT");
    assert_eq!(empty.errors[0]["extensions"]["field"], "text");

    let dashboard = "{ dashboard(timeZone: \"Asia/Tokyo\") { byStatus { status count } pendingForMe overdue completedToday } }";
    let alices = query(&stack, &alice, dashboard, json!({})).await["dashboard"].clone();
    let in_progress = alices["byStatus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|count| count["status"] == "IN_PROGRESS")
        .unwrap()["count"]
        .clone();
    assert_eq!(in_progress, 2);
    assert_eq!(alices["pendingForMe"], 0);
    assert_eq!(
        query(&stack, &bob, dashboard, json!({})).await["dashboard"]["pendingForMe"],
        1
    );
    let outsiders = query(&stack, &outsider, dashboard, json!({})).await["dashboard"].clone();
    assert!(
        outsiders["byStatus"]
            .as_array()
            .unwrap()
            .iter()
            .all(|count| count["count"] == 0),
        "another tenant counts nothing of acme's: {outsiders}"
    );
    assert_eq!(outsiders["pendingForMe"], 0);
    let bad_zone = stack
        .graphql(
            Some(&alice),
            "{ dashboard(timeZone: \"Mars/Olympus\") { overdue } }",
            json!({}),
        )
        .await;
    assert_eq!(bad_zone.error_code(), "INVALID_ARGUMENT");

    let list = "query($filter: WorkflowFilter, $sort: WorkflowSortField) {
        workflows(filter: $filter, sort: $sort) { totalCount edges { node { id } } } }";
    let for_bob = query(
        &stack,
        &alice,
        list,
        json!({ "filter": { "assigneeId": "bob" } }),
    )
    .await;
    assert_eq!(ids(&for_bob["workflows"]), [trip.as_str()]);
    let by_priority = query(&stack, &alice, list, json!({ "sort": "PRIORITY" })).await;
    assert_eq!(
        ids(&by_priority["workflows"]),
        [server.as_str(), trip.as_str()]
    );
    assert_eq!(by_priority["workflows"]["totalCount"], 2);
    let urgent = query(
        &stack,
        &alice,
        list,
        json!({ "filter": { "priority": "URGENT" } }),
    )
    .await;
    assert_eq!(ids(&urgent["workflows"]), [server.as_str()]);
}

#[tokio::test]
async fn every_mutation_can_return_the_workflow_as_the_read_side_shows_it_after_that_write() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let created = query(
        &stack,
        &alice,
        "mutation($input: CreateWorkflowInput!) {
           createWorkflow(input: $input) { version workflow { id version status title stale } } }",
        json!({ "input": { "title": "稟議：PC購入", "route": [{ "approverUserId": "bob" }] } }),
    )
    .await["createWorkflow"]
        .clone();
    assert_eq!(created["version"], 1);
    assert_eq!(created["workflow"]["version"], 1, "no polling needed");
    assert_eq!(created["workflow"]["status"], "DRAFT");
    assert_eq!(created["workflow"]["stale"], false);
    let id = created["workflow"]["id"].as_str().unwrap().to_owned();

    let submitted = query(
        &stack,
        &alice,
        "mutation($id: ID!) { submitWorkflow(input: { workflowId: $id }) {
           version workflow { version status currentApproverId stale } } }",
        json!({ "id": id }),
    )
    .await["submitWorkflow"]
        .clone();
    assert_eq!(submitted["workflow"]["version"], submitted["version"]);
    assert_eq!(submitted["workflow"]["status"], "IN_PROGRESS");
    assert_eq!(submitted["workflow"]["currentApproverId"], "bob");

    // Another reader right after: at least that version, at once.
    let version = submitted["version"].as_i64().unwrap();
    let read =
        "query($id: ID!, $min: Int) { workflow(id: $id, minVersion: $min) { version stale } }";
    let seen = query(&stack, &bob, read, json!({ "id": id, "min": version })).await;
    assert_eq!(
        seen["workflow"],
        json!({ "version": version, "stale": false })
    );
    // A version that will never come: the bounded wait ends with the newest there is, stale.
    let ahead = query(&stack, &bob, read, json!({ "id": id, "min": version + 50 })).await;
    assert_eq!(
        ahead["workflow"],
        json!({ "version": version, "stale": true })
    );
    // Another tenant still learns nothing.
    let outsider = stack.token("globex", "bob");
    assert_eq!(
        stack
            .graphql(Some(&outsider), read, json!({ "id": id, "min": 1 }))
            .await
            .error_code(),
        "NOT_FOUND",
        "not visible to it at any version"
    );
}

#[tokio::test]
async fn the_audit_trail_comes_from_the_event_store_with_who_and_which_request_chain() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let id = stack
        .create_workflow(&alice, "出張申請：札幌", &["bob"])
        .await;
    stack.submit(&alice, &id).await.ok();
    stack.comment(&bob, &id, "承知しました").await.ok();

    // Read right after the commands, with no waiting: the store, not the projection, is the
    // source.
    let history = "query($id: ID!) { workflowHistory(id: $id) {
        version eventType userId correlationId causationId occurredAt data } }";
    let entries = query(&stack, &alice, history, json!({ "id": id })).await["workflowHistory"]
        .as_array()
        .unwrap()
        .clone();
    let summary: Vec<(i64, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["version"].as_i64().unwrap(),
                e["eventType"].as_str().unwrap(),
                e["userId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "WorkflowCreated", "alice"),
            (2, "WorkflowSubmitted", "alice"),
            (3, "WorkflowStepAssigned", "alice"),
            (4, "CommentAdded", "bob"),
        ]
    );
    // One command, one cause: the submission's two events share command and request chain.
    assert_eq!(entries[1]["causationId"], entries[2]["causationId"]);
    assert_eq!(entries[1]["correlationId"], entries[2]["correlationId"]);
    assert_ne!(entries[0]["causationId"], entries[1]["causationId"]);
    assert_eq!(entries[0]["data"]["title"], "出張申請：札幌");
    assert_eq!(entries[3]["data"]["body"], "承知しました");

    let outsider = stack.token("globex", "alice");
    assert_eq!(
        stack
            .graphql(Some(&outsider), history, json!({ "id": id }))
            .await
            .error_code(),
        "NOT_FOUND"
    );
}
