//! The projection and the queries against a real PostgreSQL (see `test_support`).

/// Lists, "my tasks", search and the dashboard.
mod queries;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use projection::shadow::{self, Scope, Switch};
use projection::{
    apply, apply_batch, park, replay, unpark, ApplyOutcome, Park, Projection, Stopped, Unpark,
};
use read_model::{
    get_workflow, list_workflows, AssignmentView, QueryError, StepStatus, WorkflowDetail,
    WorkflowView, Workflows,
};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashSet;
use uuid::Uuid;
use workflow_domain::{
    Approver, Attachment, CommentBody, Decision, DefinitionId, DefinitionName, DefinitionRef,
    Description, DisplayName, DraftChanges, EventMetadata, Priority, RawApprover, RawAttachment,
    RawStep, Reason, RecordedEvent, Role, Route, Status, StepNo, Title, UserId, WorkflowEvent,
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

/// `"bob"` is the user bob, `"@manager"` anyone holding the role manager.
fn raw_approver(who: &str) -> RawApprover<'_> {
    match who.strip_prefix('@') {
        Some(role) => RawApprover::Role(role),
        None => RawApprover::User(who),
    }
}

fn approver(who: &str) -> Approver {
    match raw_approver(who) {
        RawApprover::User(id) => Approver::User(user(id)),
        RawApprover::Role(role) => Approver::Role(Role::parse("role", role).unwrap()),
    }
}

/// One step per approver (see [`raw_approver`]), each with the same SLA.
fn route(approvers: &[&str], sla_hours: Option<u32>) -> Route {
    Route::parse(
        "route",
        approvers.iter().map(|who| RawStep {
            approver: Some(raw_approver(who)),
            sla_hours,
        }),
        |i, f| format!("route[{i}].{f}"),
    )
    .unwrap()
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

    /// When the event of `version` happens.
    fn at(&self, version: i64) -> DateTime<Utc> {
        self.start + Duration::seconds(version - 1)
    }

    /// Lets `time` pass before the next event.
    fn pause(&mut self, time: Duration) {
        self.start += time;
    }

    fn next(&mut self, event: WorkflowEvent) -> RecordedEvent<WorkflowEvent> {
        self.version += 1;
        RecordedEvent {
            event_id: Uuid::new_v4(),
            position: self.version,
            aggregate_type: "workflow".into(),
            aggregate_id: self.id,
            version: self.version,
            occurred_at: self.at(self.version),
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

fn created_on(
    route: Route,
    definition: Option<DefinitionRef>,
    due_date: Option<NaiveDate>,
) -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        applicant_id: user("alice"),
        applicant_name: DisplayName::parse("name", "アリス").unwrap(),
        route,
        definition,
        due_date,
    }
}

fn created(approvers: &[&str]) -> WorkflowEvent {
    created_on(route(approvers, None), None, None)
}

fn assigned(n: u32, who: &str) -> WorkflowEvent {
    assigned_until(n, who, None)
}

fn assigned_until(n: u32, who: &str, due_at: Option<DateTime<Utc>>) -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: step(n),
        assignee: approver(who),
        due_at,
    }
}

fn decided(n: u32, decision: Decision, by: &str, comment: &str) -> WorkflowEvent {
    WorkflowEvent::StepCompleted {
        step: step(n),
        decision,
        decided_by: user(by),
        comment: comment.into(),
    }
}

fn approved_by(n: u32, approver: &str) -> WorkflowEvent {
    decided(
        n,
        Decision::Approved,
        approver,
        &format!("ok from {approver}"),
    )
}

fn commented(by: &str, body: &str) -> WorkflowEvent {
    WorkflowEvent::CommentAdded {
        author_id: user(by),
        author_name: DisplayName::parse("name", &by.to_uppercase()).unwrap(),
        body: CommentBody::parse("body", body).unwrap(),
    }
}

fn document(file_name: &str) -> Attachment {
    Attachment::parse(
        RawAttachment {
            file_name,
            media_type: "application/pdf",
            size_bytes: 52_431,
            sha256: &"9f86".repeat(16),
            storage_uri: &format!("s3://ringiflow/acme/{file_name}"),
        },
        |f| format!("attachment.{f}"),
    )
    .unwrap()
}

fn attached(file_name: &str) -> WorkflowEvent {
    WorkflowEvent::DocumentAttached {
        attachment: document(file_name),
        attached_by: user("alice"),
    }
}

fn reason(text: &str) -> Reason {
    Reason::parse("reason", text).unwrap()
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_778_400_000, 0).unwrap()
}

async fn apply_all(pool: &PgPool, events: &[RecordedEvent<WorkflowEvent>]) {
    for event in events {
        assert_eq!(
            apply::<Workflows>(pool, event).await.unwrap(),
            ApplyOutcome::Applied,
            "{event:?}"
        );
    }
}

async fn detail(pool: &PgPool, tenant: &str, id: Uuid) -> Option<WorkflowDetail> {
    get_workflow(pool, tenant, id).await.unwrap()
}

async fn get(pool: &PgPool, tenant: &str, id: Uuid) -> Option<WorkflowView> {
    detail(pool, tenant, id).await.map(|detail| detail.workflow)
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
        wf.current,
        Some(AssignmentView {
            step: 2,
            assignee: approver("carol"),
            assigned_at: events[4].occurred_at,
            due_at: None,
            escalated_at: None,
        })
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
    assert_eq!(wf.current, None);
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
                s.approver.clone(),
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
                approver("bob"),
                StepStatus::Approved,
                Some("bob"),
                Some("ok from bob")
            ),
            (
                2,
                approver("carol"),
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
    let reason = reason("too expensive");
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
            apply::<Workflows>(&pool, event).await.unwrap(),
            ApplyOutcome::AlreadyApplied
        );
    }
    assert_eq!(get(&pool, "acme", h.id).await.unwrap(), before);
}

#[tokio::test]
async fn an_early_event_waits_for_its_predecessor_and_then_applies_with_it() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = [
        h.next(created(&["bob"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
    ];

    // Nothing yet: not even the first event of a workflow may be skipped.
    assert_eq!(
        apply::<Workflows>(&pool, &events[2]).await.unwrap(),
        ApplyOutcome::Buffered {
            expected: 1,
            got: 3
        }
    );
    assert_eq!(
        apply::<Workflows>(&pool, &events[1]).await.unwrap(),
        ApplyOutcome::Buffered {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(get(&pool, "acme", h.id).await, None);

    // The predecessor arrives: it and both buffered successors apply, and the buffer empties.
    apply_all(&pool, &events[..1]).await;
    let wf = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!((wf.version, wf.current.map(|c| c.step)), (3, Some(1)));
    let buffered: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(buffered, 0);
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
        let error = apply::<Workflows>(&pool, &event).await.expect_err(name);
        assert!(!error.is_transient(), "{name}: {error}");
        assert_eq!(
            get(&pool, "acme", h.id).await.unwrap(),
            before,
            "{name} wrote something"
        );
    }

    let orphan = History::new("acme", start()).next(assigned(1, "bob"));
    assert!(
        !apply::<Workflows>(&pool, &orphan)
            .await
            .unwrap_err()
            .is_transient(),
        "event before creation"
    );
}

#[tokio::test]
async fn concurrent_creations_apply_once() {
    let pool = read_db().await;
    for _ in 0..10 {
        let event = History::new("acme", start()).next(created(&["bob"]));
        let (a, b) = tokio::join!(
            apply::<Workflows>(&pool, &event),
            apply::<Workflows>(&pool, &event)
        );
        let mut applied = 0;
        for outcome in [a, b] {
            match outcome {
                Ok(ApplyOutcome::Applied) => applied += 1,
                Ok(ApplyOutcome::AlreadyApplied) => {}
                // The loser of the insert race is told to retry, which then sees the row.
                Err(error) if error.is_transient() => {
                    assert_eq!(
                        apply::<Workflows>(&pool, &event).await.unwrap(),
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
    assert!(apply::<Workflows>(&pool, &event)
        .await
        .unwrap_err()
        .is_transient());
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

/// A two-step approval from creation to the end: versions 1..=7.
fn approval(h: &mut History) -> Vec<RecordedEvent<WorkflowEvent>> {
    vec![
        h.next(created(&["bob", "carol"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
        h.next(approved_by(1, "bob")),
        h.next(assigned(2, "carol")),
        h.next(approved_by(2, "carol")),
        h.next(WorkflowEvent::Approved {}),
    ]
}

/// Every column of a workflow's row and of its steps, exactly as stored.
async fn full_rows(pool: &PgPool, id: Uuid) -> (Option<Value>, Option<Value>) {
    let row = sqlx::query_scalar("SELECT to_jsonb(w) FROM workflows w WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap();
    let steps = sqlx::query_scalar(
        "SELECT jsonb_agg(to_jsonb(s) ORDER BY s.step_no) FROM workflow_steps s
         WHERE s.workflow_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    (row, steps)
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn duplicates_in_any_order_end_exactly_like_in_order_delivery() {
    let mut h = History::new("acme", start());
    let events = approval(&mut h);
    // (events delivered, order of delivery by index); the first is the v3 v1 v2 v2 v1.
    let cases: [(usize, &[usize]); 4] = [
        (3, &[2, 0, 1, 1, 0]),
        (7, &[2, 0, 1, 1, 0, 3, 4, 5, 6]),
        (7, &[6, 5, 4, 3, 2, 1, 0, 0, 6]),
        (7, &[1, 3, 5, 0, 2, 4, 6, 3, 5]),
    ];
    for (delivered, order) in cases {
        let in_order = read_db().await;
        apply_all(&in_order, &events[..delivered]).await;
        let expected = full_rows(&in_order, h.id).await;
        assert!(expected.0.is_some());

        let shuffled = read_db().await;
        for &i in order {
            apply::<Workflows>(&shuffled, &events[i]).await.unwrap();
        }
        assert_eq!(full_rows(&shuffled, h.id).await, expected, "{order:?}");
        assert_eq!(count(&shuffled, "pending_events").await, 0, "{order:?}");
    }
}

#[tokio::test]
async fn one_batch_of_interleaved_shuffled_duplicates_ends_like_in_order_delivery() {
    let histories: Vec<Vec<RecordedEvent<WorkflowEvent>>> = (0..3)
        .map(|_| approval(&mut History::new("acme", start())))
        .collect();
    let in_order = read_db().await;
    for events in &histories {
        apply_all(&in_order, events).await;
    }
    // Workflow 0 in reverse, 1 with duplicates, 2 in order, all interleaved: one transaction
    // has to buffer, drain and skip across workflows.
    let mut run = Vec::new();
    for i in 0..7 {
        run.push(histories[0][6 - i].clone());
        run.push(histories[1][i].clone());
        run.push(histories[1][i / 2].clone());
        run.push(histories[2][i].clone());
    }
    let batched = read_db().await;
    let mut conn = batched.acquire().await.unwrap();
    let applied = apply_batch::<Workflows>(&mut conn, &run).await.unwrap();
    drop(conn);
    assert!(applied.stopped.is_none(), "{:?}", applied.stopped);
    assert_eq!(applied.outcomes.len(), run.len());
    let count_of =
        |wanted: fn(&ApplyOutcome) -> bool| applied.outcomes.iter().filter(|o| wanted(o)).count();
    // 7 events × 3 workflows apply (6 of workflow 0 through the buffer, counted with the last
    // one to arrive, its creation); 7 duplicates are skipped.
    assert_eq!(count_of(|o| *o == ApplyOutcome::Applied), 15);
    assert_eq!(count_of(|o| matches!(o, ApplyOutcome::Buffered { .. })), 6);
    assert_eq!(count_of(|o| *o == ApplyOutcome::AlreadyApplied), 7);
    for events in &histories {
        let id = events[0].aggregate_id;
        assert_eq!(
            full_rows(&batched, id).await,
            full_rows(&in_order, id).await
        );
    }
    assert_eq!(count(&batched, "pending_events").await, 0);
}

#[tokio::test]
async fn a_batch_stops_at_a_contradiction_and_keeps_what_came_before() {
    let pool = read_db().await;
    let mut good = History::new("acme", start());
    let mut bad = History::new("acme", start());
    let bad_created = bad.next(created(&["bob"]));
    let contradiction = bad.next(approved_by(1, "bob")); // nothing is pending
    let run = [
        good.next(created(&["bob"])),
        bad_created,
        good.next(WorkflowEvent::Submitted {}),
        contradiction,
        good.next(assigned(1, "bob")),
    ];
    let mut conn = pool.acquire().await.unwrap();
    let applied = apply_batch::<Workflows>(&mut conn, &run).await.unwrap();
    drop(conn);
    assert_eq!(applied.outcomes, [ApplyOutcome::Applied; 3]);
    match applied.stopped {
        Some(Stopped::Refused(error)) => assert!(!error.is_transient(), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        get(&pool, "acme", good.id).await.unwrap().version,
        2,
        "stopped before v3"
    );
    assert_eq!(get(&pool, "acme", bad.id).await.unwrap().version, 1);

    park(
        &pool,
        &Park {
            aggregate_id: bad.id,
            tenant_id: Some("acme".into()),
            reason: "test".into(),
            first_event_id: None,
        },
    )
    .await
    .unwrap();
    let later = bad.next(WorkflowEvent::Submitted {});
    let mut conn = pool.acquire().await.unwrap();
    let applied = apply_batch::<Workflows>(&mut conn, &[run[4].clone(), later])
        .await
        .unwrap();
    assert_eq!(applied.outcomes, [ApplyOutcome::Applied]);
    assert!(matches!(applied.stopped, Some(Stopped::Parked)));
}

#[tokio::test]
async fn a_parked_workflow_takes_nothing_new_until_a_replay_unparks_it() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = [
        h.next(created(&["bob"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
    ];
    apply_all(&pool, &events[..1]).await;
    // Version 2 was dead-lettered.
    let parked = Park {
        aggregate_id: h.id,
        tenant_id: Some("acme".into()),
        reason: "version 2 did not decode".into(),
        first_event_id: Some(events[1].event_id),
    };
    park(&pool, &parked).await.unwrap();

    assert_eq!(
        apply::<Workflows>(&pool, &events[0]).await.unwrap(),
        ApplyOutcome::AlreadyApplied,
        "a redelivery stays harmless"
    );
    for event in [&events[2], &events[1]] {
        assert_eq!(
            apply::<Workflows>(&pool, event).await.unwrap(),
            ApplyOutcome::Parked
        );
        // ... and is dead-lettered in turn.
        park(
            &pool,
            &Park {
                reason: "later".into(),
                ..parked.clone()
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(get(&pool, "acme", h.id).await.unwrap().version, 1);
    let recorded: (String, Option<Uuid>, i64) = sqlx::query_as(
        "SELECT reason, first_event_id, dead_letters FROM parked_aggregates WHERE aggregate_id = $1",
    )
    .bind(h.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        (parked.reason.clone(), Some(events[1].event_id), 3),
        "the first reason stays, every dead letter counts"
    );

    // A replay in dead-letter order: version 3 waits for version 2, which brings it along.
    assert_eq!(
        replay::<Workflows>(&pool, &events[2]).await.unwrap(),
        ApplyOutcome::Buffered {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(
        replay::<Workflows>(&pool, &events[1]).await.unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(get(&pool, "acme", h.id).await.unwrap().version, 3);

    assert_eq!(
        unpark::<Workflows>(&pool, h.id, 2).await.unwrap(),
        Unpark::UnseenDeadLetters,
        "a dead letter the replay did not see keeps it parked"
    );
    assert_eq!(
        unpark::<Workflows>(&pool, h.id, 3).await.unwrap(),
        Unpark::Unparked
    );
    assert_eq!(
        unpark::<Workflows>(&pool, h.id, 3).await.unwrap(),
        Unpark::NotParked
    );
    assert_eq!(
        apply::<Workflows>(&pool, &h.next(approved_by(1, "bob")))
            .await
            .unwrap(),
        ApplyOutcome::Applied
    );
}

#[tokio::test]
async fn a_buffered_event_that_contradicts_stays_buffered_and_parks_its_workflow() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let events = [
        h.next(created(&["bob"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(5, "bob")), // the route has no step 5
    ];
    assert!(matches!(
        apply::<Workflows>(&pool, &events[2]).await.unwrap(),
        ApplyOutcome::Buffered { .. }
    ));
    // Its predecessors still apply: the failure undoes only the buffered event itself.
    apply_all(&pool, &events[..2]).await;
    assert_eq!(get(&pool, "acme", h.id).await.unwrap().version, 2);
    let buffered: Vec<i64> = sqlx::query_scalar("SELECT version FROM pending_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(buffered, [3], "nothing is lost");
    let (reason, first_event_id): (String, Option<Uuid>) =
        sqlx::query_as("SELECT reason, first_event_id FROM parked_aggregates")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        reason.starts_with("buffered version 3 cannot be applied"),
        "{reason}"
    );
    assert_eq!(first_event_id, Some(events[2].event_id));
    assert_eq!(
        unpark::<Workflows>(&pool, h.id, 0).await.unwrap(),
        Unpark::Stuck
    );
    assert_eq!(
        apply::<Workflows>(&pool, &h.next(WorkflowEvent::Approved {}))
            .await
            .unwrap(),
        ApplyOutcome::Parked
    );
}

#[tokio::test]
async fn the_shadow_finds_every_difference_and_its_switch_repairs_them() {
    let (url, pool) = test_support::fresh_database("read_model").await;
    read_model::migrate(&pool).await.unwrap();
    let mut h = History::new("acme", start());
    let mut events = approval(&mut h);
    events.truncate(5);
    h.version = 5;
    events.push(h.next(commented("bob", "確認中です")));
    events.push(h.next(attached("見積書.pdf")));
    apply_all(&pool, &events).await;
    let expected = detail(&pool, "acme", h.id).await;

    let mut conn = PgConnection::connect(&url).await.unwrap();
    shadow::create::<Workflows>(&mut conn).await.unwrap();
    let mut second = PgConnection::connect(&url).await.unwrap();
    assert!(
        matches!(
            shadow::create::<Workflows>(&mut second).await,
            Err(shadow::ShadowError::Busy)
        ),
        "one shadow at a time"
    );
    // The copies keep the keys the writes go through, not the readers' other indexes.
    let indexes = |schema: &'static str| {
        sqlx::query_scalar::<_, String>(
            "SELECT c.relname || ': ' || regexp_replace(pg_get_indexdef(i.indexrelid),
                                                        '^.* USING ', '')
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
             WHERE c.relnamespace = $1::regnamespace AND c.relname = ANY($2)
               AND ($1 = 'rebuild' OR i.indisunique)
             ORDER BY 1",
        )
        .bind(schema)
        .bind(Workflows::TABLES)
        .fetch_all(&pool)
    };
    let shadow_indexes = indexes("rebuild").await.unwrap();
    assert_eq!(shadow_indexes, indexes("public").await.unwrap());
    assert_eq!(
        shadow_indexes.len(),
        Workflows::TABLES.len(),
        "{shadow_indexes:?}"
    );
    let applied = apply_batch::<Workflows>(&mut conn, &events).await.unwrap();
    assert_eq!(applied.outcomes, [ApplyOutcome::Applied; 7]);
    assert_eq!(
        shadow::diff::<Workflows>(&mut conn, &Scope::default())
            .await
            .unwrap(),
        []
    );

    sqlx::query(
        "UPDATE workflows SET status = 'APPROVED', current_step = NULL, current_approver_id = NULL,
             current_assigned_at = NULL
         WHERE id = $1",
    )
    .bind(h.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM workflow_comments WHERE workflow_id = $1")
        .bind(h.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM workflow_steps WHERE workflow_id = $1 AND step_no = 2")
        .bind(h.id)
        .execute(&pool)
        .await
        .unwrap();
    let ghost = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, title, description, priority, status,
             applicant_id, applicant_name, current_step, current_approver_id, step_count,
             created_at, updated_at, submitted_at, first_submitted_at, completed_at,
             last_event_id, version)
         SELECT $1, tenant_id, title, description, priority, status,
             applicant_id, applicant_name, current_step, current_approver_id, step_count,
             created_at, updated_at, submitted_at, first_submitted_at, completed_at,
             last_event_id, version
         FROM workflows WHERE id = $2",
    )
    .bind(ghost)
    .bind(h.id)
    .execute(&pool)
    .await
    .unwrap();
    let lines: Vec<String> = shadow::diff::<Workflows>(&mut conn, &Scope::default())
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let id = h.id;
    let ghost_line = format!("workflows {ghost}: in the read model but not in the events");
    let mut expected_lines = vec![
        format!("workflows {id}: current_approver_id is null in the read model, \"carol\" in the events"),
        format!(
            "workflows {id}: current_assigned_at is null in the read model, \"{}\" in the events",
            events[4].occurred_at.format("%Y-%m-%dT%H:%M:%S%:z")
        ),
        format!("workflows {id}: current_step is null in the read model, 2 in the events"),
        format!(
            "workflows {id}: status is \"APPROVED\" in the read model, \"IN_PROGRESS\" in the events"
        ),
        format!("workflow_steps {id} step 2: missing from the read model"),
        format!(
            "workflow_comments {}: missing from the read model",
            events[5].event_id
        ),
    ];
    expected_lines.insert(if ghost < id { 0 } else { 4 }, ghost_line);
    assert_eq!(lines, expected_lines);
    let other_tenant = Scope {
        tenant_id: Some("globex".into()),
        aggregate_id: None,
    };
    assert_eq!(
        shadow::diff::<Workflows>(&mut conn, &other_tenant)
            .await
            .unwrap(),
        []
    );
    let one = Scope {
        tenant_id: None,
        aggregate_id: Some(ghost),
    };
    assert_eq!(
        shadow::diff::<Workflows>(&mut conn, &one)
            .await
            .unwrap()
            .len(),
        1
    );

    let switched = Switch::<Workflows>::begin(&mut conn)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    // Only what differs is written: the bent row, the deleted step and comment, not the step
    // and the attachment that were right; the ghost goes.
    let counts = |count: &dyn Fn(&str) -> u64| {
        Workflows::TABLES
            .iter()
            .map(|table| count(table))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&|table| switched.rows_of(table)), [1, 1, 1, 0]);
    assert_eq!(counts(&|table| switched.removed_from(table)), [1, 0, 0, 0]);
    assert_eq!(
        shadow::diff::<Workflows>(&mut conn, &Scope::default())
            .await
            .unwrap(),
        []
    );
    assert_eq!(detail(&pool, "acme", h.id).await, expected);
    assert_eq!(count(&pool, "workflows").await, 1);
    shadow::remove(&mut conn).await.unwrap();
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
    shadow::create::<Workflows>(&mut second).await.unwrap();
}

#[tokio::test]
async fn a_switch_catches_up_and_settles_buffered_and_parked_workflows() {
    let (url, pool) = test_support::fresh_database("read_model").await;
    read_model::migrate(&pool).await.unwrap();
    let (mut x, mut y, mut z) = (
        History::new("acme", start()),
        History::new("acme", start()),
        History::new("acme", start()),
    );
    let x_events = approval(&mut x);
    let y_events = approval(&mut y);
    let z_events = approval(&mut z);
    // Live: x has version 3 buffered while 2 is on its way; y is parked; z got further than
    // the shadow will.
    apply_all(&pool, &x_events[..1]).await;
    apply::<Workflows>(&pool, &x_events[2]).await.unwrap();
    apply_all(&pool, &y_events[..1]).await;
    park(
        &pool,
        &Park {
            aggregate_id: y.id,
            tenant_id: Some("acme".into()),
            reason: "test".into(),
            first_event_id: None,
        },
    )
    .await
    .unwrap();
    apply_all(&pool, &z_events[..2]).await;

    // The shadow, loaded from a store that already has x's version 2.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    shadow::create::<Workflows>(&mut conn).await.unwrap();
    let loaded = [&x_events[0], &x_events[1], &y_events[0], &z_events[0]].map(Clone::clone);
    apply_batch::<Workflows>(&mut conn, &loaded).await.unwrap();
    let mut behind = shadow::behind::<Workflows>(&mut conn, &Scope::default())
        .await
        .unwrap();
    behind.sort();
    let mut expected = vec![(y.id, 1), (z.id, 1)];
    expected.sort();
    assert_eq!(
        behind, expected,
        "the parked one and the one live is ahead on"
    );

    let mut switch = Switch::<Workflows>::begin(&mut conn).await.unwrap();
    assert_eq!(
        apply_batch::<Workflows>(switch.shadow(), std::slice::from_ref(&z_events[1]))
            .await
            .unwrap()
            .outcomes,
        [ApplyOutcome::Applied]
    );
    let switched = switch.commit().await.unwrap();
    assert_eq!(
        (
            switched.unparked,
            switched.pending_cleared,
            switched.pending_drained
        ),
        (1, 0, 1)
    );
    for (id, version) in [(x.id, 3), (y.id, 1), (z.id, 2)] {
        assert_eq!(get(&pool, "acme", id).await.unwrap().version, version);
    }
    assert_eq!(count(&pool, "pending_events").await, 0);
    assert_eq!(count(&pool, "parked_aggregates").await, 0);
    shadow::remove(&mut conn).await.unwrap();
}

/// The deadline of the SLA steps in these tests.
fn deadline() -> DateTime<Utc> {
    start() + Duration::hours(24)
}

fn date(raw: &str) -> NaiveDate {
    raw.parse().unwrap()
}

fn definition() -> DefinitionRef {
    DefinitionRef {
        id: DefinitionId::new(Uuid::from_u128(7)),
        version: 3,
        name: DefinitionName::parse("name", "出張申請").unwrap(),
    }
}

/// A role step with a 24-hour SLA, then bob; submitted, step 1 waiting for the managers.
fn waiting_for_managers() -> Vec<WorkflowEvent> {
    vec![
        created_on(route(&["@manager", "bob"], Some(24)), None, None),
        WorkflowEvent::Submitted {},
        assigned_until(1, "@manager", Some(deadline())),
    ]
}

fn escalated(n: u32, who: &str) -> WorkflowEvent {
    WorkflowEvent::Escalated {
        step: step(n),
        assignee: approver(who),
        due_at: deadline(),
    }
}

fn delegated(n: u32, by: &str, to: &str) -> WorkflowEvent {
    decided(n, Decision::Delegated { to_user: user(to) }, by, "on leave")
}

/// Submitted, step 1 approved by bob, step 2 sent back by carol: versions 1..=6.
fn sent_back() -> Vec<WorkflowEvent> {
    vec![
        created(&["bob", "carol"]),
        WorkflowEvent::Submitted {},
        assigned(1, "bob"),
        approved_by(1, "bob"),
        assigned(2, "carol"),
        decided(
            2,
            Decision::RequestedChanges,
            "carol",
            "領収書を添付してください",
        ),
    ]
}

fn changes(title: Option<&str>, description: Option<&str>) -> DraftChanges {
    DraftChanges {
        title: title.map(|t| Title::parse("title", t).unwrap()),
        description: description.map(|d| Description::parse("description", d).unwrap()),
        ..DraftChanges::default()
    }
}

/// A workflow's history (each event one second after the previous) and what it must leave in
/// the read model, given the recorded events.
struct Effect {
    name: &'static str,
    events: Vec<WorkflowEvent>,
    expect: fn(&WorkflowDetail, &[RecordedEvent<WorkflowEvent>]),
}

#[tokio::test]
async fn every_event_of_the_domain_shows_in_the_read_model() {
    let cases = vec![
        Effect {
            name: "a draft update changes only the fields it names",
            events: vec![
                created_on(route(&["bob"], None), None, Some(date("2026-06-01"))),
                WorkflowEvent::DraftUpdated(DraftChanges {
                    priority: Some(Priority::Low),
                    due_date: Some(None),
                    ..changes(Some("大阪出張"), None)
                }),
            ],
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!(
                    (wf.title.as_str(), wf.description.as_str()),
                    ("大阪出張", "二泊三日")
                );
                assert_eq!((wf.priority, wf.due_date), (Priority::Low, None));
                assert_eq!((wf.status, wf.version), (Status::Draft, 2));
                assert_eq!(wf.updated_at, e[1].occurred_at);
            },
        },
        Effect {
            name: "the definition, due date and route of the creation are kept",
            events: vec![created_on(
                route(&["@manager", "bob"], Some(48)),
                Some(definition()),
                Some(date("2026-06-01")),
            )],
            expect: |d, _| {
                let wf = &d.workflow;
                assert_eq!(wf.definition, Some(definition()));
                assert_eq!(wf.due_date, Some(date("2026-06-01")));
                let steps: Vec<_> = wf
                    .steps
                    .iter()
                    .map(|s| (s.approver.clone(), s.sla_hours, s.status))
                    .collect();
                assert_eq!(
                    steps,
                    [
                        (approver("@manager"), Some(48), StepStatus::Waiting),
                        (approver("bob"), Some(48), StepStatus::Waiting),
                    ]
                );
                assert_eq!(
                    (wf.step_count, wf.comment_count, wf.attachment_count),
                    (2, 0, 0)
                );
            },
        },
        Effect {
            name: "a role step waits for anyone holding the role until its deadline",
            events: waiting_for_managers(),
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!(
                    wf.current,
                    Some(AssignmentView {
                        step: 1,
                        assignee: approver("@manager"),
                        assigned_at: e[2].occurred_at,
                        due_at: Some(deadline()),
                        escalated_at: None,
                    })
                );
                assert_eq!(
                    (wf.steps[0].status, wf.steps[0].due_at),
                    (StepStatus::Pending, Some(deadline()))
                );
                assert_eq!(
                    (wf.steps[1].status, wf.steps[1].due_at),
                    (StepStatus::Waiting, None)
                );
            },
        },
        Effect {
            name: "an overdue step is escalated and still waits",
            events: [waiting_for_managers(), vec![escalated(1, "@manager")]].concat(),
            expect: |d, e| {
                let wf = &d.workflow;
                let current = wf.current.as_ref().unwrap();
                assert_eq!(
                    (current.step, current.escalated_at),
                    (1, Some(e[3].occurred_at))
                );
                assert_eq!(wf.steps[0].status, StepStatus::Pending);
                assert_eq!(wf.steps[0].escalated_at, Some(e[3].occurred_at));
            },
        },
        Effect {
            name: "a delegation hands the step on with its deadline, as a new assignment",
            events: [
                waiting_for_managers(),
                vec![
                    escalated(1, "@manager"),
                    delegated(1, "mike", "dave"),
                    assigned_until(1, "dave", Some(deadline())),
                ],
            ]
            .concat(),
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!(
                    wf.current,
                    Some(AssignmentView {
                        step: 1,
                        assignee: approver("dave"),
                        assigned_at: e[5].occurred_at,
                        due_at: Some(deadline()),
                        escalated_at: None,
                    })
                );
                let s = &wf.steps[0];
                assert_eq!(
                    (s.status, s.approver.clone()),
                    (StepStatus::Pending, approver("@manager"))
                );
                assert_eq!(
                    (s.delegated_by.as_deref(), s.delegated_to.as_deref()),
                    (Some("mike"), Some("dave"))
                );
                assert_eq!(
                    (s.comment.as_deref(), s.decided_by.as_deref()),
                    (Some("on leave"), None)
                );
                assert_eq!((s.due_at, s.escalated_at), (Some(deadline()), None));
            },
        },
        Effect {
            name: "the delegate decides the step",
            events: [
                waiting_for_managers(),
                vec![
                    delegated(1, "mike", "dave"),
                    assigned_until(1, "dave", Some(deadline())),
                    approved_by(1, "dave"),
                    assigned_until(2, "bob", Some(deadline())),
                ],
            ]
            .concat(),
            expect: |d, e| {
                let wf = &d.workflow;
                let s = &wf.steps[0];
                assert_eq!(s.status, StepStatus::Approved);
                assert_eq!(
                    (s.decided_by.as_deref(), s.decided_at, s.comment.as_deref()),
                    (Some("dave"), Some(e[5].occurred_at), Some("ok from dave"))
                );
                assert_eq!(s.delegated_by.as_deref(), Some("mike"));
                let current = wf.current.as_ref().unwrap();
                assert_eq!((current.step, &current.assignee), (2, &approver("bob")));
            },
        },
        Effect {
            name: "requesting changes sends the workflow back to the applicant",
            events: sent_back(),
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!((wf.status, &wf.current), (Status::ChangesRequested, &None));
                assert_eq!(wf.completed_at, None);
                assert_eq!(wf.steps[0].status, StepStatus::Approved);
                let s = &wf.steps[1];
                assert_eq!(s.status, StepStatus::ChangesRequested);
                assert_eq!(
                    (s.decided_by.as_deref(), s.decided_at, s.comment.as_deref()),
                    (
                        Some("carol"),
                        Some(e[5].occurred_at),
                        Some("領収書を添付してください")
                    )
                );
            },
        },
        Effect {
            name: "a resubmission after an edit restarts the route",
            events: [
                sent_back(),
                vec![
                    WorkflowEvent::DraftUpdated(changes(None, Some("二泊三日、領収書付き"))),
                    WorkflowEvent::Submitted {},
                    assigned(1, "bob"),
                ],
            ]
            .concat(),
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!(wf.status, Status::InProgress);
                assert_eq!(wf.description, "二泊三日、領収書付き");
                assert_eq!(wf.submitted_at, Some(e[7].occurred_at));
                assert_eq!(wf.first_submitted_at, Some(e[1].occurred_at));
                assert_eq!(wf.current.as_ref().map(|c| c.step), Some(1));
                let steps: Vec<_> = wf
                    .steps
                    .iter()
                    .map(|s| {
                        (
                            s.status,
                            s.decided_by.as_deref(),
                            s.decided_at,
                            s.comment.as_deref(),
                        )
                    })
                    .collect();
                assert_eq!(
                    steps,
                    [
                        (StepStatus::Pending, None, None, None),
                        (StepStatus::Waiting, None, None, None),
                    ]
                );
            },
        },
        Effect {
            name: "cancelling ends the workflow and takes the waiting step back",
            events: vec![
                created(&["bob", "carol"]),
                WorkflowEvent::Submitted {},
                assigned(1, "bob"),
                WorkflowEvent::Cancelled {
                    reason: Some(reason("no longer needed")),
                    cancelled_by: user("alice"),
                },
                commented("bob", "了解です"),
            ],
            expect: |d, e| {
                let wf = &d.workflow;
                assert_eq!((wf.status, &wf.current), (Status::Cancelled, &None));
                assert_eq!(wf.completed_at, Some(e[3].occurred_at));
                assert!(wf.steps.iter().all(|s| s.status == StepStatus::Waiting));
                assert_eq!(
                    wf.comment_count, 1,
                    "a finished workflow still takes comments"
                );
            },
        },
        Effect {
            name: "comments and attachments are counted and listed oldest first",
            events: vec![
                created(&["bob"]),
                commented("bob", "いつ出発ですか？"),
                attached("見積書.pdf"),
                commented("alice", "来週です"),
                WorkflowEvent::Submitted {},
            ],
            expect: |d, e| {
                assert_eq!(
                    (d.workflow.comment_count, d.workflow.attachment_count),
                    (2, 1)
                );
                let comments: Vec<_> = d
                    .comments
                    .iter()
                    .map(|c| {
                        (
                            c.id,
                            c.author_id.as_str(),
                            c.author_name.as_str(),
                            c.body.as_str(),
                            c.created_at,
                        )
                    })
                    .collect();
                assert_eq!(
                    comments,
                    [
                        (
                            e[1].event_id,
                            "bob",
                            "BOB",
                            "いつ出発ですか？",
                            e[1].occurred_at
                        ),
                        (
                            e[3].event_id,
                            "alice",
                            "ALICE",
                            "来週です",
                            e[3].occurred_at
                        ),
                    ]
                );
                let [attachment] = &d.attachments[..] else {
                    panic!("one attachment expected: {:?}", d.attachments)
                };
                assert_eq!(
                    (
                        attachment.id,
                        &attachment.document,
                        attachment.attached_by.as_str(),
                        attachment.attached_at
                    ),
                    (
                        e[2].event_id,
                        &document("見積書.pdf"),
                        "alice",
                        e[2].occurred_at
                    )
                );
            },
        },
    ];

    let pool = read_db().await;
    for case in cases {
        let mut h = History::new("acme", start());
        let events: Vec<RecordedEvent<WorkflowEvent>> =
            case.events.into_iter().map(|e| h.next(e)).collect();
        apply_all(&pool, &events).await;
        let found = detail(&pool, "acme", h.id).await.unwrap();
        // The assertions inside `expect` cannot name the case; a failing test prints this.
        println!("case: {}", case.name);
        (case.expect)(&found, &events);
        assert_eq!(found.workflow.version, h.version, "{}", case.name);
        // A list shows the counts, never the discussion itself.
        let page = list_workflows(&pool, "acme", None, 100, None)
            .await
            .unwrap();
        let (_, listed) = page.items.iter().find(|(_, wf)| wf.id == h.id).unwrap();
        assert_eq!(listed, &found.workflow, "{}", case.name);
    }
}

#[tokio::test]
async fn events_that_cannot_follow_are_refused_and_write_nothing() {
    let finished = vec![
        created(&["bob"]),
        WorkflowEvent::Submitted {},
        assigned(1, "bob"),
        approved_by(1, "bob"),
        WorkflowEvent::Approved {},
    ];
    let handed_on = [waiting_for_managers(), vec![delegated(1, "mike", "dave")]].concat();
    let in_progress = vec![
        created(&["bob", "carol"]),
        WorkflowEvent::Submitted {},
        assigned(1, "bob"),
    ];
    let cases: Vec<(&str, Vec<WorkflowEvent>, WorkflowEvent)> = vec![
        (
            "assigning a step to someone the route does not name",
            in_progress[..2].to_vec(),
            assigned(1, "carol"),
        ),
        (
            "assigning the second step before the first is approved",
            in_progress[..2].to_vec(),
            assigned(2, "carol"),
        ),
        (
            "assigning a handed-on step to someone other than the delegate",
            handed_on.clone(),
            assigned_until(1, "erin", Some(deadline())),
        ),
        (
            "assigning a handed-on step another deadline",
            handed_on.clone(),
            assigned(1, "dave"),
        ),
        (
            "deciding a handed-on step before it is assigned to the delegate",
            handed_on.clone(),
            approved_by(1, "dave"),
        ),
        (
            "escalating another assignee",
            waiting_for_managers(),
            escalated(1, "bob"),
        ),
        (
            "escalating twice",
            [waiting_for_managers(), vec![escalated(1, "@manager")]].concat(),
            escalated(1, "@manager"),
        ),
        (
            "updating a workflow in progress",
            in_progress.clone(),
            WorkflowEvent::DraftUpdated(changes(Some("new"), None)),
        ),
        (
            "approving the workflow before its last step",
            [in_progress.clone(), vec![approved_by(1, "bob")]].concat(),
            WorkflowEvent::Approved {},
        ),
        (
            "rejecting the workflow though no step was rejected",
            in_progress.clone(),
            WorkflowEvent::Rejected {
                reason: reason("no"),
            },
        ),
        (
            "requesting changes of a step that is not waiting",
            in_progress.clone(),
            decided(2, Decision::RequestedChanges, "carol", "no"),
        ),
        (
            "resubmitting a workflow in progress",
            in_progress.clone(),
            WorkflowEvent::Submitted {},
        ),
        (
            "cancelling a finished workflow",
            finished.clone(),
            WorkflowEvent::Cancelled {
                reason: None,
                cancelled_by: user("alice"),
            },
        ),
        (
            "attaching to a finished workflow",
            finished.clone(),
            attached("late.pdf"),
        ),
    ];
    let pool = read_db().await;
    for (name, setup, probe) in cases {
        let mut h = History::new("acme", start());
        let setup: Vec<RecordedEvent<WorkflowEvent>> =
            setup.into_iter().map(|e| h.next(e)).collect();
        apply_all(&pool, &setup).await;
        let before = detail(&pool, "acme", h.id).await.unwrap();
        let error = apply::<Workflows>(&pool, &h.next(probe))
            .await
            .expect_err(name);
        assert!(!error.is_transient(), "{name}: {error}");
        assert_eq!(
            detail(&pool, "acme", h.id).await.unwrap(),
            before,
            "{name} wrote something"
        );
    }
}

/// Counts the statements that write each of the projection's row tables.
async fn count_statements(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE statements (table_name text NOT NULL);
         CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO statements VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
         CREATE TRIGGER counted AFTER INSERT ON workflows
             FOR EACH STATEMENT EXECUTE FUNCTION count_statement();
         CREATE TRIGGER counted AFTER INSERT ON workflow_comments
             FOR EACH STATEMENT EXECUTE FUNCTION count_statement();
         CREATE TRIGGER counted AFTER INSERT ON workflow_attachments
             FOR EACH STATEMENT EXECUTE FUNCTION count_statement();",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_batch_writes_the_discussion_of_every_workflow_in_one_statement_per_table() {
    let pool = read_db().await;
    let mut histories: Vec<History> = (0..3).map(|_| History::new("acme", start())).collect();
    for h in &mut histories {
        apply_all(&pool, &[h.next(created(&["bob"]))]).await;
    }
    count_statements(&pool).await;
    let mut run = Vec::new();
    for round in 0..3 {
        for (i, h) in histories.iter_mut().enumerate() {
            run.push(h.next(if round == 1 {
                attached(&format!("{i}.pdf"))
            } else {
                commented("bob", &format!("workflow {i}, round {round}"))
            }));
        }
    }
    let mut conn = pool.acquire().await.unwrap();
    let applied = apply_batch::<Workflows>(&mut conn, &run).await.unwrap();
    drop(conn);
    assert!(applied.stopped.is_none(), "{:?}", applied.stopped);
    assert_eq!(applied.outcomes, [ApplyOutcome::Applied; 9]);

    let statements: Vec<(String, i64)> = sqlx::query_as(
        "SELECT table_name, count(*) FROM statements GROUP BY table_name ORDER BY table_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let statements: Vec<(&str, i64)> = statements.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(
        statements,
        [
            ("workflow_attachments", 1),
            ("workflow_comments", 1),
            ("workflows", 1)
        ]
    );
    for (i, h) in histories.iter().enumerate() {
        let found = detail(&pool, "acme", h.id).await.unwrap();
        let bodies: Vec<&str> = found.comments.iter().map(|c| c.body.as_str()).collect();
        assert_eq!(
            bodies,
            [
                format!("workflow {i}, round 0"),
                format!("workflow {i}, round 2")
            ]
        );
        assert_eq!(found.attachments.len(), 1);
        assert_eq!(
            found.attachments[0].document.file_name(),
            format!("{i}.pdf")
        );
        assert_eq!(
            (
                found.workflow.comment_count,
                found.workflow.attachment_count,
                found.workflow.version
            ),
            (2, 1, 4)
        );
    }
}

/// The migration that lifts buffered events to the second domain shape.
const LIFTING_MIGRATION: i64 = 20261210000001;

#[tokio::test]
async fn events_buffered_in_the_first_domain_shape_are_lifted_by_the_migration() {
    let (_, pool) = test_support::fresh_database("read_model").await;
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .iter()
        .filter(|m| m.version < LIFTING_MIGRATION)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();

    let mut h = History::new("acme", start());
    let events = [
        h.next(created(&["bob", "carol"])),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
    ];
    let mut other = History::new("acme", start());
    other.version = 1;
    let other_created = other.next(created(&["bob", "carol"]));
    // As the first shape's projector buffered them.
    let buffered = |event: &RecordedEvent<WorkflowEvent>, domain_event: Value| {
        json!({
            "event_id": event.event_id, "position": event.position,
            "aggregate_type": event.aggregate_type, "aggregate_id": event.aggregate_id,
            "version": event.version, "occurred_at": event.occurred_at,
            "metadata": event.metadata, "event": domain_event,
        })
    };
    let old_rows = [
        buffered(
            &events[2],
            json!({"type": "WorkflowStepAssigned", "data": {"step": 1, "approver_id": "bob"}}),
        ),
        buffered(
            &other_created,
            json!({"type": "WorkflowCreated", "data": {
                "title": "出張申請：大阪", "description": "二泊三日", "priority": "High",
                "applicant_id": "alice", "applicant_name": "アリス", "route": ["bob", "carol"]}}),
        ),
    ];
    for row in &old_rows {
        sqlx::query(
            "INSERT INTO pending_events (aggregate_id, version, event) VALUES ($1, $2, $3)",
        )
        .bind(Uuid::parse_str(row["aggregate_id"].as_str().unwrap()).unwrap())
        .bind(row["version"].as_i64().unwrap())
        .bind(row)
        .execute(&pool)
        .await
        .unwrap();
    }

    read_model::migrate(&pool).await.unwrap();

    let lifted: Value =
        sqlx::query_scalar("SELECT event -> 'event' FROM pending_events WHERE aggregate_id = $1")
            .bind(other.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        serde_json::from_value::<WorkflowEvent>(lifted).unwrap(),
        other_created.event
    );
    // The buffered assignment applies right after its predecessor, as the new shape.
    apply_all(&pool, &events[..2]).await;
    let wf = get(&pool, "acme", h.id).await.unwrap();
    assert_eq!(wf.version, 3);
    assert_eq!(
        wf.current.map(|c| (c.step, c.assignee)),
        Some((1, approver("bob")))
    );
    assert_eq!(count(&pool, "pending_events").await, 1);
}
