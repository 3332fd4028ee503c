//! The PostgreSQL event store: append with optimistic concurrency (new events, their outbox rows
//! and the command id in one transaction), load an aggregate's history (lifting old payload
//! shapes to the current one), snapshots of aggregate state, and the outbox reads the relay
//! needs.
#![forbid(unsafe_code)]

mod bell;
mod chain;
mod outbox;
mod prior;
mod scan;
mod snapshot;

use chrono::{DateTime, Utc};
use es_kernel::upcast::{self, Upcaster};
use es_kernel::{Aggregate, ContextRegistration, EventMetadata, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use uuid::Uuid;

pub use chain::ChainLink;
pub use outbox::{
    OutboxConnection, PendingEvent, UnreadableEvent, LEADER_CALL_TIMEOUT, LEADER_IDLE_TIMEOUT,
    OUTBOX_CHANNEL,
};
pub use prior::Prior;
pub use scan::ScannedEvent;
pub use snapshot::Snapshot;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database did not answer in time (see `outbox::LEADER_CALL_TIMEOUT`).
    #[error("the database did not answer in time")]
    TimedOut,
    #[error("stored event {event_id} cannot be read: {problem}")]
    Corrupt { event_id: Uuid, problem: String },
    /// The event's payload version is one this build has no upcaster chain to: written by a
    /// newer build, or a version that was never released.
    #[error("stored event {event_id} is {event_type} version {schema_version}, which this build cannot read")]
    UnknownSchema {
        event_id: Uuid,
        event_type: String,
        schema_version: i32,
    },
}

impl StoreError {
    /// Worth retrying later: the database is unreachable or overloaded, not the data wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::TimedOut
                | StoreError::Database(
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                )
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended first; the aggregate is now at `current_version`.
    #[error("expected version {expected}, but the aggregate is at version {current_version}")]
    Conflict { expected: i64, current_version: i64 },
    /// A new aggregate's id is another tenant's. Its caller must answer as it would for any
    /// unusable id: anything else (a conflict, a version) would confirm that it exists.
    #[error("the aggregate id is not available")]
    IdUnavailable,
    /// This command id was already handled (by a concurrent retry); here is its result.
    #[error("command already processed")]
    DuplicateCommand(CommandRecord),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a handled command, returned again to any retry with the same command id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub command_type: String,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub event_ids: Vec<Uuid>,
}

/// Everything one append writes, for an aggregate whose events are `E`.
#[derive(Debug)]
pub struct Append<'a, E> {
    pub aggregate_type: &'a str,
    pub aggregate_id: Uuid,
    /// The version the decision was made on (0 for a new aggregate).
    pub expected_version: i64,
    pub events: &'a [E],
    /// Applied to every new event. Its `causation_id` is what caused the command: the command
    /// itself when a person sent it, the event a process manager reacted to otherwise.
    pub metadata: &'a EventMetadata,
    /// The command's idempotency key: a second append with it appends nothing.
    pub command_id: Uuid,
    pub command_type: &'a str,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    /// Every registered context's chain, read by every load.
    upcasters: Arc<[Upcaster]>,
    /// The aggregate types whose appends also write outbox rows.
    published: Arc<[&'static str]>,
    bell: Arc<bell::OutboxBell>,
}

impl EventStore {
    /// A store holding the events of `contexts`: it reads their stored payloads with their
    /// upcasters and writes outbox rows for the aggregate types they publish.
    pub fn new(pool: PgPool, contexts: &[ContextRegistration]) -> Self {
        Self {
            bell: Arc::new(bell::OutboxBell::new(pool.clone())),
            pool,
            upcasters: contexts
                .iter()
                .flat_map(|context| context.upcasters.iter().copied())
                .collect(),
            published: contexts
                .iter()
                .flat_map(|context| context.published.iter().copied())
                .collect(),
        }
    }

    /// The same store with another upcaster chain: what a test uses to pretend the current
    /// payload shapes have an older history.
    pub fn with_upcasters(self, upcasters: &[Upcaster]) -> Self {
        Self {
            upcasters: upcasters.into(),
            ..self
        }
    }

    /// The relay's connection if this process wins the leadership, reading with this store's
    /// upcasters; see [`OutboxConnection`].
    pub async fn try_lead(&self) -> Result<Option<OutboxConnection>, StoreError> {
        OutboxConnection::try_lead(&self.pool, self.upcasters.clone()).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Versions of this build's migrations that the database has not applied (all of them when
    /// it was never migrated): what a service that skips migrating at start checks instead.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, sqlx::Error> {
        migrations::pending(&MIGRATOR, &self.pool).await
    }

    /// The events after `version` of the aggregate `aggregate_id` of type `A`, in version
    /// order, visible only to its own tenant; an aggregate of another type has none.
    pub async fn history<A: Aggregate>(
        &self,
        tenant_id: &str,
        aggregate_id: Uuid,
        version: i64,
    ) -> Result<Vec<RecordedEvent<A::Event>>, StoreError> {
        self.history_page::<A>(tenant_id, aggregate_id, version, i64::MAX)
            .await
    }

    /// Like [`Self::history`], at most `limit` events: a page of an audit trail, read no further
    /// than the page.
    pub async fn history_page<A: Aggregate>(
        &self,
        tenant_id: &str,
        aggregate_id: Uuid,
        version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent<A::Event>>, StoreError> {
        sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE aggregate_id = $1 AND tenant_id = $2 AND version > $3
             AND aggregate_type = $4 ORDER BY version LIMIT $5"
        ))
        .bind(aggregate_id)
        .bind(tenant_id)
        .bind(version)
        .bind(A::TYPE)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| recorded_event(row, &self.upcasters))
        .collect()
    }

    pub async fn find_command(
        &self,
        tenant_id: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT command_type, aggregate_id, version, event_ids FROM processed_commands
             WHERE tenant_id = $1 AND command_id = $2",
        )
        .bind(tenant_id)
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| CommandRecord {
            command_type: row.get("command_type"),
            aggregate_id: row.get("aggregate_id"),
            version: row.get("version"),
            event_ids: row.get("event_ids"),
        }))
    }

    /// Appends `events` as versions `expected_version + 1 ..`, with their outbox rows and the
    /// command id, atomically. Losing a race yields `Conflict`; reusing a command id yields
    /// `DuplicateCommand`; in both cases nothing is written.
    pub async fn append<E: Serialize>(
        &self,
        append: Append<'_, E>,
    ) -> Result<CommandRecord, AppendError> {
        let count = append.events.len() as i64;
        let event_ids: Vec<Uuid> = append.events.iter().map(|_| Uuid::now_v7()).collect();
        let versions: Vec<i64> = (1..=count).map(|i| append.expected_version + i).collect();
        let mut types = Vec::with_capacity(append.events.len());
        let mut schema_versions = Vec::with_capacity(append.events.len());
        let mut payloads = Vec::with_capacity(append.events.len());
        for event in append.events {
            let (event_type, payload) = split_event(event);
            // The domain only ever produces the current shape.
            schema_versions.push(upcast::current_version(&self.upcasters, &event_type));
            types.push(event_type);
            payloads.push(payload);
        }
        let metadata = serde_json::to_value(append.metadata).expect("metadata is plain data");

        let version = append.expected_version + count;
        let published = self.published.contains(&append.aggregate_type);
        let started = std::time::Instant::now();
        // One statement, so one round trip and one implicit transaction: the events, their
        // outbox rows and the command id commit together or not at all. The relay's wake-up
        // follows the commit (`bell`).
        // Positions are drawn in version order (ORDER BY) because the relay publishes in
        // position order: within one append, a later version must never get a smaller position.
        let inserted = sqlx::query(
            "WITH new_events AS (
                 INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                                     event_type, schema_version, payload, metadata, occurred_at)
                 SELECT e.event_id, $2, $3, $4, e.version, e.event_type, e.schema_version, e.payload, $8, $9
                 FROM UNNEST($1::uuid[], $5::bigint[], $6::text[], $7::jsonb[], $10::int[])
                      AS e(event_id, version, event_type, payload, schema_version)
                 ORDER BY e.version
                 RETURNING position
             ),
             outbox_rows AS (INSERT INTO outbox (position) SELECT position FROM new_events WHERE $14),
             command AS (
                 INSERT INTO processed_commands (tenant_id, command_id, command_type, aggregate_id, version, event_ids)
                 VALUES ($2, $11, $12, $4, $13, $1)
             )
             SELECT count(*) FROM new_events",
        )
        .bind(&event_ids)
        .bind(&append.metadata.tenant_id)
        .bind(append.aggregate_type)
        .bind(append.aggregate_id)
        .bind(&versions)
        .bind(&types)
        .bind(&payloads)
        .bind(&metadata)
        .bind(append.occurred_at)
        .bind(&schema_versions)
        .bind(append.command_id)
        .bind(append.command_type)
        .bind(version)
        // Only the aggregate types a context publishes get outbox rows; the others live in the
        // store alone.
        .bind(published)
        .execute(&self.pool)
        .await;
        metrics::histogram!("ringiflow_event_store_append_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match inserted {
            Ok(_) => {
                if published {
                    self.bell.ring();
                }
                Ok(CommandRecord {
                    command_type: append.command_type.to_owned(),
                    aggregate_id: append.aggregate_id,
                    version,
                    event_ids,
                })
            }
            Err(error) if violates(&error, "events_aggregate_version") => {
                let current_version = self
                    .current_version(&append.metadata.tenant_id, append.aggregate_id)
                    .await?;
                // Creating, and the tenant sees nothing there: the id is another tenant's.
                if append.expected_version == 0 && current_version == 0 {
                    return Err(AppendError::IdUnavailable);
                }
                metrics::counter!("ringiflow_event_store_append_conflicts_total").increment(1);
                Err(AppendError::Conflict {
                    expected: append.expected_version,
                    current_version,
                })
            }
            Err(error) if violates(&error, "processed_commands_pkey") => {
                let existing = self
                    .find_command(&append.metadata.tenant_id, append.command_id)
                    .await?
                    .ok_or_else(|| StoreError::Database(error))?;
                Err(AppendError::DuplicateCommand(existing))
            }
            Err(error) => Err(StoreError::from(error).into()),
        }
    }

    /// As the tenant sees it: an id taken by another tenant's aggregate is at version 0 for
    /// everyone else.
    async fn current_version(
        &self,
        tenant_id: &str,
        aggregate_id: Uuid,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_id = $1 AND tenant_id = $2",
        )
        .bind(aggregate_id)
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?)
    }
}

fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation() && db.constraint() == Some(constraint))
}

/// The domain serialises as `{"type": ..., "data": ...}`; the store keeps the two apart so the
/// type is queryable and the payload is only the event's own data.
fn split_event(event: &impl Serialize) -> (String, serde_json::Value) {
    let mut value = serde_json::to_value(event).expect("domain events are plain data");
    let payload = value
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    let event_type = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .expect("domain events are tagged with their type")
        .to_owned();
    (event_type, payload)
}

pub(crate) const SELECT_EVENTS: &str =
    "SELECT position, event_id, tenant_id, aggregate_type, aggregate_id,
    version, event_type, schema_version, payload, metadata, occurred_at FROM events";

/// Every read path goes through here, so every event is upcast before it is parsed.
pub(crate) fn recorded_event<E: DeserializeOwned>(
    row: &PgRow,
    upcasters: &[Upcaster],
) -> Result<RecordedEvent<E>, StoreError> {
    let event_id: Uuid = row.get("event_id");
    let corrupt = |problem: String| StoreError::Corrupt { event_id, problem };
    let event_type: String = row.get("event_type");
    let schema_version: i32 = row.get("schema_version");
    let payload = match upcast::upcast(upcasters, &event_type, schema_version, row.get("payload")) {
        Ok(payload) => payload,
        Err(upcast::Unreadable::UnknownVersion) => {
            return Err(StoreError::UnknownSchema {
                event_id,
                event_type,
                schema_version,
            })
        }
        Err(upcast::Unreadable::Step {
            from_version,
            error,
        }) => {
            return Err(corrupt(format!(
                "payload of {event_type} version {from_version}: {error}"
            )))
        }
    };
    let event = serde_json::from_value(serde_json::json!({ "type": event_type, "data": payload }))
        .map_err(|e| corrupt(format!("payload: {e}")))?;
    let metadata = serde_json::from_value(row.get("metadata"))
        .map_err(|e| corrupt(format!("metadata: {e}")))?;
    Ok(RecordedEvent {
        event_id,
        position: row.get("position"),
        aggregate_type: row.get("aggregate_type"),
        aggregate_id: row.get("aggregate_id"),
        version: row.get("version"),
        occurred_at: row.get("occurred_at"),
        metadata,
        event,
    })
}
