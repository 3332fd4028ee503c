//! The consume → apply (or dead-letter) → commit loop of one projection: a context's topic
//! (decoded by its codec) into one read model (a `projection::Projection`).

use crate::status::{Lags, Progress};
use chrono::{DateTime, Utc};
use es_kernel::{EventCodec, RecordedEvent};
use futures::FutureExt;
use messaging::dead_letter::{DeadLetterKind, DeadLetterProducer, Envelope};
use platform::backoff::Backoff;
use projection::{ApplyOutcome, Park, Projection, ProjectionError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

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

/// How often the lag gauges are refreshed while no message arrives.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// How long one partition's head offset may take to come back from the broker.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// The offset and `ce_time` of the last message processed on a partition, and when it was.
type Processed = (i64, Option<DateTime<Utc>>, DateTime<Utc>);

/// Events of the context `C` encodes, into the read model `P`.
pub(crate) struct Projector<C, P> {
    /// Shared with the lag measurements, which ask the broker on a blocking thread.
    consumer: Arc<StreamConsumer>,
    pool: PgPool,
    dead_letters: DeadLetterProducer,
    /// The `projection` label of its metrics: `workflows`, `systems`, `scans`, `tasks`.
    projection: String,
    /// Where its measurements go.
    lags: Lags,
    /// Per partition, the last message processed.
    processed: Mutex<HashMap<i32, Processed>>,
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
        projection: String,
        lags: Lags,
    ) -> Self {
        lags.register(&projection);
        Self {
            consumer: Arc::new(consumer),
            pool,
            dead_letters,
            projection,
            lags,
            processed: Mutex::default(),
            read_model: PhantomData,
        }
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let shutdown = &shutdown;
        let mut lag_interval = tokio::time::interval(LAG_INTERVAL);
        // After a long batch, one measurement, not one per missed interval.
        lag_interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.consumer.recv() => received,
                _ = lag_interval.tick() => {
                    self.report_lag();
                    continue;
                }
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
            let started = Instant::now();
            let span = self.batch_span(&batch);
            // Not raced against shutdown: a batch already under way is allowed to finish.
            match self.process_batch(&batch, shutdown).instrument(span).await {
                Ok(()) => self.commit(&batch),
                Err(Interrupted) => break,
            }
            let projection = self.projection.clone();
            metrics::counter!("ringiflow_projector_batches_total", "projection" => projection.clone())
                .increment(1);
            metrics::histogram!("ringiflow_projector_batch_duration_seconds", "projection" => projection)
                .record(started.elapsed().as_secs_f64());
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

    /// The span a batch is processed in, with the number of messages and of aggregates they
    /// belong to, and a link to each message's publishing span (up to the SDK's limit of 128).
    /// Each event's own apply span is the child of its publishing span, so that one trace
    /// follows a command from the gateway into the read model; the batch, which serves many
    /// traces at once, can only link to them.
    fn batch_span(&self, batch: &[BorrowedMessage<'_>]) -> tracing::Span {
        if !platform::telemetry::exporting() {
            return tracing::Span::none();
        }
        let aggregates: HashSet<Option<&[u8]>> = batch.iter().map(Message::key).collect();
        let span = tracing::info_span!(
            "projector.batch",
            projection = %self.projection,
            events = batch.len(),
            aggregates = aggregates.len(),
        );
        for message in batch {
            platform::telemetry::link(&span, messaging::traceparent(message));
        }
        span
    }

    /// The span one event is applied in: the child of the span that published it.
    fn apply_span(
        &self,
        message: &BorrowedMessage<'_>,
        event: &RecordedEvent<C::Event>,
    ) -> tracing::Span {
        if !platform::telemetry::exporting() {
            return tracing::Span::none();
        }
        let span = tracing::info_span!(
            "projector.apply",
            projection = %self.projection,
            event_id = %event.event_id,
            event_type = C::event_type(&event.event),
            version = event.version,
            partition = message.partition(),
            offset = message.offset(),
            outcome = tracing::field::Empty,
        );
        platform::telemetry::set_parent(&span, event.metadata.traceparent.as_deref());
        span
    }

    /// Measures how far behind the projection is (see [`Lags::measured`]), for each partition
    /// this projector has processed a message of: the partition's head offset minus the next
    /// offset to process, in events, and in seconds. Also the dead letters not yet replayed.
    /// The broker is asked (`fetch_watermarks`) on a blocking thread, so measuring never holds
    /// up consumption.
    fn report_lag(&self) {
        let Some(topic) = self.consumer.subscription().ok().and_then(|topics| {
            topics
                .elements()
                .first()
                .map(|element| element.topic().to_owned())
        }) else {
            return;
        };
        // A partition handed to another replica in a rebalance is that replica's to report.
        let assigned: HashSet<i32> = match self.consumer.assignment() {
            Ok(assignment) => assignment
                .elements_for_topic(&topic)
                .iter()
                .map(|element| element.partition())
                .collect(),
            Err(_) => return,
        };
        let processed = {
            let mut processed = self.processed.lock().expect("not poisoned");
            processed.retain(|partition, _| {
                let kept = assigned.contains(partition);
                if !kept {
                    self.lags.forget(&self.projection, *partition);
                }
                kept
            });
            processed.clone()
        };
        let consumer = Arc::clone(&self.consumer);
        let projection = self.projection.clone();
        let dead_letter_topic = self.dead_letters.topic().to_owned();
        let lags = self.lags.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let watermarks = tokio::task::spawn_blocking(move || {
                for (partition, (offset, last_event, processed_at)) in processed {
                    let high = match consumer.fetch_watermarks(&topic, partition, LAG_TIMEOUT) {
                        Ok((_low, high)) => high,
                        Err(error) => {
                            tracing::debug!(%error, partition, "cannot measure the projector's lag");
                            continue;
                        }
                    };
                    let progress = Progress {
                        waiting: (high - (offset + 1)).max(0),
                        last_event,
                        processed_at,
                    };
                    lags.measured(&projection, partition, progress, Utc::now());
                }
                topic_watermarks(&consumer, &dead_letter_topic)
                    .map(|watermarks| (lags, projection, dead_letter_topic, watermarks))
            })
            .await;
            let (lags, projection, topic, watermarks) = match watermarks {
                Ok(Ok(measured)) => measured,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "cannot measure the dead-letter topic");
                    return;
                }
                Err(_panicked) => return,
            };
            match unreplayed(&pool, &topic, &watermarks).await {
                Ok(depth) => lags.dead_letters(&projection, depth),
                Err(error) => tracing::debug!(%error, "cannot count the replayed dead letters"),
            }
        });
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
        let spans: Vec<tracing::Span> = match platform::telemetry::exporting() {
            true => messages
                .iter()
                .zip(&events)
                .map(|(message, event)| self.apply_span(message, event))
                .collect(),
            false => Vec::new(),
        };
        // A parked or contradicting event ends it too, and nothing of it is written.
        let applied =
            projection::apply_batch::<P>(&mut *self.pool.acquire().await?, &events).await?;
        for (span, outcome) in spans.iter().zip(&applied.outcomes) {
            span.record("outcome", tracing::field::debug(outcome));
        }
        metrics::counter!("ringiflow_projector_events_applied_total", "projection" => self.projection.clone())
            .increment(applied.outcomes.len() as u64);
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
        let span = self.apply_span(message, &event);
        let applied = retry!(
            shutdown,
            "apply event",
            match projection::apply::<P>(&self.pool, &event)
                .instrument(span.clone())
                .await
            {
                Err(error) if error.is_transient() => Err(error),
                settled => Ok(settled),
            }
        )?;
        span.record("outcome", tracing::field::debug(&applied));
        let (kind, error) = match applied {
            Ok(ApplyOutcome::Parked) => (
                DeadLetterKind::Parked,
                format!(
                    "aggregate {} is parked after an earlier dead letter",
                    event.aggregate_id
                ),
            ),
            Ok(outcome) => {
                metrics::counter!("ringiflow_projector_events_applied_total", "projection" => self.projection.clone())
                    .increment(1);
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
        metrics::counter!(
            "ringiflow_projector_dead_letters_total",
            "projection" => self.projection.clone(),
            "kind" => kind.as_str(),
        )
        .increment(1);
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
        let mut processed = self.processed.lock().expect("not poisoned");
        let now = Utc::now();
        for message in batch {
            processed.insert(
                message.partition(),
                (message.offset(), messaging::event_time(message), now),
            );
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

/// The low and high watermark of every partition of `topic` (none for a topic that does not
/// exist yet).
fn topic_watermarks(consumer: &StreamConsumer, topic: &str) -> KafkaResult<Vec<(i32, i64, i64)>> {
    let metadata = consumer.fetch_metadata(Some(topic), LAG_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|topic| topic.partitions())
        .map(|partition| partition.id())
        .collect();
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer.fetch_watermarks(topic, partition, LAG_TIMEOUT)?;
            Ok((partition, low, high))
        })
        .collect()
}

/// The dead letters still in `topic` that `dlq replay` has not settled: Kafka keeps a message
/// after its replay, so the topic's size alone would report a dead letter forever. Replays of
/// messages the topic's retention has already dropped (below its low watermark) are not
/// subtracted.
async fn unreplayed(
    pool: &PgPool,
    topic: &str,
    watermarks: &[(i32, i64, i64)],
) -> Result<i64, sqlx::Error> {
    let held: i64 = watermarks
        .iter()
        .map(|(_, low, high)| (high - low).max(0))
        .sum();
    if held == 0 {
        return Ok(0);
    }
    let (partitions, lows): (Vec<i32>, Vec<i64>) = watermarks
        .iter()
        .map(|(partition, low, _)| (*partition, *low))
        .unzip();
    let replayed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dlq_replayed r
           JOIN unnest($2::int[], $3::bigint[]) AS held(dlq_partition, low)
             ON r.dlq_partition = held.dlq_partition AND r.dlq_offset >= held.low
          WHERE r.dlq_topic = $1 AND r.outcome <> 'failed'",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(&lows)
    .fetch_one(pool)
    .await?;
    Ok((held - replayed).max(0))
}
