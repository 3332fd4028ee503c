//! gRPC clients of command-svc and query-svc: one client stack per service
//! (`platform::resilience`), shared by the clients of every contract it serves (the workflow's
//! and the System Board's), so every call of any of them runs under the same deadline, retry
//! policy, circuit and in-flight bound. The caller's token and correlation id travel on each
//! request (`caller::Caller::request`), and every failure goes through the one error mapping
//! (`errors::graphql_error`); `schema::call` is the one path that does both.

use anyhow::Context as _;
use platform::resilience::{client, Client, ClientSettings};
use proto::systemboard::v1::system_board_command_service_client::SystemBoardCommandServiceClient;
use proto::systemboard::v1::system_board_query_service_client::SystemBoardQueryServiceClient;
use proto::workflow::v1::definition_command_service_client::DefinitionCommandServiceClient;
use proto::workflow::v1::workflow_command_service_client::WorkflowCommandServiceClient;
use proto::workflow::v1::workflow_query_service_client::WorkflowQueryServiceClient;
use std::sync::Arc;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Cheap to clone: every request's state and workflow lookups hold the same clients, which
/// are whole tower stacks, boxed, that cloning would copy one by one.
#[derive(Clone)]
pub(crate) struct Backends(Arc<Clients>);

pub(crate) struct Clients {
    pub(crate) command: WorkflowCommandServiceClient<Client>,
    /// Served by command-svc too, over the same connection.
    pub(crate) definitions: DefinitionCommandServiceClient<Client>,
    pub(crate) query: WorkflowQueryServiceClient<Client>,
    /// The System Board's commands, served by command-svc over the same connection.
    pub(crate) board_command: SystemBoardCommandServiceClient<Client>,
    /// The System Board's queries, served by query-svc over the same connection.
    pub(crate) board_query: SystemBoardQueryServiceClient<Client>,
    command_health: HealthClient<Client>,
    query_health: HealthClient<Client>,
}

impl std::ops::Deref for Backends {
    type Target = Clients;

    fn deref(&self) -> &Clients {
        &self.0
    }
}

impl Backends {
    /// Connects on first use, so the gateway starts (and reports not-ready) while a backend is
    /// down.
    pub(crate) fn connect_lazy(
        command_url: &str,
        query_url: &str,
        settings: &ClientSettings,
    ) -> anyhow::Result<Self> {
        let command = client("command-svc", command_url, settings)
            .with_context(|| format!("invalid command-svc url {command_url:?}"))?;
        let query = client("query-svc", query_url, settings)
            .with_context(|| format!("invalid query-svc url {query_url:?}"))?;
        Ok(Self(Arc::new(Clients {
            command: WorkflowCommandServiceClient::new(command.clone()),
            definitions: DefinitionCommandServiceClient::new(command.clone()),
            query: WorkflowQueryServiceClient::new(query.clone()),
            board_command: SystemBoardCommandServiceClient::new(command.clone()),
            board_query: SystemBoardQueryServiceClient::new(query.clone()),
            command_health: HealthClient::new(command),
            query_health: HealthClient::new(query),
        })))
    }

    /// Whether both backends answer `grpc.health.v1` with SERVING.
    pub(crate) async fn ready(&self) -> bool {
        let (command, query) = tokio::join!(
            serving("command-svc", self.command_health.clone()),
            serving("query-svc", self.query_health.clone()),
        );
        command && query
    }
}

#[cfg(test)]
impl Backends {
    /// Backends that refuse connections: reaching one surfaces as UNAVAILABLE, at once (no
    /// retries).
    pub(crate) fn unreachable() -> Self {
        use clap::Parser as _;
        let settings =
            crate::settings::Settings::try_parse_from(["gateway", "--grpc-retries", "0"])
                .expect("valid settings");
        let url = "http://127.0.0.1:1";
        Self::connect_lazy(url, url, &settings.clients).expect("a valid url")
    }
}

async fn serving(backend: &'static str, mut client: HealthClient<Client>) -> bool {
    // The empty service name asks about the server as a whole.
    match client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(response) if response.get_ref().status() == ServingStatus::Serving => true,
        Ok(response) => {
            tracing::warn!(backend, status = ?response.get_ref().status(), "backend not serving");
            false
        }
        Err(status) => {
            let (code, error) = (status.code(), status.message());
            tracing::warn!(backend, ?code, error, "backend health check failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Pos;

    #[tokio::test]
    async fn an_open_circuit_reaches_clients_as_unavailable_saying_when_to_retry() {
        let backends = Backends::unreachable();
        for _ in 0..5 {
            let status = backends
                .query
                .clone()
                .get_workflow(proto::workflow::v1::GetWorkflowRequest::default())
                .await
                .unwrap_err();
            let error = crate::errors::graphql_error(status);
            assert_eq!(error.message, "a service is unavailable; retry later");
        }
        // Every contract query-svc serves shares its circuit; command-svc has one of its own.
        let status = backends
            .board_query
            .clone()
            .list_tasks(proto::systemboard::v1::ListTasksRequest::default())
            .await
            .unwrap_err();
        let error = crate::errors::graphql_error(status).into_server_error(Pos::default());
        assert_eq!(error.message, "query-svc circuit open, retry after 30s");
        assert_eq!(
            serde_json::to_value(error.extensions).unwrap(),
            serde_json::json!({ "code": "UNAVAILABLE", "retryAfterSeconds": "30" })
        );
        let status = backends
            .command
            .clone()
            .approve_step(proto::workflow::v1::ApproveStepRequest::default())
            .await
            .unwrap_err();
        assert!(!status.message().contains("circuit open"), "{status:?}");
    }
}
