//! Tenant-scoped reads. Every query takes the caller's tenant and filters by it: a workflow of
//! another tenant is indistinguishable from one that does not exist.

use crate::cursor::Cursor;
use crate::views::{StepStatus, StepView, WorkflowView};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use workflow_domain::{Priority, Status};

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

pub async fn get_workflow(
    pool: &PgPool,
    tenant_id: &str,
    id: Uuid,
) -> Result<Option<WorkflowView>, QueryError> {
    let mut query = select_workflows();
    query
        .push("w.tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND w.id = ")
        .push_bind(id);
    let row: Option<WorkflowRow> = query.build_query_as().fetch_optional(pool).await?;
    Ok(row.map(WorkflowRow::into_view).transpose()?)
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
    let mut query = select_workflows();
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
    let mut query = select_workflows();
    query.push("w.id = ANY(").push_bind(ids).push(")");
    let rows: Vec<WorkflowRow> = query.build_query_as().fetch_all(conn).await?;
    rows.into_iter().map(WorkflowRow::into_view).collect()
}

/// Workflows with their steps, in one statement so row and steps come from the same snapshot.
/// Callers append the conditions.
fn select_workflows<'a>() -> QueryBuilder<'a, Postgres> {
    QueryBuilder::new(
        "SELECT w.id, w.tenant_id, w.title, w.description, w.priority, w.status, w.applicant_id,
                w.applicant_name, w.current_step, w.current_approver_id, w.step_count,
                w.created_at, w.updated_at, w.submitted_at, w.completed_at, w.last_event_id,
                w.version,
                COALESCE((
                    SELECT json_agg(json_build_object(
                               'step_no', s.step_no, 'approver_id', s.approver_id,
                               'status', s.status, 'decided_by', s.decided_by,
                               'decided_at', s.decided_at, 'comment', s.comment)
                           ORDER BY s.step_no)
                    FROM workflow_steps s
                    WHERE s.workflow_id = w.id AND s.tenant_id = w.tenant_id
                ), '[]') AS steps
         FROM workflows w
         WHERE ",
    )
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
    current_step: Option<i32>,
    current_approver_id: Option<String>,
    step_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    last_event_id: Uuid,
    version: i64,
    steps: Json<Vec<StepRow>>,
}

#[derive(serde::Deserialize)]
struct StepRow {
    step_no: i32,
    approver_id: String,
    status: String,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    comment: Option<String>,
}

/// The schema's CHECK constraints make these impossible; if one happens the row is corrupt.
fn corrupt(what: &str, value: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} {value} in the read model").into())
}

fn number(what: &str, value: i32) -> Result<u32, sqlx::Error> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

impl WorkflowRow {
    fn into_view(self) -> Result<WorkflowView, sqlx::Error> {
        let steps = self
            .steps
            .0
            .into_iter()
            .map(|step| {
                Ok(StepView {
                    number: number("step number", step.step_no)?,
                    approver_id: step.approver_id,
                    status: StepStatus::parse(&step.status)
                        .ok_or_else(|| corrupt("step status", &step.status))?,
                    decided_by: step.decided_by,
                    decided_at: step.decided_at,
                    comment: step.comment,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
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
            current_step: self
                .current_step
                .map(|step| number("current step", step))
                .transpose()?,
            current_approver_id: self.current_approver_id,
            step_count: number("step count", self.step_count)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            submitted_at: self.submitted_at,
            completed_at: self.completed_at,
            last_event_id: self.last_event_id,
            version: self.version,
            steps,
        })
    }
}
