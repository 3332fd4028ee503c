//! What a command needs before it can decide, in one round trip: whether its command id was
//! handled already, and otherwise the aggregate's newest usable snapshot and the events after
//! it. Three statements (command id, snapshot, events) were most of a command's round trips
//! besides the append itself, and a statement's fixed cost on both ends is larger than what
//! these small reads cost.

use crate::snapshot::Snapshot;
use crate::{recorded_event, CommandRecord, EventStore, StoreError};
use es_kernel::{Aggregate, RecordedEvent};
use sqlx::Row;
use uuid::Uuid;

/// What the store knows about a command and its aggregate before the command runs.
#[derive(Debug)]
pub enum Prior<A: Aggregate> {
    /// The command id was used before; this is what it did.
    Handled(CommandRecord),
    /// The command is new: the state to decide on.
    Current {
        snapshot: Option<Snapshot<A>>,
        /// The events after the snapshot (or all of them), in version order.
        history: Vec<RecordedEvent<A::Event>>,
    },
}

/// The events' columns are those of `SELECT_EVENTS`, so `recorded_event` reads them; the
/// others are named apart. Every row carries the command and snapshot columns (NULL when there
/// is none); with no events to read, one row of them alone comes back.
const PRIOR: &str = "
    WITH handled AS (
        SELECT command_type, aggregate_id AS command_aggregate_id, version AS command_version,
               event_ids
        FROM processed_commands WHERE tenant_id = $2 AND command_id = $4),
    newest AS (
        SELECT s.version AS snapshot_version, s.state AS snapshot_state
        FROM snapshots s
        JOIN events e ON e.aggregate_id = s.aggregate_id AND e.version = s.version
        WHERE $6 AND s.aggregate_id = $1 AND e.tenant_id = $2 AND s.state_schema = $5
        ORDER BY s.version DESC LIMIT 1)
    SELECT handled.*, newest.*, later.*
    FROM (SELECT) AS one
    LEFT JOIN handled ON true
    LEFT JOIN newest ON true
    LEFT JOIN LATERAL (
        SELECT position, event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
               schema_version, payload, metadata, occurred_at
        FROM events
        WHERE aggregate_id = $1 AND tenant_id = $2 AND aggregate_type = $3
          AND version > COALESCE(newest.snapshot_version, 0)
          AND NOT EXISTS (SELECT FROM handled)
    ) AS later ON true
    ORDER BY later.version";

impl EventStore {
    /// Whether `command_id` of the tenant was handled, else the aggregate `aggregate_id` of
    /// type `A` as the command finds it: the newest usable snapshot (when `snapshots` is on,
    /// with the rules of [`EventStore::load_snapshot`]) and the events after it.
    pub async fn prior<A: Aggregate>(
        &self,
        tenant_id: &str,
        command_id: Uuid,
        aggregate_id: Uuid,
        snapshots: bool,
    ) -> Result<Prior<A>, StoreError> {
        let rows = sqlx::query(PRIOR)
            .bind(aggregate_id)
            .bind(tenant_id)
            .bind(A::TYPE)
            .bind(command_id)
            .bind(A::STATE_SCHEMA)
            .bind(snapshots)
            .fetch_all(&self.pool)
            .await?;
        let first = rows.first().expect("the query always returns a row");
        if let Some(command_type) = first.get::<Option<String>, _>("command_type") {
            return Ok(Prior::Handled(CommandRecord {
                command_type,
                aggregate_id: first.get("command_aggregate_id"),
                version: first.get("command_version"),
                event_ids: first.get("event_ids"),
            }));
        }
        let snapshot_version: Option<i64> = first.get("snapshot_version");
        let snapshot = match snapshot_version {
            None => None,
            Some(version) => {
                match serde_json::from_value(first.get("snapshot_state")) {
                    Ok(state) => {
                        metrics::counter!("ringiflow_event_store_snapshot_loads_total")
                            .increment(1);
                        Some(Snapshot { version, state })
                    }
                    Err(error) => {
                        // Folded from the events instead, which this read did not include.
                        tracing::warn!(%aggregate_id, version, error = %error, "ignoring unreadable snapshot");
                        let history = self.history::<A>(tenant_id, aggregate_id, 0).await?;
                        return Ok(Prior::Current {
                            snapshot: None,
                            history,
                        });
                    }
                }
            }
        };
        let history = rows
            .iter()
            .filter(|row| row.get::<Option<Uuid>, _>("event_id").is_some())
            .map(|row| recorded_event(row, &self.upcasters))
            .collect::<Result<_, _>>()?;
        Ok(Prior::Current { snapshot, history })
    }
}
