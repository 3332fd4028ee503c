//! query-svc over real gRPC, against a throwaway read database seeded through the projection.

use chrono::{DateTime, Utc};
use clap::Parser;
use platform::auth::Identity;
use platform::errors::{code_of, metadata_of, ErrorCode};
use proto::workflow::v1::workflow_query_service_client::WorkflowQueryServiceClient;
use proto::workflow::v1::{
    approver, Approver, GetWorkflowRequest, ListWorkflowsRequest, Priority, StepStatus,
    WorkflowStatus,
};
use query_svc::{Application, Settings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;
use workflow_domain::{
    Attachment, CommentBody, DefinitionId, DefinitionName, DefinitionRef, Description, DisplayName,
    EventMetadata, RawApprover, RawAttachment, RawStep, RecordedEvent, Route, StepNo, Title,
    UserId, WorkflowEvent,
};

struct TestApp {
    port: u16,
    pool: PgPool,
    settings: Settings,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_app() -> TestApp {
    let (url, pool) = test_support::fresh_database("query_svc").await;
    let settings = Settings::parse_from([
        "query-svc",
        "--listen-addr",
        "127.0.0.1:0",
        "--read-database-url",
        &url,
    ]);
    let shutdown = CancellationToken::new();
    let app = Application::build(settings.clone(), shutdown.clone())
        .await
        .expect("build");
    let port = app.port();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        port,
        pool,
        settings,
        shutdown,
        server,
    }
}

impl TestApp {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn token(&self, tenant: &str) -> String {
        let identity = Identity {
            tenant_id: tenant.into(),
            user_id: "alice".into(),
            display_name: "アリス".into(),
            roles: vec![],
        };
        self.settings
            .auth
            .jwt()
            .issue(&identity, chrono::Duration::hours(1))
    }

    fn request<T>(&self, tenant: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let bearer = format!("Bearer {}", self.token(tenant));
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
        request
    }

    async fn client(&self) -> WorkflowQueryServiceClient<Channel> {
        WorkflowQueryServiceClient::new(self.channel().await)
    }

    /// A workflow of `tenant` created at `at`, submitted with step 1 assigned to bob.
    async fn seed(&self, tenant: &str, at: DateTime<Utc>) -> Uuid {
        let id = Uuid::new_v4();
        self.record(tenant, id, at, 1, submitted_to_bob()).await;
        id
    }

    /// Projects `events` as versions `first_version`.. of workflow `id`, all happening `at`.
    async fn record(
        &self,
        tenant: &str,
        id: Uuid,
        at: DateTime<Utc>,
        first_version: i64,
        events: Vec<WorkflowEvent>,
    ) -> Vec<RecordedEvent> {
        let mut recorded = Vec::new();
        for (version, event) in (first_version..).zip(events) {
            let event = RecordedEvent {
                event_id: Uuid::new_v4(),
                position: version,
                aggregate_type: "workflow".into(),
                aggregate_id: id,
                version,
                occurred_at: at,
                metadata: EventMetadata {
                    tenant_id: tenant.into(),
                    user_id: "alice".into(),
                    correlation_id: Uuid::new_v4(),
                    causation_id: Uuid::new_v4(),
                    traceparent: None,
                },
                event,
            };
            read_model::apply(&self.pool, &event).await.unwrap();
            recorded.push(event);
        }
        recorded
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

fn user(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

/// Created from version 3 of a definition with bob, then the managers with a 24-hour SLA;
/// submitted, step 1 assigned to bob.
fn submitted_to_bob() -> Vec<WorkflowEvent> {
    let route = Route::parse(
        "route",
        [
            RawStep {
                approver: Some(RawApprover::User("bob")),
                sla_hours: None,
            },
            RawStep {
                approver: Some(RawApprover::Role("manager")),
                sla_hours: Some(24),
            },
        ],
        |i, f| format!("route[{i}].{f}"),
    )
    .unwrap();
    vec![
        WorkflowEvent::Created {
            title: Title::parse("title", "出張申請").unwrap(),
            description: Description::parse("description", "大阪").unwrap(),
            priority: workflow_domain::Priority::Urgent,
            applicant_id: user("alice"),
            applicant_name: DisplayName::parse("name", "アリス").unwrap(),
            route,
            definition: Some(DefinitionRef {
                id: DefinitionId::new(Uuid::from_u128(7)),
                version: 3,
                name: DefinitionName::parse("name", "出張申請").unwrap(),
            }),
            due_date: Some("2026-06-01".parse().unwrap()),
        },
        WorkflowEvent::Submitted {},
        WorkflowEvent::StepAssigned {
            step: StepNo::FIRST,
            assignee: workflow_domain::Approver::User(user("bob")),
            due_at: None,
        },
    ]
}

fn wire_approver(approver: approver::Approver) -> Option<Approver> {
    Some(Approver {
        approver: Some(approver),
    })
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_778_400_000 + seconds, 0).unwrap()
}

#[tokio::test]
async fn get_workflow_returns_the_callers_workflow_only() {
    let app = spawn_app().await;
    let id = app.seed("acme", at(0)).await;
    let mut client = app.client().await;

    let wf = client
        .get_workflow(app.request(
            "acme",
            GetWorkflowRequest {
                workflow_id: id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (wf.id, wf.tenant_id.as_str(), wf.title.as_str()),
        (id.to_string(), "acme", "出張申請")
    );
    assert_eq!(wf.priority, Priority::Urgent as i32);
    assert_eq!(wf.status, WorkflowStatus::InProgress as i32);
    assert_eq!(wf.applicant.unwrap().display_name, "アリス");
    assert_eq!(
        (wf.current_step, wf.current_approver_id.as_str()),
        (1, "bob")
    );
    assert_eq!(
        wf.current_assignee,
        wire_approver(approver::Approver::UserId("bob".into()))
    );
    assert_eq!((wf.current_due_at, wf.current_escalated_at), (None, None));
    let definition = wf.definition.clone().unwrap();
    assert_eq!(
        (definition.id, definition.version, definition.name.as_str()),
        (Uuid::from_u128(7).to_string(), 3, "出張申請")
    );
    assert_eq!(wf.due_date, "2026-06-01");
    assert_eq!(wf.version, 3);
    assert_eq!(wf.created_at.unwrap().seconds, at(0).timestamp());
    assert!(wf.submitted_at.is_some() && wf.completed_at.is_none());
    let steps: Vec<_> = wf
        .steps
        .iter()
        .map(|s| {
            (
                s.number,
                s.approver_id.as_str(),
                s.approver.clone(),
                s.sla_hours,
                s.status,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                1,
                "bob",
                wire_approver(approver::Approver::UserId("bob".into())),
                None,
                StepStatus::Pending as i32
            ),
            (
                2,
                "",
                wire_approver(approver::Approver::Role("manager".into())),
                Some(24),
                StepStatus::Waiting as i32
            )
        ]
    );

    let other = client
        .get_workflow(app.request(
            "globex",
            GetWorkflowRequest {
                workflow_id: id.to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&other), ErrorCode::NotFound);
    let missing = client
        .get_workflow(app.request(
            "acme",
            GetWorkflowRequest {
                workflow_id: Uuid::new_v4().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    let bad_id = client
        .get_workflow(app.request(
            "acme",
            GetWorkflowRequest {
                workflow_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    let list = |page_size, after: &str, status| {
        app.request(
            "acme",
            ListWorkflowsRequest {
                status,
                page_size,
                after: after.into(),
            },
        )
    };
    let too_big = client.list_workflows(list(101, "", 0)).await.unwrap_err();
    let bad_cursor = client
        .list_workflows(list(10, "garbage", 0))
        .await
        .unwrap_err();
    let bad_status = client.list_workflows(list(10, "", 99)).await.unwrap_err();
    for (status, field) in [
        (bad_id, "workflow_id"),
        (too_big, "page_size"),
        (bad_cursor, "after"),
        (bad_status, "status"),
    ] {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert_eq!(metadata_of(&status)["field"], field);
    }
    app.stop().await;
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    let status = client
        .list_workflows(ListWorkflowsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn list_pages_through_the_tenants_workflows() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.seed("acme", at(i)).await);
    }
    app.seed("globex", at(10)).await;
    ids.reverse(); // newest first
    let mut client = app.client().await;

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let request = ListWorkflowsRequest {
            status: WorkflowStatus::InProgress as i32,
            page_size: 2,
            after: after.clone(),
        };
        let page = client
            .list_workflows(app.request("acme", request))
            .await
            .unwrap()
            .into_inner();
        seen.extend(
            page.edges
                .iter()
                .map(|e| e.node.as_ref().unwrap().id.parse::<Uuid>().unwrap()),
        );
        after = page
            .edges
            .last()
            .map(|e| e.cursor.clone())
            .unwrap_or_default();
        if !page.has_next_page {
            break;
        }
    }
    assert_eq!(seen, ids);

    let drafts = ListWorkflowsRequest {
        status: WorkflowStatus::Draft as i32,
        ..Default::default()
    };
    let page = client
        .list_workflows(app.request("acme", drafts))
        .await
        .unwrap()
        .into_inner();
    assert!(page.edges.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn get_workflow_returns_the_discussion_and_a_list_only_its_counts() {
    let app = spawn_app().await;
    let id = app.seed("acme", at(0)).await;
    let comment = |by: &str, body: &str| WorkflowEvent::CommentAdded {
        author_id: user(by),
        author_name: DisplayName::parse("name", &by.to_uppercase()).unwrap(),
        body: CommentBody::parse("body", body).unwrap(),
    };
    let document = Attachment::parse(
        RawAttachment {
            file_name: "見積書.pdf",
            media_type: "application/pdf",
            size_bytes: 52_431,
            sha256: &"9f86".repeat(16),
            storage_uri: "s3://ringiflow/acme/9f86",
        },
        |f| format!("attachment.{f}"),
    )
    .unwrap();
    let discussion = app
        .record(
            "acme",
            id,
            at(5),
            4,
            vec![
                comment("bob", "いつ出発ですか？"),
                WorkflowEvent::DocumentAttached {
                    attachment: document,
                    attached_by: user("alice"),
                },
                comment("alice", "来週です"),
            ],
        )
        .await;
    let mut client = app.client().await;

    let wf = client
        .get_workflow(app.request(
            "acme",
            GetWorkflowRequest {
                workflow_id: id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((wf.comment_count, wf.attachment_count), (2, 1));
    let comments: Vec<_> = wf
        .comments
        .iter()
        .map(|c| {
            let author = c.author.clone().unwrap();
            (
                c.id.clone(),
                author.user_id,
                author.display_name,
                c.body.as_str(),
                c.created_at.unwrap().seconds,
            )
        })
        .collect();
    assert_eq!(
        comments,
        [
            (
                discussion[0].event_id.to_string(),
                "bob".into(),
                "BOB".into(),
                "いつ出発ですか？",
                at(5).timestamp()
            ),
            (
                discussion[2].event_id.to_string(),
                "alice".into(),
                "ALICE".into(),
                "来週です",
                at(5).timestamp()
            ),
        ]
    );
    let [attached] = &wf.attachments[..] else {
        panic!("one attachment expected: {:?}", wf.attachments)
    };
    assert_eq!(attached.id, discussion[1].event_id.to_string());
    assert_eq!(attached.attached_by, "alice");
    let document = attached.document.clone().unwrap();
    assert_eq!(
        (
            document.file_name.as_str(),
            document.media_type.as_str(),
            document.size_bytes,
            document.storage_uri.as_str()
        ),
        (
            "見積書.pdf",
            "application/pdf",
            52_431,
            "s3://ringiflow/acme/9f86"
        )
    );

    let page = client
        .list_workflows(app.request("acme", ListWorkflowsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let listed = page.edges[0].node.clone().unwrap();
    assert_eq!((listed.comment_count, listed.attachment_count), (2, 1));
    assert!(listed.comments.is_empty() && listed.attachments.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn health_reports_the_query_service_serving() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel().await);
    let service = "ringiflow.workflow.v1.WorkflowQueryService".to_owned();
    let response = health
        .check(HealthCheckRequest { service })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    app.stop().await;
}
