//! Reads, answered by query-svc from the read model.

use super::limits;
use super::loader::WorkflowLoader;
use super::types::{broken_contract, Priority, Workflow, WorkflowStatus};
use super::{authorized, canonical, data, non_negative};
use crate::backends::Backends;
use crate::caller::Caller;
use crate::errors::graphql_error;
use async_graphql::connection::{Connection, ConnectionNameType, Edge, EdgeNameType};
use async_graphql::dataloader::DataLoader;
use async_graphql::{
    Context, Enum, InputObject, Json, Object, OutputType, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use proto::workflow::v1 as pb;

#[derive(Default)]
pub(crate) struct WorkflowQuery;

/// Narrows `workflows`; every field is optional and they combine with AND.
#[derive(InputObject, Default)]
struct WorkflowFilter {
    status: Option<WorkflowStatus>,
    priority: Option<Priority>,
    applicant_id: Option<String>,
    /// Workflows whose current step waits for this user (or, with `assigneeRoles`, for one of
    /// these roles).
    assignee_id: Option<String>,
    #[graphql(default)]
    assignee_roles: Vec<String>,
    definition_id: Option<ID>,
    /// Inclusive.
    created_after: Option<DateTime<Utc>>,
    /// Exclusive.
    created_before: Option<DateTime<Utc>>,
    /// Only workflows whose current step is past its deadline.
    #[graphql(default)]
    overdue: bool,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
enum WorkflowSortField {
    CreatedAt,
    UpdatedAt,
    /// Workflows without a due date come after every date.
    DueDate,
    Priority,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
enum SortDirection {
    Asc,
    Desc,
}

/// Where a search hit matched, best first.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
enum SearchMatch {
    Title,
    Description,
    Comment,
}

/// Connection-level fields of every list.
#[derive(SimpleObject)]
struct ListFields {
    /// All matches, not just this page.
    total_count: u64,
}

#[derive(SimpleObject)]
struct SearchEdgeFields {
    matched: Option<SearchMatch>,
}

/// One event of a workflow's audit trail.
#[derive(SimpleObject)]
struct HistoryEntry {
    event_id: ID,
    /// 1..n: the workflow version this event made.
    version: i64,
    /// e.g. `WorkflowStepCompleted`.
    event_type: String,
    occurred_at: DateTime<Utc>,
    /// Who caused it (`deadline-watcher` for escalations).
    user_id: String,
    /// Shared by everything one request chain caused.
    correlation_id: ID,
    /// The command that caused it.
    causation_id: ID,
    /// The event's data, in the current shape of its type.
    data: Json<serde_json::Value>,
}

#[derive(SimpleObject)]
struct StatusCount {
    status: WorkflowStatus,
    count: u64,
}

#[derive(SimpleObject)]
pub(super) struct Dashboard {
    /// Every status, zeros included.
    by_status: Vec<StatusCount>,
    /// Steps waiting for the caller, directly, through a role, or delegated.
    pending_for_me: u64,
    overdue: u64,
    completed_today: u64,
    /// Where "today" began in the requested time zone.
    today_started_at: Option<DateTime<Utc>>,
    /// From first submission to final decision, over approved and rejected workflows.
    average_decision_seconds: Option<f64>,
}

type WorkflowConnection = Connection<String, Workflow, ListFields>;

/// Search hits carry where they matched, so they are a connection type of their own.
type SearchConnection = Connection<
    String,
    Workflow,
    ListFields,
    SearchEdgeFields,
    SearchConnectionName,
    SearchEdgeName,
>;

struct SearchConnectionName;

impl ConnectionNameType for SearchConnectionName {
    fn type_name<T: OutputType>() -> String {
        "WorkflowSearchConnection".to_owned()
    }
}

struct SearchEdgeName;

impl EdgeNameType for SearchEdgeName {
    fn type_name<T: OutputType>() -> String {
        "WorkflowSearchEdge".to_owned()
    }
}

/// One page of workflow edges as a Relay connection. Paging is forward only; Relay allows
/// `hasPreviousPage: false` when the previous page is not known.
fn connection(
    edges: Vec<pb::WorkflowEdge>,
    has_next_page: bool,
    total_count: u64,
) -> Result<WorkflowConnection> {
    let mut connection =
        Connection::with_additional_fields(false, has_next_page, ListFields { total_count });
    for edge in edges {
        let node = edge
            .node
            .ok_or_else(|| broken_contract("an edge without a node"))?;
        connection
            .edges
            .push(Edge::new(edge.cursor, node.try_into()?));
    }
    Ok(connection)
}

/// One workflow from query-svc, at least at `min_version` when given.
pub(crate) async fn workflow(
    ctx: &Context<'_>,
    workflow_id: String,
    min_version: Option<i64>,
) -> Result<Workflow> {
    let (caller, backends) = authorized(ctx)?;
    let request = caller.request(pb::GetWorkflowRequest {
        workflow_id,
        min_version,
    });
    let workflow = backends
        .query
        .clone()
        .get_workflow(request)
        .await
        .map_err(graphql_error)?;
    workflow.into_inner().try_into()
}

/// An explicit null leaves the page size to query-svc (0 on the wire).
pub(super) fn page_size(first: Option<i32>) -> Result<u32> {
    first.map_or(Ok(0), |first| non_negative("first", first))
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

#[Object]
impl WorkflowQuery {
    /// One workflow of the caller's tenant, with its steps and its latest 100 comments and
    /// attachments (`commentCount` and `attachmentCount` count all of them; `workflowHistory`
    /// holds every one). With `minVersion` (the `version` a mutation returned), waits up to 2 s
    /// for the read side to catch up; if it does not, the answer has `stale: true`. Without it,
    /// the lookups of a request are answered by batched calls.
    #[graphql(complexity = "limits::single(
        if min_version.is_some() { limits::WAIT } else { limits::LOOKUP },
        child_complexity,
    )")]
    async fn workflow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        min_version: Option<i64>,
    ) -> Result<Workflow> {
        if min_version.is_some() {
            return workflow(ctx, canonical(id), min_version).await;
        }
        // Verified here too, so a bad token is reported for this field as everywhere else.
        authorized(ctx)?;
        // Checked before batching: one malformed id must not fail the other lookups.
        let id = uuid::Uuid::parse_str(&id).map_err(|_| {
            graphql_error(platform::errors::invalid_argument("id", "must be a UUID"))
        })?;
        data::<DataLoader<WorkflowLoader>>(ctx)?
            .load_one(id.to_string())
            .await?
            .ok_or_else(|| {
                graphql_error(platform::errors::status(
                    platform::errors::ErrorCode::NotFound,
                    "workflow not found",
                    Default::default(),
                ))
            })
    }

    /// The caller's tenant's workflows, filtered and sorted, a page at a time.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "limits::page(limits::LIST, first, child_complexity)")]
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Shorthand for `filter: { status }`.")] status: Option<WorkflowStatus>,
        filter: Option<WorkflowFilter>,
        #[graphql(desc = "Default: CREATED_AT.")] sort: Option<WorkflowSortField>,
        #[graphql(desc = "Default: newest, latest or most urgent first; earliest due date first.")]
        direction: Option<SortDirection>,
        #[graphql(default_with = "limits::default_page()")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WorkflowConnection> {
        let (caller, backends) = authorized(ctx)?;
        let filter = filter.unwrap_or_default();
        let request = caller.request(pb::ListWorkflowsRequest {
            status: status
                .or(filter.status)
                .map_or(pb::WorkflowStatus::Unspecified, Into::into)
                .into(),
            page_size: page_size(first)?,
            after: after.unwrap_or_default(),
            priority: filter
                .priority
                .map_or(pb::Priority::Unspecified, Into::into)
                .into(),
            applicant_id: filter.applicant_id.unwrap_or_default(),
            assignee_id: filter.assignee_id.unwrap_or_default(),
            assignee_roles: filter.assignee_roles,
            definition_id: filter.definition_id.map(canonical).unwrap_or_default(),
            created_after: filter.created_after.map(timestamp),
            created_before: filter.created_before.map(timestamp),
            overdue: filter.overdue,
            sort: match sort.unwrap_or(WorkflowSortField::CreatedAt) {
                WorkflowSortField::CreatedAt => pb::WorkflowSort::CreatedAt,
                WorkflowSortField::UpdatedAt => pb::WorkflowSort::UpdatedAt,
                WorkflowSortField::DueDate => pb::WorkflowSort::DueDate,
                WorkflowSortField::Priority => pb::WorkflowSort::Priority,
            }
            .into(),
            direction: match direction {
                None => pb::SortDirection::Unspecified,
                Some(SortDirection::Asc) => pb::SortDirection::Asc,
                Some(SortDirection::Desc) => pb::SortDirection::Desc,
            }
            .into(),
        });
        let page = backends
            .query
            .clone()
            .list_workflows(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        connection(page.edges, page.has_next_page, page.total_count)
    }

    /// Steps waiting for the caller: assigned to them, to a role they hold, or delegated to
    /// them; most recently assigned first.
    #[graphql(complexity = "limits::page(limits::LIST, first, child_complexity)")]
    async fn my_tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "limits::default_page()")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WorkflowConnection> {
        let (caller, backends) = authorized(ctx)?;
        let request = caller.request(pb::ListMyTasksRequest {
            page_size: page_size(first)?,
            after: after.unwrap_or_default(),
        });
        let page = backends
            .query
            .clone()
            .list_my_tasks(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        connection(page.edges, page.has_next_page, page.total_count)
    }

    /// Workflows whose title, description or comments contain `text` (Japanese substrings of
    /// any length, English words case-insensitively), best matches first.
    #[graphql(complexity = "limits::page(limits::SEARCH, first, child_complexity)")]
    async fn search_workflows(
        &self,
        ctx: &Context<'_>,
        text: String,
        #[graphql(default_with = "limits::default_page()")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<SearchConnection> {
        let (caller, backends) = authorized(ctx)?;
        let request = caller.request(pb::SearchWorkflowsRequest {
            text,
            page_size: page_size(first)?,
            after: after.unwrap_or_default(),
        });
        let page = backends
            .query
            .clone()
            .search_workflows(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        let mut connection = Connection::with_additional_fields(
            false,
            page.has_next_page,
            ListFields {
                total_count: page.total_count,
            },
        );
        for edge in page.edges {
            let matched = match edge.matched() {
                pb::SearchMatch::Title => Some(SearchMatch::Title),
                pb::SearchMatch::Description => Some(SearchMatch::Description),
                pb::SearchMatch::Comment => Some(SearchMatch::Comment),
                pb::SearchMatch::Unspecified => None,
            };
            let node = edge
                .node
                .ok_or_else(|| broken_contract("a search hit without a node"))?;
            connection.edges.push(Edge::with_additional_fields(
                edge.cursor,
                node.try_into()?,
                SearchEdgeFields { matched },
            ));
        }
        Ok(connection)
    }

    /// The audit trail of a workflow, read from the event store: its events, oldest first,
    /// `first` (1..=100) at a time. Fewer than `first` entries means there are no more; the next
    /// page starts after the `version` of the last entry (`afterVersion`).
    #[graphql(complexity = "limits::page(limits::HISTORY, Some(first), child_complexity)")]
    async fn workflow_history(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "proto::limits::MAX_HISTORY_PAGE_SIZE as i32")] first: i32,
        #[graphql(default)] after_version: i64,
    ) -> Result<Vec<HistoryEntry>> {
        let (caller, backends) = authorized(ctx)?;
        let page_size = non_negative("first", first)?;
        if page_size == 0 {
            return Err(graphql_error(platform::errors::invalid_argument(
                "first",
                "must be at least 1",
            )));
        }
        let request = caller.request(pb::GetWorkflowHistoryRequest {
            workflow_id: canonical(id),
            page_size,
            after_version,
        });
        let history = backends
            .query
            .clone()
            .get_workflow_history(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        history
            .entries
            .into_iter()
            .map(|entry| {
                Ok(HistoryEntry {
                    occurred_at: super::types::required_time(
                        "history_entry.occurred_at",
                        entry.occurred_at,
                    )?,
                    data: Json(
                        serde_json::from_str(&entry.data_json)
                            .map_err(|_| broken_contract("history data that is not JSON"))?,
                    ),
                    event_id: ID(entry.event_id),
                    version: entry.version,
                    event_type: entry.event_type,
                    user_id: entry.user_id,
                    correlation_id: ID(entry.correlation_id),
                    causation_id: ID(entry.causation_id),
                })
            })
            .collect()
    }

    /// Counts for the caller's tenant; "today" in `timeZone` (an IANA name such as
    /// `Asia/Tokyo` or an offset such as `+09:00`; UTC when absent).
    #[graphql(complexity = "limits::single(limits::DASHBOARD, child_complexity)")]
    async fn dashboard(&self, ctx: &Context<'_>, time_zone: Option<String>) -> Result<Dashboard> {
        let (caller, backends) = authorized(ctx)?;
        dashboard_with(&caller, backends, time_zone).await
    }
}

/// The dashboard as `caller` sees it: what `dashboard` answers and `dashboardUpdated` pushes.
pub(super) async fn dashboard_with(
    caller: &Caller,
    backends: &Backends,
    time_zone: Option<String>,
) -> Result<Dashboard> {
    let request = caller.request(pb::GetDashboardRequest {
        time_zone: time_zone.unwrap_or_default(),
    });
    let dashboard = backends
        .query
        .clone()
        .get_dashboard(request)
        .await
        .map_err(graphql_error)?
        .into_inner();
    Ok(Dashboard {
        by_status: dashboard
            .by_status
            .iter()
            .map(|count| {
                Ok(StatusCount {
                    status: count.status().try_into()?,
                    count: count.count,
                })
            })
            .collect::<Result<_>>()?,
        pending_for_me: dashboard.pending_for_me,
        overdue: dashboard.overdue,
        completed_today: dashboard.completed_today,
        today_started_at: super::types::optional_time(dashboard.today_started_at)?,
        average_decision_seconds: dashboard.average_decision_seconds,
    })
}
