//! Tenant-scoped reads. Every query takes the caller's tenant and filters by it: a workflow of
//! another tenant is indistinguishable from one that does not exist.

use crate::cursor::{self, Cursor, Key, KeyKind, Order, SortDirection};
use crate::views::{
    AssignmentView, AttachmentView, CommentView, StepView, WorkflowDetail, WorkflowView,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use workflow_domain::{Approver, DefinitionId, DefinitionRef, Priority, Role, Status, UserId};

/// The largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 100;

/// How many of a workflow's latest comments, and of its latest attachments, its detail holds:
/// a workflow with thousands of them stays readable in one answer, and the counts (and the
/// event store's history) still account for every one.
const DISCUSSION_LIMIT: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cursor was not issued by this list with this order")]
    InvalidCursor,
    #[error("page size must be between 1 and {MAX_PAGE_SIZE}")]
    InvalidPageSize,
    #[error("time zone {0} is not known")]
    UnknownTimeZone(String),
    /// A filter's time lies outside the years the read model can compare; names the filter.
    #[error("must be within the years {} to {}", cursor::YEARS.start(), cursor::YEARS.end())]
    TimeOutOfRange(&'static str),
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueryError {
    /// Whether the same query can succeed later (the database is unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            QueryError::Database(error) => crate::is_transient(error),
            QueryError::InvalidCursor
            | QueryError::InvalidPageSize
            | QueryError::UnknownTimeZone(_)
            | QueryError::TimeOutOfRange(_) => false,
        }
    }
}

/// One page of a list. Each item carries the cursor that continues after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next_page: bool,
    /// Of the whole list, every page together.
    pub total_count: u64,
}

pub type WorkflowPage = Page<WorkflowView>;

/// Which workflows a list holds; each condition that is set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub applicant_id: Option<UserId>,
    /// Only workflows whose current step waits for this user, as [`list_my_tasks`] lists them.
    pub assignee: Option<Assignee>,
    pub definition_id: Option<DefinitionId>,
    /// Created at or after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Only workflows in progress whose current step was due before this instant (now, for
    /// "overdue").
    pub overdue_at: Option<DateTime<Utc>>,
}

/// A user a step may wait for: directly, or through a role they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    pub user_id: UserId,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkflowSort {
    CreatedAt,
    UpdatedAt,
    /// Workflows without a due date come after every date.
    DueDate,
    Priority,
}

/// A list of workflows: which, and in what order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowQuery {
    pub filter: WorkflowFilter,
    pub sort: WorkflowSort,
    pub direction: SortDirection,
}

/// Newest first.
impl Default for WorkflowQuery {
    fn default() -> Self {
        Self {
            filter: WorkflowFilter::default(),
            sort: WorkflowSort::CreatedAt,
            direction: SortDirection::Descending,
        }
    }
}

/// The list before filters and sorts existed: of one status (or all), newest first.
impl From<Option<Status>> for WorkflowQuery {
    fn from(status: Option<Status>) -> Self {
        Self {
            filter: WorkflowFilter {
                status,
                ..WorkflowFilter::default()
            },
            ..Self::default()
        }
    }
}

const fn key(sql: &'static str, kind: KeyKind) -> Key {
    Key { sql, kind }
}

impl WorkflowSort {
    /// When the caller names no direction: newest, most recently changed, soonest due, most
    /// urgent first.
    pub fn default_direction(self) -> SortDirection {
        match self {
            WorkflowSort::DueDate => SortDirection::Ascending,
            WorkflowSort::CreatedAt | WorkflowSort::UpdatedAt | WorkflowSort::Priority => {
                SortDirection::Descending
            }
        }
    }

    /// Each key is the expression of an index of the migrations, so the index serves the sort.
    fn order(self, direction: SortDirection) -> Order {
        const CREATED_AT: &[Key] = &[key("w.created_at", KeyKind::Timestamp)];
        const UPDATED_AT: &[Key] = &[key("w.updated_at", KeyKind::Timestamp)];
        const DUE_DATE: &[Key] = &[key(
            "COALESCE(w.due_date, DATE '9999-12-31')",
            KeyKind::Date,
        )];
        const PRIORITY: &[Key] = &[key("workflow_priority_rank(w.priority)", KeyKind::Int)];
        let (name, keys) = match self {
            WorkflowSort::CreatedAt => ("created_at", CREATED_AT),
            WorkflowSort::UpdatedAt => ("updated_at", UPDATED_AT),
            WorkflowSort::DueDate => ("due_date", DUE_DATE),
            WorkflowSort::Priority => ("priority", PRIORITY),
        };
        Order {
            name,
            keys,
            direction,
        }
    }
}

/// "My tasks": newest assignment first.
const MY_TASKS: Order = Order {
    name: "assigned_at",
    keys: &[key("w.current_assigned_at", KeyKind::Timestamp)],
    direction: SortDirection::Descending,
};

/// One workflow with its latest comments and attachments; `None` if it does not exist in the
/// tenant.
pub async fn get_workflow(
    pool: &PgPool,
    tenant_id: &str,
    id: Uuid,
) -> Result<Option<WorkflowDetail>, QueryError> {
    Ok(get_workflows(pool, tenant_id, &[id])
        .await?
        .into_iter()
        .next())
}

/// The workflows among `ids` that the tenant has, with the latest of their discussion
/// ([`DISCUSSION_LIMIT`] comments and as many attachments), in one statement;
/// the others are left out. What a client asking for several workflows at once needs, instead
/// of one round trip each.
pub async fn get_workflows(
    pool: &PgPool,
    tenant_id: &str,
    ids: &[Uuid],
) -> Result<Vec<WorkflowDetail>, QueryError> {
    let mut query = select_workflows(Discussion::Included);
    query
        .push("w.tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND w.id = ANY(")
        .push_bind(ids.to_vec())
        .push(")");
    let rows: Vec<DetailRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(DetailRow::into_detail)
        .collect::<Result<_, _>>()?)
}

/// The given workflows of any tenant, as [`get_workflows`] reads them, in one statement: what
/// a change feed reads once per commit notification, before it filters by tenant per reader.
pub async fn changed_workflows(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<WorkflowDetail>, QueryError> {
    let mut query = select_workflows(Discussion::Included);
    query.push("w.id = ANY(").push_bind(ids.to_vec()).push(")");
    let rows: Vec<DetailRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(DetailRow::into_detail)
        .collect::<Result<_, _>>()?)
}

/// The current step of each workflow (of every tenant) that has one, and whom it waits for:
/// where a change feed starts knowing whom a change takes a task from.
pub async fn current_assignees(pool: &PgPool) -> Result<Vec<(Uuid, u32, Approver)>, QueryError> {
    let rows: Vec<(Uuid, i32, Json<Approver>)> = sqlx::query_as(&format!(
        "SELECT w.id, w.current_step, {} FROM workflows w WHERE w.current_step IS NOT NULL",
        approver_json("w.current_approver_id", "w.current_assignee_role")
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, step, Json(approver))| Ok((id, number("current step", step)?, approver)))
        .collect()
}

/// `first` workflows (1..=[`MAX_PAGE_SIZE`]) of the list after the `after` cursor, which must
/// come from the same list in the same order (the filter may differ, though the page then
/// continues at the cursor's place in the other list).
pub async fn list_workflows(
    pool: &PgPool,
    tenant_id: &str,
    query: impl Into<WorkflowQuery>,
    first: u32,
    after: Option<&str>,
) -> Result<WorkflowPage, QueryError> {
    let WorkflowQuery {
        filter,
        sort,
        direction,
    } = query.into();
    for (field, at) in [
        ("created_after", filter.created_after),
        ("created_before", filter.created_before),
    ] {
        if at.is_some_and(|at| !cursor::in_range(at)) {
            return Err(QueryError::TimeOutOfRange(field));
        }
    }
    fetch_page(
        pool,
        |q| push_workflows(q, tenant_id, &filter),
        &sort.order(direction),
        first,
        after,
    )
    .await
}

/// The workflows whose current step waits for `me`: assigned to them (directly, or delegated to
/// them), or to a role they hold unless they applied for the workflow. Newest assignment first.
pub async fn list_my_tasks(
    pool: &PgPool,
    tenant_id: &str,
    me: &Assignee,
    first: u32,
    after: Option<&str>,
) -> Result<WorkflowPage, QueryError> {
    let filter = WorkflowFilter {
        assignee: Some(me.clone()),
        ..WorkflowFilter::default()
    };
    fetch_page(
        pool,
        |q| push_workflows(q, tenant_id, &filter),
        &MY_TASKS,
        first,
        after,
    )
    .await
}

/// `FROM … WHERE …` of the tenant's workflows that pass the filter.
fn push_workflows<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    tenant_id: &'a str,
    filter: &'a WorkflowFilter,
) {
    query
        .push(" FROM workflows w WHERE w.tenant_id = ")
        .push_bind(tenant_id);
    let WorkflowFilter {
        status,
        priority,
        applicant_id,
        assignee,
        definition_id,
        created_after,
        created_before,
        overdue_at,
    } = filter;
    if let Some(status) = status {
        query.push(" AND w.status = ").push_bind(status.as_str());
    }
    if let Some(priority) = priority {
        query
            .push(" AND w.priority = ")
            .push_bind(priority.as_str());
    }
    if let Some(applicant_id) = applicant_id {
        query
            .push(" AND w.applicant_id = ")
            .push_bind(applicant_id.as_str());
    }
    if let Some(assignee) = assignee {
        push_waiting_for(query, assignee);
    }
    if let Some(definition_id) = definition_id {
        query
            .push(" AND w.definition_id = ")
            .push_bind(definition_id.as_uuid());
    }
    if let Some(after) = created_after {
        query.push(" AND w.created_at >= ").push_bind(*after);
    }
    if let Some(before) = created_before {
        query.push(" AND w.created_at < ").push_bind(*before);
    }
    if let Some(at) = overdue_at {
        push_overdue(query, *at);
    }
}

/// Appends: the workflow's current step waits for `who` — assigned to them (directly, or
/// delegated to them, which assigns it to them), or to a role they hold unless they applied
/// for the workflow, since the domain refuses an applicant deciding their own workflow through
/// a role.
pub(crate) fn push_waiting_for<'a>(query: &mut QueryBuilder<'a, Postgres>, who: &'a Assignee) {
    let roles: Vec<&str> = who.roles.iter().map(Role::as_str).collect();
    query
        .push(" AND (w.current_approver_id = ")
        .push_bind(who.user_id.as_str())
        .push(" OR (w.current_assignee_role = ANY(")
        .push_bind(roles)
        .push(") AND w.applicant_id <> ")
        .push_bind(who.user_id.as_str())
        .push("))");
}

/// Appends: the workflow is in progress and its current step was due before `at`. The status
/// is written out, not bound, so the planner matches the partial index on overdue steps.
pub(crate) fn push_overdue(query: &mut QueryBuilder<'_, Postgres>, at: DateTime<Utc>) {
    query
        .push(format_args!(
            " AND w.status = '{}' AND w.current_due_at < ",
            Status::InProgress.as_str()
        ))
        .push_bind(at);
}

/// What a list holds per row: read from the row after the workflow's own columns.
pub(crate) trait Listed: Sized {
    /// Selected after the workflow's columns, each starting with a comma.
    const COLUMNS: &'static str;

    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error>;
}

impl Listed for WorkflowView {
    const COLUMNS: &'static str = "";

    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        WorkflowRow::from_row(row)?.into_view()
    }
}

/// A page of the rows `rows` appends (`FROM …` naming the workflow `w`, then `WHERE …`) in
/// `order`, and the number of all of them. Both statements read one snapshot, so the count
/// matches the rows.
pub(crate) async fn fetch_page<'q, T: Listed>(
    pool: &PgPool,
    rows: impl Fn(&mut QueryBuilder<'q, Postgres>),
    order: &Order,
    first: u32,
    after: Option<&str>,
) -> Result<Page<T>, QueryError> {
    if !(1..=MAX_PAGE_SIZE).contains(&first) {
        return Err(QueryError::InvalidPageSize);
    }
    let after: Option<Cursor> = after
        .map(|raw| order.decode(raw).ok_or(QueryError::InvalidCursor))
        .transpose()?;
    let mut page = QueryBuilder::new(format!(
        "SELECT {}{}{}",
        workflow_columns(Discussion::Omitted),
        T::COLUMNS,
        order.key_columns()
    ));
    rows(&mut page);
    if let Some(after) = &after {
        order.push_after(&mut page, after);
    }
    order.push_order_by(&mut page);
    // One extra row answers has_next_page.
    page.push(" LIMIT ").push_bind(i64::from(first) + 1);
    let mut count = QueryBuilder::new("SELECT count(*)");
    rows(&mut count);

    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut found: Vec<PgRow> = page.build().fetch_all(&mut *tx).await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.commit().await?;

    let has_next_page = found.len() > first as usize;
    found.truncate(first as usize);
    let items = found
        .iter()
        .map(|row| Ok((order.encode(&order.cursor_of(row)?), T::from_row(row)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Page {
        items,
        has_next_page,
        // A count is never negative.
        total_count: total.unsigned_abs(),
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
fn select_workflows<'a>(discussion: Discussion) -> QueryBuilder<'a, Postgres> {
    QueryBuilder::new(format!(
        "SELECT {} FROM workflows w WHERE ",
        workflow_columns(discussion)
    ))
}

/// The columns of a workflow `w` (and its discussion) that [`WorkflowRow`] and [`DetailRow`]
/// read.
///
/// Nested values are built as JSON objects shaped like the views (and the domain types in
/// them), so serde reads them without any per-field code.
fn workflow_columns(discussion: Discussion) -> String {
    let discussion = match discussion {
        Discussion::Omitted => String::new(),
        // The latest ones, newest first through the (workflow_id, version) indexes, then put
        // back in the order they happened.
        Discussion::Included => format!(
            ",
                COALESCE((
                    SELECT json_agg(json_build_object(
                               'id', c.event_id, 'version', c.version,
                               'author_id', c.author_id,
                               'author_name', c.author_name, 'body', c.body,
                               'created_at', c.created_at)
                           ORDER BY c.version)
                    FROM (SELECT * FROM workflow_comments c
                          WHERE c.workflow_id = w.id AND c.tenant_id = w.tenant_id
                          ORDER BY c.version DESC LIMIT {DISCUSSION_LIMIT}) c
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
                    FROM (SELECT * FROM workflow_attachments a
                          WHERE a.workflow_id = w.id AND a.tenant_id = w.tenant_id
                          ORDER BY a.version DESC LIMIT {DISCUSSION_LIMIT}) a
                ), '[]') AS attachments"
        ),
    };
    format!(
        "w.id, w.tenant_id, w.title, w.description, w.priority, w.status, w.applicant_id,
                w.applicant_name, w.due_date, w.step_count, w.comment_count, w.attachment_count,
                w.created_at, w.updated_at, w.submitted_at, w.first_submitted_at,
                w.completed_at, w.last_event_id, w.version,
                CASE WHEN w.definition_id IS NOT NULL THEN json_build_object(
                    'id', w.definition_id, 'version', w.definition_version,
                    'name', w.definition_name) END AS definition,
                CASE WHEN w.current_step IS NOT NULL THEN json_build_object(
                    'step', w.current_step,
                    'assignee', {current_assignee}, 'assigned_at', w.current_assigned_at,
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
                ), '[]') AS steps{discussion}",
        current_assignee = approver_json("w.current_approver_id", "w.current_assignee_role"),
        step_approver = approver_json("s.approver_id", "s.approver_role"),
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
    due_date: Option<NaiveDate>,
    step_count: i32,
    comment_count: i32,
    attachment_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    first_submitted_at: Option<DateTime<Utc>>,
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
            first_submitted_at: self.first_submitted_at,
            completed_at: self.completed_at,
            last_event_id: self.last_event_id,
            version: self.version,
            steps: self.steps.0,
        })
    }
}
