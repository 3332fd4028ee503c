//! The board's projections against a throwaway read database: events applied through the
//! kernel's pipeline (in order, early, redelivered), then read back through the queries, for
//! their own tenant only.

use board_read_model::{
    get_system, list_systems, list_tasks, system_vulnerabilities, QueryError, Scans, Systems,
    TaskFilter, Tasks,
};
use chrono::{DateTime, Duration, Utc};
use projection::{apply_batch, ApplyOutcome, Projection, Stopped};
use sqlx::PgPool;
use system_board::Environment;
use system_board::{
    CveId, Cvss, EventMetadata, FindingCounts, PackageName, Packages, RawPackage, RecordedEvent,
    ScanEvent, ScanId, ScanTrigger, Severity, SystemEvent, SystemId, SystemName, TaskEvent,
    TaskKind, TaskPriority, TaskStatus, TaskTitle, UserId,
};
use uuid::Uuid;

async fn database() -> PgPool {
    let (_, pool) = test_support::fresh_database("board_read_model").await;
    read_model::MIGRATOR
        .run(&pool)
        .await
        .expect("migrations apply");
    pool
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

/// `event` as version `version` of `id` of `tenant`, recorded `seconds` after t0.
fn recorded<E>(tenant: &str, id: Uuid, version: i64, seconds: i64, event: E) -> RecordedEvent<E> {
    RecordedEvent {
        event_id: Uuid::new_v4(),
        position: 0,
        aggregate_type: "test".into(),
        aggregate_id: id,
        version,
        occurred_at: t0() + Duration::seconds(seconds),
        metadata: EventMetadata {
            tenant_id: tenant.into(),
            user_id: "olga".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            traceparent: None,
        },
        event,
    }
}

async fn apply<P: Projection>(
    pool: &PgPool,
    events: &[RecordedEvent<P::Event>],
) -> Vec<ApplyOutcome> {
    let applied = apply_batch::<P>(&mut pool.acquire().await.unwrap(), events)
        .await
        .unwrap();
    assert!(applied.stopped.is_none(), "{:?}", applied.stopped);
    applied.outcomes
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
        environment: Environment::Production,
        packages: packages(&[("log4j-core", "2.14.1"), ("openssl", "3.0.7")]),
        registered_by: user("olga"),
    }
}

fn cvss(tenths: u32) -> Cvss {
    Cvss::from_tenths("cvss", tenths).unwrap()
}

fn alert(scan: Uuid, cve: &str, tenths: u32) -> SystemEvent {
    SystemEvent::SecurityAlertRaised {
        scan_id: ScanId::new(scan),
        cve: CveId::parse("cve", cve).unwrap(),
        cvss: cvss(tenths),
        severity: cvss(tenths).severity(),
        package: PackageName::parse("package", "log4j-core").unwrap(),
    }
}

fn initiated(system: Uuid) -> ScanEvent {
    ScanEvent::Initiated {
        system_id: SystemId::new(system),
        packages: packages(&[("log4j-core", "2.14.1"), ("openssl", "3.0.7")]),
        trigger: ScanTrigger::Registered,
    }
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

fn task_created(system: Uuid, scan: Uuid, due_in_seconds: i64) -> TaskEvent {
    TaskEvent::Created {
        kind: TaskKind::ScanReview,
        system_id: SystemId::new(system),
        scan_id: ScanId::new(scan),
        cve: None,
        title: TaskTitle::parse("title", "Review scan").unwrap(),
        priority: TaskPriority::Medium,
        due_at: t0() + Duration::seconds(due_in_seconds),
    }
}

fn task_assigned(to: &str) -> TaskEvent {
    TaskEvent::Assigned {
        assignee: user(to),
        assigned_by: user("mia"),
    }
}

fn task_completed(by: &str) -> TaskEvent {
    TaskEvent::Completed {
        completed_by: user(by),
        note: None,
    }
}

#[tokio::test]
async fn a_system_reads_back_with_its_latest_scans_findings_and_its_alerts() {
    let pool = database().await;
    let system = Uuid::new_v4();
    let (first_scan, second_scan) = (Uuid::new_v4(), Uuid::new_v4());
    apply::<Systems>(
        &pool,
        &[recorded("acme", system, 1, 0, registered("Payroll API"))],
    )
    .await;
    // Before any scan: zeros, no alerts, no vulnerabilities.
    let detail = get_system(&pool, "acme", system).await.unwrap().unwrap();
    assert_eq!(detail.open_vulnerabilities, FindingCounts::default());
    assert!(detail.alerts.is_empty());
    assert_eq!(
        system_vulnerabilities(&pool, "acme", system).await.unwrap(),
        Some(vec![])
    );

    apply::<Scans>(
        &pool,
        &[
            recorded("acme", first_scan, 1, 1, initiated(system)),
            recorded(
                "acme",
                first_scan,
                2,
                2,
                detected(system, "CVE-2021-44228", 100, "log4j-core"),
            ),
            recorded(
                "acme",
                first_scan,
                3,
                3,
                detected(system, "CVE-2021-45046", 90, "log4j-core"),
            ),
            recorded(
                "acme",
                first_scan,
                4,
                4,
                detected(system, "CVE-2022-0778", 75, "openssl"),
            ),
            recorded(
                "acme",
                first_scan,
                5,
                5,
                detected(system, "CVE-2023-0001", 50, "openssl"),
            ),
            recorded(
                "acme",
                first_scan,
                6,
                6,
                ScanEvent::Completed {
                    findings: FindingCounts {
                        critical: 2,
                        high: 1,
                        medium: 1,
                        low: 0,
                    },
                },
            ),
        ],
    )
    .await;
    apply::<Systems>(
        &pool,
        &[
            recorded(
                "acme",
                system,
                2,
                7,
                alert(first_scan, "CVE-2021-44228", 100),
            ),
            recorded(
                "acme",
                system,
                3,
                8,
                alert(first_scan, "CVE-2021-45046", 90),
            ),
        ],
    )
    .await;
    let detail = get_system(&pool, "acme", system).await.unwrap().unwrap();
    assert_eq!(detail.system.name, "Payroll API");
    assert_eq!(detail.system.environment, Environment::Production);
    assert_eq!(detail.system.version, 3);
    assert_eq!(detail.system.registered_at, t0());
    assert_eq!(detail.system.updated_at, t0() + Duration::seconds(8));
    assert_eq!(
        detail.system.packages,
        packages(&[("openssl", "3.0.7"), ("log4j-core", "2.14.1")])
    );
    assert_eq!(
        detail.open_vulnerabilities,
        FindingCounts {
            critical: 2,
            high: 1,
            medium: 1,
            low: 0
        }
    );
    assert_eq!(
        detail
            .alerts
            .iter()
            .map(|a| (a.scan_id, a.cve.as_str(), a.cvss_tenths, a.severity))
            .collect::<Vec<_>>(),
        vec![
            (first_scan, "CVE-2021-44228", 100, Severity::Critical),
            (first_scan, "CVE-2021-45046", 90, Severity::Critical),
        ]
    );
    let listed = system_vulnerabilities(&pool, "acme", system)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|v| (v.cve.as_str(), v.cvss_tenths, v.package.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("CVE-2021-44228", 100, "log4j-core"),
            ("CVE-2021-45046", 90, "log4j-core"),
            ("CVE-2022-0778", 75, "openssl"),
            ("CVE-2023-0001", 50, "openssl"),
        ]
    );

    // New packages, a new scan: only its findings are open; the alerts stay.
    apply::<Systems>(
        &pool,
        &[recorded(
            "acme",
            system,
            4,
            9,
            SystemEvent::PackagesUpdated {
                packages: packages(&[("log4j-core", "2.17.1"), ("openssl", "3.0.7")]),
                updated_by: user("olga"),
            },
        )],
    )
    .await;
    apply::<Scans>(
        &pool,
        &[
            recorded("acme", second_scan, 1, 10, initiated(system)),
            recorded(
                "acme",
                second_scan,
                2,
                11,
                detected(system, "CVE-2022-0778", 75, "openssl"),
            ),
        ],
    )
    .await;
    let detail = get_system(&pool, "acme", system).await.unwrap().unwrap();
    assert_eq!(
        detail.open_vulnerabilities,
        FindingCounts {
            critical: 0,
            high: 1,
            medium: 0,
            low: 0
        }
    );
    assert_eq!(detail.alerts.len(), 2);
    let listed = system_vulnerabilities(&pool, "acme", system)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].scan_id, listed[0].system_id, listed[0].severity),
        (second_scan, system, Severity::High)
    );
    assert_eq!(listed[0].detected_at, t0() + Duration::seconds(11));

    // Another tenant sees nothing, exactly as for an unknown id.
    assert_eq!(get_system(&pool, "globex", system).await.unwrap(), None);
    assert_eq!(
        system_vulnerabilities(&pool, "globex", system)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        get_system(&pool, "acme", Uuid::new_v4()).await.unwrap(),
        None
    );
    let page = list_systems(&pool, "globex", 10, None).await.unwrap();
    assert!(page.items.is_empty() && page.next_page_token.is_none());
}

#[tokio::test]
async fn early_and_redelivered_events_end_in_the_in_order_state() {
    let pool = database().await;
    let (system, scan, task) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let system_events = [
        recorded("acme", system, 1, 0, registered("Payroll API")),
        recorded("acme", system, 2, 1, alert(scan, "CVE-2021-44228", 100)),
        recorded("acme", system, 3, 2, alert(scan, "CVE-2021-45046", 90)),
    ];
    // The alerts arrive first, one twice; the registration unblocks both, in one batch with a
    // redelivery of itself.
    assert_eq!(
        apply::<Systems>(&pool, &[system_events[2].clone(), system_events[1].clone()]).await,
        vec![
            ApplyOutcome::Buffered {
                expected: 1,
                got: 3
            },
            ApplyOutcome::Buffered {
                expected: 1,
                got: 2
            },
        ]
    );
    assert_eq!(get_system(&pool, "acme", system).await.unwrap(), None);
    assert_eq!(
        apply::<Systems>(
            &pool,
            &[
                system_events[2].clone(),
                system_events[0].clone(),
                system_events[0].clone()
            ]
        )
        .await,
        vec![
            ApplyOutcome::Buffered {
                expected: 1,
                got: 3
            },
            ApplyOutcome::Applied,
            ApplyOutcome::AlreadyApplied,
        ]
    );
    assert_eq!(
        apply::<Systems>(&pool, &system_events).await,
        vec![ApplyOutcome::AlreadyApplied; 3]
    );
    let detail = get_system(&pool, "acme", system).await.unwrap().unwrap();
    assert_eq!(detail.system.version, 3);
    assert_eq!(
        detail
            .alerts
            .iter()
            .map(|a| a.cve.as_str())
            .collect::<Vec<_>>(),
        vec!["CVE-2021-44228", "CVE-2021-45046"]
    );

    // A scan's findings delivered before the scan, and again after.
    let scan_events = [
        recorded("acme", scan, 1, 0, initiated(system)),
        recorded(
            "acme",
            scan,
            2,
            1,
            detected(system, "CVE-2021-44228", 100, "log4j-core"),
        ),
    ];
    apply::<Scans>(&pool, &[scan_events[1].clone()]).await;
    apply::<Scans>(&pool, &[scan_events[0].clone(), scan_events[1].clone()]).await;
    apply::<Scans>(&pool, &scan_events).await;
    let vulnerabilities = system_vulnerabilities(&pool, "acme", system)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vulnerabilities.len(), 1);

    // A task's whole life in reverse, then once more.
    let task_events = [
        recorded("acme", task, 1, 0, task_created(system, scan, 100)),
        recorded("acme", task, 2, 1, task_assigned("sam")),
        recorded("acme", task, 3, 2, task_completed("sam")),
    ];
    let reversed: Vec<_> = task_events.iter().rev().cloned().collect();
    assert_eq!(
        apply::<Tasks>(&pool, &reversed).await.last(),
        Some(&ApplyOutcome::Applied)
    );
    apply::<Tasks>(&pool, &task_events).await;
    let page = list_tasks(&pool, "acme", &TaskFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let listed = &page.items[0];
    assert_eq!(
        (listed.status, listed.assignee.as_deref(), listed.version),
        (TaskStatus::Completed, Some("sam"), 3)
    );
    assert_eq!(listed.completed_at, Some(t0() + Duration::seconds(2)));
    assert_eq!(listed.created_at, t0());
}

#[tokio::test]
async fn a_contradiction_stops_the_batch_after_what_came_before() {
    let pool = database().await;
    let (task, unknown) = (Uuid::new_v4(), Uuid::new_v4());
    let applied = apply_batch::<Tasks>(
        &mut pool.acquire().await.unwrap(),
        &[
            recorded(
                "acme",
                task,
                1,
                0,
                task_created(Uuid::new_v4(), Uuid::new_v4(), 10),
            ),
            recorded("acme", unknown, 1, 0, task_assigned("sam")),
            recorded("acme", task, 2, 1, task_assigned("sam")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(applied.outcomes, vec![ApplyOutcome::Applied]);
    assert!(matches!(
        applied.stopped,
        Some(Stopped::Refused(
            projection::ProjectionError::Contradiction {
                problem: "task does not exist",
                ..
            }
        ))
    ));
    let page = list_tasks(&pool, "acme", &TaskFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].status, TaskStatus::Open);
}

#[tokio::test]
async fn systems_page_by_name_then_id() {
    let pool = database().await;
    let mut expected = Vec::new();
    for name in ["delta", "alpha", "charlie", "bravo", "alpha"] {
        let id = Uuid::new_v4();
        apply::<Systems>(&pool, &[recorded("acme", id, 1, 0, registered(name))]).await;
        expected.push((name.to_owned(), id));
    }
    apply::<Systems>(
        &pool,
        &[recorded(
            "globex",
            Uuid::new_v4(),
            1,
            0,
            registered("aardvark"),
        )],
    )
    .await;
    expected.sort();
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = list_systems(&pool, "acme", 2, token.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(
            page.items
                .iter()
                .map(|d| (d.system.name.clone(), d.system.id)),
        );
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // An exact multiple of the page size ends without an empty page.
    let all = list_systems(&pool, "acme", 5, None).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_page_token, None);

    assert!(matches!(
        list_systems(&pool, "acme", 0, None).await,
        Err(QueryError::InvalidPageSize)
    ));
    assert!(matches!(
        list_systems(&pool, "acme", 101, None).await,
        Err(QueryError::InvalidPageSize)
    ));
    assert!(matches!(
        list_systems(&pool, "acme", 2, Some("garbage")).await,
        Err(QueryError::InvalidPageToken)
    ));
}

#[tokio::test]
async fn tasks_filter_and_page_soonest_due_first() {
    let pool = database().await;
    let (payroll, billing) = (Uuid::new_v4(), Uuid::new_v4());
    let scan = Uuid::new_v4();
    // (name, system, due in seconds, assignee, completed)
    let plan = [
        ("a", payroll, 30, Some("sam"), false),
        ("b", billing, 10, Some("sam"), true),
        ("c", payroll, 20, None, false),
        ("d", billing, 50, Some("kim"), false),
        ("e", payroll, 40, Some("sam"), false),
    ];
    let mut ids = std::collections::HashMap::new();
    for (name, system, due, assignee, completed) in plan {
        let id = Uuid::new_v4();
        ids.insert(id, name);
        let mut events = vec![recorded("acme", id, 1, 0, task_created(system, scan, due))];
        if let Some(who) = assignee {
            events.push(recorded("acme", id, 2, 1, task_assigned(who)));
            if completed {
                events.push(recorded("acme", id, 3, 2, task_completed(who)));
            }
        }
        apply::<Tasks>(&pool, &events).await;
    }
    apply::<Tasks>(
        &pool,
        &[recorded(
            "globex",
            Uuid::new_v4(),
            1,
            0,
            task_created(payroll, scan, 5),
        )],
    )
    .await;
    let names = |tasks: &[board_read_model::TaskView]| -> Vec<&str> {
        tasks.iter().map(|t| ids[&t.id]).collect()
    };
    let list = |filter: TaskFilter| {
        let pool = pool.clone();
        async move {
            list_tasks(&pool, "acme", &filter, 100, None)
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(
        names(&list(TaskFilter::default()).await),
        ["b", "c", "a", "e", "d"]
    );
    let mine = TaskFilter {
        assignee: Some("sam".into()),
        ..TaskFilter::default()
    };
    assert_eq!(names(&list(mine.clone()).await), ["b", "a", "e"]);
    let payroll_only = TaskFilter {
        system_id: Some(payroll),
        ..TaskFilter::default()
    };
    assert_eq!(names(&list(payroll_only).await), ["c", "a", "e"]);
    // Overdue at t0 + 35 s: not completed and due before then.
    let overdue = TaskFilter {
        overdue_at: Some(t0() + Duration::seconds(35)),
        ..TaskFilter::default()
    };
    assert_eq!(names(&list(overdue.clone()).await), ["c", "a"]);
    // All three at once.
    let all = TaskFilter {
        assignee: Some("sam".into()),
        system_id: Some(payroll),
        overdue_at: Some(t0() + Duration::seconds(35)),
    };
    assert_eq!(names(&list(all).await), ["a"]);
    assert!(list(TaskFilter {
        system_id: Some(Uuid::new_v4()),
        ..TaskFilter::default()
    })
    .await
    .is_empty());
    assert!(
        list_tasks(&pool, "initech", &TaskFilter::default(), 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Pages of two, of my tasks.
    let first = list_tasks(&pool, "acme", &mine, 2, None).await.unwrap();
    assert_eq!(names(&first.items), ["b", "a"]);
    let token = first.next_page_token.unwrap();
    let second = list_tasks(&pool, "acme", &mine, 2, Some(&token))
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["e"]);
    assert_eq!(second.next_page_token, None);
    // The token belongs to the request with these filters only.
    assert!(matches!(
        list_tasks(&pool, "acme", &overdue, 2, Some(&token)).await,
        Err(QueryError::InvalidPageToken)
    ));
    assert!(matches!(
        list_tasks(&pool, "acme", &mine, 0, None).await,
        Err(QueryError::InvalidPageSize)
    ));
}
