//! Snapshots of aggregate state, so loading a long-lived aggregate reads its latest snapshot
//! and only the events after it. A snapshot is not an event: it is derived data that may be
//! deleted at any time, so whatever cannot be used (another state schema, unreadable JSON) is
//! ignored and the state is folded from the events instead.

use crate::{EventStore, StoreError};
use es_kernel::Aggregate;
use uuid::Uuid;

/// The state of an aggregate right after its event `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<A> {
    pub version: i64,
    pub state: A,
}

impl EventStore {
    /// The aggregate's newest usable snapshot, visible only to its own tenant. A snapshot's
    /// tenant is that of the event it was taken at, which the join also proves exists.
    pub async fn load_snapshot<A: Aggregate>(
        &self,
        tenant_id: &str,
        aggregate_id: Uuid,
    ) -> Result<Option<Snapshot<A>>, StoreError> {
        let newest: Option<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT s.version, s.state FROM snapshots s
             JOIN events e ON e.aggregate_id = s.aggregate_id AND e.version = s.version
             WHERE s.aggregate_id = $1 AND e.tenant_id = $2 AND s.state_schema = $3
             ORDER BY s.version DESC LIMIT 1",
        )
        .bind(aggregate_id)
        .bind(tenant_id)
        .bind(A::STATE_SCHEMA)
        .fetch_optional(&self.pool)
        .await?;
        let Some((version, state)) = newest else {
            return Ok(None);
        };
        match serde_json::from_value(state) {
            Ok(state) => {
                metrics::counter!("ringiflow_event_store_snapshot_loads_total").increment(1);
                Ok(Some(Snapshot { version, state }))
            }
            Err(error) => {
                tracing::warn!(%aggregate_id, version, error = %error, "ignoring unreadable snapshot");
                Ok(None)
            }
        }
    }

    /// Records `snapshot` in the current state schema. Only one state can follow a given
    /// event, so a snapshot already taken at that version is left as it is.
    pub async fn save_snapshot<A: Aggregate>(
        &self,
        aggregate_id: Uuid,
        snapshot: &Snapshot<A>,
    ) -> Result<(), StoreError> {
        let state = serde_json::to_value(&snapshot.state).expect("aggregate state is plain data");
        sqlx::query(
            "INSERT INTO snapshots (aggregate_id, version, state, state_schema) VALUES ($1, $2, $3, $4)
             ON CONFLICT (aggregate_id, version) DO NOTHING",
        )
        .bind(aggregate_id)
        .bind(snapshot.version)
        .bind(&state)
        .bind(A::STATE_SCHEMA)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
