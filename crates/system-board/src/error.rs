//! Why a command was refused, in any of the three contexts.

use crate::{CveId, PackageName};
use error_code::ErrorCode;
use es_kernel::{Rejection, UserId, ValidationError};

/// A rule the command broke. Each maps to exactly one [`ErrorCode`]; those about one input
/// field name it through [`BoardError::field`], spelled as the command spells the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    #[error("{aggregate} not found")]
    NotFound { aggregate: &'static str },
    #[error("{aggregate} already exists")]
    AlreadyExists { aggregate: &'static str },
    #[error("only the system's owner or an administrator may {action}")]
    NotOwner { action: &'static str },
    /// Commands only the platform's reactions send.
    #[error("only the platform itself may {action}")]
    NotSystem { action: &'static str },
    /// Scans also accept the platform itself; a person refused is never that.
    #[error("only administrators and security staff may {action}")]
    NotSecurityStaff { action: &'static str },
    #[error("only the task's assignee may complete it")]
    NotAssignee,
    #[error("the system is decommissioned, cannot {action}")]
    Decommissioned { action: &'static str },
    #[error("this scan already raised an alert for {cve} in {package}")]
    AlertAlreadyRaised { cve: CveId, package: PackageName },
    #[error("the scan is completed, cannot {action}")]
    ScanCompleted { action: &'static str },
    #[error("{cve} in {package} is already recorded for this scan")]
    FindingAlreadyRecorded { cve: CveId, package: PackageName },
    #[error("the task is completed, cannot {action}")]
    TaskCompleted { action: &'static str },
    #[error("the task has no assignee yet")]
    Unassigned,
    /// About the `packages` field: the list is the one the system has.
    #[error("nothing to update: the system already has exactly these packages")]
    PackagesUnchanged,
    /// About the `package` field.
    #[error("{package} is not one of the scanned packages")]
    PackageNotScanned { package: PackageName },
    /// About the `assignee` field.
    #[error("the task is already assigned to {assignee}")]
    AlreadyAssigned { assignee: UserId },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl Rejection for BoardError {
    fn code(&self) -> ErrorCode {
        match self {
            BoardError::NotFound { .. } => ErrorCode::NotFound,
            BoardError::AlreadyExists { .. } => ErrorCode::Conflict,
            BoardError::NotOwner { .. }
            | BoardError::NotSystem { .. }
            | BoardError::NotSecurityStaff { .. }
            | BoardError::NotAssignee => ErrorCode::PermissionDenied,
            BoardError::Decommissioned { .. }
            | BoardError::AlertAlreadyRaised { .. }
            | BoardError::ScanCompleted { .. }
            | BoardError::FindingAlreadyRecorded { .. }
            | BoardError::TaskCompleted { .. }
            | BoardError::Unassigned => ErrorCode::FailedPrecondition,
            BoardError::PackagesUnchanged
            | BoardError::PackageNotScanned { .. }
            | BoardError::AlreadyAssigned { .. }
            | BoardError::Invalid(_) => ErrorCode::InvalidArgument,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            BoardError::PackagesUnchanged => Some("packages"),
            BoardError::PackageNotScanned { .. } => Some("package"),
            BoardError::AlreadyAssigned { .. } => Some("assignee"),
            BoardError::Invalid(error) => Some(&error.field),
            _ => None,
        }
    }
}
