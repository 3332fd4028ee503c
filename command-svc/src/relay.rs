//! The outbox relay: moves committed events from the outbox to Kafka, in order, at least once.
//!
//! It runs inside command-svc because it needs nothing but the event store's database and the
//! broker, and every replica can run it: an advisory lock lets exactly one publish at a time,
//! which is what keeps per-aggregate order across replicas. A broker outage only delays
//! publishing; rows stay in the outbox until the broker acknowledges them. The leader also
//! deletes published rows once they are past their retention.

use event_store::{OutboxConnection, PendingEvent, StoreError, UnreadableEvent, OUTBOX_CHANNEL};
use messaging::dead_letter::{self, DeadLetterKind, DeadLetterProducer, StoredEnvelope};
use messaging::{encode, KafkaSettings, CE_SOURCE_COMMAND_SVC};
use platform::backoff::Backoff;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Without a notification, the relay still looks at the outbox this often.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the leader looks for published outbox rows past their retention.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Outbox rows deleted per statement, so no cleanup holds its locks for long.
const CLEANUP_BATCH: i64 = 10_000;

pub struct Relay {
    pub pool: PgPool,
    pub producer: FutureProducer,
    /// Shares `producer`; where rows that cannot be read go.
    pub dead_letters: DeadLetterProducer,
    pub kafka: KafkaSettings,
    pub batch_size: i64,
    /// How long a published outbox row is kept.
    pub outbox_retention: chrono::TimeDelta,
}

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let result = self.lead(&shutdown).await;
            if let Err(error) = result {
                if error.is_unavailable() {
                    tracing::warn!(error = %error, "relay interrupted; retrying");
                } else {
                    tracing::error!(error = %error, "relay failed; retrying");
                }
                backoff.wait(&shutdown).await;
            }
        }
        // Whatever is still queued gets its chance to be acknowledged before we exit; anything
        // unacknowledged is still in the outbox and will be sent again.
        let _ = self.producer.flush(Duration::from_secs(5));
        tracing::info!("relay stopped");
    }

    /// Waits to become the leader, then publishes until shutdown or a database error.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let mut outbox = loop {
            if let Some(outbox) = OutboxConnection::try_lead(&self.pool).await? {
                break outbox;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        tracing::info!("relay is the outbox leader");
        for (topic, ensured) in [
            (
                &self.kafka.topic,
                messaging::ensure_topic(&self.kafka).await,
            ),
            (
                &self.kafka.topic,
                dead_letter::ensure_topic(&self.kafka).await,
            ),
        ] {
            if let Err(error) = ensured {
                // The topic may exist already, or the broker may be down; publishing will tell.
                tracing::warn!(error = %error, %topic, "could not ensure topic");
            }
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        let mut backoff = Backoff::default();
        let mut next_cleanup = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_cleanup {
                next_cleanup = self.clean_up(&mut outbox).await;
            }
            let pending = outbox.pending(self.batch_size).await?;
            if pending.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = listener.recv() => {}
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                continue;
            }
            let published = self.publish(&pending).await;
            if published > 0 {
                let positions: Vec<i64> = pending[..published]
                    .iter()
                    .map(|row| row.as_ref().map_or_else(|u| u.position, |e| e.position))
                    .collect();
                outbox.mark_published(&positions).await?;
                tracing::debug!(
                    count = published,
                    last_position = positions[published - 1],
                    "events published"
                );
            }
            if published < pending.len() {
                backoff.wait(shutdown).await;
            } else {
                backoff.reset();
            }
        }
        Ok(())
    }

    /// Deletes one batch of published rows past retention and says when to look again: at
    /// once (after a publishing round) while full batches come back, so a backlog is worked off
    /// without ever holding up publishing for long. A failure here is only logged: retried next
    /// interval, it must never stop the relay from publishing.
    async fn clean_up(&self, outbox: &mut OutboxConnection) -> Instant {
        let now = Instant::now();
        // A retention reaching back past any representable time keeps everything.
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(self.outbox_retention) else {
            return now + CLEANUP_INTERVAL;
        };
        match outbox.delete_published_before(cutoff, CLEANUP_BATCH).await {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "published outbox rows deleted");
                }
                if deleted >= CLEANUP_BATCH as u64 {
                    now
                } else {
                    now + CLEANUP_INTERVAL
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "outbox cleanup failed");
                now + CLEANUP_INTERVAL
            }
        }
    }

    /// Produces the batch and returns how many rows, from the start, are done with: the
    /// broker acknowledged the event, or, for a row this build cannot read, its dead letter.
    /// Only that prefix is marked published: everything after the first failure is sent again
    /// next round, in the same order, so a later version never overtakes an earlier one for good.
    async fn publish(&self, rows: &[PendingEvent]) -> usize {
        let mut done = 0;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Ok(event) => {
                    let message = encode(event, CE_SOURCE_COMMAND_SVC);
                    let record = FutureRecord::to(&self.kafka.topic)
                        .key(&message.key)
                        .payload(&message.payload)
                        .headers(message.headers);
                    match self.producer.send_result(record) {
                        Ok(delivery) => deliveries.push((delivery, event.event_id)),
                        Err((error, _)) => {
                            tracing::warn!(error = %error, event_id = %event.event_id, "cannot enqueue event");
                            break;
                        }
                    }
                }
                Err(unreadable) => {
                    // What came before it must be acknowledged first, or the prefix rule breaks.
                    let queued = deliveries.len();
                    let acked = acknowledged(std::mem::take(&mut deliveries)).await;
                    done += acked;
                    if acked < queued || !self.dead_letter(unreadable).await {
                        return done;
                    }
                    done += 1;
                }
            }
        }
        done + acknowledged(deliveries).await
    }

    /// Sets aside a row this build cannot read, so that it never holds up every other
    /// aggregate's events: into the dead-letter topic, as what it would have been. Its later
    /// events still go out; the projector holds them back until the hole is filled (a build
    /// that reads it, then `projector-svc rebuild`), so nothing is applied on top of it.
    async fn dead_letter(&self, row: &UnreadableEvent) -> bool {
        let stored = StoredEnvelope {
            event_id: row.event_id,
            event_type: &row.event_type,
            aggregate_type: &row.aggregate_type,
            aggregate_id: row.aggregate_id,
            tenant_id: &row.tenant_id,
            version: row.version,
            position: row.position,
        };
        let payload = serde_json::to_vec(&row.payload).expect("a JSON value serialises");
        let message = dead_letter::unpublishable(&self.kafka.topic, stored, payload);
        match self
            .dead_letters
            .send(&message, DeadLetterKind::Unpublishable, &row.problem)
            .await
        {
            Ok((dlq_partition, dlq_offset)) => {
                tracing::error!(
                    event_id = %row.event_id,
                    aggregate_id = %row.aggregate_id,
                    version = row.version,
                    position = row.position,
                    dlq_topic = self.dead_letters.topic(),
                    dlq_partition,
                    dlq_offset,
                    error = %row.problem,
                    "stored event cannot be read; dead-lettered instead of published"
                );
                true
            }
            Err(error) => {
                tracing::warn!(error = %error, event_id = %row.event_id, "cannot dead-letter an unreadable event");
                false
            }
        }
    }
}

/// How many of `deliveries`, from the start, the broker acknowledged.
async fn acknowledged(deliveries: Vec<(DeliveryFuture, Uuid)>) -> usize {
    let mut count = 0;
    for (delivery, event_id) in deliveries {
        match delivery.await {
            Ok(Ok(_)) => count += 1,
            Ok(Err((error, _))) => {
                tracing::warn!(error = %error, %event_id, "broker did not acknowledge event");
                break;
            }
            Err(_cancelled) => break,
        }
    }
    count
}
