//! End to end over GraphQL, for every decision of the workflow domain beyond the plain
//! approve/reject path: requested changes and resubmission, delegation, role-based approval,
//! cancellation, comments and attachments, and the errors each rule gives.

use serde_json::{json, Value};
use tests::{spawn_stack, TestStack};

fn target(id: &str) -> Value {
    json!({ "workflowId": id })
}

fn with(id: &str, fields: Value) -> Value {
    let mut input = target(id);
    input
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    input
}

async fn create_with_route(stack: &TestStack, token: &str, route: Value) -> String {
    let data = stack
        .graphql(
            Some(token),
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId } }",
            json!({ "input": { "title": "稟議：サーバー購入", "route": route } }),
        )
        .await
        .ok();
    data["createWorkflow"]["workflowId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn step_statuses(workflow: &Value) -> Vec<String> {
    workflow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn requested_changes_go_back_to_the_applicant_and_a_resubmission_restarts_the_route() {
    let stack = spawn_stack().await;
    let (alice, bob, carol) = (
        stack.token("acme", "alice"),
        stack.token("acme", "bob"),
        stack.token("acme", "carol"),
    );
    let id = stack
        .create_workflow(&alice, "出張申請", &["bob", "carol"])
        .await;
    stack.submit(&alice, &id).await.ok();
    stack.approve(&bob, &id, 1).await.ok();

    let sent_back = stack
        .command(
            &carol,
            "requestChanges",
            with(
                &id,
                json!({ "step": 2, "reason": "見積書を添付してください" }),
            ),
        )
        .await
        .version("requestChanges");
    let workflow = stack.workflow_at_version(&alice, &id, sent_back).await;
    assert_eq!(workflow["status"], "CHANGES_REQUESTED");
    assert_eq!(workflow["currentStep"], Value::Null);
    assert_eq!(step_statuses(&workflow), ["APPROVED", "CHANGES_REQUESTED"]);

    // Only the applicant edits, and only what changes.
    assert_eq!(
        stack
            .command(&bob, "updateDraft", with(&id, json!({ "title": "x" })))
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    let unchanged = stack
        .command(
            &alice,
            "updateDraft",
            with(&id, json!({ "title": "出張申請" })),
        )
        .await;
    assert_eq!(unchanged.error_code(), "INVALID_ARGUMENT");
    stack
        .command(
            &alice,
            "updateDraft",
            with(
                &id,
                json!({ "title": "出張申請（見積書あり）", "priority": "URGENT" }),
            ),
        )
        .await
        .ok();

    let resubmitted = stack.submit(&alice, &id).await.version("submitWorkflow");
    let workflow = stack.workflow_at_version(&alice, &id, resubmitted).await;
    assert_eq!(workflow["status"], "IN_PROGRESS");
    assert_eq!(workflow["title"], "出張申請（見積書あり）");
    assert_eq!(workflow["priority"], "URGENT");
    assert_eq!(workflow["currentStep"], 1, "the route restarts");
    assert_eq!(step_statuses(&workflow), ["PENDING", "WAITING"]);

    stack.approve(&bob, &id, 1).await.ok();
    let done = stack.approve(&carol, &id, 2).await.version("approveStep");
    assert_eq!(
        stack.workflow_at_version(&alice, &id, done).await["status"],
        "APPROVED"
    );
}

#[tokio::test]
async fn a_delegate_decides_the_step_and_the_delegator_no_longer_can() {
    let stack = spawn_stack().await;
    let (alice, bob, dave) = (
        stack.token("acme", "alice"),
        stack.token("acme", "bob"),
        stack.token("acme", "dave"),
    );
    let id = stack.create_workflow(&alice, "備品購入", &["bob"]).await;
    stack.submit(&alice, &id).await.ok();

    for (to_user, field) in [("bob", "to_user_id"), ("alice", "to_user_id")] {
        let refused = stack
            .command(
                &bob,
                "delegateStep",
                with(&id, json!({ "step": 1, "toUserId": to_user })),
            )
            .await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT", "to {to_user}");
        assert_eq!(refused.errors[0]["extensions"]["field"], field);
    }
    assert_eq!(
        stack
            .command(
                &dave,
                "delegateStep",
                with(&id, json!({ "step": 1, "toUserId": "erin" }))
            )
            .await
            .error_code(),
        "PERMISSION_DENIED",
        "only the assignee delegates"
    );
    let delegated = stack
        .command(
            &bob,
            "delegateStep",
            with(
                &id,
                json!({ "step": 1, "toUserId": "dave", "comment": "出張中のため" }),
            ),
        )
        .await
        .version("delegateStep");
    let workflow = stack.workflow_at_version(&alice, &id, delegated).await;
    assert_eq!(workflow["currentApproverId"], "dave");

    assert_eq!(
        stack.approve(&bob, &id, 1).await.error_code(),
        "PERMISSION_DENIED"
    );
    let approved = stack.approve(&dave, &id, 1).await.version("approveStep");
    let workflow = stack.workflow_at_version(&alice, &id, approved).await;
    assert_eq!(workflow["status"], "APPROVED");
    assert_eq!(workflow["steps"][0]["decidedBy"], "dave");
}

#[tokio::test]
async fn any_holder_of_a_role_decides_a_role_step_but_never_the_applicant() {
    let stack = spawn_stack().await;
    let alice_manager = stack.token_with_roles("acme", "alice", &["manager"]);
    let frank = stack.token("acme", "frank");
    let erin_manager = stack.token_with_roles("acme", "erin", &["manager"]);
    let id = create_with_route(
        &stack,
        &alice_manager,
        json!([{ "approverRole": "manager", "slaHours": 24 }]),
    )
    .await;
    stack.submit(&alice_manager, &id).await.ok();

    assert_eq!(
        stack.approve(&frank, &id, 1).await.error_code(),
        "PERMISSION_DENIED"
    );
    assert_eq!(
        stack.approve(&alice_manager, &id, 1).await.error_code(),
        "PERMISSION_DENIED",
        "separation of duties"
    );
    let approved = stack
        .approve(&erin_manager, &id, 1)
        .await
        .version("approveStep");
    let workflow = stack
        .workflow_at_version(&alice_manager, &id, approved)
        .await;
    assert_eq!(workflow["status"], "APPROVED");
    assert_eq!(workflow["steps"][0]["decidedBy"], "erin");
}

#[tokio::test]
async fn the_applicant_cancels_a_workflow_that_has_not_ended_and_nothing_is_decided_after() {
    let stack = spawn_stack().await;
    let (alice, bob) = (stack.token("acme", "alice"), stack.token("acme", "bob"));
    let id = stack.create_workflow(&alice, "研修申込", &["bob"]).await;
    stack.submit(&alice, &id).await.ok();

    assert_eq!(
        stack
            .command(&bob, "cancelWorkflow", target(&id))
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    let cancelled = stack
        .command(
            &alice,
            "cancelWorkflow",
            with(&id, json!({ "reason": "日程変更" })),
        )
        .await
        .version("cancelWorkflow");
    let workflow = stack.workflow_at_version(&alice, &id, cancelled).await;
    assert_eq!(workflow["status"], "CANCELLED");
    assert_eq!(workflow["currentStep"], Value::Null);

    assert_eq!(
        stack.approve(&bob, &id, 1).await.error_code(),
        "FAILED_PRECONDITION"
    );
    assert_eq!(
        stack
            .command(&alice, "cancelWorkflow", target(&id))
            .await
            .error_code(),
        "FAILED_PRECONDITION",
        "a cancelled workflow has ended"
    );
}

#[tokio::test]
async fn participants_comment_and_attach_documents_and_bad_metadata_names_its_field() {
    let stack = spawn_stack().await;
    let (alice, bob, mallory) = (
        stack.token("acme", "alice"),
        stack.token("acme", "bob"),
        stack.token("acme", "mallory"),
    );
    let id = stack
        .create_workflow(&alice, "契約書レビュー", &["bob"])
        .await;

    stack
        .command(
            &bob,
            "addComment",
            with(&id, json!({ "body": "第3条を確認します" })),
        )
        .await
        .ok();
    assert_eq!(
        stack
            .command(
                &mallory,
                "addComment",
                with(&id, json!({ "body": "見せて" }))
            )
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    assert_eq!(
        stack
            .command(&bob, "addComment", with(&id, json!({ "body": "   " })))
            .await
            .error_code(),
        "INVALID_ARGUMENT"
    );

    let document = json!({
        "fileName": "契約書.pdf",
        "mediaType": "application/pdf",
        "sizeBytes": 52431,
        "sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
        "storageUri": "s3://ringiflow/acme/contract.pdf",
    });
    let attached = stack
        .command(&alice, "attachDocument", with(&id, document.clone()))
        .await
        .version("attachDocument");
    assert_eq!(attached, 3);

    for (field, value, named) in [
        ("sha256", json!("not-a-digest"), "attachment.sha256"),
        ("fileName", json!("../etc/passwd"), "attachment.file_name"),
        ("storageUri", json!("no scheme"), "attachment.storage_uri"),
        ("mediaType", json!("pdf"), "attachment.media_type"),
    ] {
        let mut bad = document.clone();
        bad[field] = value;
        let refused = stack
            .command(&alice, "attachDocument", with(&id, bad))
            .await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT", "{field}");
        assert_eq!(refused.errors[0]["extensions"]["field"], named, "{field}");
    }
    assert_eq!(
        stack
            .command(&mallory, "attachDocument", with(&id, document))
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
}

#[tokio::test]
async fn escalation_is_for_the_deadline_watcher_and_only_once_a_step_is_overdue() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let watcher = stack.token_with_roles("acme", "deadline-watcher", &["system"]);
    let id = create_with_route(
        &stack,
        &alice,
        json!([{ "approverUserId": "bob", "slaHours": 1 }]),
    )
    .await;
    stack.submit(&alice, &id).await.ok();
    let escalate = || with(&id, json!({ "step": 1 }));
    assert_eq!(
        stack
            .command(&alice, "escalateStep", escalate())
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    // The gateway takes no `system` token: the watcher calls command-svc directly.
    assert_eq!(
        stack
            .command(&watcher, "escalateStep", escalate())
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    let direct = tests::grpc::CommandClient::new(stack.command_port, &watcher)
        .escalate(&uuid::Uuid::new_v4().to_string(), &id, 1)
        .await
        .expect_err("the SLA of one hour has not passed");
    assert_eq!(
        platform::errors::code_of(&direct),
        platform::errors::ErrorCode::FailedPrecondition
    );
}

#[tokio::test]
async fn another_tenant_gets_not_found_from_every_new_command() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let id = stack.create_workflow(&alice, "極秘", &["bob"]).await;
    let intruder = stack.token_with_roles("globex", "alice", &["manager", "admin"]);
    for (name, fields) in [
        ("updateDraft", json!({ "title": "盗み見" })),
        ("submitWorkflow", json!({})),
        ("requestChanges", json!({ "step": 1, "reason": "x" })),
        ("delegateStep", json!({ "step": 1, "toUserId": "eve" })),
        ("cancelWorkflow", json!({})),
        ("addComment", json!({ "body": "x" })),
        ("escalateStep", json!({ "step": 1 })),
        ("approveStep", json!({ "step": 1 })),
        ("rejectStep", json!({ "step": 1, "reason": "x" })),
        (
            "attachDocument",
            json!({ "fileName": "a.pdf", "mediaType": "application/pdf", "sizeBytes": 1,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "storageUri": "s3://b/a.pdf" }),
        ),
    ] {
        assert_eq!(
            stack
                .command(&intruder, name, with(&id, fields))
                .await
                .error_code(),
            "NOT_FOUND",
            "{name}"
        );
    }
}

async fn define(
    stack: &TestStack,
    token: &str,
    name: &str,
    input: Value,
) -> tests::GraphQlResponse {
    let mut input = input;
    input["name"] = json!(name);
    stack
        .graphql(
            Some(token),
            "mutation($input: CreateDefinitionInput!) { createDefinition(input: $input) { definitionId version } }",
            json!({ "input": input }),
        )
        .await
}

async fn create_from(
    stack: &TestStack,
    token: &str,
    definition_id: &str,
) -> tests::GraphQlResponse {
    stack
        .graphql(
            Some(token),
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId version } }",
            json!({ "input": { "title": "出張申請：福岡", "definitionId": definition_id } }),
        )
        .await
}

/// The pinned definition and the route of a projected workflow.
async fn pinned(stack: &TestStack, token: &str, id: &str) -> Value {
    tests::eventually(&format!("workflow {id} projected"), || async {
        let response = stack
            .graphql(
                Some(token),
                "query($id: ID!) { workflow(id: $id) { definition { id version name }
                   steps { approverId approver { userId role } slaHours } } }",
                json!({ "id": id }),
            )
            .await;
        response
            .data
            .get("workflow")
            .cloned()
            .filter(|w| !w.is_null())
    })
    .await
}

#[tokio::test]
async fn admins_maintain_definitions_and_each_workflow_keeps_the_version_it_pinned() {
    let stack = spawn_stack().await;
    let admin = stack.token_with_roles("acme", "root", &["admin"]);
    let alice = stack.token("acme", "alice");
    let manager_route = json!({ "route": [{ "approverRole": "manager", "slaHours": 48 }] });

    assert_eq!(
        define(&stack, &alice, "出張申請", manager_route.clone())
            .await
            .error_code(),
        "PERMISSION_DENIED"
    );
    let created = define(&stack, &admin, "出張申請", manager_route).await.ok();
    assert_eq!(created["createDefinition"]["version"], 1);
    let definition = created["createDefinition"]["definitionId"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = create_from(&stack, &alice, &definition).await.ok()["createWorkflow"]["workflowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = stack
        .graphql(
            Some(&admin),
            "mutation($input: PublishDefinitionVersionInput!) { publishDefinitionVersion(input: $input) { version } }",
            json!({ "input": { "definitionId": definition, "route": [{ "approverUserId": "bob" }] } }),
        )
        .await
        .ok();
    assert_eq!(published["publishDefinitionVersion"]["version"], 2);
    let second = create_from(&stack, &alice, &definition).await.ok()["createWorkflow"]
        ["workflowId"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = pinned(&stack, &alice, &first).await;
    assert_eq!(first["definition"]["version"], 1);
    assert_eq!(first["definition"]["name"], "出張申請");
    assert_eq!(
        first["steps"],
        json!([{ "approverId": null, "approver": { "userId": null, "role": "manager" }, "slaHours": 48 }])
    );
    let second = pinned(&stack, &alice, &second).await;
    assert_eq!(second["definition"]["version"], 2);
    assert_eq!(second["steps"][0]["approverId"], "bob");

    // Another tenant cannot use it, whatever its roles.
    let intruder = stack.token_with_roles("globex", "alice", &["admin"]);
    assert_eq!(
        create_from(&stack, &intruder, &definition)
            .await
            .error_code(),
        "NOT_FOUND"
    );
    // A route and a definition at once is ambiguous.
    let both = stack
        .graphql(
            Some(&alice),
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId } }",
            json!({ "input": { "title": "x", "definitionId": definition, "route": [{ "approverUserId": "bob" }] } }),
        )
        .await;
    assert_eq!(both.error_code(), "INVALID_ARGUMENT");
    assert_eq!(both.errors[0]["extensions"]["field"], "route");

    let archive = |token: String| {
        let stack = &stack;
        let definition = definition.clone();
        async move {
            stack
                .graphql(
                    Some(&token),
                    "mutation($id: ID!) { archiveDefinition(input: { definitionId: $id }) { version } }",
                    json!({ "id": definition }),
                )
                .await
        }
    };
    assert_eq!(
        archive(alice.clone()).await.error_code(),
        "PERMISSION_DENIED"
    );
    assert_eq!(
        archive(admin.clone()).await.ok()["archiveDefinition"]["version"],
        3
    );
    assert_eq!(
        archive(admin.clone()).await.error_code(),
        "FAILED_PRECONDITION"
    );
    assert_eq!(
        create_from(&stack, &alice, &definition).await.error_code(),
        "FAILED_PRECONDITION",
        "an archived definition starts no workflow"
    );
}
