//! What the queries return: plain data, already parsed into domain types.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;
use workflow_domain::{Approver, Attachment, DefinitionRef, Priority, Status};

/// Where a step of a workflow's route stands in the current round of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Not reached yet (in this round: a resubmission restarts the route).
    Waiting,
    /// Assigned and waiting for its decision.
    Pending,
    Approved,
    Rejected,
    /// Sent back to the applicant.
    ChangesRequested,
}

impl StepStatus {
    pub const ALL: [StepStatus; 5] = [
        StepStatus::Waiting,
        StepStatus::Pending,
        StepStatus::Approved,
        StepStatus::Rejected,
        StepStatus::ChangesRequested,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Waiting => "WAITING",
            StepStatus::Pending => "PENDING",
            StepStatus::Approved => "APPROVED",
            StepStatus::Rejected => "REJECTED",
            StepStatus::ChangesRequested => "CHANGES_REQUESTED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Reads the stored form, [`StepStatus::as_str`], so the two cannot drift apart.
impl<'de> Deserialize<'de> for StepStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        StepStatus::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unexpected step status {raw}")))
    }
}

/// One step of a workflow's route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StepView {
    /// 1-based position in the route.
    pub number: u32,
    /// Who the route names to decide the step. A delegation does not change it: the step is
    /// then `delegated_to`'s to decide.
    pub approver: Approver,
    /// How long the step may wait before it is escalated; `None`: no SLA.
    pub sla_hours: Option<u32>,
    pub status: StepStatus,
    /// The deadline of the step's current (or last) assignment; `None` without an SLA.
    pub due_at: Option<DateTime<Utc>>,
    /// When the current (or last) assignment was escalated as overdue.
    pub escalated_at: Option<DateTime<Utc>>,
    /// Who last handed the step on, and to whom; both `None` if nobody did in this round.
    pub delegated_by: Option<String>,
    pub delegated_to: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The remark of the decision (the reason of a refusal), or of the last hand-over while
    /// the step waits for the delegate.
    pub comment: Option<String>,
}

/// The step a workflow waits on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssignmentView {
    pub step: u32,
    /// A user, or anyone holding a role; after a delegation, the delegate.
    pub assignee: Approver,
    /// When the step was assigned to `assignee`: a delegation is a new assignment.
    pub assigned_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    /// When this assignment was escalated as overdue; a delegation starts a new assignment.
    pub escalated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowView {
    pub id: Uuid,
    pub tenant_id: String,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    pub applicant_id: String,
    pub applicant_name: String,
    /// The definition version the route was pinned from; `None` for an ad-hoc route.
    pub definition: Option<DefinitionRef>,
    pub due_date: Option<NaiveDate>,
    /// The step waiting for a decision, if any.
    pub current: Option<AssignmentView>,
    pub step_count: u32,
    pub comment_count: u32,
    pub attachment_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest submission: a resubmission after changes were requested moves it.
    pub submitted_at: Option<DateTime<Utc>>,
    /// The first submission, which a resubmission leaves as it is.
    pub first_submitted_at: Option<DateTime<Utc>>,
    /// When it was approved, rejected or cancelled.
    pub completed_at: Option<DateTime<Utc>>,
    pub last_event_id: Uuid,
    /// The aggregate version this row reflects; a client that wrote version n can wait for it.
    pub version: i64,
    /// In route order.
    pub steps: Vec<StepView>,
}

/// A remark in a workflow's discussion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommentView {
    /// The id of the event that recorded it.
    pub id: Uuid,
    /// The workflow version it added, which orders the discussion.
    pub version: i64,
    pub author_id: String,
    pub author_name: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A document attached to a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttachmentView {
    /// The id of the event that recorded it.
    pub id: Uuid,
    /// The workflow version it added, which orders the discussion.
    pub version: i64,
    pub document: Attachment,
    pub attached_by: String,
    pub attached_at: DateTime<Utc>,
}

/// One workflow with the latest of its discussion (its counts say how much there is), in the
/// order it happened: what [`get_workflow`] returns.
///
/// [`get_workflow`]: crate::get_workflow
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowDetail {
    pub workflow: WorkflowView,
    pub comments: Vec<CommentView>,
    pub attachments: Vec<AttachmentView>,
}
