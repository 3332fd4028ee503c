//! What the services export: one OTLP trace from a GraphQL mutation to the read-model row,
//! received by an in-process collector, the Prometheus metrics of real traffic, and the
//! projector's status API. The services run as processes: in one process they would share
//! one tracer and one recorder.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use proto::projector::v1::projector_status_service_client::ProjectorStatusServiceClient;
use proto::projector::v1::GetStatusRequest;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tests::process::free_port;
use tests::{eventually, spawn_process_stack};

/// A span as the collector received it, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/gRPC trace collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(
                    |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                        AnyValue::StringValue(name) => Some(name.clone()),
                        _ => None,
                    },
                )
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Collector {
    /// Serves on a free loopback port and returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream_incoming(listener)),
        );
        endpoint
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// Runs a GraphQL operation as a caller whose span `caller_span` of trace `trace_id` the
/// gateway must continue.
async fn traced(
    stack: &tests::TestStack,
    token: &str,
    (trace_id, caller_span): (&str, &str),
    query: &str,
    variables: serde_json::Value,
) {
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/graphql", stack.gateway_url))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response["errors"].is_null(), "{response}");
}

/// `span` and its ancestors in `trace`, as (service, span name), and the span id the
/// outermost of them names as its parent (outside the trace's received spans).
fn ancestry(trace: &[Received], span: &Received) -> (Vec<(String, String)>, String) {
    let mut path = vec![(span.service.clone(), span.name.clone())];
    let mut current = span;
    while let Some(parent) = trace.iter().find(|s| s.span_id == current.parent_span_id) {
        path.push((parent.service.clone(), parent.name.clone()));
        current = parent;
    }
    (path, current.parent_span_id.clone())
}

/// The spans of the trace of `caller` (trace id, span id), once a `projector.apply` is there
/// whose ancestors are `hops` spans, all received, the outermost a child of the caller's span.
/// Exactly `hops`: a reaction's own reactions carry on in the same trace and reach read models
/// deeper down, sooner or later.
async fn trace_reaching_the_read_model(
    collector: &Collector,
    (trace_id, caller): (&str, &str),
    hops: usize,
) -> (Vec<Received>, Received) {
    eventually(
        &format!("a read-model apply {hops} hops from the caller"),
        || async {
            let trace = collector.trace(trace_id);
            let apply = trace
                .iter()
                .find(|span| {
                    let (path, parent) = ancestry(&trace, span);
                    span.name == "projector.apply" && path.len() == hops + 1 && parent == caller
                })?
                .clone();
            Some((trace, apply))
        },
    )
    .await
}

fn hops(path: &[(&str, &str)]) -> Vec<(String, String)> {
    path.iter()
        .map(|(service, name)| ((*service).to_owned(), (*name).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_is_one_trace_from_the_gateway_through_the_broker_to_the_read_model() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let stack = spawn_process_stack(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let workflow_id = stack.create_workflow(&alice, "traced", &["bob"]).await;
    stack.submit(&alice, &workflow_id).await.ok();

    // The caller starts the trace: its id is the one every hop must continue.
    let approval = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    traced(
        &stack,
        &bob,
        approval,
        "mutation($id: ID!) { approveStep(input: { workflowId: $id, step: 1 }) { version } }",
        json!({ "id": workflow_id }),
    )
    .await;
    let (trace, apply) = trace_reaching_the_read_model(&collector, approval, 4).await;
    let (path, caller) = ancestry(&trace, &apply);
    assert_eq!(
        path,
        hops(&[
            ("projector-svc", "projector.apply"),
            ("command-svc", "relay.publish"),
            ("command-svc", "grpc"),
            ("gateway", "resolver"),
            ("gateway", "graphql"),
        ]),
        "{trace:#?}"
    );
    assert_eq!(caller, approval.1);
    // The batch that applied the event is a trace of its own, linked to the event's.
    assert!(
        trace.iter().all(|span| span.name != "projector.batch"),
        "{trace:#?}"
    );

    // A reaction continues the trace of the event it reacts to: registering a system gets it
    // scanned by a process manager, whose scan reaches the scans read model in the same trace.
    let registration = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    traced(
        &stack,
        &alice,
        registration,
        "mutation($input: RegisterSystemInput!) { registerSystem(input: $input) { version } }",
        json!({ "input": {
            "commandId": uuid::Uuid::new_v4(),
            "name": "Payroll API",
            "owner": "alice",
            "environment": "PRODUCTION",
            "packages": [{ "name": "openssl", "version": "3.0.2" }],
        } }),
    )
    .await;
    let (trace, apply) = trace_reaching_the_read_model(&collector, registration, 6).await;
    let (path, caller) = ancestry(&trace, &apply);
    assert_eq!(
        path,
        hops(&[
            ("projector-svc", "projector.apply"),
            ("command-svc", "relay.publish"),
            ("command-svc", "react"),
            ("command-svc", "relay.publish"),
            ("command-svc", "grpc"),
            ("gateway", "resolver"),
            ("gateway", "graphql"),
        ]),
        "{trace:#?}"
    );
    assert_eq!(caller, registration.1);
}

/// The Prometheus text at `url`.
async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("metrics answer");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as exposed, without the
/// constant `service` label), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split(['{', ' ']).next() == Some(name)
                && labels
                    .iter()
                    .all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .reduce(f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_counts_its_traffic_and_answers_while_its_collector_is_unreachable() {
    // Nothing listens here: exporting fails, and requests must not notice.
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let stack = spawn_process_stack(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &unreachable),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let alice = stack.token("acme", "alice");
    let bob = stack.token("acme", "bob");
    let started = std::time::Instant::now();
    let workflow_id = stack.create_workflow(&alice, "counted", &["bob"]).await;
    stack.submit(&alice, &workflow_id).await.ok();
    stack.approve(&bob, &workflow_id, 1).await.ok();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "three commands took {:?} with the collector away",
        started.elapsed()
    );
    stack.workflow_at_version(&alice, &workflow_id, 3).await;

    let command = eventually("command-svc's metrics of the approval", || async {
        let text = scrape(&stack.metrics["command-svc"]).await;
        sample(&text, "ringiflow_relay_published_total", &[])
            .is_some_and(|published| published >= 3.0)
            .then_some(text)
    })
    .await;
    for (command_name, count) in [
        ("CreateWorkflow", 1.0),
        ("SubmitWorkflow", 1.0),
        ("ApproveStep", 1.0),
    ] {
        assert!(
            sample(
                &command,
                "ringiflow_commands_total",
                &[("command", command_name), ("outcome", "ok")]
            ) >= Some(count),
            "{command_name}: {command}"
        );
    }
    assert_eq!(
        sample(&command, "ringiflow_relay_leader", &[]),
        Some(1.0),
        "{command}"
    );
    assert!(command.contains("service=\"command-svc\""), "{command}");
    assert!(
        sample(
            &command,
            "ringiflow_grpc_server_requests_total",
            &[
                (
                    "method",
                    "/ringiflow.workflow.v1.WorkflowCommandService/ApproveStep"
                ),
                ("code", "OK")
            ]
        ) >= Some(1.0),
        "{command}"
    );
    assert!(
        sample(
            &command,
            "ringiflow_event_store_append_duration_seconds_count",
            &[]
        ) >= Some(3.0),
        "{command}"
    );

    let projector = eventually("projector-svc's lag gauges", || async {
        let text = scrape(&stack.metrics["projector-svc"]).await;
        text.contains("ringiflow_projector_lag_events{")
            .then_some(text)
    })
    .await;
    assert!(
        sample(
            &projector,
            "ringiflow_projector_events_applied_total",
            &[("projection", "workflows")]
        ) >= Some(3.0),
        "{projector}"
    );
    assert_eq!(
        sample(
            &projector,
            "ringiflow_projector_lag_events",
            &[("projection", "workflows")]
        ),
        Some(0.0),
        "caught up: {projector}"
    );
    assert_eq!(
        sample(
            &projector,
            "ringiflow_projector_lag_seconds",
            &[("projection", "workflows")]
        ),
        Some(0.0),
        "caught up: {projector}"
    );

    // The status API tells the same on the projector's health port.
    let mut status =
        ProjectorStatusServiceClient::connect(format!("http://127.0.0.1:{}", stack.projector_port))
            .await
            .unwrap();
    let status = status
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = status
        .projections
        .iter()
        .map(|projection| projection.projection.as_str())
        .collect();
    assert_eq!(names, ["scans", "systems", "tasks", "workflows"]);
    let workflows = &status.projections[3];
    assert!(!workflows.partitions.is_empty(), "{workflows:?}");
    assert_eq!(
        (
            workflows.lag_events,
            workflows.lag_seconds,
            workflows.dead_letters
        ),
        (0, 0.0, 0),
        "{workflows:?}"
    );
    assert_eq!(status.parked_aggregates, 0);

    let gateway = scrape(&stack.metrics["gateway"]).await;
    let on_http_port = scrape(&format!("{}/metrics", stack.gateway_url)).await;
    assert!(
        on_http_port.contains("ringiflow_graphql_requests_total{"),
        "{on_http_port}"
    );
    assert!(
        sample(
            &gateway,
            "ringiflow_graphql_requests_total",
            &[("operation_type", "mutation"), ("code", "OK")]
        ) >= Some(3.0),
        "{gateway}"
    );
    assert!(
        sample(
            &gateway,
            "ringiflow_graphql_requests_total",
            &[("operation_type", "query")]
        ) >= Some(1.0),
        "{gateway}"
    );
    assert!(
        sample(
            &gateway,
            "ringiflow_grpc_client_requests_total",
            &[
                ("backend", "command-svc"),
                (
                    "method",
                    "/ringiflow.workflow.v1.WorkflowCommandService/ApproveStep"
                ),
                ("code", "OK")
            ]
        ) >= Some(1.0),
        "{gateway}"
    );
    let query = scrape(&stack.metrics["query-svc"]).await;
    assert!(
        sample(
            &query,
            "ringiflow_grpc_server_requests_total",
            &[("code", "OK")]
        ) >= Some(1.0),
        "{query}"
    );
}
