//! Command handling, independent of gRPC: idempotency check → load → decide → append.

use event_store::{Append, AppendError, CommandRecord, EventStore, StoreError};
use uuid::Uuid;
use workflow_domain::{
    decide, replay, Actor, CorruptHistory, DomainError, EventMetadata, WorkflowCommand, AGGREGATE_TYPE,
};

/// Who sends the command and in which request chain.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    /// The client's idempotency key; also the causation id of the events.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub traceparent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("expected version {expected}, but the workflow is at version {current_version}")]
    Conflict { expected: i64, current_version: i64 },
    #[error("command id was already used for a different command")]
    CommandIdReused,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] CorruptHistory),
}

#[derive(Clone)]
pub struct CommandHandler {
    store: EventStore,
}

impl CommandHandler {
    pub fn new(store: EventStore) -> Self {
        Self { store }
    }

    /// Runs `command` against the workflow `aggregate_id`. With `expected_version`, the caller
    /// asserts the version its decision is based on.
    pub async fn handle(
        &self,
        context: &CommandContext,
        aggregate_id: Uuid,
        expected_version: Option<i64>,
        command: WorkflowCommand,
    ) -> Result<CommandRecord, HandleError> {
        let tenant = context.actor.tenant_id.as_str();
        let command_type = command.name();
        if let Some(record) = self.store.find_command(tenant, context.command_id).await? {
            return same_command(record, command_type, aggregate_id);
        }

        let history = self.store.load(tenant, aggregate_id).await?;
        let version = history.last().map_or(0, |event| event.version);
        if let Some(expected) = expected_version.filter(|expected| *expected != version) {
            return Err(HandleError::Conflict { expected, current_version: version });
        }
        let state = replay(history.iter().map(|recorded| &recorded.event))?;
        let events = decide(&state, &context.actor, command)?;

        let metadata = EventMetadata {
            tenant_id: tenant.to_owned(),
            user_id: context.actor.user_id.to_string(),
            correlation_id: context.correlation_id,
            causation_id: context.command_id,
            traceparent: context.traceparent.clone(),
        };
        let appended = self
            .store
            .append(Append {
                aggregate_type: AGGREGATE_TYPE,
                aggregate_id,
                expected_version: version,
                events: &events,
                metadata: &metadata,
                command_type,
                occurred_at: chrono::Utc::now(),
            })
            .await;
        match appended {
            Ok(record) => Ok(record),
            Err(AppendError::DuplicateCommand(record)) => same_command(record, command_type, aggregate_id),
            Err(AppendError::Conflict { expected, current_version }) => {
                // A concurrent retry of this very command may be the writer we lost to.
                match self.store.find_command(tenant, context.command_id).await? {
                    Some(record) => same_command(record, command_type, aggregate_id),
                    None => Err(HandleError::Conflict { expected, current_version }),
                }
            }
            Err(AppendError::Store(error)) => Err(error.into()),
        }
    }
}

/// A retry gets the first result; the same id on a different command is a client bug.
fn same_command(record: CommandRecord, command_type: &str, aggregate_id: Uuid) -> Result<CommandRecord, HandleError> {
    if record.command_type == command_type && record.aggregate_id == aggregate_id {
        Ok(record)
    } else {
        Err(HandleError::CommandIdReused)
    }
}
