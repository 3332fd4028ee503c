//! The projection as a pure function: one event folded into a workflow's read-model row. No
//! SQL here — the batch code loads rows, folds whole runs of events in memory and writes each
//! changed row once, which is what makes a batch cost a handful of statements, not a few per
//! event.
//!
//! Every guard mirrors a rule of the domain's own `evolve`, so an event that no valid history
//! can put here is refused rather than folded into a row that no longer means anything.

use crate::views::{
    AssignmentView, AttachmentView, CommentView, StepStatus, StepView, WorkflowView,
};
use chrono::{DateTime, SubsecRound, Utc};
use workflow_domain::{Approver, Decision, RecordedEvent, Status, WorkflowEvent};

/// The effect of one event: the workflow's new row, and the discussion entry it adds, if any.
/// Discussion entries are only ever appended, so they are written as new rows instead of
/// being loaded with the workflow.
#[derive(Debug)]
pub(crate) struct Folded {
    pub view: WorkflowView,
    pub appended: Option<Appended>,
}

#[derive(Debug)]
pub enum Appended {
    Comment(CommentView),
    Attachment(AttachmentView),
}

/// Folds `event`, the next version of its workflow, into the row (`None`: not created yet).
/// An event that cannot follow the row is refused with what is wrong; the row is then
/// unchanged, because the caller keeps its own copy until the fold succeeds.
pub(crate) fn evolve(
    view: Option<WorkflowView>,
    event: &RecordedEvent<WorkflowEvent>,
) -> Result<Folded, &'static str> {
    let Some(mut view) = view else {
        return created(event).map(|view| Folded {
            view,
            appended: None,
        });
    };
    if view.tenant_id != event.metadata.tenant_id {
        return Err("tenant differs from the workflow's tenant");
    }
    let at = event.occurred_at;
    let mut appended = None;
    match &event.event {
        WorkflowEvent::Created { .. } => return Err("workflow already exists"),
        WorkflowEvent::DraftUpdated(changes) => {
            if !view.status.is_editable() {
                return Err("only a draft or a workflow sent back can be updated");
            }
            if let Some(title) = &changes.title {
                view.title = title.as_str().to_owned();
            }
            if let Some(description) = &changes.description {
                view.description = description.as_str().to_owned();
            }
            if let Some(priority) = changes.priority {
                view.priority = priority;
            }
            if let Some(due_date) = changes.due_date {
                view.due_date = due_date;
            }
        }
        WorkflowEvent::Submitted {} => {
            if !view.status.is_editable() {
                return Err("only a draft or a workflow sent back can be submitted");
            }
            // A resubmission restarts the route: every step waits for a fresh decision.
            for step in &mut view.steps {
                unreach(step);
            }
            view.status = Status::InProgress;
            view.submitted_at = Some(at);
            view.first_submitted_at.get_or_insert(at);
        }
        WorkflowEvent::StepAssigned {
            step,
            assignee,
            due_at,
        } => {
            if view.status != Status::InProgress || view.current.is_some() {
                return Err("workflow is not in progress or another step is waiting");
            }
            let index = view
                .steps
                .iter()
                .position(|s| s.number == step.get())
                .ok_or("assigned step does not exist")?;
            let (before, rest) = view.steps.split_at_mut(index);
            let assigned = &mut rest[0];
            let follows = match assigned.status {
                // The route reaches it: after the submission or the approval of its predecessor.
                StepStatus::Waiting => {
                    before.iter().all(|s| s.status == StepStatus::Approved)
                        && assigned.approver == *assignee
                }
                // A delegation hands it on: to the delegate, with the same deadline.
                StepStatus::Pending => {
                    matches!(assignee, Approver::User(user)
                        if assigned.delegated_to.as_deref() == Some(user.as_str()))
                        && assigned.due_at == due_at.map(as_stored)
                }
                _ => false,
            };
            if !follows {
                return Err("assignment follows neither from the route nor from a delegation");
            }
            assigned.status = StepStatus::Pending;
            assigned.due_at = due_at.map(as_stored);
            assigned.escalated_at = None;
            view.current = Some(AssignmentView {
                step: step.get(),
                assignee: assignee.clone(),
                assigned_at: at,
                due_at: due_at.map(as_stored),
                escalated_at: None,
            });
        }
        WorkflowEvent::StepCompleted {
            step,
            decision,
            decided_by,
            comment,
        } => {
            if view.current.as_ref().map(|c| c.step) != Some(step.get()) {
                return Err("completed step is not the step waiting for a decision");
            }
            let completed = step_mut(&mut view.steps, step.get())
                .filter(|s| s.status == StepStatus::Pending)
                .ok_or("completed step does not exist or is not pending")?;
            completed.comment = Some(comment.clone());
            let decided = match decision {
                Decision::Approved => Some(StepStatus::Approved),
                Decision::Rejected => Some(StepStatus::Rejected),
                Decision::RequestedChanges => Some(StepStatus::ChangesRequested),
                // Not decided yet: the assignment to the delegate follows.
                Decision::Delegated { to_user } => {
                    completed.delegated_by = Some(decided_by.as_str().to_owned());
                    completed.delegated_to = Some(to_user.as_str().to_owned());
                    None
                }
            };
            if let Some(status) = decided {
                completed.status = status;
                completed.decided_by = Some(decided_by.as_str().to_owned());
                completed.decided_at = Some(at);
            }
            if decided == Some(StepStatus::ChangesRequested) {
                view.status = Status::ChangesRequested;
            }
            view.current = None;
        }
        WorkflowEvent::Approved {} => {
            if view.status != Status::InProgress
                || view.current.is_some()
                || !view.steps.iter().all(|s| s.status == StepStatus::Approved)
            {
                return Err("only approving the last step approves the workflow");
            }
            view.status = Status::Approved;
            view.completed_at = Some(at);
        }
        WorkflowEvent::Rejected { .. } => {
            if view.status != Status::InProgress
                || view.current.is_some()
                || !view.steps.iter().any(|s| s.status == StepStatus::Rejected)
            {
                return Err("only rejecting a step rejects the workflow");
            }
            view.status = Status::Rejected;
            view.completed_at = Some(at);
        }
        WorkflowEvent::Cancelled { .. } => {
            if view.status.is_terminal() {
                return Err("a finished workflow cannot be cancelled");
            }
            // The step that was waiting goes back to waiting as if never reached, so no step
            // of a cancelled workflow looks as if it still expected a decision from anyone.
            for step in &mut view.steps {
                if step.status == StepStatus::Pending {
                    unreach(step);
                }
            }
            view.status = Status::Cancelled;
            view.current = None;
            view.completed_at = Some(at);
        }
        WorkflowEvent::Escalated {
            step,
            assignee,
            due_at,
        } => {
            let current = view
                .current
                .as_mut()
                .filter(|c| {
                    c.step == step.get()
                        && c.assignee == *assignee
                        && c.due_at == Some(as_stored(*due_at))
                        && c.escalated_at.is_none()
                })
                .ok_or("escalation does not match the waiting assignment")?;
            current.escalated_at = Some(at);
            let escalated =
                step_mut(&mut view.steps, step.get()).ok_or("escalated step does not exist")?;
            escalated.escalated_at = Some(at);
        }
        WorkflowEvent::CommentAdded {
            author_id,
            author_name,
            body,
        } => {
            view.comment_count += 1;
            appended = Some(Appended::Comment(CommentView {
                id: event.event_id,
                version: event.version,
                author_id: author_id.as_str().to_owned(),
                author_name: author_name.as_str().to_owned(),
                body: body.as_str().to_owned(),
                created_at: at,
            }));
        }
        WorkflowEvent::DocumentAttached {
            attachment,
            attached_by,
        } => {
            if view.status.is_terminal() {
                return Err("a finished workflow takes no attachments");
            }
            view.attachment_count += 1;
            appended = Some(Appended::Attachment(AttachmentView {
                id: event.event_id,
                version: event.version,
                document: attachment.clone(),
                attached_by: attached_by.as_str().to_owned(),
                attached_at: at,
            }));
        }
    }
    view.version = event.version;
    view.last_event_id = event.event_id;
    view.updated_at = at;
    Ok(Folded { view, appended })
}

/// The first event of a workflow: its row and one waiting step per route entry.
fn created(event: &RecordedEvent<WorkflowEvent>) -> Result<WorkflowView, &'static str> {
    let WorkflowEvent::Created {
        title,
        description,
        priority,
        applicant_id,
        applicant_name,
        route,
        definition,
        due_date,
    } = &event.event
    else {
        return Err("workflow does not exist");
    };
    if route.is_empty() {
        return Err("route has no steps");
    }
    let steps: Vec<StepView> = route
        .steps()
        .map(|(number, spec)| {
            waiting(
                number.get(),
                spec.approver.clone(),
                spec.sla_hours.map(|sla| sla.get()),
            )
        })
        .collect();
    Ok(WorkflowView {
        id: event.aggregate_id,
        tenant_id: event.metadata.tenant_id.clone(),
        title: title.as_str().to_owned(),
        description: description.as_str().to_owned(),
        priority: *priority,
        status: Status::Draft,
        applicant_id: applicant_id.as_str().to_owned(),
        applicant_name: applicant_name.as_str().to_owned(),
        definition: definition.clone(),
        due_date: *due_date,
        current: None,
        step_count: steps.len() as u32,
        comment_count: 0,
        attachment_count: 0,
        created_at: event.occurred_at,
        updated_at: event.occurred_at,
        submitted_at: None,
        first_submitted_at: None,
        completed_at: None,
        last_event_id: event.event_id,
        version: event.version,
        steps,
    })
}

/// A step not reached in the current round of the route: nothing but what the route says.
fn waiting(number: u32, approver: Approver, sla_hours: Option<u32>) -> StepView {
    StepView {
        number,
        approver,
        sla_hours,
        status: StepStatus::Waiting,
        due_at: None,
        escalated_at: None,
        delegated_by: None,
        delegated_to: None,
        decided_by: None,
        decided_at: None,
        comment: None,
    }
}

/// Takes a step back to [`waiting`], forgetting its assignments and decision.
fn unreach(step: &mut StepView) {
    *step = waiting(step.number, step.approver.clone(), step.sla_hours);
}

fn step_mut(steps: &mut [StepView], number: u32) -> Option<&mut StepView> {
    steps.iter_mut().find(|s| s.number == number)
}

/// A deadline as the read database keeps it: PostgreSQL stores microseconds, an event may carry
/// nanoseconds, and a deadline read back must still equal the one the next event names.
fn as_stored(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}
