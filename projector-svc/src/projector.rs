//! The consume → apply → commit loop.

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use read_model::ApplyOutcome;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(crate) struct Projector {
    consumer: StreamConsumer,
    pool: PgPool,
}

/// What became of one message.
enum Processed {
    /// Applied, already applied, or set aside: its offset may be committed.
    Done,
    /// Shutdown arrived while waiting to retry: the message stays uncommitted for the next run.
    Interrupted,
}

impl Projector {
    pub(crate) fn new(consumer: StreamConsumer, pool: PgPool) -> Self {
        Self { consumer, pool }
    }

    pub(crate) async fn run(self, shutdown: &CancellationToken) {
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.consumer.recv() => received,
            };
            let message = match received {
                Ok(message) => message,
                // librdkafka reconnects and rebalances by itself; these are reports, not stops.
                Err(error) => {
                    tracing::warn!(error = %error, "kafka receive failed");
                    continue;
                }
            };
            // Not raced against shutdown: an apply already under way is allowed to finish.
            match self.process(&message, shutdown).await {
                Processed::Done => self.commit(&message),
                Processed::Interrupted => break,
            }
        }
        self.final_commit();
        self.pool.close().await;
        tracing::info!("projector stopped");
    }

    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> Processed {
        let started = Instant::now();
        let event = match messaging::decode(message) {
            Ok(event) => event,
            Err(error) => {
                self.handle_permanent_failure(message, &error);
                return Processed::Done;
            }
        };
        let mut backoff = Backoff::default();
        loop {
            match read_model::apply(&self.pool, &event).await {
                Ok(outcome @ (ApplyOutcome::Applied | ApplyOutcome::AlreadyApplied)) => {
                    tracing::debug!(
                        event_id = %event.event_id,
                        aggregate_id = %event.aggregate_id,
                        version = event.version,
                        already_applied = outcome == ApplyOutcome::AlreadyApplied,
                        processing_time_ms = started.elapsed().as_millis() as u64,
                        "event applied"
                    );
                    return Processed::Done;
                }
                // The missing version may still be on its way (or being retried by another
                // consumer after a rebalance); skipping ahead would corrupt the row.
                Ok(ApplyOutcome::Gap { expected, got }) => tracing::warn!(
                    event_id = %event.event_id,
                    aggregate_id = %event.aggregate_id,
                    expected,
                    got,
                    "event arrived before its predecessor; retrying"
                ),
                Err(error) if error.is_transient() => tracing::warn!(
                    event_id = %event.event_id,
                    aggregate_id = %event.aggregate_id,
                    error = %error,
                    "transient projection failure; retrying"
                ),
                Err(error) => {
                    self.handle_permanent_failure(message, &error);
                    return Processed::Done;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Processed::Interrupted,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// The single place deciding what happens to a message that can never be applied (it does
    /// not decode, or it contradicts the read model). For now it is logged and skipped so the
    /// partition keeps moving; producing it to a dead-letter topic belongs here.
    fn handle_permanent_failure(
        &self,
        message: &BorrowedMessage<'_>,
        error: &dyn std::error::Error,
    ) {
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            key = %String::from_utf8_lossy(message.key().unwrap_or_default()),
            error = %error,
            "skipping an event that cannot be applied"
        );
    }

    /// Marks the message processed and commits in the background; the synchronous commit at
    /// shutdown covers any asynchronous commit that did not complete.
    fn commit(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            // Happens when the partition was revoked meanwhile: its new owner redelivers the
            // message, which the projection then reports as already applied.
            tracing::warn!(
                partition = message.partition(),
                offset = message.offset(),
                error = %error,
                "cannot store kafka offset"
            );
            return;
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Async) {
            tracing::warn!(error = %error, "kafka offset commit failed");
        }
    }

    fn final_commit(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            // Not fatal: the uncommitted events are redelivered and found already applied.
            Err(error) => tracing::error!(error = %error, "final kafka offset commit failed"),
        }
    }
}

/// Retry delays: 100 ms, doubling, capped at 5 s. Uncapped, a long outage would make the
/// projector notice recovery minutes late.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_5_s() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
