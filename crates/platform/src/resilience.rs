//! What every internal gRPC client runs its calls through (the gateway's clients of command-svc
//! and query-svc, the deadline watcher's client of command-svc): a deadline per call, retries of
//! the calls that are safe to repeat, a circuit breaker and a bound on the calls in flight, per
//! backend. [`client`] builds the whole stack in one place.
//!
//! The circuit breaker is written here rather than taken from a crate: the ones for tower count
//! failure rates over windows and know nothing of gRPC, while this one needs exactly "5
//! consecutive failures, as gRPC tells them", one probe at a time, and a RingiFlow status when it
//! refuses: [`Circuit`], a small state machine.

use crate::errors::{self, ErrorCode};
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::Endpoint;
use tonic::{Code, Status};
use tower::load_shed::error::Overloaded;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt as _};

/// A gRPC client's service: give it to a generated client, e.g. `QueryServiceClient::new`.
/// Cloning it shares the backend's circuit and in-flight bound, so every client of one backend
/// must be cloned from one [`client`]. Its error is a [`Status`], which the generated client
/// passes on as it is (a boxed error type would make the clients' futures not `Send`, a known
/// limit of the compiler with `Box<dyn Error>` as a service's error).
pub type Client = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Status>;

/// Below this much time left, a retry could not finish, so the last failure is answered instead.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// How the internal clients treat their backends. Every binary that calls another service
/// flattens these into its settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientSettings {
    /// Milliseconds a backend may take to accept a connection before it counts as down.
    #[arg(long, env = "RINGIFLOW_GRPC_CONNECT_TIMEOUT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub grpc_connect_timeout_ms: u64,
    /// Milliseconds one call to a backend may take, its retries and their waits included. The
    /// deadline travels as `grpc-timeout`, so the backend stops working on an answer nobody
    /// waits for.
    #[arg(long, env = "RINGIFLOW_GRPC_CALL_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub grpc_call_timeout_ms: u64,
    /// Retries of a call that is safe to repeat (a query, or a command carrying its command id)
    /// after the backend answered UNAVAILABLE or could not be reached; 0 turns retries off.
    #[arg(long, env = "RINGIFLOW_GRPC_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub grpc_retries: u32,
    /// Milliseconds before the first retry; each further retry waits twice as long as the one
    /// before, less up to a fifth at random.
    #[arg(long, env = "RINGIFLOW_GRPC_RETRY_BACKOFF_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub grpc_retry_backoff_ms: u64,
    /// Consecutive failed calls to one backend (unreachable, UNAVAILABLE, out of time) that
    /// open its circuit. Refusals of the domain (INVALID_ARGUMENT, CONFLICT, …) are answers,
    /// not failures.
    #[arg(long, env = "RINGIFLOW_CIRCUIT_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuit_breaker_failures: u32,
    /// Milliseconds an open circuit answers UNAVAILABLE at once, before one call may probe the
    /// backend again.
    #[arg(long, env = "RINGIFLOW_CIRCUIT_BREAKER_OPEN_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub circuit_breaker_open_ms: u64,
    /// Calls in flight to one backend at most; further calls are refused with UNAVAILABLE at
    /// once instead of queueing behind a slow backend.
    #[arg(long, env = "RINGIFLOW_GRPC_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub grpc_max_in_flight: u32,
}

/// The client of `backend` (its name in logs, metrics and refusals) at `url`. It connects on
/// first use, so a caller starts while the backend is down.
///
/// For unary calls and short answers: every call carries the call's deadline to the backend,
/// so a stream meant to outlive it (the gateway's change feed) needs a channel of its own.
pub fn client(
    backend: &'static str,
    url: &str,
    settings: &ClientSettings,
) -> Result<Client, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_millis(settings.grpc_connect_timeout_ms))
        .connect_lazy();
    let stack = ServiceBuilder::new()
        // The caller's view of every call: its outcome and time, retries and refusals included.
        .layer(crate::metrics::GrpcMetrics::client(backend))
        // Outermost but for the metrics, so an overload is told apart from a backend's own answers: UNAVAILABLE,
        // counted, never recorded by the breaker as the backend's failure.
        .map_err(move |error: BoxError| to_status(backend, error))
        // Refuses a call at once when the bound below is reached, instead of queueing it: a
        // slow backend then costs the caller a fast UNAVAILABLE, not its memory and threads.
        .load_shed()
        // Per backend, shared by the clones; counts a call until its answer's head arrives, its
        // retries and their waits included.
        .concurrency_limit(settings.grpc_max_in_flight as usize)
        // Outside the retries, so one call that failed after its retries counts once, and an
        // open circuit answers at once instead of being retried.
        .layer(CircuitBreakerLayer {
            circuit: Arc::new(Circuit::new(
                backend,
                settings.circuit_breaker_failures,
                Duration::from_millis(settings.circuit_breaker_open_ms),
            )),
        })
        // Innermost, so each attempt gets the time left of the call's one deadline.
        .layer(RetryLayer {
            policy: Arc::new(RetryPolicy {
                backend,
                retries: settings.grpc_retries,
                first_backoff: Duration::from_millis(settings.grpc_retry_backoff_ms),
                call_timeout: Duration::from_millis(settings.grpc_call_timeout_ms),
            }),
        })
        .service(channel);
    Ok(BoxCloneSyncService::new(stack))
}

/// The layers' errors are statuses already, except the shed call's.
fn to_status(backend: &'static str, error: BoxError) -> Status {
    if !error.is::<Overloaded>() {
        return Status::from_error(error);
    }
    metrics::counter!("ringiflow_grpc_client_shed_total", "backend" => backend).increment(1);
    let message = format!("{backend} has too many calls in flight; retry later");
    errors::status(ErrorCode::Unavailable, message, HashMap::new())
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Answer = Result<http::Response<Body>, BoxError>;

/// The gRPC code of an answer that is a status alone ("trailers-only"), which is how a server
/// answers a failed unary call. A successful call's status comes in its trailers: `None`.
fn head_code(response: &http::Response<Body>) -> Option<Code> {
    let value = response.headers().get(Status::GRPC_STATUS)?;
    Some(Code::from_bytes(value.as_bytes()))
}

/// Whether a call failed because of the backend or the way to it, rather than being answered.
/// Every error is one (no connection, or the deadline passed, see [`attempt`]); of the answers,
/// UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED, which is how a tonic server reports that the
/// call's `grpc-timeout` expired (this client never cancels a call whose answer it still reads).
fn is_backend_failure(answer: &Answer) -> bool {
    match answer {
        Err(_) => true,
        Ok(response) => matches!(
            head_code(response),
            Some(Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Retries

/// Which calls may be sent twice, by the contracts' naming (proto/ringiflow/*/v1): a
/// `*QueryService` only reads; every request of a `*CommandService` carries a client-chosen
/// `command_id` as field 1, and command-svc answers a repeated id with the first result and
/// appends nothing. A command without one is not deduplicated, so it is never repeated; nor is
/// any other service's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeatable {
    Always,
    IfCommandId,
    Never,
}

impl Repeatable {
    /// From a gRPC path, `/package.Service/Method`.
    fn of(path: &str) -> Self {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if service.ends_with("QueryService") || service == "grpc.health.v1.Health" {
            Self::Always
        } else if service.ends_with("CommandService") {
            Self::IfCommandId
        } else {
            Self::Never
        }
    }
}

/// The field every command request carries first; decoding skips all the others.
#[derive(Clone, PartialEq, prost::Message)]
struct CommandId {
    #[prost(string, tag = "1")]
    command_id: String,
}

/// Whether a unary request body, one gRPC frame (a compression flag, a four-byte length, the
/// message), carries a command id. A compressed message cannot be read here, so it does not.
fn carries_command_id(frame: &[u8]) -> bool {
    match frame {
        [0, _, _, _, _, message @ ..] => {
            CommandId::decode(message).is_ok_and(|decoded| !decoded.command_id.is_empty())
        }
        _ => false,
    }
}

struct RetryPolicy {
    backend: &'static str,
    retries: u32,
    first_backoff: Duration,
    call_timeout: Duration,
}

impl RetryPolicy {
    /// `first_backoff` doubled per retry already made, less up to a fifth at random, so callers
    /// that failed together do not all come back at the same instant.
    fn backoff(&self, retries_made: u32) -> Duration {
        let full = self.first_backoff.saturating_mul(1 << retries_made.min(16));
        full.mul_f64(rand::random_range(0.8..=1.0))
    }
}

#[derive(Clone)]
struct RetryLayer {
    policy: Arc<RetryPolicy>,
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
}

impl<S> Service<http::Request<Body>> for Retry<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Answer>;

    /// Always ready: each attempt waits for its own clone of the inner service to be.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(retrying(self.inner.clone(), self.policy.clone(), request))
    }
}

/// Sends `request` and repeats it while it is safe to, the backend's failure is transient
/// (UNAVAILABLE or unreachable) and the call's deadline leaves room.
///
/// One deadline bounds the call, retries and waits included, and it is the caller's budget: the
/// gateway's calls get 2.5 s, under its 3 s edge timeout, so a call that cannot succeed in time
/// is answered with UNAVAILABLE that the client can act on, never cut off by the edge. A retry
/// whose wait would leave less than [`MIN_ATTEMPT`] of it is not made. With the default 1 s,
/// 2 s, 4 s waits the gateway therefore retries about once, while the deadline watcher, with
/// 10 s, makes all three.
///
/// Retrying needs the request body again, but a tonic body is a stream that can be read once:
/// a repeatable request's body (one small unary message) is read into memory first. Only the
/// answer's head decides a retry, so a streamed answer is never repeated once it started.
async fn retrying<S>(inner: S, policy: Arc<RetryPolicy>, request: http::Request<Body>) -> Answer
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let deadline = Instant::now() + policy.call_timeout;
    let repeatable = Repeatable::of(request.uri().path());
    if policy.retries == 0 || repeatable == Repeatable::Never {
        return attempt(inner, request, deadline).await;
    }
    let (parts, body) = request.into_parts();
    let frame = body.collect().await.map_err(BoxError::from)?.to_bytes();
    let retries = if repeatable == Repeatable::IfCommandId && !carries_command_id(&frame) {
        0
    } else {
        policy.retries
    };
    let mut retries_made = 0;
    loop {
        let request = http::Request::from_parts(parts.clone(), Body::new(Full::new(frame.clone())));
        let answer = attempt(inner.clone(), request, deadline).await;
        if retries_made == retries || !is_transient(&answer) {
            return answer;
        }
        let wait = policy.backoff(retries_made);
        if Instant::now() + wait + MIN_ATTEMPT > deadline {
            return answer;
        }
        retries_made += 1;
        let method = parts.uri.path();
        metrics::counter!(
            "ringiflow_grpc_client_retries_total",
            "backend" => policy.backend,
            "method" => method.to_owned()
        )
        .increment(1);
        tracing::debug!(
            backend = policy.backend,
            method,
            retry = retries_made,
            wait_ms = wait.as_millis() as u64,
            "retrying a call"
        );
        tokio::time::sleep(wait).await;
    }
}

/// UNAVAILABLE from the backend, or no connection to it: the call did not run, or ran and
/// lost its answer, and a repeat may find the backend back.
fn is_transient(answer: &Answer) -> bool {
    match answer {
        Ok(response) => head_code(response) == Some(Code::Unavailable),
        Err(error) => error
            .downcast_ref::<Status>()
            .is_some_and(|status| status.code() == Code::Unavailable),
    }
}

/// One attempt with the time left until `deadline`. Errors leave as a [`Status`] (a lost
/// connection is UNAVAILABLE), which is what the generated client makes of them.
async fn attempt<S>(inner: S, mut request: http::Request<Body>, deadline: Instant) -> Answer
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let left = deadline.saturating_duration_since(Instant::now());
    // The backend's server stops the call when the caller stops waiting. Internal callers set
    // no deadline of their own, so this replaces none.
    let grpc_timeout = http::HeaderValue::from_str(&format!("{}m", left.as_millis()))
        .expect("digits are a header value");
    request.headers_mut().insert("grpc-timeout", grpc_timeout);
    match tokio::time::timeout(left, inner.oneshot(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(Box::new(Status::from_error(error.into()))),
        Err(_) => Err(Box::new(Status::deadline_exceeded(
            "the call's deadline passed",
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

/// One backend's circuit, shared by every client of it. Closed, it lets calls through and counts
/// consecutive failures; at `failures_to_open` it opens for `open_for`, answering UNAVAILABLE at
/// once; then the first call through is the one probe (half-open), whose success closes the
/// circuit and whose failure opens it again.
struct Circuit {
    backend: &'static str,
    failures_to_open: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

/// A call the circuit let through; its outcome is [`Pass::record`]ed.
#[must_use]
struct Pass {
    circuit: Arc<Circuit>,
    probe: bool,
    recorded: bool,
}

impl Circuit {
    fn new(backend: &'static str, failures_to_open: u32, open_for: Duration) -> Self {
        metrics::gauge!("ringiflow_circuit_breaker_open", "backend" => backend).set(0.0);
        Self {
            backend,
            failures_to_open,
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a call through, or refuses it with UNAVAILABLE while the circuit is open or its
    /// probe is still out.
    fn admit(self: &Arc<Self>) -> Result<Pass, Status> {
        let mut state = self.state();
        let now = Instant::now();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::Probing;
                true
            }
            State::Open { until } => return Err(self.refusal(until - now)),
            // The probe decides soon, within one call's deadline.
            State::Probing => return Err(self.refusal(Duration::from_secs(1))),
        };
        Ok(Pass {
            circuit: self.clone(),
            probe,
            recorded: false,
        })
    }

    fn refusal(&self, retry_after: Duration) -> Status {
        // Whole seconds, rounded up, so "retry after 0s" is never said while it is still open.
        let seconds = retry_after.as_millis().div_ceil(1_000).max(1);
        errors::status(
            ErrorCode::Unavailable,
            format!("{} circuit open, retry after {seconds}s", self.backend),
            HashMap::from([("retry_after_seconds".to_owned(), seconds.to_string())]),
        )
    }

    /// Outcomes of calls let through before the circuit opened change nothing while it is open:
    /// only the probe's outcome decides.
    fn record(&self, probe: bool, failed: bool) {
        let mut state = self.state();
        let next = match (*state, failed) {
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 < self.failures_to_open => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, true) => self.open(),
            (State::Probing, false) if probe => {
                tracing::info!(
                    backend = self.backend,
                    "circuit closed: the probe succeeded"
                );
                self.set_gauge(false);
                State::Closed { failures: 0 }
            }
            (State::Probing, true) if probe => self.open(),
            (unchanged, _) => unchanged,
        };
        *state = next;
    }

    fn open(&self) -> State {
        tracing::warn!(
            backend = self.backend,
            open_ms = self.open_for.as_millis() as u64,
            "circuit open: the backend keeps failing"
        );
        self.set_gauge(true);
        State::Open {
            until: Instant::now() + self.open_for,
        }
    }

    fn set_gauge(&self, open: bool) {
        metrics::gauge!("ringiflow_circuit_breaker_open", "backend" => self.backend).set(if open {
            1.0
        } else {
            0.0
        });
    }
}

impl Pass {
    fn record(mut self, failed: bool) {
        self.recorded = true;
        self.circuit.record(self.probe, failed);
    }
}

impl Drop for Pass {
    /// A probe whose caller gave up decided nothing: the next call probes instead, rather than
    /// the circuit waiting for an outcome that never comes.
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut state = self.circuit.state();
            if *state == State::Probing {
                *state = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

#[derive(Clone)]
struct CircuitBreakerLayer {
    circuit: Arc<Circuit>,
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            circuit: self.circuit.clone(),
        }
    }
}

#[derive(Clone)]
struct CircuitBreaker<S> {
    inner: S,
    circuit: Arc<Circuit>,
}

impl<S> Service<http::Request<Body>> for CircuitBreaker<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.circuit.admit() {
            Err(refusal) => Box::pin(std::future::ready(Err(refusal.into()))),
            Ok(pass) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let answer = answer.await;
                    pass.record(is_backend_failure(&answer));
                    answer
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit(failures_to_open: u32) -> Arc<Circuit> {
        Arc::new(Circuit::new(
            "test-svc",
            failures_to_open,
            Duration::from_secs(30),
        ))
    }

    fn fail(circuit: &Arc<Circuit>, times: u32) {
        for _ in 0..times {
            circuit.admit().unwrap().record(true);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_consecutive_failures_only() {
        let circuit = circuit(5);
        fail(&circuit, 4);
        circuit.admit().unwrap().record(false);
        fail(&circuit, 4);
        assert!(circuit.admit().is_ok(), "a success restarts the count");
        fail(&circuit, 1);
        let refusal = circuit.admit().err().expect("open after five in a row");
        assert_eq!(refusal.code(), Code::Unavailable);
        assert_eq!(errors::code_of(&refusal), ErrorCode::Unavailable);
        assert_eq!(refusal.message(), "test-svc circuit open, retry after 30s");
        assert_eq!(errors::metadata_of(&refusal)["retry_after_seconds"], "30");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_period_one_probe_decides() {
        let circuit = circuit(1);
        fail(&circuit, 1);
        tokio::time::advance(Duration::from_millis(29_500)).await;
        let refusal = circuit.admit().err().unwrap();
        assert_eq!(refusal.message(), "test-svc circuit open, retry after 1s");

        tokio::time::advance(Duration::from_millis(500)).await;
        let probe = circuit.admit().expect("the probe");
        assert!(circuit.admit().is_err(), "one probe at a time");
        probe.record(true);
        let refusal = circuit.admit().err().expect("a failed probe opens again");
        assert_eq!(refusal.message(), "test-svc circuit open, retry after 30s");

        tokio::time::advance(Duration::from_secs(30)).await;
        circuit.admit().unwrap().record(false);
        assert_eq!(*circuit.state(), State::Closed { failures: 0 });
        assert!(circuit.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_call_probe_and_late_outcomes_change_nothing() {
        let circuit = circuit(2);
        let late = circuit.admit().unwrap();
        fail(&circuit, 2);
        late.record(false);
        assert!(
            circuit.admit().is_err(),
            "a call from before it opened does not close it"
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        drop(circuit.admit().expect("a probe, abandoned"));
        let probe = circuit.admit().expect("the next call probes");
        probe.record(false);
        assert_eq!(*circuit.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn only_queries_health_and_commands_with_an_id_are_repeatable() {
        let cases = [
            (
                "/ringiflow.example.v1.ExampleQueryService/GetThing",
                Repeatable::Always,
            ),
            ("/grpc.health.v1.Health/Check", Repeatable::Always),
            (
                "/ringiflow.example.v1.ExampleCommandService/RenameThing",
                Repeatable::IfCommandId,
            ),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Repeatable::Never,
            ),
            ("", Repeatable::Never),
        ];
        for (path, expected) in cases {
            assert_eq!(Repeatable::of(path), expected, "{path}");
        }
    }

    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut frame = vec![flag];
        frame.extend((message.len() as u32).to_be_bytes());
        frame.extend(message);
        frame
    }

    /// The shape of every command request: the command id in field 1.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Command {
        #[prost(string, tag = "1")]
        command_id: String,
        #[prost(string, tag = "2")]
        target: String,
    }

    #[test]
    fn a_command_id_is_found_in_field_one_wherever_it_is_encoded() {
        let with_id = Command {
            command_id: "0b6a4cf4-2b2b-4f6e-9a57-3f1b1d0f7a11".into(),
            target: "w".into(),
        }
        .encode_to_vec();
        assert!(carries_command_id(&frame(0, &with_id)));
        let without = Command {
            command_id: String::new(),
            target: "w".into(),
        }
        .encode_to_vec();
        assert!(!carries_command_id(&frame(0, &without)));
        // Field 2 before field 1: protobuf allows any order.
        let reordered = [&without[..], &with_id[..]].concat();
        assert!(carries_command_id(&frame(0, &reordered)));
        assert!(!carries_command_id(&frame(1, &with_id)), "compressed");
        assert!(!carries_command_id(&[0, 0]), "no frame");
        assert!(!carries_command_id(&frame(0, &[0xff, 0xff])), "no message");
    }

    #[test]
    fn backoff_doubles_and_is_jittered_down_by_at_most_a_fifth() {
        let policy = RetryPolicy {
            backend: "test-svc",
            retries: 3,
            first_backoff: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
        };
        for (retries_made, full_ms) in [(0, 1_000), (1, 2_000), (2, 4_000)] {
            for _ in 0..20 {
                let wait = policy.backoff(retries_made).as_millis();
                assert!((full_ms * 4 / 5..=full_ms).contains(&wait), "{wait}");
            }
        }
    }
}
