//! Direct gRPC clients, as internal services use them (no gateway in between).

use pb::workflow_command_service_client::WorkflowCommandServiceClient;
use proto::workflow::v1 as pb;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Adds the caller's bearer token to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct CommandClient {
    inner: WorkflowCommandServiceClient<Authed>,
}

impl CommandClient {
    /// Connects lazily, so the client survives the server being killed and restarted.
    pub fn new(port: u16, token: &str) -> Self {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("valid url")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        let header = format!("Bearer {token}").parse().expect("token is ascii");
        Self {
            inner: WorkflowCommandServiceClient::new(InterceptedService::new(
                channel,
                Bearer(header),
            )),
        }
    }

    pub async fn create(
        &mut self,
        command_id: &str,
        title: &str,
        approvers: &[&str],
    ) -> Result<pb::CommandResult, Status> {
        let request = pb::CreateWorkflowRequest {
            command_id: command_id.to_owned(),
            workflow_id: String::new(),
            title: title.to_owned(),
            description: String::new(),
            priority: pb::Priority::Medium as i32,
            route: approvers
                .iter()
                .map(|a| pb::RouteStep {
                    // The first contract version's shorthand: still accepted.
                    approver_user_id: (*a).to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Ok(self.inner.create_workflow(request).await?.into_inner())
    }

    pub async fn submit(
        &mut self,
        command_id: &str,
        workflow_id: &str,
    ) -> Result<pb::CommandResult, Status> {
        let request = pb::SubmitWorkflowRequest {
            command_id: command_id.to_owned(),
            workflow_id: workflow_id.to_owned(),
            expected_version: None,
        };
        Ok(self.inner.submit_workflow(request).await?.into_inner())
    }

    pub async fn approve(
        &mut self,
        command_id: &str,
        workflow_id: &str,
        step: u32,
    ) -> Result<pb::CommandResult, Status> {
        let request = pb::ApproveStepRequest {
            command_id: command_id.to_owned(),
            workflow_id: workflow_id.to_owned(),
            step,
            comment: String::new(),
            expected_version: None,
        };
        Ok(self.inner.approve_step(request).await?.into_inner())
    }

    /// What the deadline watcher sends (its token carries the `system` role).
    pub async fn escalate(
        &mut self,
        command_id: &str,
        workflow_id: &str,
        step: u32,
    ) -> Result<pb::CommandResult, Status> {
        let request = pb::EscalateStepRequest {
            command_id: command_id.to_owned(),
            workflow_id: workflow_id.to_owned(),
            step,
            expected_version: None,
        };
        Ok(self.inner.escalate_step(request).await?.into_inner())
    }
}

/// Retries a command while the service is unreachable (it is being killed and restarted).
/// Retrying is safe because the command id is the same every time: that is what idempotency
/// is for.
pub async fn until_acknowledged<F, Fut>(mut attempt: F) -> Result<pb::CommandResult, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<pb::CommandResult, Status>>,
{
    let deadline = tokio::time::Instant::now() + crate::CATCH_UP;
    loop {
        match attempt().await {
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcome => return outcome,
        }
    }
}
