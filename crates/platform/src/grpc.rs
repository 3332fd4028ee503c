//! The gRPC server every service runs: grpc.health.v1, server reflection, request spans
//! (continuing the caller's trace), request metrics, and graceful shutdown.

use crate::settings::GrpcServerSettings;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Router, Server};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The server [`router`] builds: tonic's, with the request-metrics layer.
pub type GrpcRouter =
    Router<tower::layer::util::Stack<crate::metrics::GrpcMetrics, tower::layer::util::Identity>>;

/// A server with health and reflection already mounted; add the service and call [`serve`].
/// `services` are the fully qualified names reported as SERVING; `contracts` the encoded
/// `FileDescriptorSet`s reflection describes (the contexts' own, besides health and reflection).
pub async fn router(
    services: &[&str],
    contracts: &[&'static [u8]],
    settings: &GrpcServerSettings,
) -> anyhow::Result<(GrpcRouter, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in services {
        reporter
            .set_service_status(*service, ServingStatus::Serving)
            .await;
    }
    let router = Server::builder()
        .timeout(Duration::from_millis(settings.grpc_server_timeout_ms))
        .layer(crate::metrics::GrpcMetrics::server())
        // The caller's trace context (W3C `traceparent` metadata) is the server span's parent.
        .trace_fn(|request| {
            let span = tracing::info_span!("grpc", path = %request.uri().path());
            crate::telemetry::set_parent_from_headers(&span, request.headers());
            span
        })
        .add_service(health)
        .add_service(reflection(contracts).build_v1()?)
        // grpcui, Postman, Evans, older grpcurl and Python's grpcio-reflection still ask the
        // pre-standard v1alpha service: without it they see UNIMPLEMENTED and give up.
        .add_service(reflection(contracts).build_v1alpha()?);
    Ok((router, reporter))
}

/// What both reflection versions describe: the `contracts`, health, and both reflection
/// services themselves, so either client finds the other.
fn reflection(contracts: &[&'static [u8]]) -> tonic_reflection::server::Builder<'static> {
    contracts
        .iter()
        .fold(
            tonic_reflection::server::Builder::configure(),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

/// Serves until `shutdown` is cancelled, then reports NOT_SERVING, stops accepting and lets
/// in-flight calls finish.
pub async fn serve(
    router: GrpcRouter,
    reporter: HealthReporter,
    services: &'static [&'static str],
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Small responses leave at once: tonic's own TCP_NODELAY setting does not apply to
    // connections it is handed, and with Nagle a response written in two parts (headers, then
    // data) waits for the client's delayed ACK, about 40 ms per call.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|connection| {
        if let Ok(stream) = &connection {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        }
        connection
    });
    let draining = async move {
        shutdown.cancelled().await;
        // "" is the whole server, which is what generic probes (and the gateway) ask about.
        for service in services.iter().chain(&[""]) {
            reporter
                .set_service_status(*service, ServingStatus::NotServing)
                .await;
        }
    };
    router
        .serve_with_incoming_shutdown(incoming, draining)
        .await?;
    Ok(())
}
