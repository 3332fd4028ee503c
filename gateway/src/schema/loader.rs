//! Every `workflow(id)` of one GraphQL request, batched into one `BatchGetWorkflows` call to
//! query-svc (a DataLoader): aliases and repeated lookups never cost a round trip each.

use super::types::Workflow;
use crate::backends::Backends;
use crate::caller::Incoming;
use crate::errors::graphql_error;
use async_graphql::dataloader::{DataLoader, Loader};
use platform::auth::Jwt;
use proto::workflow::v1 as pb;
use std::collections::HashMap;
use std::time::Duration;

/// Loads workflows for the caller of one request; it lives as long as that request.
pub(crate) struct WorkflowLoader {
    backends: Backends,
    jwt: Jwt,
    incoming: Incoming,
}

impl WorkflowLoader {
    pub(crate) fn for_request(
        backends: Backends,
        jwt: Jwt,
        incoming: Incoming,
    ) -> DataLoader<Self> {
        DataLoader::new(
            Self {
                backends,
                jwt,
                incoming,
            },
            tokio::spawn,
        )
        // Larger batches would be refused whole; more lookups become several calls.
        .max_batch_size(proto::limits::MAX_BATCH_GET_WORKFLOWS)
        // No timed wait for more keys: the lookups of one request's fields register while the
        // executor polls them together, and the load task starts only after a hop through the
        // timer thread, so they still share a batch in practice (a split costs one more call,
        // never a wrong answer). The default 1 ms wait was most of a single lookup's latency.
        .delay(Duration::ZERO)
    }
}

impl Loader<String> for WorkflowLoader {
    type Value = Workflow;
    type Error = async_graphql::Error;

    /// Workflows the caller's tenant does not have are simply absent from the map. `ids` are
    /// canonical (see `schema::canonical`), as query-svc's answers are, so each answer is found
    /// under the id it was asked for.
    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Workflow>, Self::Error> {
        let caller = self
            .incoming
            .authenticate(&self.jwt)
            .map_err(graphql_error)?;
        let request = caller.request(pb::BatchGetWorkflowsRequest {
            workflow_ids: ids.to_vec(),
        });
        let found = self
            .backends
            .query
            .clone()
            .batch_get_workflows(request)
            .await
            .map_err(graphql_error)?
            .into_inner();
        found
            .workflows
            .into_iter()
            .map(|workflow| Ok((workflow.id.clone(), Workflow::try_from(workflow)?)))
            .collect()
    }
}
