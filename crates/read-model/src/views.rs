//! What the queries return: plain data, already parsed into domain enums.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use workflow_domain::{Priority, Status};

/// Where a step of a workflow's route stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Not reached yet.
    Waiting,
    /// Assigned and waiting for its approver's decision.
    Pending,
    Approved,
    Rejected,
}

impl StepStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Waiting => "WAITING",
            StepStatus::Pending => "PENDING",
            StepStatus::Approved => "APPROVED",
            StepStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            StepStatus::Waiting,
            StepStatus::Pending,
            StepStatus::Approved,
            StepStatus::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    /// 1-based position in the route.
    pub number: u32,
    pub approver_id: String,
    pub status: StepStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
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
    /// The step waiting for a decision, if any.
    pub current_step: Option<u32>,
    pub current_approver_id: Option<String>,
    pub step_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub last_event_id: Uuid,
    /// The aggregate version this row reflects; a client that wrote version n can wait for it.
    pub version: i64,
    /// In route order.
    pub steps: Vec<StepView>,
}
