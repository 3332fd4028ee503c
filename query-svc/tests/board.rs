//! The System Board's query service over real gRPC: events appended to a throwaway event store
//! (with the correlation and causation ids a command and the platform's reactions give them),
//! projected into a throwaway read database through the board's projections, then read back
//! through every RPC, for the caller's tenant only.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clap::Parser;
use event_store::{Append, EventStore};
use platform::auth::Identity;
use platform::errors::{code_of, metadata_of, ErrorCode};
use projection::Projection;
use proto::systemboard::v1 as pb;
use proto::systemboard::v1::system_board_query_service_client::SystemBoardQueryServiceClient;
use query_svc::{Application, Settings};
use sqlx::PgPool;
use system_board::{
    Aggregate, CveId, Cvss, Environment, EventMetadata, FindingCounts, PackageName, Packages,
    RawPackage, ScanEvent, ScanId, ScanTrigger, System, SystemEvent, SystemId, SystemName, Task,
    TaskEvent, TaskKind, TaskPriority, TaskTitle, UserId, VulnerabilityScan,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

struct TestApp {
    port: u16,
    pool: PgPool,
    store: EventStore,
    settings: Settings,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_app() -> TestApp {
    let (url, pool) = test_support::fresh_database("query_svc_board").await;
    let (events_url, events_pool) = test_support::fresh_database("query_svc_board_events").await;
    let store = EventStore::new(events_pool, &system_board::REGISTRATIONS);
    store.migrate().await.expect("event store migrations apply");
    let settings = Settings::parse_from([
        "query-svc",
        "--listen-addr",
        "127.0.0.1:0",
        "--read-database-url",
        &url,
        "--event-store-url",
        &events_url,
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
        store,
        settings,
        shutdown,
        server,
    }
}

/// Who records an event and in which request chain.
#[derive(Clone)]
struct Cause {
    tenant: &'static str,
    user: &'static str,
    correlation_id: Uuid,
    causation_id: Uuid,
}

impl TestApp {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn client(&self) -> SystemBoardQueryServiceClient<Channel> {
        SystemBoardQueryServiceClient::new(self.channel().await)
    }

    fn request<T>(&self, tenant: &str, user: &str, message: T) -> tonic::Request<T> {
        let identity = Identity {
            tenant_id: tenant.into(),
            user_id: user.into(),
            display_name: user.to_uppercase(),
            roles: Vec::new(),
        };
        let token = self
            .settings
            .auth
            .jwt()
            .unwrap()
            .issue(&identity, Duration::hours(1))
            .unwrap();
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    /// Appends `events` to aggregate `id` of `A` after `expected`, then projects the
    /// aggregate's whole history (earlier versions are redeliveries the projection skips).
    /// Returns the new events' ids.
    async fn record<A, P>(
        &self,
        cause: &Cause,
        id: Uuid,
        expected: i64,
        events: &[A::Event],
        at: DateTime<Utc>,
    ) -> Vec<Uuid>
    where
        A: Aggregate,
        P: Projection<Event = A::Event>,
    {
        let metadata = EventMetadata {
            tenant_id: cause.tenant.into(),
            user_id: cause.user.into(),
            correlation_id: cause.correlation_id,
            causation_id: cause.causation_id,
            traceparent: None,
        };
        let record = self
            .store
            .append(Append {
                aggregate_type: A::TYPE,
                aggregate_id: id,
                expected_version: expected,
                events,
                metadata: &metadata,
                command_id: Uuid::new_v4(),
                command_type: "Test",
                occurred_at: at,
            })
            .await
            .expect("append");
        for event in self
            .store
            .history::<A>(cause.tenant, id, 0)
            .await
            .expect("history")
        {
            projection::apply::<P>(&self.pool, &event)
                .await
                .expect("project");
        }
        record.event_ids
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

fn packages(list: &[(&str, &str)]) -> Packages {
    Packages::parse(
        "packages",
        list.iter()
            .map(|(name, version)| RawPackage { name, version }),
        |i, f| format!("packages[{i}].{f}"),
    )
    .unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

fn registered(name: &str) -> SystemEvent {
    SystemEvent::Registered {
        name: SystemName::parse("name", name).unwrap(),
        owner: user("olga"),
        environment: Environment::Staging,
        packages: packages(&[("openssl", "3.0.7"), ("log4j-core", "2.14.1")]),
        registered_by: user("olga"),
    }
}

fn cvss(tenths: u32) -> Cvss {
    Cvss::from_tenths("cvss", tenths).unwrap()
}

fn detected(system: Uuid, cve: &str, tenths: u32, package: &str) -> ScanEvent {
    ScanEvent::VulnerabilityDetected {
        cve: CveId::parse("cve", cve).unwrap(),
        cvss: cvss(tenths),
        severity: cvss(tenths).severity(),
        package: PackageName::parse("package", package).unwrap(),
        system_id: SystemId::new(system),
    }
}

fn task_created(
    kind: TaskKind,
    system: Uuid,
    scan: Uuid,
    cve: Option<&str>,
    due_at: DateTime<Utc>,
) -> TaskEvent {
    TaskEvent::Created {
        kind,
        system_id: SystemId::new(system),
        scan_id: ScanId::new(scan),
        cve: cve.map(|cve| CveId::parse("cve", cve).unwrap()),
        title: TaskTitle::parse("title", "Look at it").unwrap(),
        priority: TaskPriority::High,
        due_at,
    }
}

fn field_of(status: &tonic::Status) -> String {
    metadata_of(status)
        .get("field")
        .cloned()
        .unwrap_or_default()
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// What the fixture recorded.
struct Board {
    payroll: Uuid,
    billing: Uuid,
    scan: Uuid,
    review: Uuid,
    remediation: Uuid,
    registration: Uuid,
    registration_events: [Uuid; 3],
    now: DateTime<Utc>,
}

/// In acme: Payroll registered by olga (chain 1: SystemRegistered → VulnScanInitiated →
/// TaskCreated, the review due in a day); findings recorded and the scan completed by sec
/// (chain 2, with the platform's alert and a remediation task due an hour ago, assigned to
/// alice); Billing registered. In globex: one system of its own.
async fn seed(app: &TestApp) -> Board {
    let now = Utc::now();
    let (payroll, billing, scan, review, remediation) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let registration = Uuid::new_v4();
    let command = Cause {
        tenant: "acme",
        user: "olga",
        correlation_id: registration,
        causation_id: Uuid::new_v4(),
    };
    let [registered_event] = app
        .record::<System, board_read_model::Systems>(
            &command,
            payroll,
            0,
            &[registered("Payroll")],
            now,
        )
        .await[..]
    else {
        unreachable!()
    };
    let reaction = |causation_id| Cause {
        user: "platform",
        causation_id,
        ..command.clone()
    };
    let [initiated_event] = app
        .record::<VulnerabilityScan, board_read_model::Scans>(
            &reaction(registered_event),
            scan,
            0,
            &[ScanEvent::Initiated {
                system_id: SystemId::new(payroll),
                packages: packages(&[("log4j-core", "2.14.1"), ("openssl", "3.0.7")]),
                trigger: ScanTrigger::Registered,
            }],
            now,
        )
        .await[..]
    else {
        unreachable!()
    };
    let [review_event] = app
        .record::<Task, board_read_model::Tasks>(
            &reaction(initiated_event),
            review,
            0,
            &[task_created(
                TaskKind::ScanReview,
                payroll,
                scan,
                None,
                now + Duration::days(1),
            )],
            now,
        )
        .await[..]
    else {
        unreachable!()
    };

    let findings = Cause {
        tenant: "acme",
        user: "sec",
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
    };
    let detected_events = app
        .record::<VulnerabilityScan, board_read_model::Scans>(
            &findings,
            scan,
            1,
            &[
                detected(payroll, "CVE-2022-0778", 75, "openssl"),
                detected(payroll, "CVE-2021-44228", 100, "log4j-core"),
                detected(payroll, "CVE-2023-0001", 50, "openssl"),
                ScanEvent::Completed {
                    findings: FindingCounts {
                        critical: 1,
                        high: 1,
                        medium: 1,
                        low: 0,
                    },
                },
            ],
            now,
        )
        .await;
    let platform = Cause {
        user: "platform",
        causation_id: detected_events[1],
        ..findings.clone()
    };
    app.record::<System, board_read_model::Systems>(
        &platform,
        payroll,
        1,
        &[SystemEvent::SecurityAlertRaised {
            scan_id: ScanId::new(scan),
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: cvss(100),
            severity: cvss(100).severity(),
            package: PackageName::parse("package", "log4j-core").unwrap(),
        }],
        now,
    )
    .await;
    app.record::<Task, board_read_model::Tasks>(
        &platform,
        remediation,
        0,
        &[
            task_created(
                TaskKind::Remediation,
                payroll,
                scan,
                Some("CVE-2021-44228"),
                now - Duration::hours(1),
            ),
            TaskEvent::Assigned {
                assignee: user("alice"),
                assigned_by: user("mia"),
            },
        ],
        now,
    )
    .await;
    let other = Cause {
        tenant: "acme",
        user: "olga",
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
    };
    app.record::<System, board_read_model::Systems>(
        &other,
        billing,
        0,
        &[registered("Billing")],
        now,
    )
    .await;
    // Another tenant's system, recorded under acme's registration chain id.
    let foreign = Cause {
        tenant: "globex",
        user: "eve",
        correlation_id: registration,
        causation_id: Uuid::new_v4(),
    };
    app.record::<System, board_read_model::Systems>(
        &foreign,
        Uuid::new_v4(),
        0,
        &[registered("Aardvark")],
        now,
    )
    .await;
    Board {
        payroll,
        billing,
        scan,
        review,
        remediation,
        registration,
        registration_events: [registered_event, initiated_event, review_event],
        now,
    }
}

#[tokio::test]
async fn get_system_answers_the_callers_system_with_its_vulnerabilities_and_alerts() {
    let app = spawn_app().await;
    let board = seed(&app).await;
    let mut client = app.client().await;
    let id = board.payroll.to_string();
    let system = client
        .get_system(app.request(
            "acme",
            "bob",
            pb::GetSystemRequest {
                system_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(system.id, id);
    assert_eq!(system.version, 2);
    assert_eq!(
        (system.name.as_str(), system.owner.as_str()),
        ("Payroll", "olga")
    );
    assert_eq!(system.environment, pb::Environment::Staging as i32);
    assert_eq!(
        system
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect::<Vec<_>>(),
        vec![("log4j-core", "2.14.1"), ("openssl", "3.0.7")]
    );
    assert!(!system.decommissioned);
    assert_eq!(
        system.open_vulnerabilities,
        Some(pb::VulnerabilityCounts {
            critical: 1,
            high: 1,
            medium: 1,
            low: 0
        })
    );
    assert_eq!(
        system.security_alerts,
        vec![pb::SecurityAlert {
            scan_id: board.scan.to_string(),
            cve: "CVE-2021-44228".into(),
            cvss_tenths: 100,
            severity: pb::Severity::Critical as i32,
            package: "log4j-core".into(),
            raised_at: Some(timestamp(board.now.trunc_subsecs(6))),
        }]
    );
    assert_eq!(
        system.registered_at,
        Some(timestamp(board.now.trunc_subsecs(6)))
    );

    // Another tenant's, an unknown and a malformed id: the same NOT_FOUND.
    for (tenant, raw) in [
        ("globex", id.clone()),
        ("acme", Uuid::new_v4().to_string()),
        ("acme", "not-a-uuid".to_owned()),
    ] {
        let status = client
            .get_system(app.request(tenant, "bob", pb::GetSystemRequest { system_id: raw }))
            .await
            .unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::NotFound);
        assert_eq!(status.message(), "system not found");
    }
    app.stop().await;
}

#[tokio::test]
async fn list_systems_pages_by_name_and_refuses_bad_paging() {
    let app = spawn_app().await;
    let board = seed(&app).await;
    let mut client = app.client().await;
    let first = client
        .list_systems(app.request(
            "acme",
            "bob",
            pb::ListSystemsRequest {
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.systems.len(), 1);
    assert_eq!(first.systems[0].id, board.billing.to_string());
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_systems(app.request(
            "acme",
            "bob",
            pb::ListSystemsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.systems.len(), 1);
    assert_eq!(second.systems[0].id, board.payroll.to_string());
    // Lists carry the same detail as GetSystem.
    assert_eq!(second.systems[0].security_alerts.len(), 1);
    assert_eq!(second.next_page_token, "");
    // The default page holds both; globex sees only its own.
    let all = client
        .list_systems(app.request("acme", "bob", pb::ListSystemsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.systems.len(), 2);
    let theirs = client
        .list_systems(app.request("globex", "eve", pb::ListSystemsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        theirs
            .systems
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["Aardvark"]
    );

    let status = client
        .list_systems(app.request(
            "acme",
            "bob",
            pb::ListSystemsRequest {
                page_size: 101,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::InvalidArgument);
    assert_eq!(field_of(&status), "page_size");
    for token in ["garbage".to_owned(), "dGFza3M6MDA6LToxOng".to_owned()] {
        let status = client
            .list_systems(app.request(
                "acme",
                "bob",
                pb::ListSystemsRequest {
                    page_size: 1,
                    page_token: token,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::InvalidArgument);
        assert_eq!(field_of(&status), "page_token");
    }
    app.stop().await;
}

#[tokio::test]
async fn list_system_vulnerabilities_is_most_severe_first() {
    let app = spawn_app().await;
    let board = seed(&app).await;
    let mut client = app.client().await;
    let listed = client
        .list_system_vulnerabilities(app.request(
            "acme",
            "bob",
            pb::ListSystemVulnerabilitiesRequest {
                system_id: board.payroll.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .vulnerabilities;
    assert_eq!(
        listed
            .iter()
            .map(|v| (
                v.cve.as_str(),
                v.cvss_tenths,
                v.severity,
                v.package.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                "CVE-2021-44228",
                100,
                pb::Severity::Critical as i32,
                "log4j-core"
            ),
            ("CVE-2022-0778", 75, pb::Severity::High as i32, "openssl"),
            ("CVE-2023-0001", 50, pb::Severity::Medium as i32, "openssl"),
        ]
    );
    assert!(listed.iter().all(|v| v.scan_id == board.scan.to_string()));
    // A system without findings: empty. Others: NOT_FOUND.
    let empty = client
        .list_system_vulnerabilities(app.request(
            "acme",
            "bob",
            pb::ListSystemVulnerabilitiesRequest {
                system_id: board.billing.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.vulnerabilities.is_empty());
    for (tenant, raw) in [
        ("globex", board.payroll.to_string()),
        ("acme", "x".to_owned()),
        ("acme", String::new()),
    ] {
        let status = client
            .list_system_vulnerabilities(app.request(
                tenant,
                "bob",
                pb::ListSystemVulnerabilitiesRequest { system_id: raw },
            ))
            .await
            .unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::NotFound);
    }
    app.stop().await;
}

#[tokio::test]
async fn list_tasks_applies_every_filter_it_is_given() {
    let app = spawn_app().await;
    let board = seed(&app).await;
    let client = app.client().await;
    let list = |tenant: &'static str, user: &'static str, request: pb::ListTasksRequest| {
        let request = app.request(tenant, user, request);
        let mut client = client.clone();
        async move { client.list_tasks(request).await }
    };
    let ids = |response: pb::ListTasksResponse| -> Vec<String> {
        response.tasks.into_iter().map(|t| t.id).collect()
    };
    let all = list("acme", "bob", pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Soonest due first: the overdue remediation, then the review.
    assert_eq!(
        ids(all.clone()),
        [board.remediation.to_string(), board.review.to_string()]
    );
    let remediation = &all.tasks[0];
    assert_eq!(remediation.kind, pb::TaskKind::Remediation as i32);
    assert_eq!(remediation.status, pb::TaskStatus::Assigned as i32);
    assert_eq!(remediation.assignee, "alice");
    assert_eq!(remediation.cve, "CVE-2021-44228");
    assert_eq!(remediation.version, 2);
    assert_eq!(remediation.priority, pb::TaskPriority::High as i32);
    assert_eq!(remediation.completed_at, None);
    let review = &all.tasks[1];
    assert_eq!(
        (review.status, review.cve.as_str(), review.assignee.as_str()),
        (pb::TaskStatus::Open as i32, "", "")
    );
    assert_eq!(review.scan_id, board.scan.to_string());
    assert_eq!(review.system_id, board.payroll.to_string());

    let mine = pb::ListTasksRequest {
        mine: true,
        ..Default::default()
    };
    assert_eq!(
        ids(list("acme", "alice", mine.clone())
            .await
            .unwrap()
            .into_inner()),
        [board.remediation.to_string()]
    );
    assert!(ids(list("acme", "bob", mine).await.unwrap().into_inner()).is_empty());
    let overdue = pb::ListTasksRequest {
        overdue_only: true,
        ..Default::default()
    };
    assert_eq!(
        ids(list("acme", "bob", overdue).await.unwrap().into_inner()),
        [board.remediation.to_string()]
    );
    let of = |system_id: String| pb::ListTasksRequest {
        system_id,
        ..Default::default()
    };
    assert_eq!(
        ids(list("acme", "bob", of(board.payroll.to_string()))
            .await
            .unwrap()
            .into_inner())
        .len(),
        2
    );
    // A filter matches or it does not: another system, a malformed or another tenant's id.
    for raw in [board.billing.to_string(), "nope".to_owned()] {
        let page = list("acme", "bob", of(raw)).await.unwrap().into_inner();
        assert!(page.tasks.is_empty() && page.next_page_token.is_empty());
    }
    assert!(list("globex", "eve", of(board.payroll.to_string()))
        .await
        .unwrap()
        .into_inner()
        .tasks
        .is_empty());
    assert!(list("globex", "eve", pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks
        .is_empty());

    // Pages, and a token only for the request it came from.
    let first = list(
        "acme",
        "bob",
        pb::ListTasksRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(ids(first.clone()), [board.remediation.to_string()]);
    let second = list(
        "acme",
        "bob",
        pb::ListTasksRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(ids(second.clone()), [board.review.to_string()]);
    assert_eq!(second.next_page_token, "");
    for request in [
        pb::ListTasksRequest {
            overdue_only: true,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListTasksRequest {
            system_id: "nope".into(),
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListTasksRequest {
            page_token: "%%%".into(),
            ..Default::default()
        },
    ] {
        let status = list("acme", "bob", request).await.unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::InvalidArgument);
        assert_eq!(field_of(&status), "page_token");
    }
    let status = list(
        "acme",
        "bob",
        pb::ListTasksRequest {
            page_size: 1_000,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(field_of(&status), "page_size");
    app.stop().await;
}

#[tokio::test]
async fn get_causal_chain_follows_one_request_across_the_contexts() {
    let app = spawn_app().await;
    let board = seed(&app).await;
    let mut client = app.client().await;
    let chain = client
        .get_causal_chain(app.request(
            "acme",
            "bob",
            pb::GetCausalChainRequest {
                correlation_id: board.registration.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        chain
            .iter()
            .map(|e| (
                e.event_type.as_str(),
                e.aggregate_type.as_str(),
                e.version,
                e.user_id.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("SystemRegistered", "system", 1, "olga"),
            ("VulnScanInitiated", "vulnerability_scan", 1, "platform"),
            ("TaskCreated", "task", 1, "platform"),
        ]
    );
    let [registered, initiated, created] = board.registration_events;
    assert_eq!(
        chain.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
        [registered, initiated, created].map(|id| id.to_string())
    );
    // Each reaction names the event it reacted to.
    assert_eq!(chain[1].causation_id, registered.to_string());
    assert_eq!(chain[2].causation_id, initiated.to_string());
    assert_eq!(chain[0].aggregate_id, board.payroll.to_string());
    assert!(chain
        .iter()
        .all(|e| e.correlation_id == board.registration.to_string() && e.occurred_at.is_some()));

    // globex has its own event under the same id; nobody else has any.
    let theirs = client
        .get_causal_chain(app.request(
            "globex",
            "eve",
            pb::GetCausalChainRequest {
                correlation_id: board.registration.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].user_id, "eve");
    for (tenant, raw) in [
        ("initech", board.registration.to_string()),
        ("acme", Uuid::new_v4().to_string()),
        ("acme", "not-a-uuid".to_owned()),
    ] {
        let status = client
            .get_causal_chain(app.request(
                tenant,
                "bob",
                pb::GetCausalChainRequest {
                    correlation_id: raw,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(code_of(&status), ErrorCode::NotFound);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_board_queries_are_served_and_need_a_token() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel().await);
    let response = health
        .check(HealthCheckRequest {
            service: "ringiflow.systemboard.v1.SystemBoardQueryService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let status = app
        .client()
        .await
        .list_systems(pb::ListSystemsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::Unauthenticated);
    app.stop().await;
}
