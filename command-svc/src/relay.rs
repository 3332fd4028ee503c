//! The outbox relay: moves committed events from the outbox to Kafka, in order, at least once.
//!
//! It runs inside command-svc because it needs nothing but the event store's database and the
//! broker, and every replica can run it: an advisory lock lets exactly one publish at a time,
//! which is what keeps per-aggregate order across replicas. A broker outage only delays
//! publishing; rows stay in the outbox until the broker acknowledges them. The leader also
//! deletes published rows once they are past their retention.

use event_store::{OutboxConnection, StoreError, OUTBOX_CHANNEL};
use messaging::{encode, KafkaSettings, CE_SOURCE_COMMAND_SVC};
use platform::backoff::Backoff;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workflow_domain::RecordedEvent;

/// Without a notification, the relay still looks at the outbox this often.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the leader looks for published outbox rows past their retention.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Outbox rows deleted per statement, so no cleanup holds its locks for long.
const CLEANUP_BATCH: i64 = 10_000;

pub struct Relay {
    pub pool: PgPool,
    pub producer: FutureProducer,
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
                    // E.g. an event this build cannot read: skipping it would break its
                    // aggregate's order, so publishing waits for someone to fix it.
                    tracing::error!(error = %error, "relay stuck; retrying");
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
        if let Err(error) = messaging::ensure_topic(&self.kafka).await {
            // The topic may exist already, or the broker may be down; publishing will tell.
            tracing::warn!(error = %error, topic = %self.kafka.topic, "could not ensure topic");
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
                let positions: Vec<i64> = pending[..published].iter().map(|e| e.position).collect();
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

    /// Produces the batch and returns how many events, from the start, the broker acknowledged.
    /// Only that prefix is marked published: everything after the first failure is sent again
    /// next round, in the same order, so a later version never overtakes an earlier one for good.
    async fn publish(&self, events: &[RecordedEvent]) -> usize {
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let message = encode(event, CE_SOURCE_COMMAND_SVC);
            let record = FutureRecord::to(&self.kafka.topic)
                .key(&message.key)
                .payload(&message.payload)
                .headers(message.headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    tracing::warn!(error = %error, event_id = %event.event_id, "cannot enqueue event");
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for (delivery, event) in deliveries.into_iter().zip(events) {
            match delivery.await {
                Ok(Ok(_)) => acknowledged += 1,
                Ok(Err((error, _))) => {
                    tracing::warn!(error = %error, event_id = %event.event_id, "broker did not acknowledge event");
                    break;
                }
                Err(_cancelled) => break,
            }
        }
        acknowledged
    }
}
