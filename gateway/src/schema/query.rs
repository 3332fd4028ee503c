//! Reads, answered by query-svc from the read model.

use super::types::{broken_contract, Workflow, WorkflowStatus};
use super::{authorized, non_negative};
use crate::errors::graphql_error;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, Result, ID};
use proto::workflow::v1 as pb;

pub(crate) struct QueryRoot;

#[Object]
impl QueryRoot {
    /// One workflow of the caller's tenant.
    async fn workflow(&self, ctx: &Context<'_>, id: ID) -> Result<Workflow> {
        let (caller, backends) = authorized(ctx)?;
        let request = caller.request(pb::GetWorkflowRequest { workflow_id: id.0 });
        let workflow = backends
            .query
            .clone()
            .get_workflow(request)
            .await
            .map_err(graphql_error)?;
        workflow.into_inner().try_into()
    }

    /// The caller's tenant's workflows, a page at a time, in query-svc's order.
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        status: Option<WorkflowStatus>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Workflow>> {
        let (caller, backends) = authorized(ctx)?;
        // An explicit null leaves the page size to query-svc (0 on the wire).
        let page_size = first.map_or(Ok(0), |first| non_negative("first", first))?;
        let request = caller.request(pb::ListWorkflowsRequest {
            status: status
                .map_or(pb::WorkflowStatus::Unspecified, Into::into)
                .into(),
            page_size,
            after: after.unwrap_or_default(),
        });
        let page = backends
            .query
            .clone()
            .list_workflows(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        // Paging is forward only; Relay allows `false` when the previous page is not known.
        let mut connection = Connection::new(false, page.has_next_page);
        for edge in page.edges {
            let node = edge
                .node
                .ok_or_else(|| broken_contract("an edge without a node"))?;
            connection
                .edges
                .push(Edge::new(edge.cursor, node.try_into()?));
        }
        Ok(connection)
    }
}
