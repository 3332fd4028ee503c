//! The workflow context's events ↔ protobuf payloads (`ringiflow.workflow.v1.WorkflowEvent`), as
//! the kernel's [`EventCodec`]. Decoding parses into domain newtypes, so a message that would
//! break a domain invariant is refused here, before it reaches a projection. Errors name the
//! field within the case's message, e.g. `assignee` or `route[1].sla_hours`.

use crate::convert;
use crate::workflow::v1 as pb;
use chrono::{DateTime, NaiveDate, Utc};
use es_kernel::{EventCodec, WireError};
use pb::due_date_change::Change;
use pb::workflow_event::Event as Pb;
use prost::Message as _;
use std::time::SystemTime;
use workflow_domain::{
    parse_date, Approver, CommentBody, Decision, DefinitionId, DefinitionName, DefinitionRef,
    Description, DisplayName, DraftChanges, RawApprover, Reason, Role, StepNo, Title, UserId,
    ValidationError, WorkflowEvent,
};

/// The workflow context's wire format.
pub struct WorkflowCodec;

impl EventCodec for WorkflowCodec {
    type Event = WorkflowEvent;
    const DATA_SCHEMA: &'static str = "ringiflow.workflow.v1.WorkflowEvent";
    const CONTENT_TYPE: &'static str = "application/protobuf";
    const TYPES: &'static [&'static str] = WorkflowEvent::TYPES;

    fn event_type(event: &WorkflowEvent) -> &'static str {
        event.event_type()
    }

    fn encode(event: &WorkflowEvent) -> Vec<u8> {
        to_proto(event).encode_to_vec()
    }

    fn decode(payload: &[u8]) -> Result<WorkflowEvent, WireError> {
        let wire = pb::WorkflowEvent::decode(payload).map_err(|error| WireError::Malformed {
            schema: Self::DATA_SCHEMA,
            problem: error.to_string(),
        })?;
        Ok(from_proto(wire)?)
    }
}

fn to_proto(event: &WorkflowEvent) -> pb::WorkflowEvent {
    let event = match event {
        WorkflowEvent::Created {
            title,
            description,
            priority,
            applicant_id,
            applicant_name,
            route,
            definition,
            due_date,
        } => Pb::Created(pb::WorkflowCreated {
            title: title.to_string(),
            description: description.to_string(),
            priority: pb::Priority::from(*priority) as i32,
            applicant_id: applicant_id.to_string(),
            applicant_name: applicant_name.to_string(),
            route: convert::route_to_proto(route),
            definition: definition.as_ref().map(|definition| pb::DefinitionRef {
                id: definition.id.to_string(),
                version: definition.version,
                name: definition.name.to_string(),
            }),
            due_date: due_date.as_ref().map(date_to_proto),
        }),
        WorkflowEvent::DraftUpdated(changes) => Pb::DraftUpdated(pb::WorkflowDraftUpdated {
            title: changes.title.as_ref().map(Title::to_string),
            description: changes.description.as_ref().map(Description::to_string),
            priority: changes.priority.map(|p| pb::Priority::from(p) as i32),
            due_date: changes.due_date.map(|due_date| pb::DueDateChange {
                change: Some(match due_date {
                    Some(date) => Change::Date(date_to_proto(&date)),
                    None => Change::Clear(true),
                }),
            }),
        }),
        WorkflowEvent::Submitted {} => Pb::Submitted(pb::WorkflowSubmitted {}),
        WorkflowEvent::StepAssigned {
            step,
            assignee,
            due_at,
        } => Pb::StepAssigned(pb::WorkflowStepAssigned {
            step: step.get(),
            // For consumers that predate `assignee`; they cannot represent a role.
            approver_id: match assignee {
                Approver::User(user) => user.to_string(),
                Approver::Role(_) => String::new(),
            },
            assignee: Some(assignee.into()),
            due_at: due_at.map(timestamp),
        }),
        WorkflowEvent::StepCompleted {
            step,
            decision,
            decided_by,
            comment,
        } => Pb::StepCompleted(pb::WorkflowStepCompleted {
            step: step.get(),
            decision: pb::StepDecision::from(decision) as i32,
            decided_by: decided_by.to_string(),
            comment: comment.clone(),
            delegated_to: match decision {
                Decision::Delegated { to_user } => to_user.to_string(),
                Decision::Approved | Decision::Rejected | Decision::RequestedChanges => {
                    String::new()
                }
            },
        }),
        WorkflowEvent::Approved {} => Pb::Approved(pb::WorkflowApproved {}),
        WorkflowEvent::Rejected { reason } => Pb::Rejected(pb::WorkflowRejected {
            reason: reason.to_string(),
        }),
        WorkflowEvent::Cancelled {
            reason,
            cancelled_by,
        } => Pb::Cancelled(pb::WorkflowCancelled {
            reason: reason.as_ref().map(Reason::to_string),
            cancelled_by: cancelled_by.to_string(),
        }),
        WorkflowEvent::Escalated {
            step,
            assignee,
            due_at,
        } => Pb::Escalated(pb::WorkflowEscalated {
            step: step.get(),
            assignee: Some(assignee.into()),
            due_at: Some(timestamp(*due_at)),
        }),
        WorkflowEvent::CommentAdded {
            author_id,
            author_name,
            body,
        } => Pb::CommentAdded(pb::CommentAdded {
            author_id: author_id.to_string(),
            author_name: author_name.to_string(),
            body: body.to_string(),
        }),
        WorkflowEvent::DocumentAttached {
            attachment,
            attached_by,
        } => Pb::DocumentAttached(pb::DocumentAttached {
            attachment: Some(attachment.into()),
            attached_by: attached_by.to_string(),
        }),
    };
    pb::WorkflowEvent { event: Some(event) }
}

fn from_proto(event: pb::WorkflowEvent) -> Result<WorkflowEvent, ValidationError> {
    let event = event
        .event
        .ok_or_else(|| ValidationError::new("event", "no event case is set"))?;
    Ok(match event {
        Pb::Created(e) => WorkflowEvent::Created {
            title: Title::parse("title", &e.title)?,
            description: Description::parse("description", &e.description)?,
            priority: convert::priority(e.priority)?,
            applicant_id: UserId::parse("applicant_id", &e.applicant_id)?,
            applicant_name: DisplayName::parse("applicant_name", &e.applicant_name)?,
            route: convert::route("route", &e.route)?,
            definition: e.definition.as_ref().map(definition).transpose()?,
            due_date: e
                .due_date
                .as_deref()
                .map(|raw| parse_date("due_date", raw))
                .transpose()?,
        },
        Pb::DraftUpdated(e) => WorkflowEvent::DraftUpdated(DraftChanges {
            title: e
                .title
                .as_deref()
                .map(|raw| Title::parse("title", raw))
                .transpose()?,
            description: e
                .description
                .as_deref()
                .map(|raw| Description::parse("description", raw))
                .transpose()?,
            priority: e.priority.map(convert::priority).transpose()?,
            due_date: e.due_date.map(due_date_change).transpose()?,
        }),
        Pb::Submitted(_) => WorkflowEvent::Submitted {},
        Pb::StepAssigned(e) => WorkflowEvent::StepAssigned {
            step: StepNo::parse("step", e.step)?,
            assignee: match (convert::raw_approver(e.assignee.as_ref()), &*e.approver_id) {
                // Written before `assignee` existed, when every assignee was a user.
                (None, old) if !old.is_empty() => {
                    Approver::User(UserId::parse("approver_id", old)?)
                }
                (raw, _) => approver("assignee", raw)?,
            },
            due_at: e
                .due_at
                .map(|due_at| date_time("due_at", due_at))
                .transpose()?,
        },
        Pb::StepCompleted(e) => WorkflowEvent::StepCompleted {
            step: StepNo::parse("step", e.step)?,
            decision: decision(e.decision, &e.delegated_to)?,
            decided_by: UserId::parse("decided_by", &e.decided_by)?,
            comment: e.comment,
        },
        Pb::Approved(_) => WorkflowEvent::Approved {},
        Pb::Rejected(e) => WorkflowEvent::Rejected {
            reason: Reason::parse("reason", &e.reason)?,
        },
        Pb::Cancelled(e) => WorkflowEvent::Cancelled {
            reason: e
                .reason
                .as_deref()
                .map(|raw| Reason::parse("reason", raw))
                .transpose()?,
            cancelled_by: UserId::parse("cancelled_by", &e.cancelled_by)?,
        },
        Pb::Escalated(e) => WorkflowEvent::Escalated {
            step: StepNo::parse("step", e.step)?,
            assignee: approver("assignee", convert::raw_approver(e.assignee.as_ref()))?,
            due_at: date_time(
                "due_at",
                e.due_at
                    .ok_or_else(|| ValidationError::new("due_at", "is required"))?,
            )?,
        },
        Pb::CommentAdded(e) => WorkflowEvent::CommentAdded {
            author_id: UserId::parse("author_id", &e.author_id)?,
            author_name: DisplayName::parse("author_name", &e.author_name)?,
            body: CommentBody::parse("body", &e.body)?,
        },
        Pb::DocumentAttached(e) => WorkflowEvent::DocumentAttached {
            attachment: convert::attachment("attachment", e.attachment.as_ref())?,
            attached_by: UserId::parse("attached_by", &e.attached_by)?,
        },
    })
}

/// A lone approver; the domain parses approvers only as part of a route step.
fn approver(field: &str, raw: Option<RawApprover<'_>>) -> Result<Approver, ValidationError> {
    match raw {
        Some(RawApprover::User(user)) => UserId::parse(field, user).map(Approver::User),
        Some(RawApprover::Role(role)) => Role::parse(field, role).map(Approver::Role),
        None => Err(ValidationError::new(field, "must name a user or a role")),
    }
}

/// `delegated_to` belongs to a delegation only: anywhere else it would be silently dropped.
fn decision(raw: i32, delegated_to: &str) -> Result<Decision, ValidationError> {
    let decision = match pb::StepDecision::try_from(raw) {
        Ok(pb::StepDecision::Delegated) => {
            return Ok(Decision::Delegated {
                to_user: UserId::parse("delegated_to", delegated_to)?,
            })
        }
        Ok(pb::StepDecision::Approved) => Decision::Approved,
        Ok(pb::StepDecision::Rejected) => Decision::Rejected,
        Ok(pb::StepDecision::RequestedChanges) => Decision::RequestedChanges,
        Ok(pb::StepDecision::Unspecified) | Err(_) => {
            return Err(ValidationError::new(
                "decision",
                "must be APPROVED, REJECTED, REQUESTED_CHANGES or DELEGATED",
            ))
        }
    };
    if !delegated_to.is_empty() {
        return Err(ValidationError::new(
            "delegated_to",
            "is set only for a delegation",
        ));
    }
    Ok(decision)
}

fn definition(wire: &pb::DefinitionRef) -> Result<DefinitionRef, ValidationError> {
    Ok(DefinitionRef {
        id: DefinitionId::parse("definition.id", &wire.id)?,
        version: match wire.version {
            0 => {
                return Err(ValidationError::new(
                    "definition.version",
                    "versions start at 1",
                ))
            }
            version => version,
        },
        name: DefinitionName::parse("definition.name", &wire.name)?,
    })
}

fn due_date_change(wire: pb::DueDateChange) -> Result<Option<NaiveDate>, ValidationError> {
    match wire.change {
        Some(Change::Date(raw)) => parse_date("due_date.date", &raw).map(Some),
        Some(Change::Clear(true)) => Ok(None),
        Some(Change::Clear(false)) => Err(ValidationError::new(
            "due_date.clear",
            "must be true when set",
        )),
        None => Err(ValidationError::new(
            "due_date",
            "must set either date or clear",
        )),
    }
}

/// Calendar dates travel as `YYYY-MM-DD`, like the event store's JSON.
const DATE_FORMAT: &str = "%Y-%m-%d";

fn date_to_proto(date: &NaiveDate) -> String {
    date.format(DATE_FORMAT).to_string()
}

/// Through `SystemTime`, whose conversion keeps `nanos` non-negative before 1970 as the
/// Timestamp contract requires.
pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(at).into()
}

/// Refuses nanos outside 0..1e9 (which no valid Timestamp has) and instants outside the years
/// dates may have (`workflow_domain::DATES`, the Timestamp contract's own range too): nothing
/// RingiFlow writes lies there, and the read model need not store what nobody could mean.
pub(crate) fn date_time(
    field: &str,
    wire: prost_types::Timestamp,
) -> Result<DateTime<Utc>, ValidationError> {
    u32::try_from(wire.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(wire.seconds, nanos))
        .filter(|at| workflow_domain::DATES.contains(&at.date_naive()))
        .ok_or_else(|| ValidationError::new(field, "must be a valid timestamp"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use workflow_domain::{Attachment, Priority, RawAttachment, RawStep, Route};

    fn user(id: &str) -> UserId {
        UserId::parse("test", id).unwrap()
    }

    fn role(name: &str) -> Approver {
        Approver::Role(Role::parse("test", name).unwrap())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        // Nanoseconds, to show the full precision of a Timestamp survives.
        DateTime::from_timestamp(seconds, 123_456_789).unwrap()
    }

    fn day(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    /// At least one value of every variant, with each optional part both present and absent.
    pub(crate) fn samples() -> Vec<WorkflowEvent> {
        let route = Route::parse(
            "route",
            [
                RawStep {
                    approver: Some(RawApprover::User("bob")),
                    sla_hours: Some(24),
                },
                RawStep {
                    approver: Some(RawApprover::Role("manager")),
                    sla_hours: None,
                },
            ],
            |i, part| format!("route[{i}].{part}"),
        )
        .unwrap();
        let attachment = Attachment::parse(
            RawAttachment {
                file_name: "見積書.pdf",
                media_type: "application/pdf",
                size_bytes: 52_431,
                sha256: &"9f86".repeat(16),
                storage_uri: "s3://ringiflow/acme/9f86",
            },
            |part| part.to_string(),
        )
        .unwrap();
        let created = |definition, due_date| WorkflowEvent::Created {
            title: Title::parse("title", "出張申請：大阪").unwrap(),
            description: Description::parse("description", "").unwrap(),
            priority: Priority::Urgent,
            applicant_id: user("alice"),
            applicant_name: DisplayName::parse("applicant_name", "Alice").unwrap(),
            route: route.clone(),
            definition,
            due_date,
        };
        vec![
            created(
                Some(DefinitionRef {
                    id: DefinitionId::parse("id", "0195f2a4-6a3e-7c1b-9d2e-4f5a6b7c8d9e").unwrap(),
                    version: 3,
                    name: DefinitionName::parse("name", "出張申請").unwrap(),
                }),
                Some(day("2025-04-30")),
            ),
            created(None, None),
            WorkflowEvent::DraftUpdated(DraftChanges {
                title: Some(Title::parse("title", "出張申請：福岡").unwrap()),
                description: Some(Description::parse("description", "").unwrap()),
                priority: Some(Priority::Low),
                due_date: Some(Some(day("2025-05-31"))),
            }),
            WorkflowEvent::DraftUpdated(DraftChanges {
                due_date: Some(None),
                ..DraftChanges::default()
            }),
            WorkflowEvent::DraftUpdated(DraftChanges {
                priority: Some(Priority::High),
                ..DraftChanges::default()
            }),
            WorkflowEvent::Submitted {},
            WorkflowEvent::StepAssigned {
                step: StepNo::FIRST,
                assignee: Approver::User(user("bob")),
                due_at: Some(at(1_775_000_000)),
            },
            WorkflowEvent::StepAssigned {
                step: StepNo::FIRST.next(),
                assignee: role("manager"),
                due_at: None,
            },
            WorkflowEvent::StepCompleted {
                step: StepNo::FIRST,
                decision: Decision::Delegated {
                    to_user: user("dave"),
                },
                decided_by: user("bob"),
                comment: "on leave".into(),
            },
            WorkflowEvent::StepCompleted {
                step: StepNo::FIRST,
                decision: Decision::RequestedChanges,
                decided_by: user("dave"),
                comment: "add the hotel".into(),
            },
            WorkflowEvent::Approved {},
            WorkflowEvent::Rejected {
                reason: Reason::parse("reason", "too expensive").unwrap(),
            },
            WorkflowEvent::Cancelled {
                reason: Some(Reason::parse("reason", "no longer needed").unwrap()),
                cancelled_by: user("alice"),
            },
            WorkflowEvent::Cancelled {
                reason: None,
                cancelled_by: user("alice"),
            },
            WorkflowEvent::Escalated {
                step: StepNo::FIRST,
                assignee: role("manager"),
                due_at: at(-1),
            },
            WorkflowEvent::CommentAdded {
                author_id: user("bob"),
                author_name: DisplayName::parse("author_name", "Bob").unwrap(),
                body: CommentBody::parse("body", "領収書を添付してください").unwrap(),
            },
            WorkflowEvent::DocumentAttached {
                attachment,
                attached_by: user("alice"),
            },
        ]
    }

    #[test]
    fn every_variant_round_trips_under_its_event_type() {
        let samples = samples();
        let covered: BTreeSet<_> = samples.iter().map(WorkflowEvent::event_type).collect();
        assert_eq!(covered, WorkflowEvent::TYPES.iter().copied().collect());
        for event in samples {
            let wire = to_proto(&event);
            let bytes = wire.encode_to_vec();
            let decoded = pb::WorkflowEvent::decode(bytes.as_slice()).unwrap();
            assert_eq!(from_proto(decoded).unwrap(), event);
        }
    }

    #[test]
    fn user_assignees_are_also_written_as_approver_id() {
        let approver_id = |assignee| {
            let event = WorkflowEvent::StepAssigned {
                step: StepNo::FIRST,
                assignee,
                due_at: None,
            };
            match to_proto(&event).event {
                Some(Pb::StepAssigned(e)) => e.approver_id,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(approver_id(Approver::User(user("bob"))), "bob");
        assert_eq!(approver_id(role("manager")), "");
    }

    #[test]
    fn a_step_assigned_from_before_assignee_still_decodes() {
        let old = pb::WorkflowStepAssigned {
            step: 2,
            approver_id: "bob".into(),
            ..Default::default()
        };
        let wire = pb::WorkflowEvent {
            event: Some(Pb::StepAssigned(old)),
        };
        let bytes = wire.encode_to_vec();
        let decoded = pb::WorkflowEvent::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            from_proto(decoded).unwrap(),
            WorkflowEvent::StepAssigned {
                step: StepNo::FIRST.next(),
                assignee: Approver::User(user("bob")),
                due_at: None,
            }
        );
    }

    /// The first sample of `event_type` on the wire, after `break_it` changed it.
    fn broken(event_type: &str, break_it: impl FnOnce(&mut Pb)) -> pb::WorkflowEvent {
        let sample = samples()
            .into_iter()
            .find(|event| event.event_type() == event_type)
            .unwrap();
        let mut wire = to_proto(&sample);
        break_it(wire.event.as_mut().unwrap());
        wire
    }

    #[test]
    fn invalid_payloads_name_their_field() {
        let bad_time = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        let cases = [
            (pb::WorkflowEvent::default(), "event"),
            (
                broken("WorkflowCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.title = " ".into();
                    }
                }),
                "title",
            ),
            (
                broken("WorkflowCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.route[1].sla_hours = Some(0);
                    }
                }),
                "route[1].sla_hours",
            ),
            (
                broken("WorkflowCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.definition.as_mut().unwrap().id = "3".into();
                    }
                }),
                "definition.id",
            ),
            (
                broken("WorkflowCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.definition.as_mut().unwrap().version = 0;
                    }
                }),
                "definition.version",
            ),
            (
                broken("WorkflowCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.due_date = Some("2025-02-30".into());
                    }
                }),
                "due_date",
            ),
            (
                broken("WorkflowDraftUpdated", |e| {
                    if let Pb::DraftUpdated(e) = e {
                        e.priority = Some(pb::Priority::Unspecified as i32);
                    }
                }),
                "priority",
            ),
            (
                broken("WorkflowDraftUpdated", |e| {
                    if let Pb::DraftUpdated(e) = e {
                        e.due_date = Some(pb::DueDateChange {
                            change: Some(Change::Date("30.04.2025".into())),
                        });
                    }
                }),
                "due_date.date",
            ),
            (
                broken("WorkflowDraftUpdated", |e| {
                    if let Pb::DraftUpdated(e) = e {
                        e.due_date = Some(pb::DueDateChange {
                            change: Some(Change::Clear(false)),
                        });
                    }
                }),
                "due_date.clear",
            ),
            (
                broken("WorkflowDraftUpdated", |e| {
                    if let Pb::DraftUpdated(e) = e {
                        e.due_date = Some(pb::DueDateChange::default());
                    }
                }),
                "due_date",
            ),
            (
                broken("WorkflowStepAssigned", |e| {
                    if let Pb::StepAssigned(e) = e {
                        e.step = 0;
                    }
                }),
                "step",
            ),
            (
                broken("WorkflowStepAssigned", |e| {
                    if let Pb::StepAssigned(e) = e {
                        e.assignee = None;
                        e.approver_id.clear();
                    }
                }),
                "assignee",
            ),
            (
                broken("WorkflowStepAssigned", |e| {
                    if let Pb::StepAssigned(e) = e {
                        e.assignee = None;
                        e.approver_id = "b ob".into();
                    }
                }),
                "approver_id",
            ),
            (
                broken("WorkflowStepAssigned", |e| {
                    if let Pb::StepAssigned(e) = e {
                        e.due_at = Some(bad_time);
                    }
                }),
                "due_at",
            ),
            (
                broken("WorkflowStepAssigned", |e| {
                    if let Pb::StepAssigned(e) = e {
                        // About 7500 BC: chrono holds it, PostgreSQL and the contract do not.
                        e.due_at = Some(prost_types::Timestamp {
                            seconds: -300_000_000_000,
                            nanos: 0,
                        });
                    }
                }),
                "due_at",
            ),
            (
                broken("WorkflowStepCompleted", |e| {
                    if let Pb::StepCompleted(e) = e {
                        e.decision = pb::StepDecision::Unspecified as i32;
                    }
                }),
                "decision",
            ),
            (
                broken("WorkflowStepCompleted", |e| {
                    if let Pb::StepCompleted(e) = e {
                        e.delegated_to.clear();
                    }
                }),
                "delegated_to",
            ),
            (
                broken("WorkflowStepCompleted", |e| {
                    if let Pb::StepCompleted(e) = e {
                        e.decision = pb::StepDecision::Approved as i32;
                    }
                }),
                "delegated_to",
            ),
            (
                broken("WorkflowRejected", |e| {
                    if let Pb::Rejected(e) = e {
                        e.reason.clear();
                    }
                }),
                "reason",
            ),
            (
                broken("WorkflowCancelled", |e| {
                    if let Pb::Cancelled(e) = e {
                        e.reason = Some(String::new());
                    }
                }),
                "reason",
            ),
            (
                broken("WorkflowEscalated", |e| {
                    if let Pb::Escalated(e) = e {
                        e.assignee = Some(pb::Approver::default());
                    }
                }),
                "assignee",
            ),
            (
                broken("WorkflowEscalated", |e| {
                    if let Pb::Escalated(e) = e {
                        e.due_at = None;
                    }
                }),
                "due_at",
            ),
            (
                broken("CommentAdded", |e| {
                    if let Pb::CommentAdded(e) = e {
                        e.body = "\n".into();
                    }
                }),
                "body",
            ),
            (
                broken("DocumentAttached", |e| {
                    if let Pb::DocumentAttached(e) = e {
                        e.attachment.as_mut().unwrap().sha256 = "xyz".into();
                    }
                }),
                "attachment.sha256",
            ),
            (
                broken("DocumentAttached", |e| {
                    if let Pb::DocumentAttached(e) = e {
                        e.attached_by.clear();
                    }
                }),
                "attached_by",
            ),
        ];
        for (wire, field) in cases {
            let error = from_proto(wire.clone()).expect_err(&format!("{wire:?} decoded"));
            assert_eq!(error.field, field, "{error}");
        }
    }
}
