//! The gRPC handlers. The tenant always comes from the verified token, never from the request.

use crate::convert;
use crate::watch::ChangeFeed;
use chrono::Utc;
use event_store::EventStore;
use futures::stream::BoxStream;
use platform::auth::identity;
use platform::errors::{self, invalid_argument, ErrorCode};
use proto::limits::{DEFAULT_PAGE_SIZE, MAX_BATCH_GET_WORKFLOWS, MAX_HISTORY_PAGE_SIZE};
use proto::workflow::v1::workflow_query_service_server::WorkflowQueryService;
use proto::workflow::v1::{
    BatchGetWorkflowsRequest, BatchGetWorkflowsResponse, GetWorkflowHistoryRequest, WorkflowHistory,
};
use proto::workflow::v1::{
    Dashboard, GetDashboardRequest, GetWorkflowRequest, ListMyTasksRequest, ListMyTasksResponse,
    ListWorkflowsRequest, ListWorkflowsResponse, SearchWorkflowsRequest, SearchWorkflowsResponse,
    WatchWorkflowChangesRequest, Workflow, WorkflowChange,
};
use read_model::freshness::{Freshness, MAX_WAIT};
use read_model::{QueryError, SearchText, Zone, MAX_PAGE_SIZE};
use sqlx::PgPool;
use std::collections::HashMap;
use tonic::{Request, Response, Status};
use workflow_domain::WorkflowId;

pub(crate) struct QueryService {
    pool: PgPool,
    freshness: Freshness,
    events: EventStore,
    changes: ChangeFeed,
}

impl QueryService {
    pub(crate) fn new(
        pool: PgPool,
        freshness: Freshness,
        events: EventStore,
        changes: ChangeFeed,
    ) -> Self {
        Self {
            pool,
            freshness,
            events,
            changes,
        }
    }
}

#[tonic::async_trait]
impl WorkflowQueryService for QueryService {
    type WatchWorkflowChangesStream = BoxStream<'static, Result<WorkflowChange, Status>>;

    async fn watch_workflow_changes(
        &self,
        request: Request<WatchWorkflowChangesRequest>,
    ) -> Result<Response<Self::WatchWorkflowChangesStream>, Status> {
        let caller = identity(&request)?;
        Ok(Response::new(self.changes.watch(&caller)))
    }

    async fn get_workflow(
        &self,
        request: Request<GetWorkflowRequest>,
    ) -> Result<Response<Workflow>, Status> {
        let caller = identity(&request)?;
        let id = WorkflowId::parse("workflow_id", &request.get_ref().workflow_id)
            .map_err(|e| invalid_argument(&e.field, &e.message))?;
        let read = || read_model::get_workflow(&self.pool, &caller.tenant_id, id.as_uuid());
        let (detail, stale) = match request.get_ref().min_version {
            None => (read().await.map_err(query_error)?, false),
            Some(min_version) => {
                let found = self
                    .freshness
                    .at_least(id.as_uuid(), min_version, MAX_WAIT, read, |detail| {
                        detail.workflow.version
                    })
                    .await
                    .map_err(query_error)?;
                (found.value, found.stale)
            }
        };
        // Another tenant's workflow is reported exactly like a missing one — also after a wait
        // for a version, where "not projected yet" cannot be told from "not yours".
        let detail = detail.ok_or_else(|| {
            errors::status(ErrorCode::NotFound, "workflow not found", HashMap::new())
        })?;
        Ok(Response::new(Workflow {
            stale,
            ..convert::workflow_detail(detail)
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let query = convert::workflow_query(&request, Utc::now())?;
        let (first, after) = page(request.page_size, &request.after);
        let page = read_model::list_workflows(&self.pool, &caller.tenant_id, query, first, after)
            .await
            .map_err(query_error)?;
        Ok(Response::new(ListWorkflowsResponse {
            edges: convert::edges(page.items),
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        }))
    }

    async fn list_my_tasks(
        &self,
        request: Request<ListMyTasksRequest>,
    ) -> Result<Response<ListMyTasksResponse>, Status> {
        let caller = identity(&request)?;
        let me = convert::caller(&caller)?;
        let request = request.into_inner();
        let (first, after) = page(request.page_size, &request.after);
        let page = read_model::list_my_tasks(&self.pool, &caller.tenant_id, &me, first, after)
            .await
            .map_err(query_error)?;
        Ok(Response::new(ListMyTasksResponse {
            edges: convert::edges(page.items),
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        }))
    }

    async fn search_workflows(
        &self,
        request: Request<SearchWorkflowsRequest>,
    ) -> Result<Response<SearchWorkflowsResponse>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let text = SearchText::parse(&request.text)
            .map_err(|e| invalid_argument("text", &e.to_string()))?;
        let (first, after) = page(request.page_size, &request.after);
        let page = read_model::search_workflows(&self.pool, &caller.tenant_id, &text, first, after)
            .await
            .map_err(query_error)?;
        Ok(Response::new(SearchWorkflowsResponse {
            edges: page.items.into_iter().map(convert::search_edge).collect(),
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        }))
    }

    async fn batch_get_workflows(
        &self,
        request: Request<BatchGetWorkflowsRequest>,
    ) -> Result<Response<BatchGetWorkflowsResponse>, Status> {
        let caller = identity(&request)?;
        let raw = &request.get_ref().workflow_ids;
        if raw.len() > MAX_BATCH_GET_WORKFLOWS {
            return Err(invalid_argument(
                "workflow_ids",
                &format!("at most {MAX_BATCH_GET_WORKFLOWS} ids per call"),
            ));
        }
        let ids = raw
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                WorkflowId::parse(&format!("workflow_ids[{i}]"), raw)
                    .map(|id| id.as_uuid())
                    .map_err(|e| invalid_argument(&e.field, &e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let details = read_model::get_workflows(&self.pool, &caller.tenant_id, &ids)
            .await
            .map_err(query_error)?;
        Ok(Response::new(BatchGetWorkflowsResponse {
            workflows: details.into_iter().map(convert::workflow_detail).collect(),
        }))
    }

    async fn get_workflow_history(
        &self,
        request: Request<GetWorkflowHistoryRequest>,
    ) -> Result<Response<WorkflowHistory>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let id = WorkflowId::parse("workflow_id", &request.workflow_id)
            .map_err(|e| invalid_argument(&e.field, &e.message))?;
        let page_size = match request.page_size {
            0 => MAX_HISTORY_PAGE_SIZE,
            size if size <= MAX_HISTORY_PAGE_SIZE => size,
            _ => {
                return Err(invalid_argument(
                    "page_size",
                    &format!("must be between 1 and {MAX_HISTORY_PAGE_SIZE}"),
                ))
            }
        };
        if request.after_version < 0 {
            return Err(invalid_argument("after_version", "must not be negative"));
        }
        // One more than the page, to know whether another page follows.
        let mut events = self
            .events
            .history_page::<workflow_domain::Workflow>(
                &caller.tenant_id,
                id.as_uuid(),
                request.after_version,
                i64::from(page_size) + 1,
            )
            .await
            .map_err(|error| {
                if error.is_unavailable() {
                    errors::status(
                        ErrorCode::Unavailable,
                        "event store unavailable",
                        HashMap::new(),
                    )
                } else {
                    errors::internal(&error)
                }
            })?;
        // Another tenant's workflow has no events for this caller: exactly like a missing one.
        // A later page of either is simply empty, as is the page after the last event.
        if events.is_empty() && request.after_version == 0 {
            return Err(errors::status(
                ErrorCode::NotFound,
                "workflow not found",
                HashMap::new(),
            ));
        }
        let has_next_page = events.len() > page_size as usize;
        events.truncate(page_size as usize);
        Ok(Response::new(WorkflowHistory {
            entries: events.into_iter().map(convert::history_entry).collect(),
            has_next_page,
        }))
    }

    async fn get_dashboard(
        &self,
        request: Request<GetDashboardRequest>,
    ) -> Result<Response<Dashboard>, Status> {
        let caller = identity(&request)?;
        let me = convert::caller(&caller)?;
        let zone = Zone::parse(&request.get_ref().time_zone).ok_or_else(|| {
            invalid_argument(
                "time_zone",
                "is neither a time zone name like Asia/Tokyo nor a UTC offset like +09:00",
            )
        })?;
        let dashboard =
            read_model::dashboard(&self.pool, &caller.tenant_id, &me, Utc::now(), &zone)
                .await
                .map_err(query_error)?;
        Ok(Response::new(convert::dashboard(dashboard)))
    }
}

/// The page size (0: the default) and the cursor (empty: the first page) of a list request.
fn page(page_size: u32, after: &str) -> (u32, Option<&str>) {
    let first = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        size => size,
    };
    (first, Some(after).filter(|after| !after.is_empty()))
}

fn query_error(error: QueryError) -> Status {
    match error {
        QueryError::InvalidCursor => invalid_argument(
            "after",
            "is not a cursor returned by this list with the same sort and direction",
        ),
        QueryError::UnknownTimeZone(_) => invalid_argument("time_zone", "is not a known time zone"),
        QueryError::InvalidPageSize => invalid_argument(
            "page_size",
            &format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ),
        QueryError::TimeOutOfRange(field) => invalid_argument(field, &error.to_string()),
        error if error.is_transient() => {
            tracing::warn!(error = %error, "read database unavailable");
            errors::status(
                ErrorCode::Unavailable,
                "read database unavailable",
                HashMap::new(),
            )
        }
        error => errors::internal(&error),
    }
}
