//! End to end over GraphQL: input that once stalled the pipeline, leaked another tenant's
//! existence or let an applicant approve their own request is refused with a clear error, and
//! every other tenant carries on.

use serde_json::{json, Value};
use tests::{spawn_stack, TestStack};
use uuid::Uuid;

const CREATE: &str =
    "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId version } }";

async fn create(stack: &TestStack, token: &str, input: Value) -> tests::GraphQlResponse {
    stack
        .graphql(Some(token), CREATE, json!({ "input": input }))
        .await
}

fn workflow(fields: Value) -> Value {
    let mut input = json!({ "title": "備品購入", "route": [{ "approverUserId": "bob" }] });
    input
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    input
}

#[tokio::test]
async fn a_date_the_read_model_cannot_store_is_refused_and_the_pipeline_keeps_moving() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    for due in ["-5000-01-01", "0000-12-31"] {
        let refused = create(&stack, &alice, workflow(json!({ "dueDate": due }))).await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT", "{due}");
        assert_eq!(
            refused.errors[0]["extensions"]["field"], "due_date",
            "{due}"
        );
    }
    let edge = create(&stack, &alice, workflow(json!({ "dueDate": "9999-12-31" })))
        .await
        .ok();
    let id = edge["createWorkflow"]["workflowId"].as_str().unwrap();
    // Another tenant's new workflow is projected after it: nothing is stuck.
    let zed = stack.token("globex", "zed");
    let other = stack.create_workflow(&zed, "出張申請", &["yan"]).await;
    stack.workflow_at_version(&zed, &other, 1).await;
    let stored = stack.workflow_at_version(&alice, id, 1).await;
    assert_eq!(stored["status"], "DRAFT");
}

#[tokio::test]
async fn another_tenants_workflow_id_is_answered_like_any_unusable_id() {
    let stack = spawn_stack().await;
    let (alice, zed) = (stack.token("acme", "alice"), stack.token("globex", "zed"));
    let taken = stack.create_workflow(&alice, "出張申請", &["bob"]).await;

    let foreign = create(&stack, &zed, workflow(json!({ "workflowId": taken }))).await;
    let malformed = create(
        &stack,
        &zed,
        workflow(json!({ "workflowId": "not-a-uuid" })),
    )
    .await;
    assert_eq!(foreign.error_code(), "INVALID_ARGUMENT");
    // Same code, field and message: nothing tells a taken id from a malformed one.
    assert_eq!(
        foreign.errors[0]["extensions"],
        malformed.errors[0]["extensions"]
    );
    assert_eq!(foreign.errors[0]["message"], malformed.errors[0]["message"]);
    assert!(
        !foreign.errors[0].to_string().contains("version"),
        "{:?}",
        foreign.errors
    );

    // A fresh client-chosen id works, and reusing one's own id is the caller's own conflict.
    let fresh = Uuid::new_v4().to_string();
    let created = create(&stack, &zed, workflow(json!({ "workflowId": fresh }))).await;
    assert_eq!(created.ok()["createWorkflow"]["workflowId"], fresh.as_str());
    let again = create(&stack, &zed, workflow(json!({ "workflowId": fresh }))).await;
    assert_eq!(again.error_code(), "CONFLICT");
    // Alice's workflow is untouched.
    let mine = stack.workflow_at_version(&alice, &taken, 1).await;
    assert_eq!(mine["title"], "出張申請");
}

#[tokio::test]
async fn an_applicant_is_never_the_approver_of_their_own_request() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    let refused = create(
        &stack,
        &alice,
        workflow(
            json!({ "route": [{ "approverRole": "manager" }, { "approverUserId": "alice" }] }),
        ),
    )
    .await;
    assert_eq!(refused.error_code(), "INVALID_ARGUMENT");
    assert_eq!(
        refused.errors[0]["extensions"]["field"],
        "route[1].approver"
    );
}

#[tokio::test]
async fn invisible_characters_and_foreign_storage_schemes_are_refused() {
    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    for title in [
        "請求書\u{202E}fdp.exe",
        "出張\u{200B}申請",
        "\u{2066}isolated",
    ] {
        let refused = create(&stack, &alice, workflow(json!({ "title": title }))).await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT", "{title:?}");
        assert_eq!(refused.errors[0]["extensions"]["field"], "title");
    }
    // Emoji sequences keep their zero-width joiner.
    let family = create(
        &stack,
        &alice,
        workflow(json!({ "title": "歓迎会 👩\u{200D}👩\u{200D}👧" })),
    )
    .await
    .ok();
    let id = family["createWorkflow"]["workflowId"].as_str().unwrap();

    let document = json!({
        "workflowId": id,
        "fileName": "見積書.pdf",
        "mediaType": "application/pdf",
        "sizeBytes": 1024,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "storageUri": "https://files.example.com/acme/見積書.pdf",
    });
    let attach = |changes: Value| {
        let mut input = document.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        input
    };
    for (uri, field) in [
        (
            "javascript://alert(document.cookie)",
            "attachment.storage_uri",
        ),
        ("file:///etc/passwd", "attachment.storage_uri"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "attachment.storage_uri",
        ),
    ] {
        let refused = stack
            .command(
                &alice,
                "attachDocument",
                attach(json!({ "storageUri": uri })),
            )
            .await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT", "{uri}");
        assert_eq!(refused.errors[0]["extensions"]["field"], field, "{uri}");
    }
    let hidden = stack
        .command(
            &alice,
            "attachDocument",
            attach(json!({ "fileName": "invoice\u{202E}fdp.exe" })),
        )
        .await;
    assert_eq!(
        hidden.errors[0]["extensions"]["field"],
        "attachment.file_name"
    );
    for uri in ["s3://ringiflow/acme/a.pdf", "gs://ringiflow/acme/a.pdf"] {
        stack
            .command(
                &alice,
                "attachDocument",
                attach(json!({ "storageUri": uri })),
            )
            .await
            .ok();
    }
}
