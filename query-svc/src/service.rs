//! The gRPC handlers. The tenant always comes from the verified token, never from the request.

use crate::convert;
use platform::auth::identity;
use platform::errors::{self, invalid_argument, ErrorCode};
use proto::workflow::v1::workflow_query_service_server::WorkflowQueryService;
use proto::workflow::v1::{
    GetWorkflowRequest, ListWorkflowsRequest, ListWorkflowsResponse, Workflow, WorkflowEdge,
    WorkflowStatus,
};
use read_model::{QueryError, MAX_PAGE_SIZE};
use sqlx::PgPool;
use std::collections::HashMap;
use tonic::{Request, Response, Status};
use workflow_domain::WorkflowId;

/// Page size when the request leaves it at 0.
const DEFAULT_PAGE_SIZE: u32 = 20;

pub(crate) struct QueryService {
    pool: PgPool,
}

impl QueryService {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl WorkflowQueryService for QueryService {
    async fn get_workflow(
        &self,
        request: Request<GetWorkflowRequest>,
    ) -> Result<Response<Workflow>, Status> {
        let caller = identity(&request)?;
        let id = WorkflowId::parse("workflow_id", &request.get_ref().workflow_id)
            .map_err(|e| invalid_argument(&e.field, &e.message))?;
        let detail = read_model::get_workflow(&self.pool, &caller.tenant_id, id.as_uuid())
            .await
            .map_err(query_error)?
            // Another tenant's workflow is reported exactly like a missing one.
            .ok_or_else(|| {
                errors::status(ErrorCode::NotFound, "workflow not found", HashMap::new())
            })?;
        Ok(Response::new(convert::workflow_detail(detail)))
    }

    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let caller = identity(&request)?;
        let request = request.into_inner();
        let status = WorkflowStatus::try_from(request.status)
            .map_err(|_| invalid_argument("status", "is not a known workflow status"))?;
        let first = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size,
        };
        let after = Some(request.after.as_str()).filter(|after| !after.is_empty());
        let page = read_model::list_workflows(
            &self.pool,
            &caller.tenant_id,
            proto::convert::status_filter(status),
            first,
            after,
        )
        .await
        .map_err(query_error)?;
        let edges = page
            .items
            .into_iter()
            .map(|(cursor, view)| WorkflowEdge {
                cursor,
                node: Some(convert::workflow(view)),
            })
            .collect();
        Ok(Response::new(ListWorkflowsResponse {
            edges,
            has_next_page: page.has_next_page,
        }))
    }
}

fn query_error(error: QueryError) -> Status {
    match error {
        QueryError::InvalidCursor => {
            invalid_argument("after", "is not a cursor returned by ListWorkflows")
        }
        QueryError::InvalidPageSize => invalid_argument(
            "page_size",
            &format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ),
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
