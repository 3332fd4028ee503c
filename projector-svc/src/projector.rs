//! The consume → apply (or dead-letter) → commit loop of one projection: a context's topic
//! (decoded by its codec) into one read model (a `projection::Projection`).

use es_kernel::{EventCodec, RecordedEvent};
use futures::FutureExt;
use messaging::dead_letter::{DeadLetterKind, DeadLetterProducer, Envelope};
use platform::backoff::Backoff;
use projection::{ApplyOutcome, Park, Projection, ProjectionError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use sqlx::PgPool;
use std::marker::PhantomData;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Evaluates `$attempt` (an expression awaiting a `Result`) until it is `Ok`, backing off
/// between failures, or until shutdown (`Err(Interrupted)`). Every error it returns is one worth
/// waiting out — the database or the broker is away — so the partition holds still meanwhile
/// rather than skip the message. A macro rather than a function taking a closure: the closure's
/// borrowed future would make the consumer task's future not `Send`.
macro_rules! retry {
    ($shutdown:expr, $step:literal, $attempt:expr) => {{
        let mut backoff = Backoff::default();
        loop {
            match $attempt {
                Ok(value) => break Ok(value),
                Err(error) => {
                    tracing::warn!(step = $step, error = %error, "transient failure; retrying")
                }
            }
            backoff.wait($shutdown).await;
            if $shutdown.is_cancelled() {
                break Err(Interrupted);
            }
        }
    }};
}

/// Upper bound of events applied in one read-model transaction. Large, because a batch's
/// statements cost the same however many events it holds: catching up a backlog in batches of
/// 256 applied 9,000 events/s, in batches of 2,048 26,000 (BENCHMARKS.md). Idle, a batch is
/// whatever has arrived, usually one message.
pub const MAX_BATCH: usize = 2_048;

/// Events of the context `C` encodes, into the read model `P`.
pub(crate) struct Projector<C, P> {
    consumer: StreamConsumer,
    pool: PgPool,
    dead_letters: DeadLetterProducer,
    read_model: PhantomData<fn() -> (C, P)>,
}

/// Shutdown arrived while a step was waiting to be retried: the message stays uncommitted and
/// is redelivered to the next run.
struct Interrupted;

impl<C, P> Projector<C, P>
where
    C: EventCodec,
    P: Projection<Event = C::Event>,
{
    pub(crate) fn new(
        consumer: StreamConsumer,
        pool: PgPool,
        dead_letters: DeadLetterProducer,
    ) -> Self {
        Self {
            consumer,
            pool,
            dead_letters,
            read_model: PhantomData,
        }
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let shutdown = &shutdown;
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.consumer.recv() => received,
            };
            let first = match received {
                Ok(message) => message,
                // librdkafka reconnects and rebalances by itself; these are reports, not stops.
                Err(error) => {
                    tracing::warn!(error = %error, "kafka receive failed");
                    continue;
                }
            };
            let batch = self.with_ready_messages(first);
            // Not raced against shutdown: a batch already under way is allowed to finish.
            match self.process_batch(&batch, shutdown).await {
                Ok(()) => self.commit(&batch),
                Err(Interrupted) => break,
            }
        }
        self.final_commit();
        tracing::info!(topic = ?self.consumer.subscription().ok(), "projector stopped");
    }

    /// `first` plus whatever the consumer already holds, up to [`MAX_BATCH`]: under load a
    /// batch fills up and shares one transaction; when idle it is one message and no wait.
    fn with_ready_messages<'c>(&'c self, first: BorrowedMessage<'c>) -> Vec<BorrowedMessage<'c>> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message),
                Some(Err(error)) => tracing::warn!(error = %error, "kafka receive failed"),
                None => break,
            }
        }
        batch
    }

    /// Applies a batch: runs of plain applies share one read-model transaction (one commit for
    /// many events); a message that needs more — undecodable, contradicting, parked — ends the
    /// run and goes through [`Self::process`] alone, after what came before it committed, so
    /// order within the partition is kept.
    ///
    /// A run the database refuses as a whole (one of its events carries a value the read model
    /// cannot store) is narrowed down: the rest of the batch goes through [`Self::process`] one
    /// message at a time, which dead-letters just the offending event and parks its aggregate,
    /// while every other event, and every other tenant, carries on.
    async fn process_batch(
        &self,
        batch: &[BorrowedMessage<'_>],
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let mut rest = batch;
        while !rest.is_empty() {
            let applied = retry!(
                shutdown,
                "apply events",
                match self.apply_run(rest).await {
                    Err(error) if error.is_transient() => Err(error),
                    settled => Ok(settled),
                }
            )?;
            let applied = match applied {
                Ok(applied) => applied,
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        messages = rest.len(),
                        "the read model refused a run of events; applying them one at a time"
                    );
                    for message in rest {
                        self.process(message, shutdown).await?;
                    }
                    return Ok(());
                }
            };
            rest = &rest[applied..];
            if let Some((special, tail)) = rest.split_first() {
                self.process(special, shutdown).await?;
                rest = tail;
            }
        }
        Ok(())
    }

    /// Applies the longest prefix of `messages` that needs nothing but an apply, in one
    /// transaction, and returns its length. A transient error rolls the whole run back.
    async fn apply_run(&self, messages: &[BorrowedMessage<'_>]) -> Result<usize, ProjectionError> {
        let started = Instant::now();
        // An undecodable message ends the run; `process` dead-letters it after this commit.
        let events: Vec<RecordedEvent<C::Event>> = messages
            .iter()
            .map_while(|message| messaging::decode::<C, _>(message).ok())
            .collect();
        if events.is_empty() {
            return Ok(0);
        }
        // A parked or contradicting event ends it too, and nothing of it is written.
        let applied =
            projection::apply_batch::<P>(&mut *self.pool.acquire().await?, &events).await?;
        for (event, outcome) in events.iter().zip(&applied.outcomes) {
            tracing::debug!(
                event_id = %event.event_id,
                aggregate_id = %event.aggregate_id,
                version = event.version,
                outcome = ?outcome,
                "event processed"
            );
        }
        tracing::debug!(
            events = applied.outcomes.len(),
            processing_time_ms = started.elapsed().as_millis() as u64,
            "events applied"
        );
        Ok(applied.outcomes.len())
    }

    /// Applies, buffers or dead-letters one message. Returns once its offset may be committed.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let started = Instant::now();
        let event = match messaging::decode::<C, _>(message) {
            Ok(event) => event,
            Err(error) => {
                let envelope = Envelope::of(message);
                let error = error.to_string();
                // The key is the aggregate id even when the payload is garbage, so the
                // aggregate can still be parked.
                let park = envelope.aggregate_id().map(|aggregate_id| Park {
                    aggregate_id,
                    tenant_id: envelope.tenant_id.clone(),
                    reason: error.clone(),
                    first_event_id: envelope.event_id(),
                });
                let kind = DeadLetterKind::of_undecodable::<C, _>(message);
                return self
                    .dead_letter(message, kind, &error, park, shutdown)
                    .await;
            }
        };
        let applied = retry!(
            shutdown,
            "apply event",
            match projection::apply::<P>(&self.pool, &event).await {
                Err(error) if error.is_transient() => Err(error),
                settled => Ok(settled),
            }
        )?;
        let (kind, error) = match applied {
            Ok(ApplyOutcome::Parked) => (
                DeadLetterKind::Parked,
                format!(
                    "aggregate {} is parked after an earlier dead letter",
                    event.aggregate_id
                ),
            ),
            Ok(outcome) => {
                tracing::debug!(
                    event_id = %event.event_id,
                    aggregate_id = %event.aggregate_id,
                    version = event.version,
                    outcome = ?outcome,
                    processing_time_ms = started.elapsed().as_millis() as u64,
                    "event processed"
                );
                return Ok(());
            }
            Err(error @ ProjectionError::Contradiction { .. }) => {
                (DeadLetterKind::Contradiction, error.to_string())
            }
            Err(error @ ProjectionError::Database(_)) => {
                (DeadLetterKind::Refused, error.to_string())
            }
        };
        let park = Park {
            aggregate_id: event.aggregate_id,
            tenant_id: Some(event.metadata.tenant_id.clone()),
            reason: error.clone(),
            first_event_id: Some(event.event_id),
        };
        self.dead_letter(message, kind, &error, Some(park), shutdown)
            .await
    }

    /// The single place a message that can never be applied goes: into the dead-letter topic,
    /// then its aggregate is parked. Producing first means a crash in between dead-letters the
    /// message twice rather than parks an aggregate for a dead letter that does not exist.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        kind: DeadLetterKind,
        error: &str,
        park: Option<Park>,
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let (dlq_partition, dlq_offset) = retry!(
            shutdown,
            "produce dead letter",
            self.dead_letters.send(message, kind, error).await
        )?;
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            key = %String::from_utf8_lossy(message.key().unwrap_or_default()),
            dlq_topic = self.dead_letters.topic(),
            dlq_partition,
            dlq_offset,
            kind = kind.as_str(),
            error,
            "event dead-lettered"
        );
        match park {
            Some(park) => retry!(
                shutdown,
                "park aggregate",
                projection::park(&self.pool, &park).await
            )?,
            None => tracing::warn!(
                dlq_partition,
                dlq_offset,
                "dead letter names no aggregate to park"
            ),
        }
        Ok(())
    }

    /// Marks the batch processed: librdkafka commits stored offsets periodically (see
    /// `RINGIFLOW_KAFKA_COMMIT_INTERVAL_MS`), and the synchronous commit at shutdown covers the
    /// last interval.
    fn commit(&self, batch: &[BorrowedMessage<'_>]) {
        for message in batch {
            if let Err(error) = self.consumer.store_offset_from_message(message) {
                // Happens when the partition was revoked meanwhile: its new owner redelivers
                // the message, which the projection then reports as already applied.
                tracing::warn!(
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %error,
                    "cannot store kafka offset"
                );
            }
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
