//! The approval-workflow aggregate ("ringi") as pure functions.
//!
//! `decide(&state, &actor, command) -> Result<Vec<WorkflowEvent>, DomainError>` checks every rule
//! and returns the facts to record; `evolve(state, &event)` folds a fact into the state. Neither
//! does IO, reads a clock or generates ids: the caller supplies all of that, which keeps every
//! rule testable given/when/then.
#![forbid(unsafe_code)]

mod envelope;
mod values;

use error_code::ErrorCode;
use serde::{Deserialize, Serialize};

pub use envelope::{EventMetadata, RecordedEvent};
pub use values::{
    Actor, Comment, Description, DisplayName, Priority, Reason, Route, StepNo, TenantId, Title,
    UserId, ValidationError, WorkflowId,
};

/// The aggregate type recorded with every event of this aggregate.
pub const AGGREGATE_TYPE: &str = "workflow";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowCommand {
    Create {
        title: Title,
        description: Description,
        priority: Priority,
        route: Route,
    },
    Submit,
    ApproveStep {
        step: StepNo,
        comment: Comment,
    },
    RejectStep {
        step: StepNo,
        reason: Reason,
    },
}

impl WorkflowCommand {
    /// Stable name, recorded with the command id for idempotency.
    pub fn name(&self) -> &'static str {
        match self {
            WorkflowCommand::Create { .. } => "CreateWorkflow",
            WorkflowCommand::Submit => "SubmitWorkflow",
            WorkflowCommand::ApproveStep { .. } => "ApproveStep",
            WorkflowCommand::RejectStep { .. } => "RejectStep",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Approved,
    Rejected,
}

/// Facts about a workflow. The serde tag is the stored `event_type`; `data` is the payload.
/// Every variant is a struct so every payload is a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WorkflowEvent {
    #[serde(rename = "WorkflowCreated")]
    Created {
        title: Title,
        description: Description,
        priority: Priority,
        applicant_id: UserId,
        applicant_name: DisplayName,
        route: Route,
    },
    #[serde(rename = "WorkflowSubmitted")]
    Submitted {},
    #[serde(rename = "WorkflowStepAssigned")]
    StepAssigned { step: StepNo, approver_id: UserId },
    #[serde(rename = "WorkflowStepCompleted")]
    StepCompleted {
        step: StepNo,
        decision: Decision,
        decided_by: UserId,
        comment: String,
    },
    #[serde(rename = "WorkflowApproved")]
    Approved {},
    #[serde(rename = "WorkflowRejected")]
    Rejected { reason: Reason },
}

impl WorkflowEvent {
    pub const TYPES: [&'static str; 6] = [
        "WorkflowCreated",
        "WorkflowSubmitted",
        "WorkflowStepAssigned",
        "WorkflowStepCompleted",
        "WorkflowApproved",
        "WorkflowRejected",
    ];

    pub fn event_type(&self) -> &'static str {
        match self {
            WorkflowEvent::Created { .. } => Self::TYPES[0],
            WorkflowEvent::Submitted {} => Self::TYPES[1],
            WorkflowEvent::StepAssigned { .. } => Self::TYPES[2],
            WorkflowEvent::StepCompleted { .. } => Self::TYPES[3],
            WorkflowEvent::Approved {} => Self::TYPES[4],
            WorkflowEvent::Rejected { .. } => Self::TYPES[5],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Draft,
    InProgress,
    Approved,
    Rejected,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Approved | Status::Rejected)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::InProgress => "IN_PROGRESS",
            Status::Approved => "APPROVED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Status::Draft,
            Status::InProgress,
            Status::Approved,
            Status::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// What the aggregate remembers between commands: only what its rules need. Serialisable so
/// the event store can keep snapshots of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub applicant_id: UserId,
    pub route: Route,
    pub status: Status,
    /// The step waiting for a decision; `None` unless in progress.
    pub current_step: Option<StepNo>,
}

impl Workflow {
    /// The shape (and meaning) of a serialised `Workflow`, stored with every snapshot. Bump it
    /// whenever a field or what `evolve` puts in it changes: snapshots of another schema are
    /// ignored and the state is folded from the events instead.
    pub const STATE_SCHEMA: i32 = 1;
}

/// `None` until the workflow is created.
pub type WorkflowState = Option<Workflow>;

/// A rule the command broke. Each maps to exactly one [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("workflow not found")]
    NotFound,
    #[error("workflow already exists")]
    AlreadyExists,
    #[error("only the applicant may {action}")]
    NotApplicant { action: &'static str },
    #[error("step {step} is decided by another user")]
    NotApprover { step: u32 },
    #[error("workflow is {status:?}, cannot {action}")]
    InvalidState {
        status: Status,
        action: &'static str,
    },
    #[error("step {step} was already decided")]
    StepAlreadyDecided { step: u32 },
    #[error("step {step} is not the current step (current: {current})")]
    StepNotCurrent { step: u32, current: u32 },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::NotFound => ErrorCode::NotFound,
            DomainError::AlreadyExists => ErrorCode::Conflict,
            DomainError::NotApplicant { .. } | DomainError::NotApprover { .. } => {
                ErrorCode::PermissionDenied
            }
            DomainError::InvalidState { .. }
            | DomainError::StepAlreadyDecided { .. }
            | DomainError::StepNotCurrent { .. } => ErrorCode::FailedPrecondition,
            DomainError::Invalid(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// History that no sequence of valid decisions can produce: a bug or tampering, never user error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_type} cannot follow the current state: {problem}")]
pub struct CorruptHistory {
    pub event_type: &'static str,
    pub problem: &'static str,
}

pub fn decide(
    state: &WorkflowState,
    actor: &Actor,
    command: WorkflowCommand,
) -> Result<Vec<WorkflowEvent>, DomainError> {
    let Some(wf) = state else {
        return match command {
            WorkflowCommand::Create {
                title,
                description,
                priority,
                route,
            } => Ok(vec![WorkflowEvent::Created {
                title,
                description,
                priority,
                applicant_id: actor.user_id.clone(),
                applicant_name: actor.display_name.clone(),
                route,
            }]),
            _ => Err(DomainError::NotFound),
        };
    };
    match command {
        WorkflowCommand::Create { .. } => Err(DomainError::AlreadyExists),
        WorkflowCommand::Submit => {
            if wf.applicant_id != actor.user_id {
                return Err(DomainError::NotApplicant { action: "submit" });
            }
            if wf.status != Status::Draft {
                return Err(DomainError::InvalidState {
                    status: wf.status,
                    action: "submit",
                });
            }
            let first = wf
                .route
                .approver(StepNo::FIRST)
                .expect("evolve rejects empty routes");
            Ok(vec![
                WorkflowEvent::Submitted {},
                WorkflowEvent::StepAssigned {
                    step: StepNo::FIRST,
                    approver_id: first.clone(),
                },
            ])
        }
        WorkflowCommand::ApproveStep { step, comment } => {
            check_decidable(wf, actor, step, "approve")?;
            let next = step.next();
            let then = match wf.route.approver(next) {
                Some(approver) => WorkflowEvent::StepAssigned {
                    step: next,
                    approver_id: approver.clone(),
                },
                None => WorkflowEvent::Approved {},
            };
            Ok(vec![
                WorkflowEvent::StepCompleted {
                    step,
                    decision: Decision::Approved,
                    decided_by: actor.user_id.clone(),
                    comment: comment.as_str().to_owned(),
                },
                then,
            ])
        }
        WorkflowCommand::RejectStep { step, reason } => {
            check_decidable(wf, actor, step, "reject")?;
            Ok(vec![
                WorkflowEvent::StepCompleted {
                    step,
                    decision: Decision::Rejected,
                    decided_by: actor.user_id.clone(),
                    comment: reason.as_str().to_owned(),
                },
                WorkflowEvent::Rejected { reason },
            ])
        }
    }
}

/// The rules shared by every step decision, checked in the order a user would want them
/// explained: is anything waiting at all, is it this step, is it theirs.
fn check_decidable(
    wf: &Workflow,
    actor: &Actor,
    step: StepNo,
    action: &'static str,
) -> Result<(), DomainError> {
    let current = match (wf.status, wf.current_step) {
        (Status::InProgress, Some(current)) => current,
        (status, _) => return Err(DomainError::InvalidState { status, action }),
    };
    if step < current {
        return Err(DomainError::StepAlreadyDecided { step: step.get() });
    }
    if step > current {
        return Err(DomainError::StepNotCurrent {
            step: step.get(),
            current: current.get(),
        });
    }
    if wf.route.approver(step) != Some(&actor.user_id) {
        return Err(DomainError::NotApprover { step: step.get() });
    }
    Ok(())
}

pub fn evolve(
    state: WorkflowState,
    event: &WorkflowEvent,
) -> Result<WorkflowState, CorruptHistory> {
    let corrupt = |problem| CorruptHistory {
        event_type: event.event_type(),
        problem,
    };
    let Some(mut wf) = state else {
        return match event {
            WorkflowEvent::Created {
                applicant_id,
                route,
                ..
            } if !route.is_empty() => Ok(Some(Workflow {
                applicant_id: applicant_id.clone(),
                route: route.clone(),
                status: Status::Draft,
                current_step: None,
            })),
            WorkflowEvent::Created { .. } => Err(corrupt("route has no steps")),
            _ => Err(corrupt("workflow does not exist")),
        };
    };
    match event {
        WorkflowEvent::Created { .. } => return Err(corrupt("workflow already exists")),
        WorkflowEvent::Submitted {} => {
            if wf.status != Status::Draft {
                return Err(corrupt("only a draft can be submitted"));
            }
            wf.status = Status::InProgress;
        }
        WorkflowEvent::StepAssigned { step, approver_id } => {
            if wf.status != Status::InProgress || wf.route.approver(*step) != Some(approver_id) {
                return Err(corrupt("assignment does not match the route"));
            }
            wf.current_step = Some(*step);
        }
        WorkflowEvent::StepCompleted { step, .. } => {
            if wf.current_step != Some(*step) {
                return Err(corrupt("completed step is not the current step"));
            }
            wf.current_step = None;
        }
        WorkflowEvent::Approved {} | WorkflowEvent::Rejected { .. } => {
            if wf.status != Status::InProgress {
                return Err(corrupt("only a workflow in progress can be decided"));
            }
            wf.status = if matches!(event, WorkflowEvent::Approved {}) {
                Status::Approved
            } else {
                Status::Rejected
            };
        }
    }
    Ok(Some(wf))
}

/// Folds a whole history, oldest first.
pub fn replay<'a>(
    events: impl IntoIterator<Item = &'a WorkflowEvent>,
) -> Result<WorkflowState, CorruptHistory> {
    events.into_iter().try_fold(None, evolve)
}

#[cfg(test)]
mod tests;
