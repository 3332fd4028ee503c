//! The deadline watcher against a real read database and a real command-svc, started
//! in-process over its own event store: which steps it escalates, that repeating a round or
//! running a second replica appends nothing more, and how it takes an unreachable command-svc.
//! The read model is built from the store's events with `read_model::apply_batch`, as far as
//! each case needs, so a test decides exactly how far behind the store it is.

mod support;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use event_store::EventStore;
use projector_svc::{DeadlineWatcher, Round, Settings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use workflow_domain::{
    Approver, Decision, Description, DisplayName, Priority, RawApprover, RawStep, RecordedEvent,
    Route, StepNo, Title, UserId, WorkflowEvent,
};

struct Setup {
    store: EventStore,
    read: PgPool,
    command_url: String,
    /// Stops command-svc when the test ends.
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup() -> Setup {
    let (_, read) = test_support::fresh_database("deadlines_read").await;
    read_model::migrate(&read).await.unwrap();
    let (store_url, store_pool) = test_support::fresh_database("deadlines_events").await;
    let shutdown = CancellationToken::new();
    // No relay: these tests build the read model themselves.
    let command = command_svc::Application::build(
        command_svc::Settings::parse_from([
            "command-svc",
            "--listen-addr",
            "127.0.0.1:0",
            "--event-store-url",
            &store_url,
            "--relay-enabled",
            "false",
            "--allow-dev-jwt-secret",
            "true",
        ]),
        shutdown.clone(),
    )
    .await
    .expect("command-svc starts");
    let command_url = format!("http://127.0.0.1:{}", command.port());
    tokio::spawn(command.run_until_stopped());
    Setup {
        store: EventStore::new(store_pool, &[workflow_domain::REGISTRATION]),
        read,
        command_url,
        shutdown,
    }
}

impl Setup {
    fn watcher(&self) -> DeadlineWatcher {
        watcher(&self.read, &self.command_url, CancellationToken::new())
    }

    /// Appends one command's events to a workflow at `expected_version`.
    async fn append(
        &self,
        tenant: &str,
        id: Uuid,
        expected_version: i64,
        events: &[WorkflowEvent],
    ) {
        support::append(&self.store, tenant, id, expected_version, events).await;
    }

    /// A submitted workflow of `tenant` whose step 1 (bob's) is due at `due_at`.
    async fn waiting(&self, tenant: &str, due_at: Option<DateTime<Utc>>) -> Uuid {
        let id = Uuid::new_v4();
        self.append(
            tenant,
            id,
            0,
            &[
                created(),
                WorkflowEvent::Submitted {},
                assigned("bob", due_at),
            ],
        )
        .await;
        id
    }

    async fn history(&self, tenant: &str, id: Uuid) -> Vec<RecordedEvent<WorkflowEvent>> {
        self.store
            .history::<workflow_domain::Workflow>(tenant, id, 0)
            .await
            .unwrap()
    }

    /// Brings the read model up to the store for these workflows, as the projector would.
    async fn project(&self, tenant: &str, ids: &[Uuid]) {
        let mut events = Vec::new();
        for id in ids {
            events.extend(self.history(tenant, *id).await);
        }
        let mut conn = self.read.acquire().await.unwrap();
        let applied = projection::apply_batch::<read_model::Workflows>(&mut conn, &events)
            .await
            .unwrap();
        assert!(applied.stopped.is_none(), "not projected: {applied:?}");
    }

    /// The workflow's escalations in the store, as (version, user who sent the command).
    async fn escalations(&self, tenant: &str, id: Uuid) -> Vec<(i64, String)> {
        self.history(tenant, id)
            .await
            .into_iter()
            .filter(|e| matches!(e.event, WorkflowEvent::Escalated { .. }))
            .map(|e| (e.version, e.metadata.user_id))
            .collect()
    }

    async fn version(&self, tenant: &str, id: Uuid) -> i64 {
        self.history(tenant, id)
            .await
            .last()
            .map_or(0, |e| e.version)
    }
}

fn watcher(read: &PgPool, command_url: &str, shutdown: CancellationToken) -> DeadlineWatcher {
    let settings = Settings::parse_from([
        "projector-svc",
        "--command-url",
        command_url,
        "--deadline-scan-interval-ms",
        "50",
        "--allow-dev-jwt-secret",
        "true",
    ]);
    DeadlineWatcher::new(&settings.deadlines, read.clone(), shutdown).expect("watcher")
}

fn created() -> WorkflowEvent {
    let route = Route::parse(
        "route",
        [RawStep {
            approver: Some(RawApprover::User("bob")),
            sla_hours: Some(1),
        }],
        |i, part| format!("route[{i}].{part}"),
    )
    .unwrap();
    WorkflowEvent::Created {
        title: Title::parse("title", "出張申請").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Medium,
        applicant_id: UserId::parse("user", "alice").unwrap(),
        applicant_name: DisplayName::parse("name", "アリス").unwrap(),
        route,
        definition: None,
        due_date: None,
    }
}

fn user(id: &str) -> Approver {
    Approver::User(UserId::parse("user", id).unwrap())
}

fn assigned(assignee: &str, due_at: Option<DateTime<Utc>>) -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        assignee: user(assignee),
        due_at,
    }
}

fn hours_ago(hours: i64) -> DateTime<Utc> {
    Utc::now() - Duration::hours(hours)
}

fn round(escalated: usize, settled: usize, failed: usize) -> Round {
    Round {
        escalated,
        settled,
        failed,
    }
}

#[tokio::test]
async fn overdue_steps_are_escalated_once_per_tenant_and_nothing_else_is_touched() {
    let s = setup().await;
    let overdue = s.waiting("acme", Some(hours_ago(2))).await;
    let other_tenant = s.waiting("globex", Some(hours_ago(1))).await;
    let not_due = s
        .waiting("acme", Some(Utc::now() + Duration::hours(2)))
        .await;
    let no_sla = s.waiting("acme", None).await;
    // The read model still shows this one overdue, but the store has escalated it already.
    let behind_due_at = hours_ago(3);
    let behind = s.waiting("acme", Some(behind_due_at)).await;
    // Overdue too, but its read-model row is known to be stale.
    let parked = s.waiting("acme", Some(hours_ago(4))).await;
    s.project("acme", &[overdue, not_due, no_sla, behind, parked])
        .await;
    s.project("globex", &[other_tenant]).await;
    s.append(
        "acme",
        behind,
        3,
        &[WorkflowEvent::Escalated {
            step: StepNo::FIRST,
            assignee: user("bob"),
            due_at: behind_due_at,
        }],
    )
    .await;
    projection::park(
        &s.read,
        &projection::Park {
            aggregate_id: parked,
            tenant_id: Some("acme".into()),
            reason: "test".into(),
            first_event_id: None,
        },
    )
    .await
    .unwrap();

    let mut watcher = s.watcher();
    assert_eq!(watcher.round().await.unwrap(), round(2, 1, 0));
    let by_watcher = |version| vec![(version, "deadline-watcher".to_owned())];
    assert_eq!(s.escalations("acme", overdue).await, by_watcher(4));
    assert_eq!(
        s.escalations("globex", other_tenant).await,
        by_watcher(4),
        "escalated as the system actor of the workflow's own tenant"
    );
    assert_eq!(s.escalations("acme", behind).await.len(), 1);
    for untouched in [not_due, no_sla, parked] {
        assert_eq!(s.version("acme", untouched).await, 3);
    }
    // Caused by the event after which the deadline passed (the last one the read model
    // showed), in a correlation derived from it: the escalation is part of the causal chain.
    let history = s.history("acme", overdue).await;
    let (assignment, escalation) = (&history[2], &history[3]);
    assert_eq!(escalation.metadata.causation_id, assignment.event_id);
    assert_eq!(
        escalation.metadata.correlation_id,
        es_kernel::derived_id(assignment.event_id, "escalation")
    );

    // The read model has not caught up: the next round, and another replica, send the same
    // commands again, and command-svc answers them with the first result.
    assert_eq!(watcher.round().await.unwrap(), round(2, 1, 0));
    assert_eq!(s.watcher().round().await.unwrap(), round(2, 1, 0));
    assert_eq!(s.escalations("acme", overdue).await, by_watcher(4));
    assert_eq!(s.escalations("globex", other_tenant).await, by_watcher(4));
    assert_eq!(s.escalations("acme", behind).await.len(), 1);

    // Once the escalations are projected, there is nothing left to do.
    s.project("acme", &[overdue, behind]).await;
    s.project("globex", &[other_tenant]).await;
    assert_eq!(watcher.round().await.unwrap(), Round::default());
}

#[tokio::test]
async fn a_step_delegated_after_its_escalation_is_escalated_again() {
    let s = setup().await;
    let due_at = hours_ago(2);
    let id = s.waiting("acme", Some(due_at)).await;
    s.project("acme", &[id]).await;
    let mut watcher = s.watcher();
    assert_eq!(watcher.round().await.unwrap(), round(1, 0, 0));
    s.project("acme", &[id]).await;

    // Delegation keeps the deadline but starts a new assignment, which is not escalated yet.
    s.append(
        "acme",
        id,
        4,
        &[
            WorkflowEvent::StepCompleted {
                step: StepNo::FIRST,
                decision: Decision::Delegated {
                    to_user: UserId::parse("user", "dave").unwrap(),
                },
                decided_by: UserId::parse("user", "bob").unwrap(),
                comment: String::new(),
            },
            assigned("dave", Some(due_at)),
        ],
    )
    .await;
    s.project("acme", &[id]).await;
    assert_eq!(watcher.round().await.unwrap(), round(1, 0, 0));
    let versions: Vec<i64> = s
        .escalations("acme", id)
        .await
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert_eq!(versions, [4, 7]);
}

#[tokio::test]
async fn an_unreachable_command_svc_fails_the_round_early_and_the_watcher_still_stops_promptly() {
    let s = setup().await;
    let ids = [
        s.waiting("acme", Some(hours_ago(2))).await,
        s.waiting("acme", Some(hours_ago(1))).await,
    ];
    s.project("acme", &ids).await;
    // A port nobody listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{closed}");

    let shutdown = CancellationToken::new();
    let mut unreachable = watcher(&s.read, &url, shutdown.clone());
    assert_eq!(
        unreachable.round().await.unwrap(),
        round(0, 0, 1),
        "the second call is not even tried"
    );
    for id in ids {
        assert_eq!(s.version("acme", id).await, 3);
    }

    // Backing off between failing rounds, it still stops as soon as it is told to.
    let running = tokio::spawn(unreachable.run());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("the watcher stops promptly after shutdown")
        .unwrap();

    // Against command-svc, the same steps are escalated.
    assert_eq!(s.watcher().round().await.unwrap(), round(2, 0, 0));
}
