//! query-svc over real gRPC, against a throwaway read database seeded through the projection.

use chrono::{DateTime, Duration, Timelike, Utc};
use clap::Parser;
use platform::auth::Identity;
use platform::errors::{code_of, metadata_of, ErrorCode};
use proto::workflow::v1::workflow_query_service_client::WorkflowQueryServiceClient;
use proto::workflow::v1::{
    approver, Approver, GetDashboardRequest, GetWorkflowRequest, ListMyTasksRequest,
    ListWorkflowsRequest, Priority, SearchMatch, SearchWorkflowsRequest, SortDirection,
    StatusCount, StepStatus, WorkflowEdge, WorkflowSort, WorkflowStatus,
};
use query_svc::{Application, Settings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;
use workflow_domain::{
    Attachment, CommentBody, DefinitionId, DefinitionName, DefinitionRef, Description, DisplayName,
    EventMetadata, RawApprover, RawAttachment, RawStep, Reason, RecordedEvent, Role, Route, StepNo,
    Title, UserId, WorkflowEvent,
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
        "--allow-dev-jwt-secret",
        "true",
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

    /// A request as alice of `tenant`, who holds no role.
    fn request<T>(&self, tenant: &str, message: T) -> tonic::Request<T> {
        self.request_as(tenant, "alice", &[], message)
    }

    fn request_as<T>(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
        message: T,
    ) -> tonic::Request<T> {
        let identity = Identity {
            tenant_id: tenant.into(),
            user_id: user.into(),
            display_name: user.to_uppercase(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
        };
        let token = self
            .settings
            .auth
            .jwt()
            .unwrap()
            .issue(&identity, chrono::Duration::hours(1))
            .unwrap();
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
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
    ) -> Vec<RecordedEvent<WorkflowEvent>> {
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
            projection::apply::<read_model::Workflows>(&self.pool, &event)
                .await
                .unwrap();
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

/// `"bob"` is the user bob, `"@manager"` anyone holding the role manager.
fn domain_approver(who: &str) -> workflow_domain::Approver {
    match who.strip_prefix('@') {
        Some(role) => workflow_domain::Approver::Role(Role::parse("role", role).unwrap()),
        None => workflow_domain::Approver::User(user(who)),
    }
}

/// What a workflow is created with in the tests of the newer queries.
struct Draft {
    title: &'static str,
    description: &'static str,
    priority: workflow_domain::Priority,
    applicant: &'static str,
}

/// Created as `draft` with a one-step route, submitted, and assigned to `who` until `due_at`.
fn waiting_for(draft: Draft, who: &str, due_at: Option<DateTime<Utc>>) -> Vec<WorkflowEvent> {
    let approver = match who.strip_prefix('@') {
        Some(role) => RawApprover::Role(role),
        None => RawApprover::User(who),
    };
    let route = Route::parse(
        "route",
        [RawStep {
            approver: Some(approver),
            sla_hours: None,
        }],
        |i, f| format!("route[{i}].{f}"),
    )
    .unwrap();
    vec![
        WorkflowEvent::Created {
            title: Title::parse("title", draft.title).unwrap(),
            description: Description::parse("description", draft.description).unwrap(),
            priority: draft.priority,
            applicant_id: user(draft.applicant),
            applicant_name: DisplayName::parse("name", &draft.applicant.to_uppercase()).unwrap(),
            route,
            definition: None,
            due_date: None,
        },
        WorkflowEvent::Submitted {},
        WorkflowEvent::StepAssigned {
            step: StepNo::FIRST,
            assignee: domain_approver(who),
            due_at,
        },
    ]
}

fn draft(
    title: &'static str,
    priority: workflow_domain::Priority,
    applicant: &'static str,
) -> Draft {
    Draft {
        title,
        description: "",
        priority,
        applicant,
    }
}

fn field_of(status: &tonic::Status) -> String {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    metadata_of(status)["field"].clone()
}

fn ids(edges: &[WorkflowEdge]) -> Vec<Uuid> {
    edges
        .iter()
        .map(|e| e.node.as_ref().unwrap().id.parse().unwrap())
        .collect()
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
                min_version: None,
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
                min_version: None,
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
                min_version: None,
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
                min_version: None,
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
                ..Default::default()
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
            ..Default::default()
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
                min_version: None,
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

#[tokio::test]
async fn list_filters_sorts_counts_and_refuses_a_cursor_of_another_sort() {
    use workflow_domain::Priority::{High, Low, Urgent};
    let app = spawn_app().await;
    let now = Utc::now();
    let overdue = Some(now - Duration::hours(1));
    let mut acme = Vec::new();
    for (i, (draft, due_at)) in [
        (draft("出張申請", Urgent, "alice"), overdue),
        (draft("備品購入", Low, "zoe"), None),
        (
            draft("経費精算", High, "alice"),
            Some(now + Duration::hours(1)),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = Uuid::new_v4();
        let events = waiting_for(draft, "bob", due_at);
        app.record("acme", id, at(i as i64), 1, events).await;
        acme.push(id);
    }
    let events = waiting_for(draft("出張申請", Urgent, "alice"), "bob", overdue);
    app.record("globex", Uuid::new_v4(), at(9), 1, events).await;
    let mut client = app.client().await;
    let list = |request: ListWorkflowsRequest| app.request("acme", request);

    let by_priority = ListWorkflowsRequest {
        sort: WorkflowSort::Priority as i32,
        direction: SortDirection::Asc as i32,
        page_size: 2,
        ..Default::default()
    };
    let first = client
        .list_workflows(list(by_priority.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&first.edges), [acme[1], acme[2]]);
    assert_eq!((first.has_next_page, first.total_count), (true, 3));
    let after = first.edges[1].cursor.clone();
    let second = client
        .list_workflows(list(ListWorkflowsRequest {
            after: after.clone(),
            ..by_priority.clone()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&second.edges), [acme[0]]);
    assert_eq!((second.has_next_page, second.total_count), (false, 3));
    // The priority sort's natural direction is most urgent first.
    let urgent_first = client
        .list_workflows(list(ListWorkflowsRequest {
            sort: WorkflowSort::Priority as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&urgent_first.edges), [acme[0], acme[2], acme[1]]);

    for (name, request, want) in [
        (
            "priority",
            ListWorkflowsRequest {
                priority: Priority::High as i32,
                ..Default::default()
            },
            vec![acme[2]],
        ),
        (
            "applicant",
            ListWorkflowsRequest {
                applicant_id: "alice".into(),
                ..Default::default()
            },
            vec![acme[2], acme[0]],
        ),
        (
            "overdue, waiting for bob, created in a range",
            ListWorkflowsRequest {
                overdue: true,
                assignee_id: "bob".into(),
                created_after: Some(timestamp(at(0))),
                created_before: Some(timestamp(at(2))),
                ..Default::default()
            },
            vec![acme[0]],
        ),
    ] {
        let page = client
            .list_workflows(list(request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(&page.edges), want, "{name}");
        assert_eq!(page.total_count, want.len() as u64, "{name}");
    }

    let wrong_sort = client
        .list_workflows(list(ListWorkflowsRequest {
            after,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(field_of(&wrong_sort), "after");
    for (request, field) in [
        (
            ListWorkflowsRequest {
                sort: 99,
                ..Default::default()
            },
            "sort",
        ),
        (
            ListWorkflowsRequest {
                direction: 99,
                ..Default::default()
            },
            "direction",
        ),
        (
            ListWorkflowsRequest {
                priority: 99,
                ..Default::default()
            },
            "priority",
        ),
        (
            ListWorkflowsRequest {
                applicant_id: "al ice".into(),
                ..Default::default()
            },
            "applicant_id",
        ),
        (
            ListWorkflowsRequest {
                definition_id: "not-a-uuid".into(),
                ..Default::default()
            },
            "definition_id",
        ),
        (
            ListWorkflowsRequest {
                assignee_roles: vec!["manager".into()],
                ..Default::default()
            },
            "assignee_roles",
        ),
        (
            ListWorkflowsRequest {
                created_after: Some(timestamp(at(5))),
                created_before: Some(timestamp(at(5))),
                ..Default::default()
            },
            "created_before",
        ),
        (
            ListWorkflowsRequest {
                created_after: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..Default::default()
            },
            "created_after",
        ),
        (
            ListWorkflowsRequest {
                created_after: Some(start_of_year(-5000)),
                ..Default::default()
            },
            "created_after",
        ),
        (
            ListWorkflowsRequest {
                created_before: Some(start_of_year(10_000)),
                ..Default::default()
            },
            "created_before",
        ),
        (
            ListWorkflowsRequest {
                after: forged_cursor("created_at:DESC", start_of_year(-5000).seconds * 1_000_000),
                ..Default::default()
            },
            "after",
        ),
        (
            ListWorkflowsRequest {
                sort: WorkflowSort::DueDate.into(),
                after: forged_cursor("due_date:ASC", i64::from(i32::MIN)),
                ..Default::default()
            },
            "after",
        ),
    ] {
        let status = client.list_workflows(list(request)).await.unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::InvalidArgument, "{field}");
        assert_eq!(field_of(&status), field);
    }
    app.stop().await;
}

#[tokio::test]
async fn my_tasks_lists_what_waits_for_the_caller_in_their_tenant_only() {
    use workflow_domain::Priority::Medium;
    let app = spawn_app().await;
    let mut ids_by_name = std::collections::HashMap::new();
    for (i, (name, applicant, who)) in [
        ("for bob", "alice", "bob"),
        ("for the managers", "alice", "@manager"),
        ("bob's own, for the managers", "bob", "@manager"),
        ("for carol", "alice", "carol"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = Uuid::new_v4();
        let events = waiting_for(draft(name, Medium, applicant), who, None);
        app.record("acme", id, at(i as i64), 1, events).await;
        ids_by_name.insert(name, id);
    }
    // Handed on by mike, a manager, to bob: the newest assignment.
    let delegated = Uuid::new_v4();
    let mut events = waiting_for(draft("delegated", Medium, "alice"), "@manager", None);
    events.push(WorkflowEvent::StepCompleted {
        step: StepNo::FIRST,
        decision: workflow_domain::Decision::Delegated {
            to_user: user("bob"),
        },
        decided_by: user("mike"),
        comment: "on leave".into(),
    });
    events.push(WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        assignee: domain_approver("bob"),
        due_at: None,
    });
    app.record("acme", delegated, at(10), 1, events).await;
    let globex = Uuid::new_v4();
    let events = waiting_for(draft("globex", Medium, "alice"), "bob", None);
    app.record("globex", globex, at(20), 1, events).await;
    let mut client = app.client().await;

    let tasks = |tenant, after: String| {
        app.request_as(
            tenant,
            "bob",
            &["manager"],
            ListMyTasksRequest {
                page_size: 2,
                after,
            },
        )
    };
    let first = client
        .list_my_tasks(tasks("acme", String::new()))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .list_my_tasks(tasks("acme", first.edges[1].cursor.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        [ids(&first.edges), ids(&second.edges)].concat(),
        [
            delegated,
            ids_by_name["for the managers"],
            ids_by_name["for bob"]
        ]
    );
    assert_eq!((first.total_count, first.has_next_page), (3, true));
    assert_eq!((second.total_count, second.has_next_page), (3, false));
    let node = first.edges[0].node.as_ref().unwrap();
    assert_eq!(node.current_step, 1);
    assert_eq!(node.current_assigned_at, Some(timestamp(at(10))));
    assert_eq!(
        node.current_assignee,
        wire_approver(approver::Approver::UserId("bob".into()))
    );

    let other = client
        .list_my_tasks(tasks("globex", String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&other.edges), [globex]);
    assert_eq!(other.total_count, 1);
    let foreign_cursor = client
        .list_my_tasks(tasks("acme", "garbage".into()))
        .await
        .unwrap_err();
    assert_eq!(field_of(&foreign_cursor), "after");
    app.stop().await;
}

#[tokio::test]
async fn search_finds_japanese_substrings_in_the_callers_tenant_only() {
    use workflow_domain::Priority::Medium;
    let app = spawn_app().await;
    let osaka = Uuid::new_v4();
    let events = waiting_for(draft("出張申請：大阪", Medium, "alice"), "bob", None);
    app.record("acme", osaka, at(0), 1, events).await;
    let expenses = Uuid::new_v4();
    let draft_with_description = Draft {
        description: "大阪出張の交通費",
        ..draft("経費精算", Medium, "alice")
    };
    let events = waiting_for(draft_with_description, "bob", None);
    app.record("acme", expenses, at(1), 1, events).await;
    let events = waiting_for(draft("出張申請：大阪", Medium, "alice"), "bob", None);
    app.record("globex", Uuid::new_v4(), at(2), 1, events).await;
    let mut client = app.client().await;
    let search = |tenant, text: &str| {
        app.request(
            tenant,
            SearchWorkflowsRequest {
                text: text.into(),
                ..Default::default()
            },
        )
    };

    let found = client
        .search_workflows(search("acme", "出張"))
        .await
        .unwrap()
        .into_inner();
    let hits: Vec<(Uuid, i32)> = found
        .edges
        .iter()
        .map(|e| (e.node.as_ref().unwrap().id.parse().unwrap(), e.matched))
        .collect();
    assert_eq!(
        hits,
        [
            (osaka, SearchMatch::Title as i32),
            (expenses, SearchMatch::Description as i32)
        ]
    );
    assert_eq!((found.total_count, found.has_next_page), (2, false));
    let other = client
        .search_workflows(search("globex", "出張申請"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.total_count, 1);
    assert_eq!(other.edges[0].node.as_ref().unwrap().tenant_id, "globex");

    for text in ["", "   ", &"出".repeat(201)] {
        let status = client
            .search_workflows(search("acme", text))
            .await
            .unwrap_err();
        assert_eq!(field_of(&status), "text", "{text:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_counts_the_callers_tenant_in_their_time_zone() {
    use workflow_domain::Priority::Medium;
    let app = spawn_app().await;
    let now = Utc::now();
    let overdue = Some(now - Duration::hours(1));
    let events = waiting_for(draft("for bob", Medium, "alice"), "bob", overdue);
    app.record("acme", Uuid::new_v4(), at(0), 1, events).await;
    let events = waiting_for(draft("for the managers", Medium, "alice"), "@manager", None);
    app.record("acme", Uuid::new_v4(), at(1), 1, events).await;
    let mut events = waiting_for(draft("rejected", Medium, "alice"), "bob", None);
    events.push(WorkflowEvent::StepCompleted {
        step: StepNo::FIRST,
        decision: workflow_domain::Decision::Rejected,
        decided_by: user("bob"),
        comment: "no".into(),
    });
    events.push(WorkflowEvent::Rejected {
        reason: Reason::parse("reason", "no").unwrap(),
    });
    app.record(
        "acme",
        Uuid::new_v4(),
        now - Duration::seconds(1),
        1,
        events,
    )
    .await;
    let events = waiting_for(draft("globex", Medium, "alice"), "bob", overdue);
    app.record("globex", Uuid::new_v4(), at(2), 1, events).await;
    let mut client = app.client().await;
    // Where it is noon now, so "today" is far from either midnight.
    let hours_east = 12 - now.hour() as i32;
    let time_zone = format!(
        "{}{:02}:00",
        if hours_east < 0 { '-' } else { '+' },
        hours_east.abs()
    );
    let board = |tenant, time_zone: &str| {
        app.request_as(
            tenant,
            "bob",
            &["manager"],
            GetDashboardRequest {
                time_zone: time_zone.into(),
            },
        )
    };

    let acme = client
        .get_dashboard(board("acme", &time_zone))
        .await
        .unwrap()
        .into_inner();
    let count = |status: WorkflowStatus, count| StatusCount {
        status: status as i32,
        count,
    };
    assert_eq!(
        acme.by_status,
        [
            count(WorkflowStatus::Draft, 0),
            count(WorkflowStatus::InProgress, 2),
            count(WorkflowStatus::ChangesRequested, 0),
            count(WorkflowStatus::Approved, 0),
            count(WorkflowStatus::Rejected, 1),
            count(WorkflowStatus::Cancelled, 0),
        ]
    );
    assert_eq!(
        (acme.pending_for_me, acme.overdue, acme.completed_today),
        (2, 1, 1)
    );
    // Its submission and decision happened at the same instant.
    assert_eq!(acme.average_decision_seconds, Some(0.0));
    let since_midnight = now.timestamp() - acme.today_started_at.unwrap().seconds;
    assert!(
        (12 * 3600..13 * 3600).contains(&since_midnight),
        "{since_midnight} s"
    );

    let globex = client
        .get_dashboard(board("globex", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            globex.pending_for_me,
            globex.overdue,
            globex.completed_today
        ),
        (1, 1, 0)
    );
    assert_eq!(globex.average_decision_seconds, None);

    for zone in ["Mars/Olympus", "+25:00", "Asia/Tokyo; --"] {
        let status = client.get_dashboard(board("acme", zone)).await.unwrap_err();
        assert_eq!(field_of(&status), "time_zone", "{zone}");
    }
    app.stop().await;
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn start_of_year(year: i32) -> prost_types::Timestamp {
    let at = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    timestamp(at)
}

/// A cursor of the list ordered by `order` (e.g. `created_at:DESC`) ending at the key `raw`, as
/// a client could forge one: the read model's cursors are base64 of `order:key:id`.
fn forged_cursor(order: &str, raw: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{order}:{raw}:{}", Uuid::new_v4()))
}

/// A user of `tenant` watching its workflows' changes.
async fn watch(
    app: &TestApp,
    tenant: &str,
) -> tonic::Streaming<proto::workflow::v1::WorkflowChange> {
    app.client()
        .await
        .watch_workflow_changes(
            app.request(tenant, proto::workflow::v1::WatchWorkflowChangesRequest {}),
        )
        .await
        .unwrap()
        .into_inner()
}

/// The next change a stream delivers, failing after a generous bound.
async fn next_change(
    stream: &mut tonic::Streaming<proto::workflow::v1::WorkflowChange>,
) -> proto::workflow::v1::WorkflowChange {
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("a change within 10 s")
        .expect("the stream stays healthy")
        .expect("the stream stays open")
}

/// The changes a stream delivers until workflow `id` reaches `version`: every one of them of
/// that workflow (the seeds come one workflow after the other), at strictly rising versions.
async fn changes_until(
    stream: &mut tonic::Streaming<proto::workflow::v1::WorkflowChange>,
    id: Uuid,
    version: i64,
) -> Vec<proto::workflow::v1::WorkflowChange> {
    let mut changes: Vec<proto::workflow::v1::WorkflowChange> = Vec::new();
    loop {
        let change = next_change(stream).await;
        let workflow = change.workflow.clone().unwrap();
        assert_eq!(workflow.id, id.to_string(), "{change:?}");
        let last = changes
            .last()
            .map_or(0, |c| c.workflow.as_ref().unwrap().version);
        assert!(
            workflow.version > last,
            "versions rise strictly: {last} then {}",
            workflow.version
        );
        changes.push(change);
        if workflow.version == version {
            return changes;
        }
    }
}

#[tokio::test]
async fn watch_streams_rising_versions_to_its_tenant_and_every_tenants_to_a_change_feed() {
    use proto::workflow::v1::WatchWorkflowChangesRequest;
    let app = spawn_app().await;
    let mut client = app.client().await;
    let mut acme = watch(&app, "acme").await;
    let mut feed = client
        .watch_workflow_changes(app.request_as(
            "ops",
            "gateway",
            &[Role::CHANGE_FEED],
            WatchWorkflowChangesRequest {},
        ))
        .await
        .unwrap()
        .into_inner();

    // Another tenant's workflow first: acme's stream must skip it.
    let other = app.seed("globex", at(0)).await;
    let mine = app.seed("acme", at(0)).await;

    // Each change is one read of the row after a commit, so versions committed faster than
    // query-svc reads them arrive as one change, at the last: what every stream sees is the
    // workflow's versions rising strictly, up to the last committed.
    let seen = changes_until(&mut acme, mine, 3).await;
    assert!(
        seen.iter().all(|change| change.tenant_id == "acme"),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|change| change.previous_assignee.is_none()),
        "nobody waited before the first assignment"
    );
    app.record(
        "acme",
        mine,
        at(10),
        4,
        vec![
            WorkflowEvent::StepCompleted {
                step: StepNo::FIRST,
                decision: workflow_domain::Decision::Delegated {
                    to_user: user("carol"),
                },
                decided_by: user("bob"),
                comment: "on leave".into(),
            },
            WorkflowEvent::StepAssigned {
                step: StepNo::FIRST,
                assignee: domain_approver("carol"),
                due_at: None,
            },
        ],
    )
    .await;
    let delegated = changes_until(&mut acme, mine, 5).await;
    let bob = Some(Approver {
        approver: Some(approver::Approver::UserId("bob".into())),
    });
    assert_eq!(
        delegated[0].previous_assignee, bob,
        "the delegation took the step from bob"
    );

    // The change feed sees both tenants, globex's first.
    let globex = changes_until(&mut feed, other, 3).await;
    assert!(
        globex.iter().all(|change| change.tenant_id == "globex"),
        "{globex:?}"
    );
    let everyone = changes_until(&mut feed, mine, 5).await;
    assert!(
        everyone.iter().all(|change| change.tenant_id == "acme"),
        "{everyone:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn watch_needs_a_valid_token() {
    use proto::workflow::v1::WatchWorkflowChangesRequest;
    let app = spawn_app().await;
    let status = app
        .client()
        .await
        .watch_workflow_changes(WatchWorkflowChangesRequest {})
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn a_watch_ends_with_unavailable_when_notifications_may_have_been_lost() {
    let app = spawn_app().await;
    let mut stream = watch(&app, "acme").await;
    app.seed("acme", at(0)).await;
    assert_eq!(next_change(&mut stream).await.workflow.unwrap().version, 1);

    // The listener's connection dies: whatever was committed meanwhile was never announced.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!terminated.is_empty(), "query-svc listens");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("ended without saying changes may be missing"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends within 10 s");
    assert_eq!(code_of(&ended), ErrorCode::Unavailable);

    // A new watch works again once the listener is back.
    let mut again = watch(&app, "acme").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let later = app.seed("acme", at(0)).await;
    let change = next_change(&mut again).await;
    assert_eq!(change.workflow.unwrap().id, later.to_string());
    app.stop().await;
}
