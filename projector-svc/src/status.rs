//! How far behind each projection is: measured by its projector (see
//! `Projector::report_lag`), exported as metrics and answered by the status API
//! (`ringiflow.projector.v1.ProjectorStatusService`) on the health port.

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

#[derive(Debug, Clone, Default)]
struct Measured {
    partitions: BTreeMap<i32, PartitionLag>,
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

    pub fn partition(&self, projection: &str, partition: i32, lag: PartitionLag) {
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
}
