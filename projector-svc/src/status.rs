//! How far behind each projection is: measured by its projector (see
//! `Projector::report_lag`), exported as metrics and answered by the status API
//! (`ringiflow.projector.v1.ProjectorStatusService`) on the health port.

use chrono::{DateTime, Utc};
use proto::projector::v1 as pb;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// One measurement of a partition: events waiting, and seconds behind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PartitionLag {
    pub events: i64,
    pub seconds: f64,
}

/// What a projector knows of a partition when it measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    /// Events between the last one processed and the partition's head.
    pub waiting: i64,
    /// The `ce_time` of the last event processed.
    pub last_event: Option<DateTime<Utc>>,
    /// When it was processed.
    pub processed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
struct Measured {
    partitions: BTreeMap<i32, PartitionLag>,
    /// Since when each partition has had events waiting, as first measured.
    behind_since: BTreeMap<i32, DateTime<Utc>>,
    dead_letters: i64,
}

/// The latest measurements of every projection of this process, by name.
#[derive(Clone, Default)]
pub(crate) struct Lags(Arc<Mutex<BTreeMap<String, Measured>>>);

impl Lags {
    /// Names a projection, so that it is reported before its first measurement.
    pub fn register(&self, projection: &str) {
        self.lock().entry(projection.to_owned()).or_default();
    }

    /// Records a measurement of `partition`. Its lag in seconds is how old the oldest waiting
    /// event is, which the projector cannot see without reading it; estimated from below so
    /// that an alert on it never fires on a read model that is fresh:
    /// - nothing waiting: 0, however old the last event (a quiet partition is not behind);
    /// - processing since it fell behind (catching up): the age of the last event processed,
    ///   as the next one is no older;
    /// - nothing processed since it fell behind (a burst after a quiet spell, or a stall): the
    ///   time since then. The age of the last event processed would call a partition that was
    ///   idle for an hour an hour behind the moment a new event arrives.
    pub fn measured(
        &self,
        projection: &str,
        partition: i32,
        progress: Progress,
        now: DateTime<Utc>,
    ) {
        let seconds = {
            let mut measured = self.lock();
            let behind_since = &mut measured
                .entry(projection.to_owned())
                .or_default()
                .behind_since;
            if progress.waiting == 0 {
                behind_since.remove(&partition);
                0.0
            } else {
                let since = *behind_since.entry(partition).or_insert(now);
                let oldest = match progress.last_event {
                    Some(event) if progress.processed_at >= since => event,
                    _ => since,
                };
                (now - oldest).num_milliseconds().max(0) as f64 / 1000.0
            }
        };
        let lag = PartitionLag {
            events: progress.waiting,
            seconds,
        };
        self.partition(projection, partition, lag);
    }

    fn partition(&self, projection: &str, partition: i32, lag: PartitionLag) {
        let labels = [
            ("projection", projection.to_owned()),
            ("partition", partition.to_string()),
        ];
        metrics::gauge!("ringiflow_projector_lag_events", &labels).set(lag.events as f64);
        metrics::gauge!("ringiflow_projector_lag_seconds", &labels).set(lag.seconds);
        self.lock()
            .entry(projection.to_owned())
            .or_default()
            .partitions
            .insert(partition, lag);
    }

    /// Stops reporting a partition this process no longer consumes: its gauges drop to 0 (this
    /// replica is not behind on it), and the status API leaves it out.
    pub fn forget(&self, projection: &str, partition: i32) {
        self.partition(projection, partition, PartitionLag::default());
        if let Some(measured) = self.lock().get_mut(projection) {
            measured.partitions.remove(&partition);
            measured.behind_since.remove(&partition);
        }
    }

    pub fn dead_letters(&self, projection: &str, depth: i64) {
        metrics::gauge!("ringiflow_projector_dead_letters", "projection" => projection.to_owned())
            .set(depth as f64);
        self.lock()
            .entry(projection.to_owned())
            .or_default()
            .dead_letters = depth;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Measured>> {
        self.0.lock().expect("not poisoned")
    }

    fn statuses(&self) -> Vec<pb::ProjectionStatus> {
        self.lock()
            .iter()
            .map(|(projection, measured)| pb::ProjectionStatus {
                projection: projection.clone(),
                lag_events: measured.partitions.values().map(|lag| lag.events).sum(),
                lag_seconds: measured
                    .partitions
                    .values()
                    .map(|lag| lag.seconds)
                    .fold(0.0, f64::max),
                dead_letters: measured.dead_letters,
                partitions: measured
                    .partitions
                    .iter()
                    .map(|(partition, lag)| pb::PartitionLag {
                        partition: *partition,
                        lag_events: lag.events,
                        lag_seconds: lag.seconds,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The status API: the lags as last measured, the parked aggregates as the read model has them
/// now.
pub(crate) struct StatusService {
    pub lags: Lags,
    pub pool: PgPool,
}

#[tonic::async_trait]
impl pb::projector_status_service_server::ProjectorStatusService for StatusService {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let parked_aggregates = projection::parked_count(&self.pool)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot count parked aggregates");
                platform::errors::status(
                    platform::errors::ErrorCode::Unavailable,
                    "the read database is unavailable",
                    Default::default(),
                )
            })?;
        Ok(Response::new(pb::GetStatusResponse {
            projections: self.lags.statuses(),
            parked_aggregates,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projection_is_as_far_behind_as_its_furthest_partition() {
        let lags = Lags::default();
        lags.register("tasks");
        lags.partition(
            "workflows",
            0,
            PartitionLag {
                events: 2,
                seconds: 1.5,
            },
        );
        lags.partition(
            "workflows",
            1,
            PartitionLag {
                events: 3,
                seconds: 4.0,
            },
        );
        lags.partition(
            "workflows",
            1,
            PartitionLag {
                events: 0,
                seconds: 0.0,
            },
        );
        let behind = PartitionLag {
            events: 9,
            seconds: 9.0,
        };
        lags.partition("workflows", 2, behind);
        lags.forget("workflows", 2);
        lags.dead_letters("workflows", 7);
        let statuses = lags.statuses();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].projection, "tasks");
        assert_eq!((statuses[0].lag_events, statuses[0].lag_seconds), (0, 0.0));
        let workflows = &statuses[1];
        assert_eq!(workflows.projection, "workflows");
        assert_eq!((workflows.lag_events, workflows.lag_seconds), (2, 1.5));
        assert_eq!(workflows.dead_letters, 7);
        assert_eq!(workflows.partitions.len(), 2);
    }

    #[test]
    fn seconds_behind_never_count_a_quiet_spell_and_follow_a_catch_up() {
        let lags = Lags::default();
        let at = |seconds: i64| {
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(10_000 + seconds)
        };
        let seconds = |lags: &Lags| lags.statuses()[0].lag_seconds;
        let measure = |waiting, last_event, processed_at, now| {
            let progress = Progress {
                waiting,
                last_event: Some(at(last_event)),
                processed_at: at(processed_at),
            };
            lags.measured("workflows", 0, progress, at(now));
        };
        // Caught up an hour after its last event: not behind.
        measure(0, -3_600, -3_600, 0);
        assert_eq!(seconds(&lags), 0.0);
        // A burst arrives after the quiet hour: behind only since it was seen.
        measure(5, -3_600, -3_600, 0);
        assert_eq!(seconds(&lags), 0.0);
        measure(5, -3_600, -3_600, 5);
        assert_eq!(seconds(&lags), 5.0, "stalled since it fell behind");
        // Processing again: as old as the last event processed.
        measure(3, 1, 6, 10);
        assert_eq!(seconds(&lags), 9.0);
        // Caught up: 0, and a later burst starts counting afresh.
        measure(0, 8, 11, 12);
        assert_eq!(seconds(&lags), 0.0);
        measure(2, 8, 11, 20);
        measure(2, 8, 11, 22);
        assert_eq!(seconds(&lags), 2.0);
    }
}
