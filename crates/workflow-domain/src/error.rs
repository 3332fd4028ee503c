//! Why a command was refused.

use crate::Status;
use error_code::ErrorCode;
use es_kernel::{Rejection, ValidationError};

/// A rule the command broke. Each maps to exactly one [`ErrorCode`]; those about one input
/// field name it through [`DomainError::field`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{aggregate} not found")]
    NotFound { aggregate: &'static str },
    #[error("{aggregate} already exists")]
    AlreadyExists { aggregate: &'static str },
    #[error("only the applicant may {action}")]
    NotApplicant { action: &'static str },
    #[error("step {step} is decided by someone else")]
    NotApprover { step: u32 },
    /// Separation of duties: holding the step's role does not let applicants approve their
    /// own request.
    #[error("the applicant may not decide step {step} through a role")]
    ApplicantHoldsRole { step: u32 },
    /// Separation of duties for user steps. A new route naming its applicant is refused as an
    /// invalid `route[i].approver`; this is for routes pinned before that rule existed.
    #[error("the applicant may not decide step {step}")]
    ApplicantIsApprover { step: u32 },
    #[error("only participants of the workflow may {action}")]
    NotParticipant { action: &'static str },
    #[error("only administrators may {action}")]
    NotAdmin { action: &'static str },
    #[error("only the deadline watcher may escalate a step")]
    NotSystem,
    #[error("workflow is {status:?}, cannot {action}")]
    InvalidState {
        status: Status,
        action: &'static str,
    },
    #[error("step {step} was already decided")]
    StepAlreadyDecided { step: u32 },
    #[error("step {step} is not the current step (current: {current})")]
    StepNotCurrent { step: u32, current: u32 },
    #[error("step {step} is not overdue")]
    NotOverdue { step: u32 },
    #[error("step {step} was already escalated")]
    AlreadyEscalated { step: u32 },
    #[error("the workflow definition is archived")]
    DefinitionArchived,
    /// About the `to_user` field.
    #[error("cannot delegate: {reason}")]
    InvalidDelegate { reason: &'static str },
    /// About the `draft` as a whole: no single field is at fault.
    #[error("nothing to update: every given field already has that value")]
    NothingToUpdate,
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl Rejection for DomainError {
    fn code(&self) -> ErrorCode {
        match self {
            DomainError::NotFound { .. } => ErrorCode::NotFound,
            DomainError::AlreadyExists { .. } => ErrorCode::Conflict,
            DomainError::NotApplicant { .. }
            | DomainError::NotApprover { .. }
            | DomainError::ApplicantHoldsRole { .. }
            | DomainError::ApplicantIsApprover { .. }
            | DomainError::NotParticipant { .. }
            | DomainError::NotAdmin { .. }
            | DomainError::NotSystem => ErrorCode::PermissionDenied,
            DomainError::InvalidState { .. }
            | DomainError::StepAlreadyDecided { .. }
            | DomainError::StepNotCurrent { .. }
            | DomainError::NotOverdue { .. }
            | DomainError::AlreadyEscalated { .. }
            | DomainError::DefinitionArchived => ErrorCode::FailedPrecondition,
            DomainError::InvalidDelegate { .. }
            | DomainError::NothingToUpdate
            | DomainError::Invalid(_) => ErrorCode::InvalidArgument,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            // Spelled as the command contracts spell the field.
            DomainError::InvalidDelegate { .. } => Some("to_user_id"),
            DomainError::NothingToUpdate => Some("draft"),
            DomainError::Invalid(error) => Some(&error.field),
            _ => None,
        }
    }
}
