//! The two ways in: gRPC straight to command-svc / query-svc (one HTTP/2 connection each, as
//! the gateway itself uses them), and GraphQL over HTTP through the gateway.

use anyhow::{anyhow, bail, Context};
use pb::workflow_command_service_client::WorkflowCommandServiceClient;
use pb::workflow_query_service_client::WorkflowQueryServiceClient;
use platform::auth::{Identity, Jwt};
use proto::workflow::v1 as pb;
use serde_json::{json, Value};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use uuid::Uuid;

pub const TENANT: &str = "bench";
pub const APPLICANT: &str = "applicant";
pub const APPROVER: &str = "approver";

/// Bearer tokens for the two users of every benchmark workflow.
#[derive(Clone)]
pub struct Tokens {
    pub applicant: String,
    pub approver: String,
}

impl Tokens {
    pub fn issue(jwt: &Jwt) -> Self {
        let token = |user: &str| {
            jwt.issue(
                &Identity {
                    tenant_id: TENANT.to_owned(),
                    user_id: user.to_owned(),
                    display_name: format!("{user} san"),
                    roles: vec![],
                },
                chrono::Duration::hours(12),
            )
            .expect("the benchmark's jwt settings sign tokens")
        };
        Self {
            applicant: token(APPLICANT),
            approver: token(APPROVER),
        }
    }
}

/// The result of a command: which workflow, at which version.
#[derive(Debug, Clone)]
pub struct Ack {
    pub workflow_id: String,
    pub version: i64,
}

/// The next command of a one-step workflow's life: create → submit → approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Submit,
    Approve,
}

impl Step {
    pub fn next(self) -> Option<Step> {
        match self {
            Step::Create => Some(Step::Submit),
            Step::Submit => Some(Step::Approve),
            Step::Approve => None,
        }
    }
}

fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect_lazy())
}

#[derive(Clone)]
pub struct Grpc {
    command: WorkflowCommandServiceClient<Channel>,
    query: WorkflowQueryServiceClient<Channel>,
    applicant: MetadataValue<Ascii>,
    approver: MetadataValue<Ascii>,
}

impl Grpc {
    pub fn new(command_url: &str, query_url: &str, tokens: &Tokens) -> anyhow::Result<Self> {
        let bearer = |token: &str| -> anyhow::Result<MetadataValue<Ascii>> {
            format!("Bearer {token}")
                .parse()
                .context("token is not ascii")
        };
        Ok(Self {
            command: WorkflowCommandServiceClient::new(channel(command_url)?),
            query: WorkflowQueryServiceClient::new(channel(query_url)?),
            applicant: bearer(&tokens.applicant)?,
            approver: bearer(&tokens.approver)?,
        })
    }

    fn request<T>(&self, message: T, approver: bool) -> Request<T> {
        let mut request = Request::new(message);
        let token = if approver {
            &self.approver
        } else {
            &self.applicant
        };
        request
            .metadata_mut()
            .insert("authorization", token.clone());
        request
    }

    /// Runs `step` on `workflow_id` (ignored for `Create`).
    pub async fn command(
        &mut self,
        step: Step,
        workflow_id: &str,
        title: &str,
    ) -> anyhow::Result<Ack> {
        let command_id = Uuid::new_v4().to_string();
        let result = match step {
            Step::Create => {
                let request = self.request(
                    pb::CreateWorkflowRequest {
                        command_id,
                        workflow_id: String::new(),
                        title: title.to_owned(),
                        description: String::new(),
                        priority: pb::Priority::Medium as i32,
                        route: vec![pb::RouteStep {
                            approver_user_id: APPROVER.to_owned(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    false,
                );
                self.command.create_workflow(request).await
            }
            Step::Submit => {
                let request = self.request(
                    pb::SubmitWorkflowRequest {
                        command_id,
                        workflow_id: workflow_id.to_owned(),
                        expected_version: None,
                    },
                    false,
                );
                self.command.submit_workflow(request).await
            }
            Step::Approve => {
                let request = self.request(
                    pb::ApproveStepRequest {
                        command_id,
                        workflow_id: workflow_id.to_owned(),
                        step: 1,
                        comment: String::new(),
                        expected_version: None,
                    },
                    true,
                );
                self.command.approve_step(request).await
            }
        };
        let result = result
            .map_err(|status| anyhow!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        Ok(Ack {
            workflow_id: result.workflow_id,
            version: result.version,
        })
    }

    /// Adds a comment to `workflow_id` as the applicant: a change that leaves the workflow's
    /// life where it is, so a workload can change the same workflows for as long as it runs.
    pub async fn comment(&mut self, workflow_id: &str, body: &str) -> anyhow::Result<Ack> {
        let request = self.request(
            pb::AddCommentRequest {
                command_id: Uuid::new_v4().to_string(),
                workflow_id: workflow_id.to_owned(),
                expected_version: None,
                body: body.to_owned(),
            },
            false,
        );
        let result = self
            .command
            .add_comment(request)
            .await
            .map_err(|status| anyhow!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        Ok(Ack {
            workflow_id: result.workflow_id,
            version: result.version,
        })
    }

    /// The workflow's version as query-svc sees it (`None`: not projected yet). With
    /// `min_version`, query-svc answers once its read model has that version (read-your-writes,
    /// woken by the projection's commits) or, after its bounded wait, with what it has.
    pub async fn get_version(
        &mut self,
        workflow_id: &str,
        min_version: Option<i64>,
    ) -> anyhow::Result<Option<i64>> {
        let request = self.request(
            pb::GetWorkflowRequest {
                workflow_id: workflow_id.to_owned(),
                min_version,
            },
            false,
        );
        match self.query.get_workflow(request).await {
            Ok(workflow) => Ok(Some(workflow.into_inner().version)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => bail!("{:?}: {}", status.code(), status.message()),
        }
    }

    pub async fn list(&mut self, page_size: u32) -> anyhow::Result<usize> {
        let request = self.request(
            pb::ListWorkflowsRequest {
                page_size,
                ..Default::default()
            },
            false,
        );
        let page = self
            .query
            .list_workflows(request)
            .await
            .map_err(|s| anyhow!("{:?}: {}", s.code(), s.message()))?;
        Ok(page.into_inner().edges.len())
    }
}

/// Every field the gRPC `Workflow` message carries, so both paths move the same data.
const WORKFLOW_FIELDS: &str =
    "id title description priority status version currentStep currentApproverId
    createdAt updatedAt submittedAt completedAt applicant { userId displayName }
    steps { number approverId status decidedBy decidedAt comment }";

#[derive(Clone)]
pub struct GraphQl {
    http: reqwest::Client,
    url: String,
    tokens: Tokens,
}

impl GraphQl {
    pub fn new(url: &str, tokens: &Tokens) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            http,
            url: url.to_owned(),
            tokens: tokens.clone(),
        })
    }

    async fn post(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let body: Value = response.json().await?;
        if let Some(errors) = body
            .get("errors")
            .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            bail!("GraphQL errors: {errors}");
        }
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Any document, as `token`: the HTTP status and the body, whatever they are.
    pub async fn raw(&self, token: &str, query: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub async fn command(&self, step: Step, workflow_id: &str, title: &str) -> anyhow::Result<Ack> {
        let (token, field, query, variables) = match step {
            Step::Create => (
                &self.tokens.applicant,
                "createWorkflow",
                "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId version } }",
                json!({ "input": { "title": title, "priority": "MEDIUM", "route": [{ "approverUserId": APPROVER }] } }),
            ),
            Step::Submit => (
                &self.tokens.applicant,
                "submitWorkflow",
                "mutation($id: ID!) { submitWorkflow(input: { workflowId: $id }) { workflowId version } }",
                json!({ "id": workflow_id }),
            ),
            Step::Approve => (
                &self.tokens.approver,
                "approveStep",
                "mutation($id: ID!) { approveStep(input: { workflowId: $id, step: 1 }) { workflowId version } }",
                json!({ "id": workflow_id }),
            ),
        };
        let data = self.post(token, query, variables).await?;
        let payload = &data[field];
        Ok(Ack {
            workflow_id: payload["workflowId"]
                .as_str()
                .context("no workflowId")?
                .to_owned(),
            version: payload["version"].as_i64().context("no version")?,
        })
    }

    pub async fn get(&self, workflow_id: &str) -> anyhow::Result<i64> {
        let query = format!("query($id: ID!) {{ workflow(id: $id) {{ {WORKFLOW_FIELDS} }} }}");
        let data = self
            .post(&self.tokens.applicant, &query, json!({ "id": workflow_id }))
            .await?;
        data["workflow"]["version"]
            .as_i64()
            .context("workflow without version")
    }

    pub async fn list(&self, first: u32) -> anyhow::Result<usize> {
        let query = format!(
            "query($first: Int) {{ workflows(first: $first) {{ edges {{ cursor node {{ {WORKFLOW_FIELDS} }} }} pageInfo {{ hasNextPage }} }} }}"
        );
        let data = self
            .post(&self.tokens.applicant, &query, json!({ "first": first }))
            .await?;
        Ok(data["workflows"]["edges"].as_array().map_or(0, Vec::len))
    }
}

/// What W1's workers drive: one command of a create → submit → approve sequence, by some path
/// (a client of the mesh, or the in-process peer of `crate::peer`).
pub trait Runner: Clone + Send + 'static {
    /// The path, as the results name it.
    fn name(&self) -> &'static str;

    /// Runs `step` on `workflow_id` (ignored for `Create`); returns the workflow's id.
    fn command(
        &mut self,
        step: Step,
        workflow_id: &str,
        title: &str,
    ) -> impl std::future::Future<Output = anyhow::Result<String>> + Send;
}

/// One command, by either path.
// One per worker, moved once: boxing the larger client would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Via {
    Grpc(Grpc),
    Gateway(GraphQl),
}

impl Runner for Via {
    fn name(&self) -> &'static str {
        match self {
            Via::Grpc(_) => "grpc",
            Via::Gateway(_) => "gateway",
        }
    }

    async fn command(
        &mut self,
        step: Step,
        workflow_id: &str,
        title: &str,
    ) -> anyhow::Result<String> {
        let ack = match self {
            Via::Grpc(client) => client.command(step, workflow_id, title).await,
            Via::Gateway(client) => client.command(step, workflow_id, title).await,
        }?;
        Ok(ack.workflow_id)
    }
}
