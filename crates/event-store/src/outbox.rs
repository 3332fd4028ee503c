//! The relay's side of the outbox. Exactly one relay publishes at a time: it holds a session
//! advisory lock on its own connection and does all its outbox work on that connection, so
//! losing the connection loses the lock and the relay's ability to mark rows in one stroke.

use crate::{recorded_event, StoreError, Upcaster, SELECT_EVENTS, UPCASTERS};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use workflow_domain::RecordedEvent;

/// NOTIFY channel signalled by every append, so the relay need not wait for its next poll.
pub const OUTBOX_CHANNEL: &str = "ringiflow_outbox";

/// Advisory-lock key of the relay leadership ("RINGI" in ASCII).
const RELAY_LOCK: i64 = 0x52_49_4E_47_49;

pub struct OutboxConnection {
    connection: PgConnection,
    upcasters: &'static [Upcaster],
}

impl OutboxConnection {
    /// Becomes the relay leader if no other relay is; `None` means another one leads. Reads
    /// with this build's upcaster chain, [`UPCASTERS`].
    pub async fn try_lead(pool: &PgPool) -> Result<Option<Self>, StoreError> {
        let mut connection = pool.acquire().await?;
        let leading: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *connection)
            .await?;
        // Only the leader's connection leaves the pool, so the lock can never be handed to
        // another user of the pool; a follower's goes back instead of being closed each poll.
        Ok(leading.then(|| Self {
            connection: connection.detach(),
            upcasters: UPCASTERS,
        }))
    }

    /// The same connection reading with another upcaster chain (see `EventStore::with_upcasters`).
    pub fn with_upcasters(self, upcasters: &'static [Upcaster]) -> Self {
        Self { upcasters, ..self }
    }

    /// Unpublished events, oldest position first. Per-aggregate order holds: version n+1 is
    /// only appended after version n committed, so n is visible whenever n+1 is, and has the
    /// smaller position. Rows of slow transactions are never skipped because this reads
    /// "unpublished", not "after the last position seen".
    pub async fn pending(&mut self, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE position IN (
                 SELECT position FROM outbox WHERE published_at IS NULL ORDER BY position LIMIT $1)
             ORDER BY position"
        ))
        .bind(limit)
        .fetch_all(&mut self.connection)
        .await?
        .iter()
        .map(|row| recorded_event(row, self.upcasters))
        .collect()
    }

    pub async fn mark_published(&mut self, positions: &[i64]) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET published_at = now() WHERE position = ANY($1)")
            .bind(positions)
            .execute(&mut self.connection)
            .await?;
        Ok(())
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
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE position IN (
                 SELECT position FROM outbox WHERE published_at < $1 ORDER BY published_at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(&mut self.connection)
        .await?;
        Ok(deleted.rows_affected())
    }
}
