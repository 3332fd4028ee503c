//! Given/when/then: given past commands, when a command arrives, then these events or this
//! error. Shared fixtures live here; each aggregate's rules in a submodule.

mod definition;
mod shapes;
mod values;
mod workflow;

use super::*;
use chrono::{DateTime, NaiveDate, Utc};
use es_kernel::testing::*;

fn step(n: u32) -> StepNo {
    StepNo::parse("step", n).unwrap()
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

fn workflow_after(given: &[WorkflowAct]) -> Workflow {
    record::<Workflow>(given).0.expect("created")
}

fn event_types(events: &[WorkflowEvent]) -> Vec<&'static str> {
    events.iter().map(WorkflowEvent::event_type).collect()
}
