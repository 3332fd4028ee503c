//! GraphQL output types and enums, converted from the query contract. proto3 cannot tell an
//! absent scalar from its zero value, so zero steps, empty strings and zero timestamps become
//! `null`; anything else query-svc should never send is an INTERNAL error, not a guess.

use crate::errors::graphql_error;
use async_graphql::{Enum, Result, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use proto::workflow::v1 as pb;

#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkflowStatus {
    Draft,
    InProgress,
    /// Sent back to the applicant, who edits and resubmits it.
    ChangesRequested,
    Approved,
    Rejected,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepStatus {
    /// A later step, not yet assigned.
    Waiting,
    /// Assigned and waiting for its approver.
    Pending,
    Approved,
    Rejected,
    /// Sent back to the applicant from this step.
    ChangesRequested,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Workflow {
    id: ID,
    title: String,
    description: String,
    priority: Priority,
    status: WorkflowStatus,
    applicant: Person,
    /// 1-based; null when no step is waiting.
    current_step: Option<u32>,
    /// The user the current step waits for; null when it waits for a role (see `currentAssignee`).
    current_approver_id: Option<String>,
    current_assignee: Option<Approver>,
    /// When the current step becomes overdue; null without an SLA.
    current_due_at: Option<DateTime<Utc>>,
    current_escalated_at: Option<DateTime<Utc>>,
    steps: Vec<Step>,
    /// The definition version this workflow was created from; null for an inline route.
    definition: Option<DefinitionRef>,
    due_date: Option<NaiveDate>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    comment_count: u32,
    attachment_count: u32,
    /// In the order they were added; filled by `workflow(id)`, empty in lists.
    comments: Vec<Comment>,
    /// In the order they were attached; filled by `workflow(id)`, empty in lists.
    attachments: Vec<AttachedDocument>,
    version: i64,
    /// The read side had not reached the version asked for (`minVersion`) in time: this is an
    /// older version.
    stale: bool,
}

/// Who decides a step: one user, or anyone holding a role.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Approver {
    user_id: Option<String>,
    role: Option<String>,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct DefinitionRef {
    id: ID,
    version: u32,
    name: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Comment {
    id: ID,
    author: Person,
    body: String,
    created_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct AttachedDocument {
    id: ID,
    file_name: String,
    media_type: String,
    size_bytes: u64,
    sha256: String,
    storage_uri: String,
    attached_by: String,
    attached_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Person {
    user_id: String,
    display_name: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Step {
    number: u32,
    /// The user the route names; null for a role step (see `approver`).
    approver_id: Option<String>,
    approver: Option<Approver>,
    status: StepStatus,
    sla_hours: Option<u32>,
    due_at: Option<DateTime<Utc>>,
    escalated_at: Option<DateTime<Utc>>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    comment: Option<String>,
    /// The last hand-over of this step: who delegated it, and to whom.
    delegated_by: Option<String>,
    delegated_to: Option<String>,
}

/// query-svc sent something its contract rules out: logged in full, INTERNAL to the client.
pub(crate) fn broken_contract(what: &str) -> async_graphql::Error {
    graphql_error(platform::errors::internal(&format_args!(
        "query-svc sent {what}"
    )))
}

impl From<Priority> for pb::Priority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => Self::Low,
            Priority::Medium => Self::Medium,
            Priority::High => Self::High,
            Priority::Urgent => Self::Urgent,
        }
    }
}

impl TryFrom<pb::Priority> for Priority {
    type Error = async_graphql::Error;
    fn try_from(priority: pb::Priority) -> Result<Self> {
        match priority {
            pb::Priority::Low => Ok(Self::Low),
            pb::Priority::Medium => Ok(Self::Medium),
            pb::Priority::High => Ok(Self::High),
            pb::Priority::Urgent => Ok(Self::Urgent),
            pb::Priority::Unspecified => Err(broken_contract("an unspecified priority")),
        }
    }
}

impl From<WorkflowStatus> for pb::WorkflowStatus {
    fn from(status: WorkflowStatus) -> Self {
        match status {
            WorkflowStatus::Draft => Self::Draft,
            WorkflowStatus::InProgress => Self::InProgress,
            WorkflowStatus::ChangesRequested => Self::ChangesRequested,
            WorkflowStatus::Approved => Self::Approved,
            WorkflowStatus::Rejected => Self::Rejected,
            WorkflowStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl TryFrom<pb::WorkflowStatus> for WorkflowStatus {
    type Error = async_graphql::Error;
    fn try_from(status: pb::WorkflowStatus) -> Result<Self> {
        match status {
            pb::WorkflowStatus::Draft => Ok(Self::Draft),
            pb::WorkflowStatus::InProgress => Ok(Self::InProgress),
            pb::WorkflowStatus::ChangesRequested => Ok(Self::ChangesRequested),
            pb::WorkflowStatus::Approved => Ok(Self::Approved),
            pb::WorkflowStatus::Rejected => Ok(Self::Rejected),
            pb::WorkflowStatus::Cancelled => Ok(Self::Cancelled),
            pb::WorkflowStatus::Unspecified => {
                Err(broken_contract("an unspecified workflow status"))
            }
        }
    }
}

impl TryFrom<pb::StepStatus> for StepStatus {
    type Error = async_graphql::Error;
    fn try_from(status: pb::StepStatus) -> Result<Self> {
        match status {
            pb::StepStatus::Waiting => Ok(Self::Waiting),
            pb::StepStatus::Pending => Ok(Self::Pending),
            pb::StepStatus::Approved => Ok(Self::Approved),
            pb::StepStatus::Rejected => Ok(Self::Rejected),
            pb::StepStatus::ChangesRequested => Ok(Self::ChangesRequested),
            pb::StepStatus::Unspecified => Err(broken_contract("an unspecified step status")),
        }
    }
}

impl TryFrom<pb::Workflow> for Workflow {
    type Error = async_graphql::Error;
    fn try_from(workflow: pb::Workflow) -> Result<Self> {
        // Read the enums through prost's accessors first: they map unknown values to UNSPECIFIED.
        let priority = workflow.priority().try_into()?;
        let status = workflow.status().try_into()?;
        let applicant = workflow
            .applicant
            .ok_or_else(|| broken_contract("a workflow without an applicant"))?;
        Ok(Self {
            id: ID(workflow.id),
            title: workflow.title,
            description: workflow.description,
            priority,
            status,
            applicant: Person::from(applicant),
            current_step: (workflow.current_step != 0).then_some(workflow.current_step),
            current_approver_id: non_empty(workflow.current_approver_id),
            current_assignee: workflow.current_assignee.and_then(Approver::from_wire),
            current_due_at: optional_time(workflow.current_due_at)?,
            current_escalated_at: optional_time(workflow.current_escalated_at)?,
            steps: workflow
                .steps
                .into_iter()
                .map(Step::try_from)
                .collect::<Result<_>>()?,
            definition: workflow.definition.map(|definition| DefinitionRef {
                id: ID(definition.id),
                version: definition.version,
                name: definition.name,
            }),
            due_date: non_empty(workflow.due_date)
                .map(|date| {
                    NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                        .map_err(|_| broken_contract("a due date that is not YYYY-MM-DD"))
                })
                .transpose()?,
            created_at: required_time("workflow.created_at", workflow.created_at)?,
            updated_at: required_time("workflow.updated_at", workflow.updated_at)?,
            submitted_at: optional_time(workflow.submitted_at)?,
            completed_at: optional_time(workflow.completed_at)?,
            comment_count: workflow.comment_count,
            attachment_count: workflow.attachment_count,
            comments: workflow
                .comments
                .into_iter()
                .map(Comment::try_from)
                .collect::<Result<_>>()?,
            attachments: workflow
                .attachments
                .into_iter()
                .map(AttachedDocument::try_from)
                .collect::<Result<_>>()?,
            version: workflow.version,
            stale: workflow.stale,
        })
    }
}

impl TryFrom<pb::Step> for Step {
    type Error = async_graphql::Error;
    fn try_from(step: pb::Step) -> Result<Self> {
        Ok(Self {
            status: step.status().try_into()?,
            number: step.number,
            approver_id: non_empty(step.approver_id),
            approver: step.approver.and_then(Approver::from_wire),
            sla_hours: step.sla_hours,
            due_at: optional_time(step.due_at)?,
            escalated_at: optional_time(step.escalated_at)?,
            decided_by: non_empty(step.decided_by),
            decided_at: optional_time(step.decided_at)?,
            comment: non_empty(step.comment),
            delegated_by: non_empty(step.delegated_by),
            delegated_to: non_empty(step.delegated_to),
        })
    }
}

impl From<pb::Person> for Person {
    fn from(person: pb::Person) -> Self {
        Self {
            user_id: person.user_id,
            display_name: person.display_name,
        }
    }
}

impl Approver {
    /// `None` when the message names neither a user nor a role.
    fn from_wire(approver: pb::Approver) -> Option<Self> {
        use pb::approver::Approver as Pb;
        Some(match approver.approver? {
            Pb::UserId(user_id) => Self {
                user_id: Some(user_id),
                role: None,
            },
            Pb::Role(role) => Self {
                user_id: None,
                role: Some(role),
            },
        })
    }
}

impl TryFrom<pb::Comment> for Comment {
    type Error = async_graphql::Error;
    fn try_from(comment: pb::Comment) -> Result<Self> {
        let author = comment
            .author
            .ok_or_else(|| broken_contract("a comment without an author"))?;
        Ok(Self {
            id: ID(comment.id),
            author: author.into(),
            body: comment.body,
            created_at: required_time("comment.created_at", comment.created_at)?,
        })
    }
}

impl TryFrom<pb::AttachedDocument> for AttachedDocument {
    type Error = async_graphql::Error;
    fn try_from(attached: pb::AttachedDocument) -> Result<Self> {
        let document = attached
            .document
            .ok_or_else(|| broken_contract("an attachment without its document"))?;
        Ok(Self {
            id: ID(attached.id),
            file_name: document.file_name,
            media_type: document.media_type,
            size_bytes: document.size_bytes,
            sha256: document.sha256,
            storage_uri: document.storage_uri,
            attached_by: attached.attached_by,
            attached_at: required_time("attachment.attached_at", attached.attached_at)?,
        })
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// `None` for an absent or zero (epoch) timestamp; an error for one chrono cannot represent.
pub(crate) fn optional_time(
    timestamp: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>> {
    let Some(timestamp) = timestamp.filter(|t| (t.seconds, t.nanos) != (0, 0)) else {
        return Ok(None);
    };
    u32::try_from(timestamp.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
        .map(Some)
        .ok_or_else(|| broken_contract("an out-of-range timestamp"))
}

/// A timestamp the contract always sets; `field` names it in the INTERNAL error, e.g.
/// `comment.created_at`.
pub(crate) fn required_time(
    field: &str,
    timestamp: Option<prost_types::Timestamp>,
) -> Result<DateTime<Utc>> {
    optional_time(timestamp)?.ok_or_else(|| broken_contract(&format!("no {field}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn time(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    #[test]
    fn timestamps_convert_with_nanosecond_precision() {
        let converted = optional_time(time(1_700_000_000, 123_456_789))
            .unwrap()
            .unwrap();
        assert_eq!(
            converted.to_rfc3339(),
            "2023-11-14T22:13:20.123456789+00:00"
        );
        assert_eq!(
            optional_time(time(-1, 0)).unwrap().unwrap().to_rfc3339(),
            "1969-12-31T23:59:59+00:00"
        );
    }

    #[test]
    fn absent_and_zero_timestamps_are_null() {
        assert_eq!(optional_time(None).unwrap(), None);
        assert_eq!(optional_time(time(0, 0)).unwrap(), None);
        assert!(required_time("created_at", None).is_err());
    }

    #[test]
    fn unrepresentable_timestamps_are_internal_errors() {
        for (seconds, nanos) in [(0, -1), (i64::MAX, 0), (1, 2_000_000_000)] {
            let error = optional_time(time(seconds, nanos)).unwrap_err();
            let extensions = error.extensions.expect("extensions");
            assert_eq!(
                extensions.get("code"),
                Some(&async_graphql::Value::from("INTERNAL"))
            );
        }
    }

    fn workflow() -> pb::Workflow {
        pb::Workflow {
            id: "wf-1".into(),
            tenant_id: "acme".into(),
            title: "出張申請".into(),
            priority: pb::Priority::High.into(),
            status: pb::WorkflowStatus::Draft.into(),
            applicant: Some(pb::Person {
                user_id: "alice".into(),
                display_name: "Alice".into(),
            }),
            steps: vec![pb::Step {
                number: 1,
                approver_id: "bob".into(),
                status: pb::StepStatus::Waiting.into(),
                ..Default::default()
            }],
            created_at: time(1_700_000_000, 0),
            updated_at: time(1_700_000_000, 0),
            version: 1,
            ..Default::default()
        }
    }

    #[test]
    fn zero_and_empty_fields_of_a_workflow_become_null() {
        let converted = Workflow::try_from(workflow()).unwrap();
        assert_eq!(
            (converted.priority, converted.status),
            (Priority::High, WorkflowStatus::Draft)
        );
        assert_eq!(converted.current_step, None);
        assert_eq!(converted.current_approver_id, None);
        assert_eq!(converted.submitted_at, None);
        let step = &converted.steps[0];
        assert_eq!(
            (
                step.decided_by.as_ref(),
                step.decided_at,
                step.comment.as_ref()
            ),
            (None, None, None)
        );
    }

    #[test]
    fn workflows_breaking_the_contract_are_refused() {
        let unknown_priority = pb::Workflow {
            priority: 99,
            ..workflow()
        };
        let no_applicant = pb::Workflow {
            applicant: None,
            ..workflow()
        };
        let no_created_at = pb::Workflow {
            created_at: None,
            ..workflow()
        };
        for broken in [unknown_priority, no_applicant, no_created_at] {
            assert!(Workflow::try_from(broken).is_err());
        }
    }
}
