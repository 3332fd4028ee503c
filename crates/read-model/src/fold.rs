//! The projection as a pure function: one event folded into a workflow's read-model row. No
//! SQL here — the batch code loads rows, folds whole runs of events in memory and writes each
//! changed row once, which is what makes a batch cost a handful of statements, not a few per
//! event.

use crate::views::{StepStatus, StepView, WorkflowView};
use workflow_domain::{Decision, RecordedEvent, Status, WorkflowEvent};

/// Folds `event`, the next version of its workflow, into the row (`None`: not created yet).
/// An event that cannot follow the row is refused with what is wrong; the row is then
/// unchanged, because the caller keeps its own copy until the fold succeeds.
pub(crate) fn evolve(
    view: Option<WorkflowView>,
    event: &RecordedEvent,
) -> Result<WorkflowView, &'static str> {
    let Some(mut view) = view else {
        return created(event);
    };
    if view.tenant_id != event.metadata.tenant_id {
        return Err("tenant differs from the workflow's tenant");
    }
    match &event.event {
        WorkflowEvent::Created { .. } => return Err("workflow already exists"),
        WorkflowEvent::Submitted {} => {
            if view.status != Status::Draft {
                return Err("only a draft can be submitted");
            }
            view.status = Status::InProgress;
            view.submitted_at = Some(event.occurred_at);
        }
        WorkflowEvent::StepAssigned { step, approver_id } => {
            if view.status != Status::InProgress || view.current_step.is_some() {
                return Err("workflow is not in progress or another step is pending");
            }
            let assigned = step_mut(&mut view.steps, step.get())
                .filter(|s| s.status == StepStatus::Waiting)
                .ok_or("assigned step does not exist or is not waiting")?;
            assigned.status = StepStatus::Pending;
            assigned.approver_id = approver_id.as_str().to_owned();
            view.current_step = Some(step.get());
            view.current_approver_id = Some(approver_id.as_str().to_owned());
        }
        WorkflowEvent::StepCompleted {
            step,
            decision,
            decided_by,
            comment,
        } => {
            if view.current_step != Some(step.get()) {
                return Err("completed step is not the current step");
            }
            let completed = step_mut(&mut view.steps, step.get())
                .filter(|s| s.status == StepStatus::Pending)
                .ok_or("completed step does not exist or is not pending")?;
            completed.status = match decision {
                Decision::Approved => StepStatus::Approved,
                Decision::Rejected => StepStatus::Rejected,
            };
            completed.decided_by = Some(decided_by.as_str().to_owned());
            completed.decided_at = Some(event.occurred_at);
            completed.comment = Some(comment.clone());
            view.current_step = None;
            view.current_approver_id = None;
        }
        WorkflowEvent::Approved {} | WorkflowEvent::Rejected { .. } => {
            if view.status != Status::InProgress {
                return Err("only a workflow in progress can be decided");
            }
            view.status = if matches!(event.event, WorkflowEvent::Approved {}) {
                Status::Approved
            } else {
                Status::Rejected
            };
            view.completed_at = Some(event.occurred_at);
        }
    }
    view.version = event.version;
    view.last_event_id = event.event_id;
    view.updated_at = event.occurred_at;
    Ok(view)
}

/// The first event of a workflow: its row and one waiting step per route entry.
fn created(event: &RecordedEvent) -> Result<WorkflowView, &'static str> {
    let WorkflowEvent::Created {
        title,
        description,
        priority,
        applicant_id,
        applicant_name,
        route,
    } = &event.event
    else {
        return Err("workflow does not exist");
    };
    if route.is_empty() {
        return Err("route has no steps");
    }
    let steps: Vec<StepView> = route
        .steps()
        .map(|(number, approver)| StepView {
            number: number.get(),
            approver_id: approver.as_str().to_owned(),
            status: StepStatus::Waiting,
            decided_by: None,
            decided_at: None,
            comment: None,
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
        current_step: None,
        current_approver_id: None,
        step_count: steps.len() as u32,
        created_at: event.occurred_at,
        updated_at: event.occurred_at,
        submitted_at: None,
        completed_at: None,
        last_event_id: event.event_id,
        version: event.version,
        steps,
    })
}

fn step_mut(steps: &mut [StepView], number: u32) -> Option<&mut StepView> {
    steps.iter_mut().find(|s| s.number == number)
}
