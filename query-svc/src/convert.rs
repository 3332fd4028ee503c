//! Read-model views to wire messages and wire filters to domain values. Enum mappings are
//! exhaustive matches so a new variant fails to compile here instead of mapping silently.

use chrono::{DateTime, Utc};
use proto::workflow::v1 as pb;
use read_model::{AttachmentView, CommentView, StepStatus, StepView, WorkflowDetail, WorkflowView};
use workflow_domain::Approver;

/// A workflow with its discussion, as GetWorkflow answers.
pub(crate) fn workflow_detail(detail: WorkflowDetail) -> pb::Workflow {
    pb::Workflow {
        comments: detail.comments.into_iter().map(comment).collect(),
        attachments: detail.attachments.into_iter().map(attachment).collect(),
        ..workflow(detail.workflow)
    }
}

/// A workflow without its discussion, as ListWorkflows answers.
pub(crate) fn workflow(view: WorkflowView) -> pb::Workflow {
    let current = view.current.as_ref();
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
        current_step: current.map_or(0, |c| c.step),
        current_approver_id: current.map(|c| user_id(&c.assignee)).unwrap_or_default(),
        current_assignee: current.map(|c| pb::Approver::from(&c.assignee)),
        current_due_at: current.and_then(|c| c.due_at).map(timestamp),
        current_escalated_at: current.and_then(|c| c.escalated_at).map(timestamp),
        steps: view.steps.into_iter().map(step).collect(),
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
        submitted_at: view.submitted_at.map(timestamp),
        completed_at: view.completed_at.map(timestamp),
        version: view.version,
        definition: view.definition.map(|d| pb::DefinitionRef {
            id: d.id.to_string(),
            version: d.version,
            name: d.name.to_string(),
        }),
        due_date: view.due_date.map(|d| d.to_string()).unwrap_or_default(),
        comment_count: view.comment_count,
        attachment_count: view.attachment_count,
        comments: Vec::new(),
        attachments: Vec::new(),
    }
}

fn step(view: StepView) -> pb::Step {
    let status = match view.status {
        StepStatus::Waiting => pb::StepStatus::Waiting,
        StepStatus::Pending => pb::StepStatus::Pending,
        StepStatus::Approved => pb::StepStatus::Approved,
        StepStatus::Rejected => pb::StepStatus::Rejected,
        StepStatus::ChangesRequested => pb::StepStatus::ChangesRequested,
    };
    pb::Step {
        number: view.number,
        approver_id: user_id(&view.approver),
        approver: Some(pb::Approver::from(&view.approver)),
        sla_hours: view.sla_hours,
        status: status as i32,
        due_at: view.due_at.map(timestamp),
        escalated_at: view.escalated_at.map(timestamp),
        delegated_by: view.delegated_by.unwrap_or_default(),
        delegated_to: view.delegated_to.unwrap_or_default(),
        decided_by: view.decided_by.unwrap_or_default(),
        decided_at: view.decided_at.map(timestamp),
        comment: view.comment.unwrap_or_default(),
    }
}

fn comment(view: CommentView) -> pb::Comment {
    pb::Comment {
        id: view.id.to_string(),
        author: Some(pb::Person {
            user_id: view.author_id,
            display_name: view.author_name,
        }),
        body: view.body,
        created_at: Some(timestamp(view.created_at)),
    }
}

fn attachment(view: AttachmentView) -> pb::AttachedDocument {
    pb::AttachedDocument {
        id: view.id.to_string(),
        document: Some(pb::Attachment::from(&view.document)),
        attached_by: view.attached_by,
        attached_at: Some(timestamp(view.attached_at)),
    }
}

/// The user id of the fields that predate roles; empty for a role.
fn user_id(approver: &Approver) -> String {
    match approver {
        Approver::User(user) => user.to_string(),
        Approver::Role(_) => String::new(),
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // chrono's sub-second part stays below 2e9 even for a leap second, so it fits an i32.
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}
