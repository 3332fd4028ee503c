//! Domain events ↔ protobuf payloads. Decoding parses into domain newtypes, so a message that
//! would break a domain invariant is refused here, before it reaches a projection.

use pb::workflow_event::Event as Pb;
use proto::workflow::v1 as pb;
use workflow_domain::{
    Decision, Description, DisplayName, Reason, Route, StepNo, Title, UserId, ValidationError,
    WorkflowEvent,
};

pub fn to_proto(event: &WorkflowEvent) -> pb::WorkflowEvent {
    let event = match event {
        WorkflowEvent::Created {
            title,
            description,
            priority,
            applicant_id,
            applicant_name,
            route,
        } => Pb::Created(pb::WorkflowCreated {
            title: title.to_string(),
            description: description.to_string(),
            priority: pb::Priority::from(*priority) as i32,
            applicant_id: applicant_id.to_string(),
            applicant_name: applicant_name.to_string(),
            route: route
                .steps()
                .map(|(_, approver)| pb::RouteStep {
                    approver_user_id: approver.to_string(),
                })
                .collect(),
        }),
        WorkflowEvent::Submitted {} => Pb::Submitted(pb::WorkflowSubmitted {}),
        WorkflowEvent::StepAssigned { step, approver_id } => {
            Pb::StepAssigned(pb::WorkflowStepAssigned {
                step: step.get(),
                approver_id: approver_id.to_string(),
            })
        }
        WorkflowEvent::StepCompleted {
            step,
            decision,
            decided_by,
            comment,
        } => Pb::StepCompleted(pb::WorkflowStepCompleted {
            step: step.get(),
            decision: match decision {
                Decision::Approved => pb::StepDecision::Approved,
                Decision::Rejected => pb::StepDecision::Rejected,
            } as i32,
            decided_by: decided_by.to_string(),
            comment: comment.clone(),
        }),
        WorkflowEvent::Approved {} => Pb::Approved(pb::WorkflowApproved {}),
        WorkflowEvent::Rejected { reason } => Pb::Rejected(pb::WorkflowRejected {
            reason: reason.to_string(),
        }),
    };
    pb::WorkflowEvent { event: Some(event) }
}

pub fn from_proto(event: pb::WorkflowEvent) -> Result<WorkflowEvent, ValidationError> {
    let event = event
        .event
        .ok_or_else(|| ValidationError::new("event", "no event case is set"))?;
    Ok(match event {
        Pb::Created(e) => WorkflowEvent::Created {
            title: Title::parse("title", &e.title)?,
            description: Description::parse("description", &e.description)?,
            priority: proto::convert::priority(e.priority)?,
            applicant_id: UserId::parse("applicant_id", &e.applicant_id)?,
            applicant_name: DisplayName::parse("applicant_name", &e.applicant_name)?,
            route: Route::parse(
                "route",
                e.route.iter().map(|s| s.approver_user_id.as_str()),
                |i| format!("route[{i}].approver_user_id"),
            )?,
        },
        Pb::Submitted(_) => WorkflowEvent::Submitted {},
        Pb::StepAssigned(e) => WorkflowEvent::StepAssigned {
            step: StepNo::parse("step", e.step)?,
            approver_id: UserId::parse("approver_id", &e.approver_id)?,
        },
        Pb::StepCompleted(e) => WorkflowEvent::StepCompleted {
            step: StepNo::parse("step", e.step)?,
            decision: match pb::StepDecision::try_from(e.decision) {
                Ok(pb::StepDecision::Approved) => Decision::Approved,
                Ok(pb::StepDecision::Rejected) => Decision::Rejected,
                _ => return Err(ValidationError::new("decision", "unknown decision")),
            },
            decided_by: UserId::parse("decided_by", &e.decided_by)?,
            comment: e.comment,
        },
        Pb::Approved(_) => WorkflowEvent::Approved {},
        Pb::Rejected(e) => WorkflowEvent::Rejected {
            reason: Reason::parse("reason", &e.reason)?,
        },
    })
}

/// The CloudEvents `ce_type` of a payload, read from the oneof case (not from the domain), so
/// a header that disagrees with the payload is caught.
pub fn case_name(event: &pb::WorkflowEvent) -> Option<&'static str> {
    Some(match event.event.as_ref()? {
        Pb::Created(_) => "WorkflowCreated",
        Pb::Submitted(_) => "WorkflowSubmitted",
        Pb::StepAssigned(_) => "WorkflowStepAssigned",
        Pb::StepCompleted(_) => "WorkflowStepCompleted",
        Pb::Approved(_) => "WorkflowApproved",
        Pb::Rejected(_) => "WorkflowRejected",
    })
}
