//! Read-model views to wire messages and wire filters to domain values. Enum mappings are
//! exhaustive matches so a new variant fails to compile here instead of mapping silently.

use chrono::{DateTime, Utc};
use platform::auth::Identity;
use platform::errors::{self, invalid_argument, ErrorCode};
use proto::workflow::v1 as pb;
use read_model::{
    Assignee, AttachmentView, CommentView, Dashboard, MatchedField, SearchHit, SortDirection,
    StepStatus, StepView, WorkflowDetail, WorkflowFilter, WorkflowQuery, WorkflowSort,
    WorkflowView,
};
use std::collections::HashMap;
use tonic::Status;
use workflow_domain::{
    Approver, DefinitionId, RecordedEvent, Role, UserId, ValidationError, WorkflowEvent,
};

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
        // Only a read at a minimum version can be stale; see GetWorkflow.
        stale: false,
        current_assigned_at: current.map(|c| timestamp(c.assigned_at)),
        first_submitted_at: view.first_submitted_at.map(timestamp),
    }
}

/// One edge per item of a page of workflows.
pub(crate) fn edges(items: Vec<(String, WorkflowView)>) -> Vec<pb::WorkflowEdge> {
    items
        .into_iter()
        .map(|(cursor, view)| pb::WorkflowEdge {
            cursor,
            node: Some(workflow(view)),
        })
        .collect()
}

pub(crate) fn search_edge((cursor, hit): (String, SearchHit)) -> pb::SearchEdge {
    let matched = match hit.matched {
        MatchedField::Title => pb::SearchMatch::Title,
        MatchedField::Description => pb::SearchMatch::Description,
        MatchedField::Comment => pb::SearchMatch::Comment,
    };
    pb::SearchEdge {
        cursor,
        node: Some(workflow(hit.workflow)),
        matched: matched as i32,
    }
}

pub(crate) fn dashboard(dashboard: Dashboard) -> pb::Dashboard {
    pb::Dashboard {
        by_status: dashboard
            .by_status
            .into_iter()
            .map(|(status, count)| pb::StatusCount {
                status: pb::WorkflowStatus::from(status) as i32,
                count,
            })
            .collect(),
        pending_for_me: dashboard.pending_for_me,
        overdue: dashboard.overdue,
        completed_today: dashboard.completed_today,
        today_started_at: Some(timestamp(dashboard.today_started_at)),
        average_decision_seconds: dashboard.average_decision_seconds,
    }
}

/// The caller as an assignee. A token whose claims make no valid user or role is an
/// authentication problem, not bad input.
pub(crate) fn caller(identity: &Identity) -> Result<Assignee, Status> {
    let unauthenticated = |e: ValidationError| {
        errors::status(
            ErrorCode::Unauthenticated,
            format!("token claim {e}"),
            HashMap::new(),
        )
    };
    Ok(Assignee {
        user_id: UserId::parse("sub", &identity.user_id).map_err(unauthenticated)?,
        roles: identity
            .roles
            .iter()
            .map(|role| Role::parse("roles", role))
            .collect::<Result<_, _>>()
            .map_err(unauthenticated)?,
    })
}

/// The list a ListWorkflows request asks for; `now` decides what is overdue.
pub(crate) fn workflow_query(
    request: &pb::ListWorkflowsRequest,
    now: DateTime<Utc>,
) -> Result<WorkflowQuery, Status> {
    let status = pb::WorkflowStatus::try_from(request.status)
        .map_err(|_| invalid_argument("status", "is not a known workflow status"))?;
    let priority = (request.priority != pb::Priority::Unspecified as i32)
        .then(|| proto::convert::priority(request.priority))
        .transpose()
        .map_err(invalid)?;
    let assignee = match (request.assignee_id.as_str(), &request.assignee_roles[..]) {
        ("", []) => None,
        ("", _) => return Err(invalid_argument("assignee_roles", "needs assignee_id")),
        (user_id, roles) => Some(Assignee {
            user_id: UserId::parse("assignee_id", user_id).map_err(invalid)?,
            roles: roles
                .iter()
                .enumerate()
                .map(|(i, role)| Role::parse(&format!("assignee_roles[{i}]"), role))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
        }),
    };
    let created_after = instant("created_after", request.created_after.as_ref())?;
    let created_before = instant("created_before", request.created_before.as_ref())?;
    if let (Some(after), Some(before)) = (created_after, created_before) {
        if before <= after {
            return Err(invalid_argument(
                "created_before",
                "must be later than created_after",
            ));
        }
    }
    let sort = match pb::WorkflowSort::try_from(request.sort) {
        Ok(pb::WorkflowSort::Unspecified | pb::WorkflowSort::CreatedAt) => WorkflowSort::CreatedAt,
        Ok(pb::WorkflowSort::UpdatedAt) => WorkflowSort::UpdatedAt,
        Ok(pb::WorkflowSort::DueDate) => WorkflowSort::DueDate,
        Ok(pb::WorkflowSort::Priority) => WorkflowSort::Priority,
        Err(_) => return Err(invalid_argument("sort", "is not a known sort")),
    };
    let direction = match pb::SortDirection::try_from(request.direction) {
        Ok(pb::SortDirection::Unspecified) => sort.default_direction(),
        Ok(pb::SortDirection::Asc) => SortDirection::Ascending,
        Ok(pb::SortDirection::Desc) => SortDirection::Descending,
        Err(_) => return Err(invalid_argument("direction", "is not a known direction")),
    };
    Ok(WorkflowQuery {
        filter: WorkflowFilter {
            status: proto::convert::status_filter(status),
            priority,
            applicant_id: optional(&request.applicant_id, |raw| {
                UserId::parse("applicant_id", raw)
            })?,
            assignee,
            definition_id: optional(&request.definition_id, |raw| {
                DefinitionId::parse("definition_id", raw)
            })?,
            created_after,
            created_before,
            overdue_at: request.overdue.then_some(now),
        },
        sort,
        direction,
    })
}

fn invalid(error: ValidationError) -> Status {
    invalid_argument(&error.field, &error.message)
}

/// An optional string field: empty means unset.
fn optional<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, Status> {
    (!raw.is_empty())
        .then(|| parse(raw))
        .transpose()
        .map_err(invalid)
}

fn instant(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Status> {
    at.map(|at| {
        u32::try_from(at.nanos)
            .ok()
            .filter(|nanos| *nanos < 1_000_000_000)
            .and_then(|nanos| DateTime::from_timestamp(at.seconds, nanos))
            .ok_or_else(|| invalid_argument(field, "is not a valid timestamp"))
    })
    .transpose()
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

/// One stored event as an audit-trail entry; its data in the current shape of its type.
pub(crate) fn history_entry(event: RecordedEvent<WorkflowEvent>) -> pb::HistoryEntry {
    let mut tagged = serde_json::to_value(&event.event).expect("domain events are plain data");
    let data = tagged
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    pb::HistoryEntry {
        event_id: event.event_id.to_string(),
        version: event.version,
        event_type: event.event.event_type().to_owned(),
        occurred_at: Some(timestamp(event.occurred_at)),
        user_id: event.metadata.user_id,
        correlation_id: event.metadata.correlation_id.to_string(),
        causation_id: event.metadata.causation_id.to_string(),
        data_json: data.to_string(),
    }
}
