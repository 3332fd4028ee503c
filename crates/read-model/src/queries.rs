//! Tenant-scoped reads. Every query takes the caller's tenant and filters by it: a workflow of
//! another tenant is indistinguishable from one that does not exist.

use crate::cursor::Cursor;
use crate::views::{
    AssignmentView, AttachmentView, CommentView, StepView, WorkflowDetail, WorkflowView,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use workflow_domain::{DefinitionRef, Priority, Status};

/// The largest page [`list_workflows`] returns.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cursor was not issued by this service")]
    InvalidCursor,
    #[error("page size must be between 1 and {MAX_PAGE_SIZE}")]
    InvalidPageSize,
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueryError {
    /// Whether the same query can succeed later (the database is unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            QueryError::Database(error) => crate::is_transient(error),
            QueryError::InvalidCursor | QueryError::InvalidPageSize => false,
        }
    }
}

/// One page of workflows, newest first. Each item carries the cursor that continues after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPage {
    pub items: Vec<(String, WorkflowView)>,
    pub has_next_page: bool,
}

/// One workflow with its comments and attachments; `None` if it does not exist in the tenant.
pub async fn get_workflow(
    pool: &PgPool,
    tenant_id: &str,
    id: Uuid,
) -> Result<Option<WorkflowDetail>, QueryError> {
    let mut query = select_workflows(Discussion::Included);
    query
        .push("w.tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND w.id = ")
        .push_bind(id);
    let row: Option<DetailRow> = query.build_query_as().fetch_optional(pool).await?;
    Ok(row.map(DetailRow::into_detail).transpose()?)
}

/// `first` workflows (1..=[`MAX_PAGE_SIZE`]) after the `after` cursor, optionally of one status.
pub async fn list_workflows(
    pool: &PgPool,
    tenant_id: &str,
    status: Option<Status>,
    first: u32,
    after: Option<&str>,
) -> Result<WorkflowPage, QueryError> {
    if !(1..=MAX_PAGE_SIZE).contains(&first) {
        return Err(QueryError::InvalidPageSize);
    }
    let after = after
        .map(|raw| Cursor::decode(raw).ok_or(QueryError::InvalidCursor))
        .transpose()?;
    let mut query = select_workflows(Discussion::Omitted);
    query.push("w.tenant_id = ").push_bind(tenant_id);
    if let Some(status) = status {
        query.push(" AND w.status = ").push_bind(status.as_str());
    }
    if let Some(after) = after {
        // Row comparison matches the (created_at DESC, id DESC) index order, so the page
        // starts right after the cursor's row even when several rows share a created_at.
        query
            .push(" AND (w.created_at, w.id) < (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    // One extra row answers has_next_page without a COUNT.
    query
        .push(" ORDER BY w.created_at DESC, w.id DESC LIMIT ")
        .push_bind(i64::from(first) + 1);
    let mut rows: Vec<WorkflowRow> = query.build_query_as().fetch_all(pool).await?;
    let has_next_page = rows.len() > first as usize;
    rows.truncate(first as usize);
    let items = rows
        .into_iter()
        .map(|row| {
            let view = row.into_view()?;
            let cursor = Cursor {
                created_at: view.created_at,
                id: view.id,
            }
            .encode();
            Ok((cursor, view))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(WorkflowPage {
        items,
        has_next_page,
    })
}

/// The rows of the given workflows, of any tenant: what the projection folds events into.
pub(crate) async fn workflows_by_id(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<WorkflowView>, sqlx::Error> {
    let mut query = select_workflows(Discussion::Omitted);
    query.push("w.id = ANY(").push_bind(ids).push(")");
    let rows: Vec<WorkflowRow> = query.build_query_as().fetch_all(conn).await?;
    rows.into_iter().map(WorkflowRow::into_view).collect()
}

/// Whether [`select_workflows`] also reads each workflow's comments and attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discussion {
    Included,
    Omitted,
}

/// The JSON form of an [`Approver`](workflow_domain::Approver) (`{"user": …}` or
/// `{"role": …}`) from the pair of columns that hold one, or NULL if both are NULL.
fn approver_json(user: &str, role: &str) -> String {
    format!(
        "CASE WHEN {user} IS NOT NULL THEN json_build_object('user', {user})
              WHEN {role} IS NOT NULL THEN json_build_object('role', {role}) END"
    )
}

/// Workflows with their steps (and discussion), in one statement so all of it comes from the
/// same snapshot. Callers append the conditions.
///
/// Nested values are built as JSON objects shaped like the views (and the domain types in
/// them), so serde reads them without any per-field code.
fn select_workflows<'a>(discussion: Discussion) -> QueryBuilder<'a, Postgres> {
    let discussion = match discussion {
        Discussion::Omitted => "",
        Discussion::Included => {
            ",
                COALESCE((
                    SELECT json_agg(json_build_object(
                               'id', c.event_id, 'version', c.version,
                               'author_id', c.author_id,
                               'author_name', c.author_name, 'body', c.body,
                               'created_at', c.created_at)
                           ORDER BY c.version)
                    FROM workflow_comments c
                    WHERE c.workflow_id = w.id AND c.tenant_id = w.tenant_id
                ), '[]') AS comments,
                COALESCE((
                    SELECT json_agg(json_build_object(
                               'id', a.event_id, 'version', a.version,
                               'document', json_build_object(
                                   'file_name', a.file_name, 'media_type', a.media_type,
                                   'size_bytes', a.size_bytes, 'sha256', a.sha256,
                                   'storage_uri', a.storage_uri),
                               'attached_by', a.attached_by, 'attached_at', a.attached_at)
                           ORDER BY a.version)
                    FROM workflow_attachments a
                    WHERE a.workflow_id = w.id AND a.tenant_id = w.tenant_id
                ), '[]') AS attachments"
        }
    };
    QueryBuilder::new(format!(
        "SELECT w.id, w.tenant_id, w.title, w.description, w.priority, w.status, w.applicant_id,
                w.applicant_name, w.due_date, w.step_count, w.comment_count, w.attachment_count,
                w.created_at, w.updated_at, w.submitted_at, w.completed_at, w.last_event_id,
                w.version,
                CASE WHEN w.definition_id IS NOT NULL THEN json_build_object(
                    'id', w.definition_id, 'version', w.definition_version,
                    'name', w.definition_name) END AS definition,
                CASE WHEN w.current_step IS NOT NULL THEN json_build_object(
                    'step', w.current_step,
                    'assignee', {current_assignee},
                    'due_at', w.current_due_at, 'escalated_at', w.current_escalated_at)
                    END AS current,
                COALESCE((
                    SELECT json_agg(json_build_object(
                               'number', s.step_no,
                               'approver', {step_approver},
                               'sla_hours', s.sla_hours, 'status', s.status,
                               'due_at', s.due_at, 'escalated_at', s.escalated_at,
                               'delegated_by', s.delegated_by, 'delegated_to', s.delegated_to,
                               'decided_by', s.decided_by, 'decided_at', s.decided_at,
                               'comment', s.comment)
                           ORDER BY s.step_no)
                    FROM workflow_steps s
                    WHERE s.workflow_id = w.id AND s.tenant_id = w.tenant_id
                ), '[]') AS steps{discussion}
         FROM workflows w
         WHERE ",
        current_assignee = approver_json("w.current_approver_id", "w.current_assignee_role"),
        step_approver = approver_json("s.approver_id", "s.approver_role"),
    ))
}

#[derive(sqlx::FromRow)]
struct WorkflowRow {
    id: Uuid,
    tenant_id: String,
    title: String,
    description: String,
    priority: String,
    status: String,
    applicant_id: String,
    applicant_name: String,
    due_date: Option<NaiveDate>,
    step_count: i32,
    comment_count: i32,
    attachment_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    last_event_id: Uuid,
    version: i64,
    definition: Option<Json<DefinitionRef>>,
    current: Option<Json<AssignmentView>>,
    steps: Json<Vec<StepView>>,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    workflow: WorkflowRow,
    comments: Json<Vec<CommentView>>,
    attachments: Json<Vec<AttachmentView>>,
}

/// The schema's CHECK constraints make these impossible; if one happens the row is corrupt.
fn corrupt(what: &str, value: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} {value} in the read model").into())
}

fn number(what: &str, value: i32) -> Result<u32, sqlx::Error> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

impl DetailRow {
    fn into_detail(self) -> Result<WorkflowDetail, sqlx::Error> {
        Ok(WorkflowDetail {
            workflow: self.workflow.into_view()?,
            comments: self.comments.0,
            attachments: self.attachments.0,
        })
    }
}

impl WorkflowRow {
    fn into_view(self) -> Result<WorkflowView, sqlx::Error> {
        Ok(WorkflowView {
            id: self.id,
            tenant_id: self.tenant_id,
            title: self.title,
            description: self.description,
            priority: Priority::parse(&self.priority)
                .ok_or_else(|| corrupt("priority", &self.priority))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            applicant_id: self.applicant_id,
            applicant_name: self.applicant_name,
            definition: self.definition.map(|Json(definition)| definition),
            due_date: self.due_date,
            current: self.current.map(|Json(current)| current),
            step_count: number("step count", self.step_count)?,
            comment_count: number("comment count", self.comment_count)?,
            attachment_count: number("attachment count", self.attachment_count)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            submitted_at: self.submitted_at,
            completed_at: self.completed_at,
            last_event_id: self.last_event_id,
            version: self.version,
            steps: self.steps.0,
        })
    }
}
