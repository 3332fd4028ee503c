//! The causal chain of one request: every event, of any aggregate type, whose metadata carries
//! a given correlation id — the command a person sent and everything the platform recorded in
//! reaction to it, and to those reactions in turn. Read from the envelopes alone: no payload is
//! decoded or upcast, so a chain reads the same whatever contexts the store holds.

use crate::{EventStore, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

/// One recorded event of a chain, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub event_id: Uuid,
    /// The stored event type.
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// The aggregate version the event made.
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    /// The command, or the event reacted to, that caused it.
    pub causation_id: Uuid,
    /// Whose command caused it (a reaction's: the platform's own id).
    pub user_id: String,
}

impl EventStore {
    /// Up to `limit` events of `tenant_id` carrying `correlation_id`, in the order they were
    /// recorded (by position); empty for a correlation id the tenant has none of, whether
    /// another tenant has or not. Found through the index on the tenant and the metadata's
    /// correlation id, so it costs the chain's length, not the store's.
    pub async fn chain(
        &self,
        tenant_id: &str,
        correlation_id: Uuid,
        limit: i64,
    ) -> Result<Vec<ChainLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, event_type, aggregate_type, aggregate_id, version, occurred_at,
                    metadata->>'causation_id' AS causation_id,
                    metadata->>'user_id' AS user_id
             FROM events
             WHERE tenant_id = $1 AND metadata->>'correlation_id' = $2
             ORDER BY position
             LIMIT $3",
        )
        .bind(tenant_id)
        // As the metadata stores it: serde's hyphenated lowercase form.
        .bind(correlation_id.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let event_id: Uuid = row.get("event_id");
                let corrupt = |problem: &str| StoreError::Corrupt {
                    event_id,
                    problem: format!("metadata: {problem}"),
                };
                let causation_id = row
                    .get::<Option<String>, _>("causation_id")
                    .and_then(|raw| Uuid::parse_str(&raw).ok())
                    .ok_or_else(|| corrupt("causation_id is not a UUID"))?;
                let user_id = row
                    .get::<Option<String>, _>("user_id")
                    .ok_or_else(|| corrupt("user_id is missing"))?;
                Ok(ChainLink {
                    event_id,
                    event_type: row.get("event_type"),
                    aggregate_type: row.get("aggregate_type"),
                    aggregate_id: row.get("aggregate_id"),
                    version: row.get("version"),
                    occurred_at: row.get("occurred_at"),
                    correlation_id,
                    causation_id,
                    user_id,
                })
            })
            .collect()
    }
}
