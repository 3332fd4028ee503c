//! Command handling, independent of gRPC: idempotency check and load (newest snapshot plus the
//! events after it) in one read → decide → append → maybe snapshot.

use es_kernel::{
    Actor, Aggregate, Context, CorruptHistory, EventMetadata, RecordedEvent, Rejection,
};
use event_store::{Append, AppendError, CommandRecord, EventStore, Prior, Snapshot, StoreError};
use uuid::Uuid;

/// Who sends the command and in which request chain.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    /// The client's idempotency key.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    /// Recorded as the events' causation: the command id for a person's command, the event a
    /// process manager reacted to for its commands.
    pub causation_id: Uuid,
    pub traceparent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A rule of the aggregate's context refused the command.
    #[error("{0}")]
    Rejected(Box<dyn Rejection>),
    #[error("expected version {expected}, but the aggregate is at version {current_version}")]
    Conflict { expected: i64, current_version: i64 },
    #[error("command id was already used for a different command")]
    CommandIdReused,
    /// The id chosen for a new aggregate of type `aggregate` belongs to another tenant.
    #[error("the {aggregate} id is not available")]
    IdUnavailable { aggregate: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] CorruptHistory),
}

#[derive(Clone)]
pub struct CommandHandler {
    store: EventStore,
    /// Snapshot an aggregate each time its version crosses a multiple of this; 0 = never.
    snapshot_every: i64,
}

impl CommandHandler {
    /// A handler without snapshots: every load folds the whole history.
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            snapshot_every: 0,
        }
    }

    /// Reads and writes snapshots, one each time an aggregate's version crosses a multiple of
    /// `every`; 0 turns snapshots off (neither read nor written).
    pub fn with_snapshot_every(self, every: u32) -> Self {
        Self {
            snapshot_every: every.into(),
            ..self
        }
    }

    /// Runs `command` against the aggregate `aggregate_id` of type `A`. With
    /// `expected_version`, the caller asserts the version its decision is based on.
    ///
    /// Counted in `ringiflow_commands_total{command,outcome}` and timed in
    /// `ringiflow_command_duration_seconds{command}`.
    pub async fn handle<A: Aggregate>(
        &self,
        context: &CommandContext,
        aggregate_id: Uuid,
        expected_version: Option<i64>,
        command: A::Command,
    ) -> Result<CommandRecord, HandleError> {
        let started = std::time::Instant::now();
        let command_type = A::command_name(&command);
        let handled = self
            .decide::<A>(context, aggregate_id, expected_version, command)
            .await;
        let outcome = match &handled {
            Ok(_) => "ok",
            Err(HandleError::Conflict { .. }) => "conflict",
            // The command itself is wrong: the domain refused it, or its ids cannot be used.
            Err(
                HandleError::Rejected(_)
                | HandleError::CommandIdReused
                | HandleError::IdUnavailable { .. },
            ) => "rejected",
            Err(HandleError::Store(_) | HandleError::Corrupt(_)) => "error",
        };
        metrics::counter!("ringiflow_commands_total", "command" => command_type, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("ringiflow_command_duration_seconds", "command" => command_type)
            .record(started.elapsed().as_secs_f64());
        handled
    }

    async fn decide<A: Aggregate>(
        &self,
        context: &CommandContext,
        aggregate_id: Uuid,
        expected_version: Option<i64>,
        command: A::Command,
    ) -> Result<CommandRecord, HandleError> {
        let tenant = context.actor.tenant_id.as_str();
        let command_type = A::command_name(&command);
        // A retry of a handled command gets its first result, never a new decision.
        let (snapshot, history) = match self
            .store
            .prior::<A>(
                tenant,
                context.command_id,
                aggregate_id,
                self.snapshot_every > 0,
            )
            .await?
        {
            Prior::Handled(record) => return same_command(record, command_type, aggregate_id),
            Prior::Current { snapshot, history } => (snapshot, history),
        };
        let (version, state) = fold(snapshot, &history)?;
        if let Some(expected) = expected_version.filter(|expected| *expected != version) {
            return Err(HandleError::Conflict {
                expected,
                current_version: version,
            });
        }
        // One instant for the decision (deadlines are computed from it) and its events, at the
        // microsecond precision PostgreSQL keeps, so a time read back equals the one decided.
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
        let decision_context = Context {
            actor: context.actor.clone(),
            now,
        };
        let events = A::decide(state.as_ref(), &decision_context, command)
            .map_err(|rejection| HandleError::Rejected(Box::new(rejection)))?;

        let metadata = EventMetadata {
            tenant_id: tenant.to_owned(),
            user_id: context.actor.user_id.to_string(),
            correlation_id: context.correlation_id,
            causation_id: context.causation_id,
            traceparent: context.traceparent.clone(),
        };
        let appended = self
            .store
            .append(Append {
                aggregate_type: A::TYPE,
                aggregate_id,
                expected_version: version,
                events: &events,
                metadata: &metadata,
                command_id: context.command_id,
                command_type,
                occurred_at: now,
            })
            .await;
        match appended {
            Ok(record) => {
                self.snapshot_if_due(aggregate_id, version, state, &events, record.version)
                    .await;
                Ok(record)
            }
            Err(AppendError::DuplicateCommand(record)) => {
                same_command(record, command_type, aggregate_id)
            }
            Err(AppendError::Conflict {
                expected,
                current_version,
            }) => {
                // A concurrent retry of this very command may be the writer we lost to.
                match self.store.find_command(tenant, context.command_id).await? {
                    Some(record) => same_command(record, command_type, aggregate_id),
                    None => Err(HandleError::Conflict {
                        expected,
                        current_version,
                    }),
                }
            }
            Err(AppendError::IdUnavailable) => {
                Err(HandleError::IdUnavailable { aggregate: A::TYPE })
            }
            Err(AppendError::Store(error)) => Err(error.into()),
        }
    }

    /// The aggregate's version and state: the newest snapshot, if snapshots are on and one is
    /// usable, plus the events after it. Without snapshots it is the same fold from version 0.
    pub async fn load<A: Aggregate>(
        &self,
        tenant: &str,
        aggregate_id: Uuid,
    ) -> Result<(i64, Option<A>), HandleError> {
        let snapshot = match self.snapshot_every {
            0 => None,
            _ => self.store.load_snapshot::<A>(tenant, aggregate_id).await?,
        };
        let from_version = snapshot.as_ref().map_or(0, |snapshot| snapshot.version);
        let history = self
            .store
            .history::<A>(tenant, aggregate_id, from_version)
            .await?;
        fold(snapshot, &history)
    }

    /// Snapshots the state after `events` if the append from `from_version` to `to_version`
    /// crossed a multiple of `snapshot_every`. Outside the append's transaction: a snapshot is
    /// only an optimisation, so failing to take one is logged and never fails the command.
    async fn snapshot_if_due<A: Aggregate>(
        &self,
        aggregate_id: Uuid,
        from_version: i64,
        state: Option<A>,
        events: &[A::Event],
        to_version: i64,
    ) {
        let every = self.snapshot_every;
        if every == 0 || to_version / every == from_version / every {
            return;
        }
        let state = match events.iter().try_fold(state, A::evolve) {
            Ok(Some(state)) => state,
            // Decided events always evolve into a workflow; if not, there is nothing to keep.
            unexpected => {
                tracing::warn!(%aggregate_id, version = to_version, state = ?unexpected, "no state to snapshot");
                return;
            }
        };
        let snapshot = Snapshot {
            version: to_version,
            state,
        };
        if let Err(error) = self.store.save_snapshot(aggregate_id, &snapshot).await {
            tracing::warn!(%aggregate_id, version = to_version, error = %error, "snapshot not saved");
        }
    }
}

/// The version and state after `history`, starting from `snapshot` (or from nothing).
fn fold<A: Aggregate>(
    snapshot: Option<Snapshot<A>>,
    history: &[RecordedEvent<A::Event>],
) -> Result<(i64, Option<A>), HandleError> {
    let (from_version, state) = snapshot.map_or((0, None), |snapshot| {
        (snapshot.version, Some(snapshot.state))
    });
    let version = history.last().map_or(from_version, |event| event.version);
    let state = history
        .iter()
        .try_fold(state, |state, recorded| A::evolve(state, &recorded.event))?;
    Ok((version, state))
}

/// A retry gets the first result; the same id on a different command is a client bug.
fn same_command(
    record: CommandRecord,
    command_type: &str,
    aggregate_id: Uuid,
) -> Result<CommandRecord, HandleError> {
    if record.command_type == command_type && record.aggregate_id == aggregate_id {
        Ok(record)
    } else {
        Err(HandleError::CommandIdReused)
    }
}
