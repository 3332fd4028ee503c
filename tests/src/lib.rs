//! `spawn_stack()` starts the four real services in-process on port 0 — command-svc (with its
//! relay), projector-svc, query-svc and gateway — against two fresh PostgreSQL databases and a
//! uniquely named topic on the test broker, and returns a handle to drive it over GraphQL/HTTP.
//!
//! Needs the PostgreSQL and broker that `scripts/test` starts (`RINGIFLOW_TEST_DATABASE_URL`,
//! `RINGIFLOW_TEST_KAFKA_BROKERS`). Logs go nowhere unless `TEST_LOG=1`.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod process;
pub mod ws;

use clap::Parser;
use platform::auth::{Identity, Jwt};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a test waits for the read side to catch up before failing. Generous: it bounds a
/// hang, it is not a performance assertion.
pub const CATCH_UP: Duration = Duration::from_secs(60);

pub fn kafka_brokers() -> String {
    std::env::var("RINGIFLOW_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

pub struct TestStack {
    pub gateway_url: String,
    pub command_port: u16,
    pub query_port: u16,
    /// projector-svc's health port: grpc.health.v1 and its status API.
    pub projector_port: u16,
    pub topic: String,
    pub group: String,
    pub brokers: String,
    pub event_store: sqlx::PgPool,
    pub read_db: sqlx::PgPool,
    pub jwt: Jwt,
    /// `/metrics` of each service by name, when they run as processes
    /// ([`spawn_process_stack`]).
    pub metrics: std::collections::HashMap<&'static str, String>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    /// Killed when the stack is dropped.
    _processes: Vec<process::Service>,
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let settings = platform::settings::TelemetrySettings {
            log_format: platform::settings::LogFormat::Pretty,
        };
        platform::telemetry::init(&settings);
    }
}

/// A service's settings from `args`, signing and verifying with the public development
/// secret as the local stack does.
pub fn settings<S: Parser>(name: &str, args: &[(&str, &str)]) -> S {
    let argv = std::iter::once(name.to_owned()).chain(
        args.iter()
            .chain(&[("allow-dev-jwt-secret", "true")])
            .flat_map(|(flag, value)| [format!("--{flag}"), (*value).to_owned()]),
    );
    S::try_parse_from(argv).unwrap_or_else(|e| panic!("{name} settings: {e}"))
}

pub async fn spawn_stack() -> TestStack {
    spawn_stack_on(&kafka_brokers()).await
}

/// The stack against a given broker (tests that stop their own broker).
pub async fn spawn_stack_on(brokers: &str) -> TestStack {
    init_logs();
    let (events_url, event_store) = test_support::fresh_database("e2e_events").await;
    let (read_url, read_db) = test_support::fresh_database("e2e_read").await;
    let suffix = Uuid::new_v4().simple().to_string();
    let topic = format!("ringiflow.workflow.events.test-{suffix}");
    let group = format!("ringiflow-projector-test-{suffix}");
    // The System Board's topics, projector groups and reaction groups of this stack alone, so
    // stacks of parallel tests never take each other's events.
    let context_topics = format!(
        "systems=test.systems.{suffix},vulnerabilities=test.vulnerabilities.{suffix},\
         tasks=test.tasks.{suffix}"
    );
    let context_groups = format!("ringiflow-projector-test-{suffix}");
    let reactions_suffix = format!(".test-{suffix}");
    let kafka = [
        ("kafka-brokers", brokers),
        ("kafka-topic", topic.as_str()),
        ("kafka-topic-partitions", "3"),
        ("context-topic", context_topics.as_str()),
    ];
    let any_port = "127.0.0.1:0";
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();

    let command = command_svc::Application::build(
        settings(
            "command-svc",
            &[
                [
                    ("listen-addr", any_port),
                    ("event-store-url", events_url.as_str()),
                    ("reactions-group-suffix", reactions_suffix.as_str()),
                ]
                .as_slice(),
                &kafka,
            ]
            .concat(),
        ),
        shutdown.clone(),
    )
    .await
    .expect("command-svc starts");
    let command_port = command.port();
    let command_url = format!("http://127.0.0.1:{command_port}");
    tasks.push(tokio::spawn(command.run_until_stopped()));

    let projector = projector_svc::Application::build(
        settings(
            "projector-svc",
            &[
                [
                    ("health-addr", any_port),
                    ("read-database-url", read_url.as_str()),
                    ("group-id", group.as_str()),
                    ("context-group-prefix", context_groups.as_str()),
                    ("command-url", command_url.as_str()),
                    ("deadline-scan-interval-ms", "200"),
                ]
                .as_slice(),
                &kafka,
            ]
            .concat(),
        ),
        shutdown.clone(),
    )
    .await
    .expect("projector-svc starts");
    let projector_port = projector.port();
    tasks.push(tokio::spawn(projector.run_until_stopped()));

    let query = query_svc::Application::build(
        settings(
            "query-svc",
            &[
                ("listen-addr", any_port),
                ("read-database-url", read_url.as_str()),
                ("event-store-url", events_url.as_str()),
            ],
        ),
        shutdown.clone(),
    )
    .await
    .expect("query-svc starts");
    let query_port = query.port();
    tasks.push(tokio::spawn(query.run_until_stopped()));

    let query_url = format!("http://127.0.0.1:{query_port}");
    let gateway = gateway::Application::build(
        settings(
            "gateway",
            &[
                ("listen-addr", any_port),
                ("command-url", command_url.as_str()),
                ("query-url", query_url.as_str()),
            ],
        ),
        shutdown.clone(),
    )
    .await
    .expect("gateway starts");
    let gateway_url = format!("http://127.0.0.1:{}", gateway.port());
    tasks.push(tokio::spawn(gateway.run_until_stopped()));

    TestStack {
        gateway_url,
        command_port,
        query_port,
        projector_port,
        topic,
        group,
        brokers: brokers.to_owned(),
        event_store,
        read_db,
        jwt: Jwt::local_development(),
        metrics: Default::default(),
        http: reqwest::Client::new(),
        shutdown,
        tasks,
        _processes: Vec::new(),
    }
}

/// The four services as OS processes (the binaries `cargo build --workspace --bins` made),
/// each with `env` added to its environment and a metrics listener of its own: for tests of
/// what a process exports (traces, metrics), which in-process services would share.
pub async fn spawn_process_stack(env: &[(&str, &str)]) -> TestStack {
    use process::{free_port, wait_for_port, workspace_binary, Service};
    let (events_url, event_store) = test_support::fresh_database("proc_events").await;
    let (read_url, read_db) = test_support::fresh_database("proc_read").await;
    let suffix = Uuid::new_v4().simple().to_string();
    let topic = format!("ringiflow.workflow.events.proc-{suffix}");
    let group = format!("ringiflow-projector-proc-{suffix}");
    let context_topics = format!(
        "systems=test.systems.{suffix},vulnerabilities=test.vulnerabilities.{suffix},\
         tasks=test.tasks.{suffix}"
    );
    let context_groups = format!("ringiflow-projector-proc-{suffix}");
    let reactions_suffix = format!(".proc-{suffix}");
    let brokers = kafka_brokers();
    let [command_port, query_port, gateway_port, health_port] = [(); 4].map(|()| free_port());
    let address = |port: u16| format!("127.0.0.1:{port}");
    let command_url = format!("http://{}", address(command_port));
    let query_url = format!("http://{}", address(query_port));
    let common = [
        ("RINGIFLOW_KAFKA_BROKERS", brokers.as_str()),
        ("RINGIFLOW_KAFKA_TOPIC", topic.as_str()),
        ("RINGIFLOW_KAFKA_TOPIC_PARTITIONS", "3"),
        ("RINGIFLOW_CONTEXT_TOPICS", context_topics.as_str()),
    ];
    let mut metrics = std::collections::HashMap::new();
    let mut processes = Vec::new();
    let services: [(&'static str, Vec<(&str, String)>); 4] = [
        (
            "command-svc",
            vec![
                ("RINGIFLOW_LISTEN_ADDR", address(command_port)),
                ("RINGIFLOW_EVENT_STORE_URL", events_url.clone()),
                ("RINGIFLOW_REACTIONS_GROUP_SUFFIX", reactions_suffix.clone()),
            ],
        ),
        (
            "projector-svc",
            vec![
                ("RINGIFLOW_HEALTH_ADDR", address(health_port)),
                ("RINGIFLOW_READ_DATABASE_URL", read_url.clone()),
                ("RINGIFLOW_KAFKA_GROUP_ID", group.clone()),
                ("RINGIFLOW_CONTEXT_GROUP_PREFIX", context_groups.clone()),
                ("RINGIFLOW_COMMAND_URL", command_url.clone()),
            ],
        ),
        (
            "query-svc",
            vec![
                ("RINGIFLOW_LISTEN_ADDR", address(query_port)),
                ("RINGIFLOW_READ_DATABASE_URL", read_url.clone()),
                ("RINGIFLOW_EVENT_STORE_URL", events_url.clone()),
            ],
        ),
        (
            "gateway",
            vec![
                ("RINGIFLOW_LISTEN_ADDR", address(gateway_port)),
                ("RINGIFLOW_COMMAND_URL", command_url.clone()),
                ("RINGIFLOW_QUERY_URL", query_url.clone()),
            ],
        ),
    ];
    for (name, own) in services {
        // Every service on a listener of its own, as the Helm chart runs them; the gateway also
        // serves /metrics on its HTTP port.
        let metrics_addr = address(free_port());
        metrics.insert(name, format!("http://{metrics_addr}/metrics"));
        let own_metrics = [("RINGIFLOW_METRICS_ADDR", metrics_addr.as_str())];
        let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut service = Service::new(
            name,
            workspace_binary(name),
            &[],
            &[common.as_slice(), &own, &own_metrics, env].concat(),
        );
        service.start();
        let port = match name {
            "command-svc" => command_port,
            "projector-svc" => health_port,
            "query-svc" => query_port,
            _ => gateway_port,
        };
        wait_for_port(port, name).await;
        processes.push(service);
    }
    TestStack {
        gateway_url: format!("http://{}", address(gateway_port)),
        command_port,
        query_port,
        projector_port: health_port,
        topic,
        group,
        brokers,
        event_store,
        read_db,
        jwt: Jwt::local_development(),
        metrics,
        http: reqwest::Client::new(),
        shutdown: CancellationToken::new(),
        tasks: Vec::new(),
        _processes: processes,
    }
}

/// A GraphQL response: `data` and `errors` as the server sent them.
#[derive(Debug)]
pub struct GraphQlResponse {
    pub data: Value,
    pub errors: Vec<Value>,
}

impl GraphQlResponse {
    /// The data, failing the test with the errors if there are any.
    pub fn ok(self) -> Value {
        assert!(
            self.errors.is_empty(),
            "unexpected GraphQL errors: {:#?}",
            self.errors
        );
        self.data
    }

    /// The version a successful mutation `name` left the workflow at.
    pub fn version(self, name: &str) -> i64 {
        self.ok()[name]["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} returned no version"))
    }

    /// The `extensions.code` of the first error, failing the test if there is none.
    pub fn error_code(&self) -> &str {
        let error = self
            .errors
            .first()
            .unwrap_or_else(|| panic!("expected an error, got data {}", self.data));
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error without extensions.code: {error}"))
    }
}

impl TestStack {
    /// A token for `user` in `tenant`, signed like the local stack's.
    pub fn token(&self, tenant: &str, user: &str) -> String {
        self.token_with_roles(tenant, user, &[])
    }

    pub fn token_with_roles(&self, tenant: &str, user: &str, roles: &[&str]) -> String {
        let identity = Identity {
            tenant_id: tenant.to_owned(),
            user_id: user.to_owned(),
            display_name: format!("{user} san"),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        };
        self.jwt
            .issue(&identity, chrono::Duration::hours(1))
            .expect("the development secret signs")
    }

    /// Runs the mutation `name(input: $input) { workflowId version }` with `input`.
    pub async fn command(&self, token: &str, name: &str, input: Value) -> GraphQlResponse {
        let input_type = format!("{}{}Input", name[..1].to_uppercase(), &name[1..]);
        self.graphql(
            Some(token),
            &format!(
                "mutation($input: {input_type}!) {{ {name}(input: $input) {{ workflowId version }} }}"
            ),
            json!({ "input": input }),
        )
        .await
    }

    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> GraphQlResponse {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.gateway_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers HTTP");
        let status = response.status();
        let text = response.text().await.expect("gateway sends a body");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|error| {
            panic!("gateway answered {status} with a body that is not JSON ({error}): {text:?}")
        });
        GraphQlResponse {
            data: body.get("data").cloned().unwrap_or(Value::Null),
            errors: body
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Creates a workflow routed through `approvers` as `applicant` and returns its id.
    pub async fn create_workflow(&self, token: &str, title: &str, approvers: &[&str]) -> String {
        let route: Vec<Value> = approvers
            .iter()
            .map(|a| json!({ "approverUserId": a }))
            .collect();
        let data = self
            .graphql(
                Some(token),
                "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { workflowId version } }",
                json!({ "input": { "title": title, "description": "e2e", "priority": "HIGH", "route": route } }),
            )
            .await
            .ok();
        assert_eq!(data["createWorkflow"]["version"], 1);
        data["createWorkflow"]["workflowId"]
            .as_str()
            .expect("workflow id")
            .to_owned()
    }

    pub async fn submit(&self, token: &str, workflow_id: &str) -> GraphQlResponse {
        self.graphql(
            Some(token),
            "mutation($id: ID!) { submitWorkflow(input: { workflowId: $id }) { workflowId version } }",
            json!({ "id": workflow_id }),
        )
        .await
    }

    pub async fn comment(&self, token: &str, workflow_id: &str, body: &str) -> GraphQlResponse {
        self.command(
            token,
            "addComment",
            json!({ "workflowId": workflow_id, "body": body }),
        )
        .await
    }

    pub async fn approve(&self, token: &str, workflow_id: &str, step: u32) -> GraphQlResponse {
        self.graphql(
            Some(token),
            "mutation($id: ID!, $step: Int!) { approveStep(input: { workflowId: $id, step: $step, comment: \"ok\" }) { workflowId version eventIds } }",
            json!({ "id": workflow_id, "step": step }),
        )
        .await
    }

    pub async fn reject(
        &self,
        token: &str,
        workflow_id: &str,
        step: u32,
        reason: &str,
    ) -> GraphQlResponse {
        self.graphql(
            Some(token),
            "mutation($id: ID!, $step: Int!, $reason: String!) { rejectStep(input: { workflowId: $id, step: $step, reason: $reason }) { workflowId version } }",
            json!({ "id": workflow_id, "step": step, "reason": reason }),
        )
        .await
    }

    pub async fn workflow(&self, token: &str, workflow_id: &str) -> GraphQlResponse {
        self.graphql(
            Some(token),
            "query($id: ID!) { workflow(id: $id) { id title status priority version currentStep currentApproverId
               applicant { userId displayName }
               steps { number approverId status decidedBy comment } } }",
            json!({ "id": workflow_id }),
        )
        .await
    }

    /// Polls the read side until the workflow reaches `version`, and returns it.
    pub async fn workflow_at_version(&self, token: &str, workflow_id: &str, version: i64) -> Value {
        eventually(
            &format!("workflow {workflow_id} at version {version}"),
            || async {
                let response = self.workflow(token, workflow_id).await;
                let workflow = response
                    .data
                    .get("workflow")
                    .cloned()
                    .filter(|w| !w.is_null())?;
                (workflow["version"].as_i64() >= Some(version)).then_some(workflow)
            },
        )
        .await
    }
}

/// Retries `probe` until it yields a value, failing the test after [`CATCH_UP`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}
