//! The outbox relay: moves committed events from the outbox to Kafka, in order, at least once.
//!
//! It runs inside command-svc because it needs nothing but the event store's database and the
//! broker, and every replica can run it: an advisory lock lets exactly one publish at a time,
//! which is what keeps per-aggregate order across replicas. A broker outage only delays
//! publishing; rows stay in the outbox until the broker acknowledges them. The leader also
//! deletes published rows once they are past their retention.

use event_store::{
    EventStore, OutboxConnection, PendingEvent, StoreError, UnreadableEvent, OUTBOX_CHANNEL,
};
use futures::FutureExt;
use messaging::dead_letter::{self, DeadLetterKind, DeadLetterProducer, StoredEnvelope};
use messaging::{KafkaSettings, Routes, CE_SOURCE_COMMAND_SVC};
use platform::backoff::Backoff;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sqlx::postgres::PgListener;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Without a notification, the relay still looks at the outbox this often.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How many reads' worth of rows (`batch_size` each) may await the broker at once.
const IN_FLIGHT_ROUNDS: usize = 4;
/// The least time between two reads of the outbox that are not working off a backlog: under
/// load every append notifies, and a read per notification cost more than it saved.
const READ_SPACING: Duration = Duration::from_millis(2);
/// How long a stopping relay waits for acknowledgements of what it already sent.
const SHUTDOWN_SETTLE: Duration = Duration::from_secs(5);
/// How often the leader looks for published outbox rows past their retention.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Outbox rows deleted per statement, so no cleanup holds its locks for long.
const CLEANUP_BATCH: i64 = 10_000;
/// How often the leader measures the outbox backlog for its gauges.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

pub struct Relay {
    pub store: EventStore,
    /// Each published aggregate type's topic and codec.
    pub routes: Routes,
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
            metrics::gauge!("ringiflow_relay_leader").set(0.0);
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

    /// Rows handed to the producer and not yet acknowledged, at most: several rounds, so
    /// reading and sending the next rows never waits for the broker's acknowledgement of
    /// the previous ones.
    fn window(&self) -> usize {
        IN_FLIGHT_ROUNDS * self.batch_size.max(1) as usize
    }

    /// Waits to become the leader, then publishes until shutdown or a database error.
    ///
    /// Publishing is pipelined: new rows are read (woken by the append's NOTIFY) and handed to
    /// the producer while earlier ones still await the broker, and acknowledged rows are marked
    /// published in outbox order as the acknowledgements arrive. Waiting for each round's
    /// acknowledgements before reading the next is what made an event appended during a round
    /// wait for all of it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let mut outbox = loop {
            if let Some(outbox) = self.store.try_lead().await? {
                break outbox;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        tracing::info!("relay is the outbox leader");
        metrics::gauge!("ringiflow_relay_leader").set(1.0);
        for topic in self.routes.topics() {
            let settings = self.kafka.with_topic(topic);
            for ensured in [
                messaging::ensure_topic(&settings).await,
                dead_letter::ensure_topic(&settings).await,
            ] {
                if let Err(error) = ensured {
                    // The topic may exist already, or the broker may be down; publishing will
                    // tell.
                    tracing::warn!(error = %error, %topic, "could not ensure topic");
                }
            }
        }
        let mut listener = PgListener::connect_with(self.store.pool()).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        let mut in_flight = InFlight::default();
        let mut backoff = Backoff::default();
        let mut next_cleanup = Instant::now();
        let mut next_backlog = Instant::now();
        // Whether the outbox may hold rows not yet read: after a notification, a poll interval,
        // a full read or a failure, not after an acknowledgement.
        let mut look = true;
        let mut next_read = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_cleanup {
                next_cleanup = self.clean_up(&mut outbox).await;
            }
            if Instant::now() >= next_backlog {
                measure_backlog(&mut outbox).await;
                next_backlog = Instant::now() + BACKLOG_INTERVAL;
            }
            let room = in_flight.len() < self.window();
            if room && look && Instant::now() >= next_read {
                let mut pending = outbox
                    .pending(self.batch_size, &in_flight.positions())
                    .await?;
                look = pending.len() as i64 == self.batch_size;
                if !look {
                    next_read = Instant::now() + READ_SPACING;
                }
                match self.send(&mut pending, &mut in_flight, &mut outbox).await? {
                    // More rows wait: read on while the window has room.
                    Sent::All if look && in_flight.len() < self.window() => continue,
                    Sent::All => {}
                    Sent::Stopped => {
                        // The rest waits until the broker takes messages again; what it already
                        // holds stays in flight and settles as usual.
                        look = true;
                        backoff.wait(shutdown).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                settled = in_flight.settle(), if !in_flight.is_empty() => {
                    if let Some(&last_position) = settled.acknowledged.last() {
                        outbox.mark_published(&settled.acknowledged).await?;
                        tracing::debug!(
                            count = settled.acknowledged.len(),
                            last_position,
                            "events published"
                        );
                    }
                    if settled.failed {
                        look = true;
                        backoff.wait(shutdown).await;
                    } else {
                        backoff.reset();
                    }
                }
                _ = listener.recv(), if room && !look => look = true,
                // A read is due but waits for its spacing.
                _ = tokio::time::sleep_until(next_read), if room && look => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => look = true,
            }
        }
        // A graceful stop marks what the broker acknowledges in time, so the next leader
        // sends less again.
        if let Ok(settled) = tokio::time::timeout(SHUTDOWN_SETTLE, in_flight.settle_all()).await {
            if !settled.acknowledged.is_empty() {
                outbox.mark_published(&settled.acknowledged).await?;
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

    /// Hands `rows` to the producer, in order, adding each to `in_flight`. A row this build
    /// cannot read is dead-lettered once everything before it is acknowledged (or the prefix
    /// rule of [`InFlight`] would break), and marked published with them. Stops at the first row
    /// the producer or the dead-letter topic does not take.
    ///
    /// When spans are exported, each event is published in a span of its own, the child of
    /// the command's (the context stored with the event), and the message's `traceparent`
    /// names this span, so the consumers' spans are its children.
    async fn send(
        &self,
        rows: &mut [PendingEvent],
        in_flight: &mut InFlight,
        outbox: &mut OutboxConnection,
    ) -> Result<Sent, StoreError> {
        for row in rows.iter_mut() {
            let span = match row.as_mut() {
                Ok(event) if platform::telemetry::exporting() => publish_span(event),
                _ => tracing::Span::none(),
            };
            let row = &*row;
            // A row without a route (or whose payload its context's codec refuses) is set aside
            // like a row the store cannot read.
            let routed = row.as_ref().map_err(Box::clone).and_then(|event| {
                self.routes
                    .message(event, CE_SOURCE_COMMAND_SVC)
                    .map(|(topic, message)| (event, topic, message))
                    .map_err(|problem| Box::new(UnreadableEvent::of(event, problem)))
            });
            match routed {
                Ok((event, topic, message)) => {
                    let record = FutureRecord::to(topic)
                        .key(&message.key)
                        .payload(&message.payload)
                        .headers(message.headers);
                    match self.producer.send_result(record) {
                        Ok(delivery) => {
                            in_flight.push(event.position, event.event_id, delivery, span)
                        }
                        Err((error, _)) => {
                            metrics::counter!("ringiflow_relay_produce_errors_total").increment(1);
                            tracing::warn!(parent: &span, error = %error, event_id = %event.event_id, "cannot enqueue event");
                            return Ok(Sent::Stopped);
                        }
                    }
                }
                Err(unreadable) => {
                    let Settled {
                        mut acknowledged,
                        failed,
                    } = in_flight.settle_all().await;
                    let dead_lettered = !failed && self.dead_letter(&unreadable).await;
                    if dead_lettered {
                        acknowledged.push(unreadable.position);
                    }
                    if !acknowledged.is_empty() {
                        outbox.mark_published(&acknowledged).await?;
                    }
                    if !dead_lettered {
                        return Ok(Sent::Stopped);
                    }
                }
            }
        }
        Ok(Sent::All)
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

/// The span `event` is published in, made the parent of the message's consumers.
fn publish_span(event: &mut es_kernel::RecordedEvent<serde_json::Value>) -> tracing::Span {
    let span = tracing::info_span!(
        "relay.publish",
        event_id = %event.event_id,
        aggregate_type = %event.aggregate_type,
        position = event.position,
    );
    platform::telemetry::set_parent(&span, event.metadata.traceparent.as_deref());
    if let Some(traceparent) = platform::telemetry::traceparent(&span) {
        event.metadata.traceparent = Some(traceparent);
    }
    span
}

/// `ringiflow_outbox_backlog_rows` and `ringiflow_outbox_oldest_unpublished_age_seconds` (0
/// without a backlog). A failed measurement keeps the last values: it must never stop
/// publishing, and the next one comes soon.
async fn measure_backlog(outbox: &mut OutboxConnection) {
    match outbox.backlog().await {
        Ok((rows, oldest)) => {
            let age = oldest.map_or(0.0, |oldest| {
                (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!("ringiflow_outbox_backlog_rows").set(rows as f64);
            metrics::gauge!("ringiflow_outbox_oldest_unpublished_age_seconds").set(age);
        }
        Err(error) => tracing::warn!(error = %error, "cannot measure the outbox backlog"),
    }
}

enum Sent {
    All,
    /// The producer refused a row, or a row could not be dead-lettered.
    Stopped,
}

/// What one wait on [`InFlight`] settled.
struct Settled {
    /// Positions the broker acknowledged, oldest first, all from the front of the window.
    acknowledged: Vec<i64>,
    /// The delivery after them failed.
    failed: bool,
}

/// Rows handed to the producer and not yet acknowledged, oldest position first.
///
/// Only a prefix of them is ever marked published: the rows up to the first failure. The
/// failed row and everything after it are forgotten and read again from the outbox, so they go
/// out again in order (deliveries after the failure that did succeed are then sent twice, which
/// at-least-once allows and the projector's version check absorbs).
///
/// Each row keeps its publish span open until the broker answers.
#[derive(Default)]
struct InFlight(VecDeque<(i64, Uuid, DeliveryFuture, tracing::Span)>);

impl InFlight {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn positions(&self) -> Vec<i64> {
        self.0.iter().map(|(position, _, _, _)| *position).collect()
    }

    fn push(
        &mut self,
        position: i64,
        event_id: Uuid,
        delivery: DeliveryFuture,
        span: tracing::Span,
    ) {
        self.0.push_back((position, event_id, delivery, span));
    }

    /// Waits for the oldest delivery, then takes every later one that has already settled.
    /// On a failure the window is emptied: the failed row and everything after it are read
    /// from the outbox and sent again, in order. Cancel-safe: a delivery leaves the window only
    /// once its outcome is known.
    async fn settle(&mut self) -> Settled {
        let mut acknowledged = Vec::new();
        let mut next = match self.0.front_mut() {
            Some((_, _, oldest, _)) => Some(oldest.await),
            None => None,
        };
        let mut failed = false;
        while let Some(outcome) = next {
            let (position, event_id, _, span) = self.0.pop_front().expect("the settled delivery");
            match outcome {
                Ok(Ok(_)) => acknowledged.push(position),
                Ok(Err((error, _))) => {
                    tracing::warn!(parent: &span, error = %error, %event_id, "broker did not acknowledge event");
                    failed = true;
                }
                Err(_cancelled) => failed = true,
            }
            if failed {
                metrics::counter!("ringiflow_relay_produce_errors_total").increment(1);
                self.0.clear();
                break;
            }
            next = self
                .0
                .front_mut()
                .and_then(|(_, _, delivery, _)| delivery.now_or_never());
        }
        metrics::counter!("ringiflow_relay_published_total").increment(acknowledged.len() as u64);
        Settled {
            acknowledged,
            failed,
        }
    }

    /// Waits for every delivery: the acknowledged prefix, and whether a failure cut it short.
    async fn settle_all(&mut self) -> Settled {
        let mut acknowledged = Vec::new();
        while !self.is_empty() {
            let settled = self.settle().await;
            acknowledged.extend(settled.acknowledged);
            if settled.failed {
                return Settled {
                    acknowledged,
                    failed: true,
                };
            }
        }
        Settled {
            acknowledged,
            failed: false,
        }
    }
}
