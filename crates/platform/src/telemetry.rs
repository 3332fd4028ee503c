//! Logs, traces and metrics of one process.
//!
//! Logs go to stdout (pretty or JSON). Traces leave over OTLP/gRPC when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*` and `OTEL_EXPORTER_OTLP_TIMEOUT` are read by the
//! SDK as the specification says); without it no exporter exists and spans cost what `tracing`
//! alone costs. Spans are batched into a bounded queue and exported from a thread of their own,
//! so a slow or absent collector drops spans and never holds up a request.
//!
//! Trace context crosses process boundaries as W3C `traceparent`: in HTTP headers, gRPC
//! metadata, the event store's event metadata and Kafka headers. The helpers here are the only
//! place that parses or writes it.

use crate::settings::{LogFormat, TelemetrySettings};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::{OpenTelemetrySpanExt, OtelData};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// Set once spans are exported: the helpers below do nothing (and allocate nothing) otherwise.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still queued (bounded by `OTEL_BSP_EXPORT_TIMEOUT`) and stops the
    /// exporter. On a thread of its own: the SDK's shutdown blocks.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "spans not flushed at shutdown");
        }
    }
}

/// Installs the global subscriber and the metrics recorder ([`crate::metrics::install`]) for
/// this process, named after its binary (`command-svc`, ...) in the metrics' `service` label
/// and, unless `OTEL_SERVICE_NAME` says otherwise, in its spans. A second call (tests start
/// many services in one process) keeps the first.
pub fn init(settings: &TelemetrySettings) -> Telemetry {
    let service = binary_name();
    let service = service.as_str();
    let exporter = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(tracer_provider(service)),
        _ => None,
    };
    // Without an exporter the service still runs; why is logged once the subscriber is up.
    let (provider, exporter_error) = match exporter {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            ))
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    // Spans are exported at INFO and above whatever RUST_LOG says about log lines, so turning
    // logs down never cuts a trace in two.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ringiflow"))
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(traces)
        .with(logs.with_filter(filter))
        .try_init()
        .is_ok();
    crate::metrics::install(service);
    if let Some(error) = exporter_error {
        tracing::error!(%error, "OTLP exporter not started; running without traces");
    }
    if !installed {
        return Telemetry { provider: None };
    }
    if provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(service, "exporting spans over OTLP");
    }
    Telemetry { provider }
}

fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ringiflow".to_owned())
}

fn tracer_provider(service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder();
    // The binary's name unless the operator named the service.
    let resource = match std::env::var("OTEL_SERVICE_NAME") {
        Ok(name) if !name.is_empty() => resource,
        _ => resource.with_service_name(service.to_owned()),
    };
    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG) (default: parent-based, always on).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Whether spans leave the process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Makes the trace context a `traceparent` (and `tracestate`) names the parent of `span`. Must
/// be called before the span is first entered; a missing or malformed value leaves `span` a
/// root.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let (true, Some(traceparent)) = (exporting(), traceparent) {
        let context = TraceContextPropagator::new().extract(&Traceparent(traceparent));
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }
}

/// [`set_parent`] from HTTP headers or gRPC metadata (`traceparent`, `tracestate`).
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if exporting() {
        let context = TraceContextPropagator::new().extract(&Headers(headers));
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }
}

/// Records on `span` a link to the context a `traceparent` names.
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let (true, Some(traceparent)) = (exporting(), traceparent) {
        let context = TraceContextPropagator::new().extract(&Traceparent(traceparent));
        let linked = context.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
}

/// `span`'s own context as a `traceparent` value, for the next hop to continue; `None` when
/// spans are not exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut carrier = TraceparentCarrier(None);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// One `traceparent` value as a propagator reads it.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Keeps the `traceparent` a propagator writes (the event metadata has no room for
/// `tracestate`).
struct TraceparentCarrier(Option<String>);

impl Injector for TraceparentCarrier {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The JSON log line with the current span's `trace_id` and `span_id` (the design's log
/// schema), when spans are exported and so have ids.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = context.lookup_current().and_then(|span| {
            let extensions = span.extensions();
            let data = extensions.get::<OtelData>()?;
            Some((data.trace_id()?, data.span_id()?))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(context, writer, event);
        };
        let mut line = String::new();
        self.0
            .format_event(context, Writer::new(&mut line), event)?;
        // The JSON formatter writes one object and a newline: the ids go in before its `}`.
        match line.strip_suffix("}\n") {
            Some(object) => {
                writeln!(
                    writer,
                    "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                )
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_in_a_traced_span_carry_its_trace_and_span_ids() {
        let written = Written::default();
        let writer = written.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(WithTraceIds(
                        tracing_subscriber::fmt::format().json().flatten_event(true),
                    ))
                    .with_writer(move || writer.clone()),
            );
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            tracing::info!(event_id = "e-1", processing_time_ms = 3, "event processed");
            let context = span.context();
            let span_context = context.span().span_context().clone();
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        });
        let line = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"], span_id.as_str());
        assert_eq!(line["event_id"], "e-1");
        assert_eq!(line["processing_time_ms"], 3);
        assert_eq!(line["message"], "event processed");
        assert!(
            line["timestamp"].is_string() && line["level"] == "INFO",
            "{line}"
        );
    }

    #[test]
    fn only_a_traceparent_is_extracted_and_kept() {
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let context = TraceContextPropagator::new().extract(&Traceparent(value));
        let span_context = context.span().span_context().clone();
        assert!(span_context.is_valid());
        assert_eq!(
            span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut carrier = TraceparentCarrier(None);
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        assert_eq!(carrier.0.as_deref(), Some(value));
        let garbage = TraceContextPropagator::new().extract(&Traceparent("00-nonsense"));
        assert!(!garbage.span().span_context().is_valid());
    }
}
