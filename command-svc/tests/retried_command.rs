//! A command whose answer is lost after command-svc appended it is retried by the internal
//! clients' stack (`platform::resilience`) with the same command id, and appends nothing more:
//! real command-svc, real event store, and between them a real gRPC server that forwards each
//! call and, the first time, drops command-svc's answer and says UNAVAILABLE instead.

use clap::Parser;
use command_svc::{Application, Settings};
use event_store::EventStore;
use http_body_util::BodyExt as _;
use platform::auth::Identity;
use platform::resilience::{client, ClientSettings};
use proto::workflow::v1 as pb;
use proto::workflow::v1::workflow_command_service_client::WorkflowCommandServiceClient;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::Status;
use tower::ServiceExt as _;
use uuid::Uuid;
use workflow_domain::Workflow;

/// Forwards every call to command-svc; the first one's answer is read to its end (command-svc
/// has committed by then) and replaced by UNAVAILABLE, as when a connection drops on the way
/// back.
#[derive(Clone)]
struct LosesTheFirstAnswer {
    upstream: Channel,
    calls: Arc<AtomicUsize>,
}

impl NamedService for LosesTheFirstAnswer {
    const NAME: &'static str = "ringiflow.workflow.v1.WorkflowCommandService";
}

impl tower::Service<http::Request<Body>> for LosesTheFirstAnswer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let answer = match upstream.oneshot(request).await {
                Ok(answer) => answer,
                Err(error) => return Ok(Status::from_error(error.into()).into_http()),
            };
            if !first {
                return Ok(answer);
            }
            let (head, body) = answer.into_parts();
            let trailers = body.collect().await.expect("command-svc's whole answer");
            let status = trailers
                .trailers()
                .and_then(Status::from_header_map)
                .or_else(|| Status::from_header_map(&head.headers));
            assert_eq!(
                status.map(|status| status.code()),
                Some(tonic::Code::Ok),
                "command-svc handled the first attempt"
            );
            Ok(Status::unavailable("the answer was lost on the way").into_http())
        })
    }
}

#[tokio::test]
async fn a_command_retried_after_its_answer_was_lost_appends_once() {
    let (url, pool) = test_support::fresh_database("command_retry").await;
    let store = EventStore::new(pool, command_svc::CONTEXTS);
    let suffix = Uuid::new_v4().simple().to_string();
    let brokers = std::env::var("RINGIFLOW_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let settings = Settings::parse_from([
        "command-svc",
        "--listen-addr",
        "127.0.0.1:0",
        "--event-store-url",
        &url,
        "--kafka-brokers",
        &brokers,
        "--kafka-topic",
        &format!("test.workflow.{suffix}"),
        "--kafka-topic-partitions",
        "1",
        "--context-topic",
        &format!("systems=test.systems.{suffix},vulnerabilities=test.vulnerabilities.{suffix},tasks=test.tasks.{suffix}"),
        "--reactions-group-suffix",
        &format!(".test-{suffix}"),
        "--allow-dev-jwt-secret",
        "true",
    ]);
    let shutdown = CancellationToken::new();
    let app = Application::build(settings.clone(), shutdown.clone())
        .await
        .expect("build");
    let command_svc = format!("http://127.0.0.1:{}", app.port());
    let running = tokio::spawn(app.run_until_stopped());

    let calls = Arc::new(AtomicUsize::new(0));
    let proxy = LosesTheFirstAnswer {
        upstream: Channel::from_shared(command_svc).unwrap().connect_lazy(),
        calls: calls.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(proxy)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let clients = ClientSettings {
        grpc_connect_timeout_ms: 1_000,
        grpc_call_timeout_ms: 10_000,
        grpc_retries: 3,
        grpc_retry_backoff_ms: 20,
        circuit_breaker_failures: 5,
        circuit_breaker_open_ms: 30_000,
        grpc_max_in_flight: 16,
    };
    let mut commands =
        WorkflowCommandServiceClient::new(client("command-svc", &proxy_url, &clients).unwrap());
    let token = settings
        .auth
        .jwt()
        .unwrap()
        .issue(
            &Identity {
                tenant_id: "acme".into(),
                user_id: "alice".into(),
                display_name: "Alice".into(),
                roles: vec![],
            },
            chrono::Duration::hours(1),
        )
        .unwrap();
    let create = pb::CreateWorkflowRequest {
        command_id: Uuid::new_v4().to_string(),
        title: "Laptop".into(),
        priority: pb::Priority::Medium as i32,
        route: vec![pb::RouteStep {
            approver_user_id: "bob".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = |message: pb::CreateWorkflowRequest| {
        let mut request = tonic::Request::new(message);
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        request
    };

    let retried = commands
        .create_workflow(request(create.clone()))
        .await
        .expect("the retry answers")
        .into_inner();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one lost answer, one retry"
    );

    let workflow_id = Uuid::parse_str(&retried.workflow_id).unwrap();
    let history = store
        .history::<Workflow>("acme", workflow_id, 0)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "appended once");
    assert_eq!(retried.version, 1);
    assert_eq!(retried.event_ids, [history[0].event_id.to_string()]);

    let again = commands
        .create_workflow(request(create))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, retried, "the same id answers the first result");

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
