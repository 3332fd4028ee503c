//! Command handling with snapshots against a real PostgreSQL: decisions come from the newest
//! snapshot plus the events after it, and deleting snapshots (or their schema going out of
//! date) changes no outcome.

use command_svc::{CommandContext, CommandHandler, HandleError};
use event_store::EventStore;
use sqlx::types::Json;
use uuid::Uuid;
use workflow_domain::{
    replay, Actor, Comment, Description, DisplayName, DomainError, Priority, Reason, Route, Status,
    StepNo, TenantId, Title, UserId, Workflow, WorkflowCommand, WorkflowEvent,
};

async fn store() -> EventStore {
    let (_, pool) = test_support::fresh_database("command_svc").await;
    let store = EventStore::new(pool, &[workflow_domain::REGISTRATION]);
    store.migrate().await.expect("migrations apply");
    store
}

fn context(user: &str) -> CommandContext {
    CommandContext {
        actor: Actor {
            tenant_id: TenantId::parse("tenant", "acme").unwrap(),
            user_id: UserId::parse("sub", user).unwrap(),
            display_name: DisplayName::parse("name", user).unwrap(),
            roles: vec![],
        },
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        traceparent: None,
    }
}

fn create(approvers: &[&str]) -> WorkflowCommand {
    WorkflowCommand::Create {
        title: Title::parse("title", "出張申請").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Medium,
        route: Route::of_users("route", approvers.iter().copied()).unwrap(),
        definition: None,
        due_date: None,
    }
}

fn approve(step: u32) -> WorkflowCommand {
    WorkflowCommand::ApproveStep {
        step: StepNo::parse("step", step).unwrap(),
        comment: Comment::parse("comment", "ok").unwrap(),
    }
}

fn reject(step: u32) -> WorkflowCommand {
    WorkflowCommand::RejectStep {
        step: StepNo::parse("step", step).unwrap(),
        reason: Reason::parse("reason", "too expensive").unwrap(),
    }
}

async fn history(store: &EventStore, id: Uuid) -> Vec<WorkflowEvent> {
    store
        .history::<workflow_domain::Workflow>("acme", id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

async fn snapshots(store: &EventStore, id: Uuid) -> Vec<(i64, Json<Workflow>)> {
    sqlx::query_as("SELECT version, state FROM snapshots WHERE aggregate_id = $1 ORDER BY version")
        .bind(id)
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_decide_from_the_newest_snapshot_plus_the_events_after_it() {
    let store = store().await;
    let handler = CommandHandler::new(store.clone()).with_snapshot_every(3);
    let id = Uuid::new_v4();
    let run = |user: &str, command| {
        let context = context(user);
        let handler = &handler;
        async move {
            handler
                .handle::<Workflow>(&context, id, None, command)
                .await
        }
    };
    assert_eq!(
        run("alice", create(&["bob", "carol", "dave"]))
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        run("alice", WorkflowCommand::Submit).await.unwrap().version,
        3
    );
    assert_eq!(run("bob", approve(1)).await.unwrap().version, 5);
    assert_eq!(run("carol", approve(2)).await.unwrap().version, 7);

    // Taken when the version crossed 3 and 6, each the fold of the events up to it.
    let events = history(&store, id).await;
    let taken = snapshots(&store, id).await;
    assert_eq!(
        taken
            .iter()
            .map(|(version, _)| *version)
            .collect::<Vec<_>>(),
        [3, 7]
    );
    for (version, Json(state)) in &taken {
        assert_eq!(
            Some(state.clone()),
            replay(&events[..*version as usize]).unwrap()
        );
    }

    // A doctored snapshot shows the decision really starts from the newest one...
    sqlx::query("UPDATE snapshots SET state = jsonb_set(state, '{status}', '\"Rejected\"') WHERE version = 7")
        .execute(store.pool())
        .await
        .unwrap();
    match run("dave", approve(3)).await {
        Err(HandleError::Rejected(rejection)) => assert_eq!(
            rejection.to_string(),
            DomainError::InvalidState {
                status: Status::Rejected,
                action: "approve",
            }
            .to_string()
        ),
        other => panic!("{other:?}"),
    }
    // ...and without snapshots the events alone decide.
    sqlx::query("DELETE FROM snapshots")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(run("dave", approve(3)).await.unwrap().version, 9);
    let taken = snapshots(&store, id).await;
    assert_eq!(
        taken
            .iter()
            .map(|(version, state)| (*version, state.status))
            .collect::<Vec<_>>(),
        [(9, Status::Approved)]
    );
}

/// One step of the script: who, what, the version they expect, and whether it is a retry of
/// the previous command (same command id).
type Step = (&'static str, WorkflowCommand, Option<i64>, bool);

fn script() -> Vec<Step> {
    vec![
        ("alice", create(&["bob", "carol"]), None, false),
        ("bob", WorkflowCommand::Submit, None, false),
        ("alice", WorkflowCommand::Submit, None, false),
        ("alice", WorkflowCommand::Submit, Some(1), false),
        ("carol", approve(1), None, false),
        ("bob", approve(2), None, false),
        ("bob", approve(1), None, false),
        ("bob", approve(1), None, true),
        ("bob", approve(1), None, false),
        ("carol", reject(2), Some(5), false),
        ("alice", WorkflowCommand::Submit, None, false),
    ]
}

/// Runs the script on a new workflow with a snapshot after every command, running `after_each`
/// (SQL on the workflow's snapshots) after each step. Returns the workflow and the outcomes.
async fn run_script(
    store: &EventStore,
    after_each: Option<&str>,
) -> (Uuid, Vec<Result<i64, String>>) {
    let handler = CommandHandler::new(store.clone()).with_snapshot_every(1);
    let id = Uuid::new_v4();
    let mut outcomes = Vec::new();
    let mut previous_command_id = Uuid::nil();
    for (user, command, expected_version, retry) in script() {
        let mut context = context(user);
        if retry {
            context.command_id = previous_command_id;
        }
        previous_command_id = context.command_id;
        let outcome = handler
            .handle::<Workflow>(&context, id, expected_version, command)
            .await;
        outcomes.push(
            outcome
                .map(|record| record.version)
                .map_err(|error| error.to_string()),
        );
        if let Some(statement) = after_each {
            sqlx::query(statement)
                .bind(id)
                .execute(store.pool())
                .await
                .unwrap();
        }
    }
    (id, outcomes)
}

#[tokio::test]
async fn deleting_snapshots_or_outdating_their_schema_changes_no_outcome() {
    let store = store().await;
    let (with_snapshots, expected) = run_script(&store, None).await;
    assert_eq!(
        expected
            .iter()
            .map(|outcome| outcome.as_ref().ok().copied())
            .collect::<Vec<_>>(),
        [
            Some(1),
            None,
            Some(3),
            None,
            None,
            None,
            Some(5),
            Some(5),
            None,
            Some(7),
            None
        ],
        "the script does what it says: {expected:?}"
    );
    assert_eq!(
        snapshots(&store, with_snapshots).await.len(),
        4,
        "one per successful append"
    );

    for after_each in [
        "DELETE FROM snapshots WHERE aggregate_id = $1",
        "UPDATE snapshots SET state_schema = 0 WHERE aggregate_id = $1",
    ] {
        let (id, outcomes) = run_script(&store, Some(after_each)).await;
        assert_eq!(outcomes, expected, "after each step: {after_each}");
        assert_eq!(
            history(&store, id).await,
            history(&store, with_snapshots).await
        );
    }
}
