//! Tracing setup. The subscriber is the seam where OTLP export will plug in as another layer.

use crate::settings::{LogFormat, TelemetrySettings};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. A second call (tests start many services in one process)
/// keeps the first subscriber.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_installed = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
