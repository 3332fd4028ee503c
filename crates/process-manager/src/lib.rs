//! Process managers: how one context reacts to another's events without either calling the
//! other. A process manager follows one context's topic in a consumer group of its own
//! (`ringiflow.process.<name>`), asks its [`Reactor`] which commands each event calls for, and
//! hands them to a [`Dispatch`] that runs them against their context.
//!
//! Delivery is at least once, and effects happen once: a reactor derives every command id
//! (and every new aggregate's id) from the causing event's id (`es_kernel::derived_id`), so a
//! redelivered or replayed event sends the same commands, which the event store's command
//! idempotency turns into no-ops. Each command carries the event's correlation id, and its
//! events record the causing event as their causation: the causal chain of a request can be
//! followed across contexts.
//!
//! A command that fails for a reason that may pass (the database or the other service is away,
//! a concurrent write) is retried with backoff until it succeeds or the process stops; the
//! offset is committed only after every command of the event is done. A command its context
//! refuses, and a message that is not an event of the followed context, go to the topic's
//! dead-letter topic, and the process manager moves on. Names no context.
#![forbid(unsafe_code)]

use es_kernel::{EventCodec, RecordedEvent};
use messaging::dead_letter::{DeadLetterKind, DeadLetterProducer};
use messaging::KafkaSettings;
use platform::backoff::Backoff;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use std::future::Future;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

/// What one context does about another context's events: pure, like a domain's `decide`.
pub trait Reactor: Send + Sync + 'static {
    /// The followed context's wire format.
    type Codec: EventCodec;
    /// A command for some context, with its target and its derived ids. Cloned to retry it.
    type Reaction: Clone + Send;

    /// The commands `event` calls for; none for most events.
    fn react(
        &self,
        event: &RecordedEvent<<Self::Codec as EventCodec>::Event>,
    ) -> Vec<Self::Reaction>;
}

/// Where a reaction's command came from: what its events record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub tenant_id: String,
    pub correlation_id: Uuid,
    /// The causing event: the causation of the command's events.
    pub event_id: Uuid,
    pub traceparent: Option<String>,
}

impl Cause {
    pub fn of<E>(event: &RecordedEvent<E>) -> Self {
        Self {
            tenant_id: event.metadata.tenant_id.clone(),
            correlation_id: event.metadata.correlation_id,
            event_id: event.event_id,
            traceparent: event.metadata.traceparent.clone(),
        }
    }
}

/// Why a command did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchError {
    /// The context that runs the command cannot be reached: every other command to it would
    /// fail alike. Retried like [`DispatchError::Transient`]; a caller sending a batch stops it.
    Unavailable(String),
    /// May pass: retried.
    Transient(String),
    /// Will not pass however often it is sent (the context refused the command): the event is
    /// dead-lettered with this reason.
    Permanent(String),
}

/// Runs reactions' commands against their contexts: in-process through a command handler, or
/// over a context's API. Shared by the process managers that follow a topic and by reactions
/// to time (the deadline watcher), which find their causes in a read model instead.
pub trait Dispatch<R>: Send + Sync + 'static {
    fn dispatch(
        &self,
        reaction: R,
        cause: &Cause,
    ) -> impl Future<Output = Result<(), DispatchError>> + Send;
}

/// One process manager: `reactor`'s reactions to the events on `kafka.topic`, run by
/// `dispatch`.
pub struct ProcessManager<R, D> {
    /// Names the consumer group, `ringiflow.process.<name>`.
    pub name: String,
    pub reactor: R,
    pub dispatch: D,
    pub kafka: KafkaSettings,
    /// Made with [`messaging::producer_config`], shared with the process's other writers:
    /// where refused reactions' events are dead-lettered.
    pub producer: FutureProducer,
}

/// Why [`ProcessManager::run`] stopped.
#[derive(Debug)]
pub enum Stopped {
    Shutdown,
    Kafka(rdkafka::error::KafkaError),
}

impl<R, D> ProcessManager<R, D>
where
    R: Reactor,
    D: Dispatch<R::Reaction>,
{
    pub fn group_id(&self) -> String {
        format!("ringiflow.process.{}", self.name)
    }

    /// Follows the topic (creating it and its dead-letter topic if need be) until `shutdown`.
    /// Stops early only if the consumer cannot be created or subscribed.
    pub async fn run(self, shutdown: CancellationToken) -> Stopped {
        match self.follow(&shutdown).await {
            Ok(()) => Stopped::Shutdown,
            Err(error) => Stopped::Kafka(error),
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> Result<(), rdkafka::error::KafkaError> {
        // A consumer subscribed to a topic that does not exist yet may not notice it appear for
        // minutes: create it (and its dead-letter topic) first, as the relay does.
        for ensured in [
            messaging::ensure_topic(&self.kafka).await,
            messaging::dead_letter::ensure_topic(&self.kafka).await,
        ] {
            if let Err(error) = ensured {
                tracing::warn!(process = %self.name, topic = %self.kafka.topic, error = %error, "could not ensure topic");
            }
        }
        let consumer: StreamConsumer =
            messaging::consumer_config(&self.kafka, &self.group_id()).create()?;
        consumer.subscribe(&[&self.kafka.topic])?;
        let dead_letters = DeadLetterProducer::with_producer(self.producer.clone(), &self.kafka);
        let mut backoff = Backoff::default();
        tracing::info!(process = %self.name, topic = %self.kafka.topic, "process manager following");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(process = %self.name, error = %error, "cannot consume; retrying");
                    backoff.wait(shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            if !self.handle(&message, &dead_letters, shutdown).await {
                // Stopped mid-way: the offset stays uncommitted and the next run redelivers it.
                return Ok(());
            }
            // The message is done with (or set aside): a crash before this commit redelivers
            // it, which the derived command ids make harmless.
            while let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
                tracing::warn!(process = %self.name, error = %error, "cannot commit; retrying");
                backoff.wait(shutdown).await;
                if shutdown.is_cancelled() {
                    return Ok(());
                }
            }
        }
    }

    /// Runs every reaction `message` calls for. `false` if shutdown came first.
    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        dead_letters: &DeadLetterProducer,
        shutdown: &CancellationToken,
    ) -> bool {
        let event = match messaging::decode::<R::Codec, _>(message) {
            Ok(event) => event,
            Err(error) => {
                let kind = DeadLetterKind::of_undecodable::<R::Codec, _>(message);
                return self
                    .dead_letter(dead_letters, message, kind, &error.to_string(), shutdown)
                    .await;
            }
        };
        // A span per consumed event, the child of the span that published it (the relay's, from
        // the message's `traceparent`); the reactions' commands continue from it.
        let span = tracing::info_span!(
            "react",
            process = %self.name,
            event_id = %event.event_id,
            event_type = <R::Codec as EventCodec>::event_type(&event.event),
        );
        platform::telemetry::set_parent(&span, event.metadata.traceparent.as_deref());
        let mut cause = Cause::of(&event);
        if let Some(traceparent) = platform::telemetry::traceparent(&span) {
            cause.traceparent = Some(traceparent);
        }
        self.react(&event, &cause, message, dead_letters, shutdown)
            .instrument(span)
            .await
    }

    /// Dispatches each reaction `event` calls for, retrying transient failures and
    /// dead-lettering refusals. `false` if shutdown came first.
    async fn react(
        &self,
        event: &RecordedEvent<<R::Codec as EventCodec>::Event>,
        cause: &Cause,
        message: &BorrowedMessage<'_>,
        dead_letters: &DeadLetterProducer,
        shutdown: &CancellationToken,
    ) -> bool {
        let counted = |outcome: &'static str| {
            metrics::counter!("ringiflow_reactions_total", "process" => self.name.clone(), "outcome" => outcome)
                .increment(1);
        };
        for reaction in self.reactor.react(event) {
            let mut backoff = Backoff::default();
            loop {
                match self.dispatch.dispatch(reaction.clone(), cause).await {
                    Ok(()) => {
                        counted("ok");
                        break;
                    }
                    Err(DispatchError::Permanent(problem)) => {
                        counted("rejected");
                        tracing::error!(process = %self.name, event_id = %cause.event_id, %problem, "reaction refused");
                        let kind = DeadLetterKind::Rejected;
                        if !self
                            .dead_letter(dead_letters, message, kind, &problem, shutdown)
                            .await
                        {
                            return false;
                        }
                        break;
                    }
                    Err(
                        DispatchError::Transient(problem) | DispatchError::Unavailable(problem),
                    ) => {
                        counted("retried");
                        tracing::warn!(process = %self.name, event_id = %cause.event_id, %problem, "reaction failed; retrying");
                        backoff.wait(shutdown).await;
                        if shutdown.is_cancelled() {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Sends `message` to the dead-letter topic, retrying until it is taken. `false` if
    /// shutdown came first.
    async fn dead_letter(
        &self,
        dead_letters: &DeadLetterProducer,
        message: &BorrowedMessage<'_>,
        kind: DeadLetterKind,
        problem: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::default();
        loop {
            match dead_letters.send(message, kind, problem).await {
                Ok(_) => return true,
                Err(error) => {
                    tracing::warn!(process = %self.name, error = %error, "cannot dead-letter; retrying");
                    backoff.wait(shutdown).await;
                    if shutdown.is_cancelled() {
                        return false;
                    }
                }
            }
        }
    }
}
