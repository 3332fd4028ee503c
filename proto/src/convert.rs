//! Domain enums ↔ wire enums, written once for every crate that speaks both (command-svc parses
//! requests, the relay and projector encode and decode events, query-svc answers).

use crate::workflow::v1 as pb;
use workflow_domain::{
    Approver, Attachment, Decision, Priority, RawApprover, RawAttachment, RawStep, Route, SlaHours,
    Status, ValidationError,
};

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
            Status::ChangesRequested => pb::WorkflowStatus::ChangesRequested,
            Status::Approved => pb::WorkflowStatus::Approved,
            Status::Rejected => pb::WorkflowStatus::Rejected,
            Status::Cancelled => pb::WorkflowStatus::Cancelled,
        }
    }
}

/// A list filter: UNSPECIFIED means every status.
pub fn status_filter(status: pb::WorkflowStatus) -> Option<Status> {
    Status::ALL
        .into_iter()
        .find(|s| pb::WorkflowStatus::from(*s) == status)
}

impl From<&Approver> for pb::Approver {
    fn from(approver: &Approver) -> Self {
        use pb::approver::Approver as Pb;
        pb::Approver {
            approver: Some(match approver {
                Approver::User(user) => Pb::UserId(user.to_string()),
                Approver::Role(role) => Pb::Role(role.to_string()),
            }),
        }
    }
}

/// A wire approver as the domain parses it (`None`: neither a user nor a role).
pub fn raw_approver(approver: Option<&pb::Approver>) -> Option<RawApprover<'_>> {
    use pb::approver::Approver as Pb;
    match approver?.approver.as_ref()? {
        Pb::UserId(user) => Some(RawApprover::User(user)),
        Pb::Role(role) => Some(RawApprover::Role(role)),
    }
}

/// Wire route steps as a domain route; errors name `<field>[i].approver` / `.sla_hours`. A step
/// without `approver` falls back to the older `approver_user_id` shorthand.
pub fn route(field: &str, steps: &[pb::RouteStep]) -> Result<Route, ValidationError> {
    Route::parse(
        field,
        steps.iter().map(|step| RawStep {
            approver: raw_approver(step.approver.as_ref()).or_else(|| {
                (!step.approver_user_id.is_empty())
                    .then_some(RawApprover::User(&step.approver_user_id))
            }),
            sla_hours: step.sla_hours,
        }),
        |i, part| format!("{field}[{i}].{part}"),
    )
}

pub fn route_to_proto(route: &Route) -> Vec<pb::RouteStep> {
    route
        .steps()
        .map(|(_, spec)| pb::RouteStep {
            // Filled for clients of the first contract version, who know only users.
            approver_user_id: match &spec.approver {
                Approver::User(user) => user.to_string(),
                Approver::Role(_) => String::new(),
            },
            approver: Some(pb::Approver::from(&spec.approver)),
            sla_hours: spec.sla_hours.map(SlaHours::get),
        })
        .collect()
}

/// A wire attachment as a domain attachment; errors name `<field>.<part>`.
pub fn attachment(
    field: &str,
    attachment: Option<&pb::Attachment>,
) -> Result<Attachment, ValidationError> {
    let attachment = attachment.ok_or_else(|| ValidationError::new(field, "is required"))?;
    Attachment::parse(
        RawAttachment {
            file_name: &attachment.file_name,
            media_type: &attachment.media_type,
            size_bytes: attachment.size_bytes,
            sha256: &attachment.sha256,
            storage_uri: &attachment.storage_uri,
        },
        |part| format!("{field}.{part}"),
    )
}

impl From<&Attachment> for pb::Attachment {
    fn from(attachment: &Attachment) -> Self {
        pb::Attachment {
            file_name: attachment.file_name().to_owned(),
            media_type: attachment.media_type().to_owned(),
            size_bytes: attachment.size_bytes(),
            sha256: attachment.sha256().to_owned(),
            storage_uri: attachment.storage_uri().to_owned(),
        }
    }
}

impl From<&Decision> for pb::StepDecision {
    fn from(decision: &Decision) -> Self {
        match decision {
            Decision::Approved => pb::StepDecision::Approved,
            Decision::Rejected => pb::StepDecision::Rejected,
            Decision::RequestedChanges => pb::StepDecision::RequestedChanges,
            Decision::Delegated { .. } => pb::StepDecision::Delegated,
        }
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
        for s in Status::ALL {
            assert_eq!(status_filter(pb::WorkflowStatus::from(s)), Some(s));
        }
        assert_eq!(status_filter(pb::WorkflowStatus::Unspecified), None);
    }

    #[test]
    fn routes_round_trip_and_the_shorthand_still_reads() {
        let wire = vec![
            pb::RouteStep {
                approver_user_id: "bob".into(),
                approver: None,
                sla_hours: None,
            },
            pb::RouteStep {
                approver_user_id: String::new(),
                approver: Some(pb::Approver {
                    approver: Some(pb::approver::Approver::Role("manager".into())),
                }),
                sla_hours: Some(24),
            },
        ];
        let parsed = route("route", &wire).unwrap();
        let back = route_to_proto(&parsed);
        assert_eq!(route("route", &back).unwrap(), parsed);
        assert_eq!(back[0].approver_user_id, "bob");
        assert_eq!(back[1].sla_hours, Some(24));
    }

    #[test]
    fn bad_route_steps_and_attachments_name_their_field() {
        let nobody = pb::RouteStep::default();
        assert_eq!(
            route("route", &[nobody]).unwrap_err().field,
            "route[0].approver"
        );
        let too_long = pb::RouteStep {
            approver_user_id: "bob".into(),
            approver: None,
            sla_hours: Some(9_000),
        };
        assert_eq!(
            route("route", &[too_long]).unwrap_err().field,
            "route[0].sla_hours"
        );
        assert_eq!(route("route", &[]).unwrap_err().field, "route");
        assert_eq!(
            attachment("attachment", None).unwrap_err().field,
            "attachment"
        );
        let bad_digest = pb::Attachment {
            file_name: "a.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: 10,
            sha256: "xyz".into(),
            storage_uri: "s3://b/k".into(),
        };
        assert_eq!(
            attachment("attachment", Some(&bad_digest))
                .unwrap_err()
                .field,
            "attachment.sha256"
        );
    }
}
