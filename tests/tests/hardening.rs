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

#[tokio::test]
async fn a_stored_event_the_relay_cannot_read_is_dead_lettered_and_the_rest_flows() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;

    let stack = spawn_stack().await;
    let alice = stack.token("acme", "alice");
    // Written by a newer build: a payload version this build has no upcaster for.
    let (unreadable, event_id) = (Uuid::new_v4(), Uuid::now_v7());
    let metadata = serde_json::to_value(workflow_domain::EventMetadata {
        tenant_id: "acme".into(),
        user_id: "alice".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        traceparent: None,
    })
    .unwrap();
    sqlx::query(
        "WITH e AS (
             INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                                 event_type, schema_version, payload, metadata, occurred_at)
             VALUES ($1, 'acme', 'workflow', $2, 1, 'WorkflowCreated', 99, '{}', $3, now())
             RETURNING position)
         INSERT INTO outbox (position) SELECT position FROM e",
    )
    .bind(event_id)
    .bind(unreadable)
    .bind(metadata)
    .execute(&stack.event_store)
    .await
    .unwrap();

    // Everything after it in the outbox still reaches the read side...
    let id = stack.create_workflow(&alice, "出張申請", &["bob"]).await;
    stack.workflow_at_version(&alice, &id, 1).await;

    // ...and the unreadable event waits in the dead-letter topic, saying what it is.
    let settings = messaging::KafkaSettings {
        brokers: stack.brokers.clone(),
        topic: messaging::dead_letter::topic_for(&stack.topic),
        topic_partitions: 1,
        topic_replication: 1,
        security: Default::default(),
    };
    let consumer: StreamConsumer =
        messaging::consumer_config(&settings, &format!("test-{}", Uuid::new_v4()))
            .create()
            .unwrap();
    consumer.subscribe(&[&settings.topic]).unwrap();
    let dead = tokio::time::timeout(tests::CATCH_UP, async {
        loop {
            let message = consumer.recv().await.expect("dead-letter topic readable");
            let read = messaging::dead_letter::DeadLetter::read(&message);
            if read.envelope.event_id() == Some(event_id) {
                return (read, message.payload().map(<[u8]>::to_vec));
            }
        }
    })
    .await
    .expect("the unreadable event is dead-lettered");
    let (read, payload) = dead;
    assert_eq!(read.kind.as_deref(), Some("unpublishable"));
    assert_eq!(read.envelope.aggregate_id(), Some(unreadable));
    assert_eq!(read.envelope.tenant_id.as_deref(), Some("acme"));
    assert!(
        read.error
            .as_deref()
            .is_some_and(|error| error.contains("version 99")),
        "{read:?}"
    );
    assert_eq!(payload.as_deref(), Some(&b"{}"[..]));
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&stack.event_store)
            .await
            .unwrap();
    assert_eq!(unpublished, 0, "nothing is left behind in the outbox");
}
