//! Given/when/then: given past commands, when a command arrives, then these events or this
//! error. Shared fixtures live here; each aggregate's rules in a submodule.

mod definition;
mod shapes;
mod values;
mod workflow;

use super::*;
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use std::fmt::Debug;

/// `"bob"` is user bob without roles; `"mia:manager,admin"` is user mia holding both roles.
fn actor(spec: &str) -> Actor {
    let (id, roles) = spec.split_once(':').unwrap_or((spec, ""));
    Actor {
        tenant_id: TenantId::parse("tenant", "acme").unwrap(),
        user_id: uid(id),
        display_name: DisplayName::parse("name", &id.to_uppercase()).unwrap(),
        roles: roles
            .split(',')
            .filter(|role| !role.is_empty())
            .map(|role| Role::parse("roles", role).unwrap())
            .collect(),
    }
}

fn uid(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

fn role(name: &str) -> Role {
    Role::parse("role", name).unwrap()
}

fn step(n: u32) -> StepNo {
    StepNo::parse("step", n).unwrap()
}

/// When every scenario starts.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 4, 1, 9, 0, 0).unwrap()
}

fn hours_after_t0(hours: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(hours)
}

/// One command of a scenario: who sends it, and how many hours after [`t0`].
#[derive(Debug, Clone)]
struct Act<C> {
    by: &'static str,
    hours: i64,
    command: C,
}

fn by<C>(who: &'static str, command: C) -> Act<C> {
    Act {
        by: who,
        hours: 0,
        command,
    }
}

impl<C> Act<C> {
    fn at(self, hours: i64) -> Self {
        Self { hours, ..self }
    }

    fn context(&self) -> Context {
        Context {
            actor: actor(self.by),
            now: hours_after_t0(self.hours),
        }
    }
}

/// A table row: the case, what happened before, the command under test, what must follow.
type Case<C, Then> = (&'static str, Vec<Act<C>>, Act<C>, Then);

/// Decides and folds every `given` command (each must succeed): the state and the history.
fn record<A>(given: &[Act<A::Command>]) -> (Option<A>, Vec<A::Event>)
where
    A: Aggregate,
    A::Command: Clone + Debug,
{
    let mut state = None;
    let mut history = Vec::new();
    for act in given {
        let events = A::decide(state.as_ref(), &act.context(), act.command.clone())
            .unwrap_or_else(|e| panic!("given {:?} by {} failed: {e}", act.command, act.by));
        for event in &events {
            state = A::evolve(state, event).expect("decided events always evolve");
        }
        history.extend(events);
    }
    (state, history)
}

/// The outcome of `when` after `given`.
fn run<A>(given: &[Act<A::Command>], when: Act<A::Command>) -> Result<Vec<A::Event>, DomainError>
where
    A: Aggregate,
    A::Command: Clone + Debug,
{
    let (state, _) = record::<A>(given);
    A::decide(state.as_ref(), &when.context(), when.command)
}

/// `"bob/24"`: user bob with a 24-hour SLA; `"@manager"`: anyone holding `manager`, no SLA.
fn route(steps: &[&str]) -> Route {
    let raw = steps.iter().map(|spec| {
        let (who, sla) = match spec.split_once('/') {
            Some((who, hours)) => (who, Some(hours.parse().unwrap())),
            None => (*spec, None),
        };
        RawStep {
            approver: Some(match who.strip_prefix('@') {
                Some(role) => RawApprover::Role(role),
                None => RawApprover::User(who),
            }),
            sla_hours: sla,
        }
    });
    Route::parse("route", raw, |i, f| format!("route[{i}].{f}")).unwrap()
}

/// Step 1: bob within 24 h; step 2: any manager within 48 h; step 3: carol, no SLA.
fn standard_route() -> Route {
    route(&["bob/24", "@manager/48", "carol"])
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn attachment() -> Attachment {
    Attachment::parse(
        RawAttachment {
            file_name: "見積書.pdf",
            media_type: "application/pdf",
            size_bytes: 52_431,
            sha256: &"AB".repeat(32),
            storage_uri: "s3://ringiflow/acme/abab",
        },
        |f| format!("attachment.{f}"),
    )
    .unwrap()
}

fn definition_ref() -> DefinitionRef {
    DefinitionRef {
        id: DefinitionId::new(uuid::Uuid::from_u128(7)),
        version: 3,
        name: DefinitionName::parse("name", "出張申請").unwrap(),
    }
}

type WorkflowAct = Act<WorkflowCommand>;

fn create() -> WorkflowCommand {
    WorkflowCommand::Create {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        route: standard_route(),
        definition: None,
        due_date: None,
    }
}

fn approve(n: u32) -> WorkflowCommand {
    WorkflowCommand::ApproveStep {
        step: step(n),
        comment: Comment::parse("comment", "ok").unwrap(),
    }
}

fn reject(n: u32) -> WorkflowCommand {
    WorkflowCommand::RejectStep {
        step: step(n),
        reason: Reason::parse("reason", "too expensive").unwrap(),
    }
}

fn request_changes(n: u32) -> WorkflowCommand {
    WorkflowCommand::RequestChanges {
        step: step(n),
        reason: Reason::parse("reason", "add the hotel quote").unwrap(),
    }
}

fn delegate(n: u32, to: &str) -> WorkflowCommand {
    WorkflowCommand::DelegateStep {
        step: step(n),
        to_user: uid(to),
        comment: Comment::parse("comment", "on leave").unwrap(),
    }
}

fn cancel() -> WorkflowCommand {
    WorkflowCommand::Cancel {
        reason: Some(Reason::parse("reason", "no longer needed").unwrap()),
    }
}

fn comment() -> WorkflowCommand {
    WorkflowCommand::AddComment {
        body: CommentBody::parse("body", "ホテルは駅の近くで").unwrap(),
    }
}

fn attach() -> WorkflowCommand {
    WorkflowCommand::AttachDocument {
        attachment: attachment(),
    }
}

fn escalate(n: u32) -> WorkflowCommand {
    WorkflowCommand::EscalateStep { step: step(n) }
}

fn retitle(title: &str) -> WorkflowCommand {
    WorkflowCommand::UpdateDraft(DraftChanges {
        title: Some(Title::parse("title", title).unwrap()),
        ..DraftChanges::default()
    })
}

/// The deadline watcher.
const WATCHER: &str = "watcher:system";

/// Histories reaching each status; the applicant is alice.
fn draft() -> Vec<WorkflowAct> {
    vec![by("alice", create())]
}

fn at_step_1() -> Vec<WorkflowAct> {
    with(draft(), [by("alice", WorkflowCommand::Submit)])
}

fn at_step_2() -> Vec<WorkflowAct> {
    with(at_step_1(), [by("bob", approve(1))])
}

fn at_step_3() -> Vec<WorkflowAct> {
    with(at_step_2(), [by("mia:manager", approve(2))])
}

fn changes_requested() -> Vec<WorkflowAct> {
    with(at_step_1(), [by("bob", request_changes(1))])
}

fn approved() -> Vec<WorkflowAct> {
    with(at_step_3(), [by("carol", approve(3))])
}

fn rejected() -> Vec<WorkflowAct> {
    with(at_step_1(), [by("bob", reject(1))])
}

fn cancelled() -> Vec<WorkflowAct> {
    with(draft(), [by("alice", cancel())])
}

fn with<C>(mut given: Vec<Act<C>>, more: impl IntoIterator<Item = Act<C>>) -> Vec<Act<C>> {
    given.extend(more);
    given
}

fn workflow_after(given: &[WorkflowAct]) -> Workflow {
    record::<Workflow>(given).0.expect("created")
}

fn event_types(events: &[WorkflowEvent]) -> Vec<&'static str> {
    events.iter().map(WorkflowEvent::event_type).collect()
}
