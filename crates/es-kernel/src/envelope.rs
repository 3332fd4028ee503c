//! The envelope every stored event travels in, from the event store through Kafka to the
//! projector. Plain data: the store assigns ids, positions and times, never the domain.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Who caused an event and in which request chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventMetadata {
    pub tenant_id: String,
    pub user_id: String,
    /// Shared by every command and event of one request chain.
    pub correlation_id: Uuid,
    /// The command (or event) that directly caused this event.
    pub causation_id: Uuid,
    /// W3C trace context of the request that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event as recorded in the store; `E` is the aggregate's event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent<E> {
    pub event_id: Uuid,
    /// Global position in the store; increases with commit order only roughly, never used for
    /// per-aggregate ordering (that is `version`).
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// 1..n per aggregate, no gaps: the optimistic lock.
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
    pub metadata: EventMetadata,
    pub event: E,
}

impl<E> RecordedEvent<E> {
    /// The same envelope carrying `event`: e.g. the stored JSON read as the context's type.
    pub fn with_event<F>(&self, event: F) -> RecordedEvent<F> {
        RecordedEvent {
            event_id: self.event_id,
            position: self.position,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id,
            version: self.version,
            occurred_at: self.occurred_at,
            metadata: self.metadata.clone(),
            event,
        }
    }
}
