//! The projection and the queries against a real PostgreSQL (see `test_support`).

use chrono::{DateTime, Duration, Utc};
use read_model::{
    apply, get_workflow, list_workflows, ApplyOutcome, QueryError, StepStatus, WorkflowView,
};
use sqlx::PgPool;
use std::collections::HashSet;
use uuid::Uuid;
use workflow_domain::{
    Decision, Description, DisplayName, EventMetadata, Priority, RecordedEvent, Route, Status,
    StepNo, Title, UserId, WorkflowEvent,
};

async fn read_db() -> PgPool {
    let (_, pool) = test_support::fresh_database("read_model").await;
    read_model::migrate(&pool).await.expect("migrate");
    pool
}

fn user(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

fn step(n: u32) -> StepNo {
    StepNo::parse("step", n).unwrap()
}

/// Builds one workflow's events with consecutive versions, one second apart.
struct History {
    id: Uuid,
    tenant: &'static str,
    version: i64,
    start: DateTime<Utc>,
}

impl History {
    fn new(tenant: &'static str, start: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::new_v4(),
            tenant,
            version: 0,
            start,
        }
    }

    fn next(&mut self, event: WorkflowEvent) -> RecordedEvent {
        self.version += 1;
        RecordedEvent {
            event_id: Uuid::new_v4(),
            position: self.version,
            aggregate_type: "workflow".into(),
            aggregate_id: self.id,
            version: self.version,
            occurred_at: self.start + Duration::seconds(self.version - 1),
            metadata: EventMetadata {
                tenant_id: self.tenant.into(),
                user_id: "alice".into(),
                correlation_id: Uuid::new_v4(),
                causation_id: Uuid::new_v4(),
                traceparent: None,
            },
            event,
        }
    }
}

fn created(approvers: &[&str]) -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        applicant_id: user("alice"),
        applicant_name: DisplayName::parse("name", "アリス").unwrap(),
        route: Route::parse("route", approvers.iter().copied(), |i| {
            format!("route[{i}]")
        })
        .unwrap(),
    }
}

fn assigned(n: u32, approver: &str) -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: step(n),
        approver_id: user(approver),
    }
}

fn approved_by(n: u32, approver: &str) -> WorkflowEvent {
    WorkflowEvent::StepCompleted {
        step: step(n),
        decision: Decision::Approved,
        decided_by: user(approver),
        comment: format!("ok from {approver}"),
    }
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_778_400_000, 0).unwrap()
}

async fn apply_all(pool: &PgPool, events: &[RecordedEvent]) {
    for event in events {
        assert_eq!(
            apply(pool, event).await.unwrap(),
            ApplyOutcome::Applied,
            "{event:?}"
        );
    }
}

async fn get(pool: &PgPool, tenant: &str, id: Uuid) -> Option<WorkflowView> {
    get_workflow(pool, tenant, id).await.unwrap()
}

#[tokio::test]
async fn a_full_approval_is_reflected_row_and_steps() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = vec![
        h.next(created(&["bob", "carol"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
        h.next(approved_by(1, "bob")),
        h.next(assigned(2, "carol")),
    ];
    apply_all(&pool, &events).await;

    let wf = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!(wf.status, Status::InProgress);
    assert_eq!(
        (wf.current_step, wf.current_approver_id.as_deref()),
        (Some(2), Some("carol"))
    );
    assert_eq!(wf.submitted_at, Some(events[1].occurred_at));
    assert_eq!(wf.completed_at, None);
    let statuses: Vec<StepStatus> = wf.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Approved, StepStatus::Pending]);

    let last = vec![
        h.next(approved_by(2, "carol")),
        h.next(WorkflowEvent::Approved {}),
    ];
    apply_all(&pool, &last).await;

    let wf = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!(wf.tenant_id, "acme");
    assert_eq!(wf.title, "出張申請：大阪");
    assert_eq!(wf.description, "二泊三日");
    assert_eq!(wf.priority, Priority::High);
    assert_eq!(wf.status, Status::Approved);
    assert_eq!(
        (wf.applicant_id.as_str(), wf.applicant_name.as_str()),
        ("alice", "アリス")
    );
    assert_eq!((wf.current_step, wf.current_approver_id), (None, None));
    assert_eq!(wf.step_count, 2);
    assert_eq!(wf.created_at, events[0].occurred_at);
    assert_eq!(wf.updated_at, last[1].occurred_at);
    assert_eq!(wf.completed_at, Some(last[1].occurred_at));
    assert_eq!((wf.version, wf.last_event_id), (7, last[1].event_id));
    let steps: Vec<_> = wf
        .steps
        .iter()
        .map(|s| {
            (
                s.number,
                s.approver_id.as_str(),
                s.status,
                s.decided_by.as_deref(),
                s.comment.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                1,
                "bob",
                StepStatus::Approved,
                Some("bob"),
                Some("ok from bob")
            ),
            (
                2,
                "carol",
                StepStatus::Approved,
                Some("carol"),
                Some("ok from carol")
            ),
        ]
    );
    assert_eq!(wf.steps[0].decided_at, Some(events[3].occurred_at));
    assert_eq!(wf.steps[1].decided_at, Some(last[0].occurred_at));
}

#[tokio::test]
async fn a_rejection_ends_the_workflow_and_leaves_later_steps_waiting() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let reason = workflow_domain::Reason::parse("reason", "too expensive").unwrap();
    let events = vec![
        h.next(created(&["bob", "carol"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
        h.next(WorkflowEvent::StepCompleted {
            step: step(1),
            decision: Decision::Rejected,
            decided_by: user("bob"),
            comment: reason.as_str().into(),
        }),
        h.next(WorkflowEvent::Rejected { reason }),
    ];
    apply_all(&pool, &events).await;
    let wf = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!(wf.status, Status::Rejected);
    assert_eq!(wf.completed_at, Some(events[4].occurred_at));
    assert_eq!(wf.steps[0].status, StepStatus::Rejected);
    assert_eq!(wf.steps[0].comment.as_deref(), Some("too expensive"));
    assert_eq!(wf.steps[1].status, StepStatus::Waiting);
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = vec![
        h.next(created(&["bob"])),
        h.next(WorkflowEvent::Submitted {}),
    ];
    apply_all(&pool, &events).await;
    let before = get(&pool, "acme", h.id).await.unwrap();
    for event in &events {
        assert_eq!(
            apply(&pool, event).await.unwrap(),
            ApplyOutcome::AlreadyApplied
        );
    }
    assert_eq!(get(&pool, "acme", h.id).await.unwrap(), before);
}

#[tokio::test]
async fn an_event_after_a_gap_is_refused_and_writes_nothing() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = [
        h.next(created(&["bob"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
    ];

    // Nothing yet: not even the first event of a workflow may be skipped.
    assert_eq!(
        apply(&pool, &events[1]).await.unwrap(),
        ApplyOutcome::Gap {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(get(&pool, "acme", h.id).await, None);

    apply_all(&pool, &events[..1]).await;
    let before = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!(
        apply(&pool, &events[2]).await.unwrap(),
        ApplyOutcome::Gap {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(get(&pool, "acme", h.id).await.unwrap(), before);

    // Once the missing event arrives, the held-back one applies.
    apply_all(&pool, &events[1..]).await;
    assert_eq!(
        get(&pool, "acme", h.id).await.unwrap().current_step,
        Some(1)
    );
}

#[tokio::test]
async fn contradicting_events_are_permanent_errors_and_roll_back() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    apply_all(
        &pool,
        &[
            h.next(created(&["bob"])),
            h.next(WorkflowEvent::Submitted {}),
        ],
    )
    .await;
    let before = get(&pool, "acme", h.id).await.unwrap();

    let mut cases = Vec::new();
    let mut probe = |event: WorkflowEvent| {
        let recorded = h.next(event);
        h.version -= 1; // every probe claims the same next version
        recorded
    };
    cases.push(("step that does not exist", probe(assigned(5, "bob"))));
    cases.push(("step that is not pending", probe(approved_by(1, "bob"))));
    cases.push(("second creation", probe(created(&["bob"]))));
    cases.push(("submitting twice", probe(WorkflowEvent::Submitted {})));
    let mut other_tenant = probe(assigned(1, "bob"));
    other_tenant.metadata.tenant_id = "globex".into();
    cases.push(("another tenant's event", other_tenant));

    for (name, event) in cases {
        let error = apply(&pool, &event).await.expect_err(name);
        assert!(!error.is_transient(), "{name}: {error}");
        assert_eq!(
            get(&pool, "acme", h.id).await.unwrap(),
            before,
            "{name} wrote something"
        );
    }

    let orphan = History::new("acme", start()).next(assigned(1, "bob"));
    assert!(
        !apply(&pool, &orphan).await.unwrap_err().is_transient(),
        "event before creation"
    );
}

#[tokio::test]
async fn concurrent_creations_apply_once() {
    let pool = read_db().await;
    for _ in 0..10 {
        let event = History::new("acme", start()).next(created(&["bob"]));
        let (a, b) = tokio::join!(apply(&pool, &event), apply(&pool, &event));
        let mut applied = 0;
        for outcome in [a, b] {
            match outcome {
                Ok(ApplyOutcome::Applied) => applied += 1,
                Ok(ApplyOutcome::AlreadyApplied) => {}
                // The loser of the insert race is told to retry, which then sees the row.
                Err(error) if error.is_transient() => {
                    assert_eq!(
                        apply(&pool, &event).await.unwrap(),
                        ApplyOutcome::AlreadyApplied
                    );
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(applied, 1);
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_transient_error() {
    let pool = read_db().await;
    pool.close().await;
    let event = History::new("acme", start()).next(created(&["bob"]));
    assert!(apply(&pool, &event).await.unwrap_err().is_transient());
    let error = get_workflow(&pool, "acme", event.aggregate_id)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn another_tenant_can_neither_get_nor_list_a_workflow() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    apply_all(&pool, &[h.next(created(&["bob"]))]).await;

    assert!(get(&pool, "acme", h.id).await.is_some());
    assert_eq!(get(&pool, "globex", h.id).await, None);
    let page = list_workflows(&pool, "globex", None, 100, None)
        .await
        .unwrap();
    assert!(page.items.is_empty() && !page.has_next_page);
    let page = list_workflows(&pool, "acme", None, 100, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn pagination_walks_every_row_exactly_once_newest_first() {
    let pool = read_db().await;
    let mut expected = Vec::new();
    for i in 0..23 {
        // Groups of rows share a created_at, so the id must break ties consistently.
        let mut h = History::new("acme", start() + Duration::seconds(i / 4));
        let mut events = vec![h.next(created(&["bob"]))];
        if i % 3 == 0 {
            events.push(h.next(WorkflowEvent::Submitted {}));
        }
        apply_all(&pool, &events).await;
        expected.push((h.start, h.id, i % 3 == 0));
    }
    // Noise in another tenant must not show up or shift pages.
    apply_all(
        &pool,
        &[History::new("globex", start()).next(created(&["bob"]))],
    )
    .await;
    expected.sort_by_key(|&(created_at, id, _)| std::cmp::Reverse((created_at, id)));

    for (status, want) in [
        (None, expected.iter().map(|e| e.1).collect::<Vec<_>>()),
        (
            Some(Status::InProgress),
            expected.iter().filter(|e| e.2).map(|e| e.1).collect(),
        ),
        (
            Some(Status::Draft),
            expected.iter().filter(|e| !e.2).map(|e| e.1).collect(),
        ),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list_workflows(&pool, "acme", status, 5, after.as_deref())
                .await
                .unwrap();
            assert!(page.items.len() <= 5);
            for (_, wf) in &page.items {
                assert_eq!(wf.tenant_id, "acme");
                if let Some(status) = status {
                    assert_eq!(wf.status, status);
                }
            }
            seen.extend(page.items.iter().map(|(_, wf)| wf.id));
            after = page.items.last().map(|(cursor, _)| cursor.clone());
            if !page.has_next_page {
                break;
            }
        }
        assert_eq!(seen, want, "status {status:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }
}

#[tokio::test]
async fn bad_page_sizes_and_cursors_are_typed_errors() {
    let pool = read_db().await;
    for first in [0, 101] {
        let error = list_workflows(&pool, "acme", None, first, None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, QueryError::InvalidPageSize),
            "{first}: {error}"
        );
    }
    for cursor in ["", "not a cursor", "bm90LWEtY3Vyc29y"] {
        let error = list_workflows(&pool, "acme", None, 10, Some(cursor))
            .await
            .unwrap_err();
        assert!(
            matches!(error, QueryError::InvalidCursor),
            "{cursor:?}: {error}"
        );
    }
}

#[tokio::test]
async fn concurrent_migrations_are_safe() {
    let (_, pool) = test_support::fresh_database("read_model").await;
    let (a, b) = tokio::join!(read_model::migrate(&pool), read_model::migrate(&pool));
    a.unwrap();
    b.unwrap();
}
