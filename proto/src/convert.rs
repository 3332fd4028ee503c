//! Domain enums ↔ wire enums, written once for every crate that speaks both (command-svc parses
//! requests, the relay and projector encode and decode events, query-svc answers).

use crate::workflow::v1 as pb;
use workflow_domain::{Priority, Status, ValidationError};

impl From<Priority> for pb::Priority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => pb::Priority::Low,
            Priority::Medium => pb::Priority::Medium,
            Priority::High => pb::Priority::High,
            Priority::Urgent => pb::Priority::Urgent,
        }
    }
}

/// A wire priority (the raw `i32` of the enum field) as a domain priority; UNSPECIFIED and
/// unknown numbers are refused, naming the field `priority`.
pub fn priority(raw: i32) -> Result<Priority, ValidationError> {
    match pb::Priority::try_from(raw) {
        Ok(pb::Priority::Low) => Ok(Priority::Low),
        Ok(pb::Priority::Medium) => Ok(Priority::Medium),
        Ok(pb::Priority::High) => Ok(Priority::High),
        Ok(pb::Priority::Urgent) => Ok(Priority::Urgent),
        Ok(pb::Priority::Unspecified) | Err(_) => Err(ValidationError::new(
            "priority",
            "must be LOW, MEDIUM, HIGH or URGENT",
        )),
    }
}

impl From<Status> for pb::WorkflowStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Draft => pb::WorkflowStatus::Draft,
            Status::InProgress => pb::WorkflowStatus::InProgress,
            Status::Approved => pb::WorkflowStatus::Approved,
            Status::Rejected => pb::WorkflowStatus::Rejected,
        }
    }
}

/// A list filter: UNSPECIFIED means every status.
pub fn status_filter(status: pb::WorkflowStatus) -> Option<Status> {
    match status {
        pb::WorkflowStatus::Unspecified => None,
        pb::WorkflowStatus::Draft => Some(Status::Draft),
        pb::WorkflowStatus::InProgress => Some(Status::InProgress),
        pb::WorkflowStatus::Approved => Some(Status::Approved),
        pb::WorkflowStatus::Rejected => Some(Status::Rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_round_trip_and_unspecified_is_refused() {
        for p in [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Urgent,
        ] {
            assert_eq!(priority(pb::Priority::from(p) as i32), Ok(p));
        }
        assert_eq!(priority(0).unwrap_err().field, "priority");
        assert!(priority(99).is_err());
    }

    #[test]
    fn statuses_round_trip_through_the_filter() {
        for s in [
            Status::Draft,
            Status::InProgress,
            Status::Approved,
            Status::Rejected,
        ] {
            assert_eq!(status_filter(pb::WorkflowStatus::from(s)), Some(s));
        }
        assert_eq!(status_filter(pb::WorkflowStatus::Unspecified), None);
    }
}
