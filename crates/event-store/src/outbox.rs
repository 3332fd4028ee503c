//! The relay's side of the outbox. Exactly one relay publishes at a time: it holds a session
//! advisory lock on its own connection and does all its outbox work on that connection, so
//! losing the connection loses the lock and the relay's ability to mark rows in one stroke.
//!
//! A leader that can no longer reach PostgreSQL must lose the lock within seconds, or no other
//! relay can take over: every call on the connection is bounded on our side
//! ([`LEADER_CALL_TIMEOUT`]), and the session itself is ended by the server once it has been
//! idle for [`LEADER_IDLE_TIMEOUT`] (a live leader never is: it polls several times a second)
//! or its peer stops answering TCP keepalives, which releases the lock with it.

use crate::{recorded_event, StoreError, SELECT_EVENTS};
use chrono::{DateTime, Utc};
use es_kernel::upcast::Upcaster;
use es_kernel::RecordedEvent;
use sqlx::postgres::PgRow;
use sqlx::{Executor, PgConnection, PgPool, Row};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// NOTIFY channel signalled after every append that wrote outbox rows (`bell`), so the relay
/// need not wait for its next poll.
pub const OUTBOX_CHANNEL: &str = "ringiflow_outbox";

/// Advisory-lock key of the relay leadership ("RINGI" in ASCII).
const RELAY_LOCK: i64 = 0x52_49_4E_47_49;

/// The longest the leader waits for any one call on its connection.
pub const LEADER_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server keeps an idle leader session (and so its lock) before ending it.
pub const LEADER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-session settings of the leader connection: the server-side half of losing leadership
/// in seconds. Keepalives: a probe after 5 s of silence, then every 2 s, dead after 3 misses.
const LEADER_SESSION: &str = "SET statement_timeout = '5s';
     SET idle_session_timeout = '10s';
     SET tcp_keepalives_idle = 5;
     SET tcp_keepalives_interval = 2;
     SET tcp_keepalives_count = 3";

/// An outbox row this build cannot read (e.g. an event type or payload version it does not
/// know): what the store says of it, for the dead-letter topic, and why it cannot be read.
#[derive(Debug, Clone)]
pub struct UnreadableEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub tenant_id: String,
    pub event_type: String,
    pub version: i64,
    /// The stored payload, as JSON.
    pub payload: serde_json::Value,
    pub problem: String,
}

impl UnreadableEvent {
    /// A row that was read, but that its reader cannot use: e.g. one whose aggregate type the
    /// relay has no route for. `event` is as the store hands it out, `{"type", "data"}`.
    pub fn of(event: &RecordedEvent<serde_json::Value>, problem: String) -> Self {
        Self {
            position: event.position,
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id,
            tenant_id: event.metadata.tenant_id.clone(),
            event_type: event.event["type"].as_str().unwrap_or_default().to_owned(),
            version: event.version,
            payload: event.event["data"].clone(),
            problem,
        }
    }
}

/// An unpublished outbox row: its event (tagged JSON, lifted to the current shape), or why it
/// cannot be read.
pub type PendingEvent = Result<RecordedEvent<serde_json::Value>, Box<UnreadableEvent>>;

pub struct OutboxConnection {
    connection: PgConnection,
    upcasters: Arc<[Upcaster]>,
}

impl OutboxConnection {
    /// Becomes the relay leader if no other relay is; `None` means another one leads. Reads
    /// with `upcasters` (the store's, see `EventStore::try_lead`).
    pub(crate) async fn try_lead(
        pool: &PgPool,
        upcasters: Arc<[Upcaster]>,
    ) -> Result<Option<Self>, StoreError> {
        let mut connection = pool.acquire().await?;
        let leading: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *connection)
            .await?;
        if !leading {
            // A follower's connection goes back to the pool instead of being closed each poll.
            return Ok(None);
        }
        // Only the leader's connection leaves the pool, so the lock can never be handed to
        // another user of the pool, and its session settings never reach one.
        let mut connection = connection.detach();
        // Several statements without parameters: one round trip over the simple protocol.
        // (Not `sqlx::raw_sql`: its future is not provably `Send` inside the relay's task.)
        bounded(connection.execute(LEADER_SESSION)).await?;
        Ok(Some(Self {
            connection,
            upcasters,
        }))
    }

    /// Unpublished events, oldest position first. Per-aggregate order holds: version n+1 is
    /// only appended after version n committed, so n is visible whenever n+1 is, and has the
    /// smaller position. Rows of slow transactions are never skipped because this reads
    /// "unpublished", not "after the last position seen".
    ///
    /// A row this build cannot read comes back as [`UnreadableEvent`] in its place, so one bad
    /// row never holds up every other aggregate's events behind it.
    ///
    /// `in_flight`: positions the caller has already handed to the broker and is waiting on;
    /// they are left out, so a relay can read what came after them without sending them twice.
    /// (`NOT IN` a subquery, which PostgreSQL hashes: `<> ALL` compared every row with every
    /// position in flight, and cost the relay a millisecond per read at a thousand commands/s.)
    pub async fn pending(
        &mut self,
        limit: i64,
        in_flight: &[i64],
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let rows = bounded(
            sqlx::query(&format!(
                "{SELECT_EVENTS} WHERE position IN (
                     SELECT position FROM outbox
                     WHERE published_at IS NULL
                       AND position NOT IN (SELECT unnest($2::bigint[]))
                     ORDER BY position LIMIT $1)
                 ORDER BY position"
            ))
            .bind(limit)
            .bind(in_flight)
            .fetch_all(&mut self.connection),
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| {
                recorded_event(row, &self.upcasters)
                    .map_err(|error| Box::new(unreadable(row, &error)))
            })
            .collect())
    }

    pub async fn mark_published(&mut self, positions: &[i64]) -> Result<(), StoreError> {
        bounded(
            sqlx::query("UPDATE outbox SET published_at = now() WHERE position = ANY($1)")
                .bind(positions)
                .execute(&mut self.connection),
        )
        .await?;
        Ok(())
    }

    /// How many outbox rows await publishing, and when the oldest of them happened (`None`
    /// when none does): the relay's backlog as an operator watches it.
    pub async fn backlog(&mut self) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let backlog = bounded(
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL),
                        (SELECT e.occurred_at FROM outbox o JOIN events e USING (position)
                         WHERE o.published_at IS NULL ORDER BY o.position LIMIT 1)",
            )
            .fetch_one(&mut self.connection),
        )
        .await?;
        Ok(backlog)
    }

    /// Deletes up to `batch` outbox rows published before `cutoff`, oldest first, and returns
    /// how many it deleted. Batches keep each statement's locks short; a caller wanting
    /// everything gone repeats while a full batch comes back. Unpublished rows are never
    /// touched, however old.
    pub async fn delete_published_before(
        &mut self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let deleted = bounded(
            sqlx::query(
                "DELETE FROM outbox WHERE position IN (
                     SELECT position FROM outbox WHERE published_at < $1
                     ORDER BY published_at LIMIT $2)",
            )
            .bind(cutoff)
            .bind(batch)
            .execute(&mut self.connection),
        )
        .await?;
        Ok(deleted.rows_affected())
    }
}

/// A call on the leader connection, given up after [`LEADER_CALL_TIMEOUT`]: a half-open
/// connection never answers, and waiting on it would keep this relay "leading" forever.
async fn bounded<T>(call: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, StoreError> {
    match tokio::time::timeout(LEADER_CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::TimedOut),
    }
}

fn unreadable(row: &PgRow, error: &StoreError) -> UnreadableEvent {
    UnreadableEvent {
        position: row.get("position"),
        event_id: row.get("event_id"),
        aggregate_type: row.get("aggregate_type"),
        aggregate_id: row.get("aggregate_id"),
        tenant_id: row.get("tenant_id"),
        event_type: row.get("event_type"),
        version: row.get("version"),
        payload: row.get("payload"),
        problem: error.to_string(),
    }
}
