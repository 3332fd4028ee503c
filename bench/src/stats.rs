//! Latency recording (HdrHistogram, microseconds) and the summaries printed and written as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Values above this are recorded as this (an hour is far beyond anything sane here).
const MAX_MICROS: u64 = 3_600_000_000;

#[derive(Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(MAX_MICROS)
            .max(1);
        self.0.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds add");
    }

    /// Quantile in milliseconds (0 when nothing was recorded).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn summary(&self) -> LatencySummary {
        let empty = self.0.is_empty();
        LatencySummary {
            count: self.0.len(),
            mean_ms: if empty {
                0.0
            } else {
                round3(self.0.mean() / 1000.0)
            },
            p50_ms: round3(self.quantile_ms(0.50)),
            p90_ms: round3(self.quantile_ms(0.90)),
            p99_ms: round3(self.quantile_ms(0.99)),
            max_ms: if empty {
                0.0
            } else {
                round3(self.0.max() as f64 / 1000.0)
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// `a / b`, or `None` when `b` is zero (nothing measured).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| round3(a / b))
}
