//! Read-model views to wire messages and wire filters to domain values. Enum mappings are
//! exhaustive matches so a new variant fails to compile here instead of mapping silently.

use chrono::{DateTime, Utc};
use proto::workflow::v1 as pb;
use read_model::{StepStatus, StepView, WorkflowView};

pub(crate) fn workflow(view: WorkflowView) -> pb::Workflow {
    pb::Workflow {
        id: view.id.to_string(),
        tenant_id: view.tenant_id,
        title: view.title,
        description: view.description,
        priority: pb::Priority::from(view.priority) as i32,
        status: pb::WorkflowStatus::from(view.status) as i32,
        applicant: Some(pb::Person {
            user_id: view.applicant_id,
            display_name: view.applicant_name,
        }),
        current_step: view.current_step.unwrap_or(0),
        current_approver_id: view.current_approver_id.unwrap_or_default(),
        steps: view.steps.into_iter().map(step).collect(),
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
        submitted_at: view.submitted_at.map(timestamp),
        completed_at: view.completed_at.map(timestamp),
        version: view.version,
    }
}

fn step(view: StepView) -> pb::Step {
    let status = match view.status {
        StepStatus::Waiting => pb::StepStatus::Waiting,
        StepStatus::Pending => pb::StepStatus::Pending,
        StepStatus::Approved => pb::StepStatus::Approved,
        StepStatus::Rejected => pb::StepStatus::Rejected,
    };
    pb::Step {
        number: view.number,
        approver_id: view.approver_id,
        status: status as i32,
        decided_by: view.decided_by.unwrap_or_default(),
        decided_at: view.decided_at.map(timestamp),
        comment: view.comment.unwrap_or_default(),
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // chrono's sub-second part stays below 2e9 even for a leap second, so it fits an i32.
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}
