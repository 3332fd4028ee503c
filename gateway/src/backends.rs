//! gRPC clients of command-svc and query-svc: one channel per service, shared by the clients
//! of every contract it serves (the workflow's and the System Board's), so every call of any of
//! them runs under the same timeouts. The caller's token and correlation id travel on each
//! request (`caller::Caller::request`), and every failure goes through the one error mapping
//! (`errors::graphql_error`); `schema::call` is the one path that does both.

use anyhow::Context as _;
use proto::systemboard::v1::system_board_command_service_client::SystemBoardCommandServiceClient;
use proto::systemboard::v1::system_board_query_service_client::SystemBoardQueryServiceClient;
use proto::workflow::v1::definition_command_service_client::DefinitionCommandServiceClient;
use proto::workflow::v1::workflow_command_service_client::WorkflowCommandServiceClient;
use proto::workflow::v1::workflow_query_service_client::WorkflowQueryServiceClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A backend that does not accept a connection this fast is treated as down rather than slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Below the edge's request timeout, so a slow backend surfaces as a GraphQL `UNAVAILABLE`
/// error the client can act on rather than a bare gateway timeout; the deadline also travels
/// as `grpc-timeout`, so the backend stops working on an answer nobody waits for.
const CALL_TIMEOUT: Duration = Duration::from_millis(2_500);

#[derive(Clone)]
pub(crate) struct Backends {
    pub(crate) command: WorkflowCommandServiceClient<Channel>,
    /// Served by command-svc too, over the same connection.
    pub(crate) definitions: DefinitionCommandServiceClient<Channel>,
    pub(crate) query: WorkflowQueryServiceClient<Channel>,
    /// The System Board's commands, served by command-svc over the same connection.
    pub(crate) board_command: SystemBoardCommandServiceClient<Channel>,
    /// The System Board's queries, served by query-svc over the same connection.
    pub(crate) board_query: SystemBoardQueryServiceClient<Channel>,
    command_health: HealthClient<Channel>,
    query_health: HealthClient<Channel>,
}

impl Backends {
    /// Connects on first use, so the gateway starts (and reports not-ready) while a backend is
    /// down.
    pub(crate) fn connect_lazy(command_url: &str, query_url: &str) -> anyhow::Result<Self> {
        let command = channel(command_url)
            .with_context(|| format!("invalid command-svc url {command_url:?}"))?;
        let query =
            channel(query_url).with_context(|| format!("invalid query-svc url {query_url:?}"))?;
        Ok(Self {
            command: WorkflowCommandServiceClient::new(command.clone()),
            definitions: DefinitionCommandServiceClient::new(command.clone()),
            query: WorkflowQueryServiceClient::new(query.clone()),
            board_command: SystemBoardCommandServiceClient::new(command.clone()),
            board_query: SystemBoardQueryServiceClient::new(query.clone()),
            command_health: HealthClient::new(command),
            query_health: HealthClient::new(query),
        })
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

fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_lazy())
}

async fn serving(backend: &'static str, mut client: HealthClient<Channel>) -> bool {
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
