//! Prometheus metrics: the process-wide recorder behind the `metrics` facade, its text
//! exposition (`/metrics`, on a listener of its own for the gRPC services and on the gateway's
//! HTTP port), and the gRPC server's request metrics.
//!
//! Every series carries the constant label `service`; no label ever holds an id.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets in seconds, from a fast read (1 ms) to the internal timeout (10 s): the
/// alert on p95 > 500 ms needs buckets around it, not a client-side summary.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the recorder with `service` as every series' `service` label. The first call
/// wins; later ones (several services in one test process) keep it.
pub fn install(service: &str) {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", service)
            .set_buckets(SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        // A histogram keeps each sample until upkeep folds it into the buckets. A scrape runs
        // upkeep, but nothing may scrape (no Prometheus, or `/metrics` unused): without this
        // thread every request would add memory for good. `build_recorder`, unlike the
        // exporter's `install`, does not start one.
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no metrics upkeep thread; histograms grow until scraped");
        }
        handle
    });
}

/// The Prometheus text of everything recorded so far (empty before [`install`]).
pub fn render() -> String {
    match HANDLE.get() {
        Some(handle) => {
            // Histograms drain their samples into buckets on upkeep; a scrape is a fine time.
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// The `/metrics` route, for any axum router.
pub fn route<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/metrics", axum::routing::get(exposition))
}

async fn exposition() -> impl axum::response::IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
}

/// The metrics listener of a service without an HTTP port of its own: `GET /metrics` on
/// `address` (port 0 picks one; [`MetricsListener::address`] tells which).
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub async fn bind(address: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            anyhow::anyhow!("cannot listen for metrics scrapes on {address}: {error}")
        })?;
        let bound = listener.local_addr()?;
        tracing::info!(address = %bound, "metrics at /metrics");
        Ok(Self { listener })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves scrapes until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, route::<()>())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}

/// The gRPC code as the gRPC specification spells it (`OK`, `INVALID_ARGUMENT`, ...): the
/// `code` label of every gRPC request metric.
pub fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Request metrics of gRPC calls, one layer for both sides:
/// - a server's: `ringiflow_grpc_server_requests_total{method,code}` and
///   `ringiflow_grpc_server_request_duration_seconds{method}` (see `grpc::router`);
/// - a client's, of calls to `backend`: `ringiflow_grpc_client_requests_total{backend,method,code}`
///   and `ringiflow_grpc_client_request_duration_seconds{backend,method}`, the caller's view
///   (retries, waits and refusals included).
#[derive(Debug, Clone, Copy)]
pub struct GrpcMetrics {
    backend: Option<&'static str>,
}

impl GrpcMetrics {
    pub const fn server() -> Self {
        Self { backend: None }
    }

    pub const fn client(backend: &'static str) -> Self {
        Self {
            backend: Some(backend),
        }
    }

    fn record(self, method: String, code: tonic::Code, elapsed: std::time::Duration) {
        let code = code_label(code);
        let seconds = elapsed.as_secs_f64();
        match self.backend {
            None => {
                metrics::counter!("ringiflow_grpc_server_requests_total", "method" => method.clone(), "code" => code)
                    .increment(1);
                metrics::histogram!("ringiflow_grpc_server_request_duration_seconds", "method" => method)
                    .record(seconds);
            }
            Some(backend) => {
                metrics::counter!("ringiflow_grpc_client_requests_total", "backend" => backend, "method" => method.clone(), "code" => code)
                    .increment(1);
                metrics::histogram!("ringiflow_grpc_client_request_duration_seconds", "backend" => backend, "method" => method)
                    .record(seconds);
            }
        }
    }
}

impl<S> tower::Layer<S> for GrpcMetrics {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: *self,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

/// The gRPC code an error of a service stack stands for.
pub trait GrpcErrorCode {
    fn grpc_code(&self) -> tonic::Code;
}

impl GrpcErrorCode for tonic::Status {
    fn grpc_code(&self) -> tonic::Code {
        self.code()
    }
}

impl GrpcErrorCode for std::convert::Infallible {
    fn grpc_code(&self) -> tonic::Code {
        match *self {}
    }
}

impl GrpcErrorCode for tower::BoxError {
    fn grpc_code(&self) -> tonic::Code {
        self.downcast_ref::<tonic::Status>()
            .map_or(tonic::Code::Internal, tonic::Status::code)
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: GrpcErrorCode,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The path names the method (`/pkg.Service/Method`): a fixed set, never an id.
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics;
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                // A unary call that failed answers "trailers only": its status is in the
                // headers. One that succeeded sends grpc-status in the trailers, after the
                // body, which this layer does not wait for: no status header means OK.
                Ok(response) => tonic::Status::from_header_map(response.headers())
                    .map_or(tonic::Code::Ok, |status| status.code()),
                Err(error) => error.grpc_code(),
            };
            // A path no service serves is whatever the caller sent: one label for all of them.
            let method = match code {
                tonic::Code::Unimplemented => "unknown".to_owned(),
                _ => method,
            };
            metrics.record(method, code, started.elapsed());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_specification_name() {
        assert_eq!(code_label(tonic::Code::Ok), "OK");
        assert_eq!(code_label(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(
            code_label(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(code_label(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
