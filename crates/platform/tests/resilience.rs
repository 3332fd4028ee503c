//! The internal clients' stack (`platform::resilience::client`) against a real gRPC server in
//! this process, whose answers each test scripts and whose calls it counts: what is retried and
//! what never is, the deadline that bounds retries, the circuit breaker and load shedding.

use platform::errors::{code_of, ErrorCode};
use platform::resilience::{client, Client, ClientSettings};
use proto::workflow::v1::definition_command_service_client::DefinitionCommandServiceClient;
use proto::workflow::v1::definition_command_service_server::{
    DefinitionCommandService, DefinitionCommandServiceServer,
};
use proto::workflow::v1::{
    ArchiveDefinitionRequest, CreateDefinitionRequest, DefinitionCommandResult,
    PublishDefinitionVersionRequest,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{health_check_response, HealthCheckRequest, HealthCheckResponse};

/// What the server does with one call.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Ok,
    Fail(Code),
    /// Never answers in any test's time.
    Hang,
    /// Answers once the test releases it.
    Held,
}

/// The scripted backend: its replies in order, then OK to every further call.
struct Script {
    calls: AtomicUsize,
    replies: Mutex<VecDeque<Reply>>,
    release: Semaphore,
}

impl Script {
    fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            replies: Mutex::default(),
            release: Semaphore::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.replies.lock().unwrap().extend(replies);
    }

    async fn answer<T>(&self, ok: T) -> Result<Response<T>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let reply = self.replies.lock().unwrap().pop_front();
        match reply.unwrap_or(Reply::Ok) {
            Reply::Ok => Ok(Response::new(ok)),
            Reply::Fail(code) => Err(Status::new(code, "scripted failure")),
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                Ok(Response::new(ok))
            }
            Reply::Held => {
                self.release.acquire().await.unwrap().forget();
                Ok(Response::new(ok))
            }
        }
    }
}

struct Server(Arc<Script>);

#[tonic::async_trait]
impl DefinitionCommandService for Server {
    async fn create_definition(
        &self,
        _: Request<CreateDefinitionRequest>,
    ) -> Result<Response<DefinitionCommandResult>, Status> {
        self.0.answer(DefinitionCommandResult::default()).await
    }

    async fn publish_definition_version(
        &self,
        _: Request<PublishDefinitionVersionRequest>,
    ) -> Result<Response<DefinitionCommandResult>, Status> {
        self.0.answer(DefinitionCommandResult::default()).await
    }

    async fn archive_definition(
        &self,
        _: Request<ArchiveDefinitionRequest>,
    ) -> Result<Response<DefinitionCommandResult>, Status> {
        self.0.answer(DefinitionCommandResult::default()).await
    }
}

#[tonic::async_trait]
impl Health for Server {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let serving = HealthCheckResponse {
            status: health_check_response::ServingStatus::Serving.into(),
        };
        self.0.answer(serving).await
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

/// Fast waits, so tests take milliseconds; every other value is the default's.
fn settings() -> ClientSettings {
    ClientSettings {
        grpc_connect_timeout_ms: 1_000,
        grpc_call_timeout_ms: 10_000,
        grpc_retries: 3,
        grpc_retry_backoff_ms: 20,
        circuit_breaker_failures: 5,
        circuit_breaker_open_ms: 30_000,
        grpc_max_in_flight: 256,
    }
}

/// A scripted backend on a free port and a client of it built with `settings`, named `name` (a
/// name per test, so that tests sharing a process never share a metric series).
async fn backend(name: &'static str, settings: ClientSettings) -> (Arc<Script>, Client) {
    platform::metrics::install("resilience-test");
    let script = Arc::new(Script::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(DefinitionCommandServiceServer::new(Server(script.clone())))
        .add_service(HealthServer::new(Server(script.clone())));
    tokio::spawn(
        server.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (script, client(name, &url, &settings).unwrap())
}

fn create(command_id: &str) -> CreateDefinitionRequest {
    CreateDefinitionRequest {
        command_id: command_id.to_owned(),
        name: "expenses".into(),
        ..Default::default()
    }
}

const COMMAND_ID: &str = "5f0c7c52-8c7e-4f0a-9b0e-0d9f8f3c2a41";

async fn send(client: &Client, command_id: &str) -> Result<(), Status> {
    DefinitionCommandServiceClient::new(client.clone())
        .create_definition(create(command_id))
        .await
        .map(drop)
}

async fn check(client: &Client) -> Result<(), Status> {
    HealthClient::new(client.clone())
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
}

/// The value of the series `name` whose labels include `backend` (and `method`, if given), as
/// this process's recorder renders it; 0 before anything was recorded.
fn metric(name: &str, backend: &str, method: Option<&str>) -> f64 {
    let backend = format!("backend=\"{backend}\"");
    let method = method.map(|method| format!("method=\"{method}\""));
    platform::metrics::render()
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&backend))
        .find(|line| {
            method
                .as_ref()
                .is_none_or(|method| line.contains(method.as_str()))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const CREATE_DEFINITION: &str = "/ringiflow.workflow.v1.DefinitionCommandService/CreateDefinition";

/// The call ran out of time: the client's deadline passed (DEADLINE_EXCEEDED) or the server's
/// copy of it did first (tonic answers CANCELLED); either way UNAVAILABLE to a RingiFlow client.
fn out_of_time(status: &Status) -> Result<(), Code> {
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled if code_of(status) == ErrorCode::Unavailable => {
            Ok(())
        }
        other => Err(other),
    }
}

#[tokio::test]
async fn queries_and_commands_with_an_id_are_retried_after_unavailable() {
    let (script, client) = backend("retried-svc", settings()).await;
    script.then([
        Reply::Fail(Code::Unavailable),
        Reply::Fail(Code::Unavailable),
    ]);
    check(&client).await.expect("the third attempt succeeds");
    assert_eq!(script.calls(), 3);
    let retries = "ringiflow_grpc_client_retries_total";
    assert_eq!(metric(retries, "retried-svc", Some(HEALTH_CHECK)), 2.0);

    script.then([Reply::Fail(Code::Unavailable)]);
    send(&client, COMMAND_ID).await.expect("the retry succeeds");
    assert_eq!(script.calls(), 5);

    script.then([Reply::Fail(Code::Unavailable); 4]);
    let status = send(&client, COMMAND_ID).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(script.calls(), 9, "one call and at most three retries");
    assert_eq!(metric(retries, "retried-svc", Some(CREATE_DEFINITION)), 4.0);
}

#[tokio::test]
async fn a_command_without_an_id_is_never_retried() {
    let (script, client) = backend("once-svc", settings()).await;
    script.then([Reply::Fail(Code::Unavailable)]);
    let status = send(&client, "").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(script.calls(), 1);
    let retries = "ringiflow_grpc_client_retries_total";
    assert_eq!(metric(retries, "once-svc", Some(CREATE_DEFINITION)), 0.0);
}

#[tokio::test]
async fn refusals_are_answers_and_never_retried() {
    let (script, client) = backend("refusing-svc", settings()).await;
    let refusals = [
        Code::InvalidArgument,
        Code::Aborted,
        Code::FailedPrecondition,
        Code::NotFound,
        Code::PermissionDenied,
        Code::Internal,
    ];
    for (sent, code) in refusals.into_iter().enumerate() {
        script.then([Reply::Fail(code)]);
        assert_eq!(send(&client, COMMAND_ID).await.unwrap_err().code(), code);
        assert_eq!(script.calls(), sent + 1, "{code:?}");
    }
}

#[tokio::test]
async fn no_retry_waits_past_the_calls_deadline() {
    let (script, client) = backend(
        "late-svc",
        ClientSettings {
            grpc_call_timeout_ms: 600,
            grpc_retry_backoff_ms: 1_000,
            ..settings()
        },
    )
    .await;
    script.then([Reply::Fail(Code::Unavailable); 4]);
    let started = Instant::now();
    let status = check(&client).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        script.calls(),
        1,
        "a wait of 0.8 s or more does not fit in 0.6 s"
    );
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");

    // A retry that fits is made, and the call still ends at its deadline.
    let (script, client) = backend(
        "late-svc",
        ClientSettings {
            grpc_call_timeout_ms: 300,
            grpc_retry_backoff_ms: 50,
            ..settings()
        },
    )
    .await;
    script.then([Reply::Fail(Code::Unavailable), Reply::Hang]);
    let started = Instant::now();
    let status = check(&client).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(out_of_time(&status), Ok(()));
    assert_eq!(script.calls(), 2);
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(600)).contains(&elapsed),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_open_circuit_answers_at_once_without_the_backend_and_a_probe_closes_it() {
    let (script, client) = backend(
        "breaker-svc",
        ClientSettings {
            grpc_call_timeout_ms: 100,
            circuit_breaker_open_ms: 400,
            ..settings()
        },
    )
    .await;
    script.then([Reply::Hang; 5]);
    for _ in 0..5 {
        let status = send(&client, COMMAND_ID).await.unwrap_err();
        assert_eq!(out_of_time(&status), Ok(()));
    }
    assert_eq!(script.calls(), 5);

    // Answered by the circuit itself: the backend is never called, so nothing is waited for.
    let status = send(&client, COMMAND_ID).await.unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::Unavailable);
    assert_eq!(status.message(), "breaker-svc circuit open, retry after 1s");
    assert!(check(&client).await.is_err(), "every client of the backend");
    assert_eq!(script.calls(), 5, "the backend was not called");
    let open = "ringiflow_circuit_breaker_open";
    assert_eq!(metric(open, "breaker-svc", None), 1.0);

    tokio::time::sleep(Duration::from_millis(400)).await;
    send(&client, COMMAND_ID).await.expect("the probe succeeds");
    check(&client).await.expect("closed again");
    assert_eq!(script.calls(), 7);
    assert_eq!(metric(open, "breaker-svc", None), 0.0);
}

#[tokio::test]
async fn domain_refusals_never_open_the_circuit() {
    let (script, client) = backend(
        "closed-svc",
        ClientSettings {
            circuit_breaker_failures: 2,
            ..settings()
        },
    )
    .await;
    script.then([Reply::Fail(Code::Aborted); 5]);
    for _ in 0..5 {
        assert_eq!(
            send(&client, COMMAND_ID).await.unwrap_err().code(),
            Code::Aborted
        );
    }
    send(&client, COMMAND_ID).await.expect("still closed");
    assert_eq!(script.calls(), 6);
}

#[tokio::test]
async fn calls_beyond_the_bound_are_shed_at_once_instead_of_queueing() {
    let (script, client) = backend(
        "shed-svc",
        ClientSettings {
            grpc_max_in_flight: 2,
            ..settings()
        },
    )
    .await;
    script.then([Reply::Held; 2]);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                DefinitionCommandServiceClient::new(client)
                    .create_definition(create(COMMAND_ID))
                    .await
                    .map(drop)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while script.calls() < 2 {
        assert!(Instant::now() < deadline, "the two calls reach the backend");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The held calls are released only after this one, so a call queued behind them would
    // never be answered: an answer at all shows it was refused instead of queued.
    let status = tokio::time::timeout(Duration::from_secs(5), send(&client, COMMAND_ID))
        .await
        .expect("refused at once, not queued behind the held calls")
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::Unavailable);
    assert_eq!(
        status.message(),
        "shed-svc has too many calls in flight; retry later"
    );
    assert_eq!(script.calls(), 2, "the shed call never reached the backend");
    assert_eq!(
        metric("ringiflow_grpc_client_shed_total", "shed-svc", None),
        1.0
    );

    script.release.add_permits(2);
    for call in held {
        call.await.unwrap().expect("the held calls finish");
    }
    send(&client, COMMAND_ID).await.expect("room again");
    assert_eq!(script.calls(), 3);
}
