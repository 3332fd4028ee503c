//! The System Board's reactions, run inside command-svc: two process managers follow the
//! systems and vulnerabilities topics, and each reaction's command runs in-process through the
//! same [`CommandHandler`] as the tenant's system actor.

use crate::handler::{CommandContext, CommandHandler, HandleError};
use es_kernel::{Actor, DisplayName, RecordedEvent, Role, TenantId, UserId};
use process_manager::{Cause, Dispatch, DispatchError, Reactor};
use system_board::{BoardReaction, ScanEvent, System, SystemEvent, Task, VulnerabilityScan};

/// The process manager that starts scans: follows the systems topic.
pub const SCANS_PROCESS: &str = "system-board-scans";
/// The process manager that creates tasks and raises alerts: follows the vulnerabilities topic.
pub const TASKS_PROCESS: &str = "system-board-tasks";

/// The user id the reactions' events record.
pub const SYSTEM_USER: &str = "system-board";
const SYSTEM_DISPLAY_NAME: &str = "System Board";

/// New systems and package lists get a scan.
pub struct SystemReactions;

impl Reactor for SystemReactions {
    type Codec = proto::SystemCodec;
    type Reaction = BoardReaction;

    fn react(&self, event: &RecordedEvent<SystemEvent>) -> Vec<BoardReaction> {
        system_board::react_to_system(event)
    }
}

/// New scans get a review task; critical findings a remediation task and an alert.
pub struct ScanReactions;

impl Reactor for ScanReactions {
    type Codec = proto::ScanCodec;
    type Reaction = BoardReaction;

    fn react(&self, event: &RecordedEvent<ScanEvent>) -> Vec<BoardReaction> {
        system_board::react_to_scan(event)
    }
}

/// Runs a reaction's command through the handler, in the causing event's tenant, correlation
/// and trace, with the event as its causation.
#[derive(Clone)]
pub struct BoardDispatch {
    pub handler: CommandHandler,
}

impl Dispatch<BoardReaction> for BoardDispatch {
    async fn dispatch(&self, reaction: BoardReaction, cause: &Cause) -> Result<(), DispatchError> {
        let context = CommandContext {
            actor: system_actor(&cause.tenant_id)?,
            command_id: reaction.command_id(),
            correlation_id: cause.correlation_id,
            causation_id: cause.event_id,
            traceparent: cause.traceparent.clone(),
        };
        let aggregate_type = reaction.aggregate_type();
        let command_type = reaction.command_name();
        // No expected version: the reactions' commands decide on the current state, and the
        // derived command ids make a repeat a no-op.
        let handled = match reaction {
            BoardReaction::System(reaction) => {
                self.handler
                    .handle::<System>(&context, reaction.aggregate_id, None, reaction.command)
                    .await
            }
            BoardReaction::Scan(reaction) => {
                self.handler
                    .handle::<VulnerabilityScan>(
                        &context,
                        reaction.aggregate_id,
                        None,
                        reaction.command,
                    )
                    .await
            }
            BoardReaction::Task(reaction) => {
                self.handler
                    .handle::<Task>(&context, reaction.aggregate_id, None, reaction.command)
                    .await
            }
        };
        let record = handled.map_err(dispatch_error)?;
        tracing::info!(
            aggregate_type,
            command_type,
            aggregate_id = %record.aggregate_id,
            version = record.version,
            command_id = %context.command_id,
            correlation_id = %context.correlation_id,
            causation_id = %context.causation_id,
            "reaction handled"
        );
        Ok(())
    }
}

/// The platform itself, in `tenant`: the only actor the reactions' commands accept.
fn system_actor(tenant: &str) -> Result<Actor, DispatchError> {
    let permanent = |error: es_kernel::ValidationError| {
        DispatchError::Permanent(format!("no system actor for tenant {tenant:?}: {error}"))
    };
    Ok(Actor {
        tenant_id: TenantId::parse("tenant_id", tenant).map_err(permanent)?,
        user_id: UserId::parse("user_id", SYSTEM_USER).map_err(permanent)?,
        display_name: DisplayName::parse("display_name", SYSTEM_DISPLAY_NAME).map_err(permanent)?,
        roles: vec![Role::parse("roles", Role::SYSTEM).map_err(permanent)?],
    })
}

/// A refusal will be refused again; a conflict or an unreachable store may pass.
fn dispatch_error(error: HandleError) -> DispatchError {
    match error {
        HandleError::Rejected(_)
        | HandleError::CommandIdReused
        | HandleError::IdUnavailable { .. }
        | HandleError::Corrupt(_) => DispatchError::Permanent(error.to_string()),
        HandleError::Conflict { .. } | HandleError::Store(_) => {
            DispatchError::Transient(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_conflicts_transient() {
        let refused = HandleError::Rejected(Box::new(system_board::BoardError::NotFound {
            aggregate: "system",
        }));
        assert!(matches!(
            dispatch_error(refused),
            DispatchError::Permanent(_)
        ));
        assert!(matches!(
            dispatch_error(HandleError::CommandIdReused),
            DispatchError::Permanent(_)
        ));
        assert!(matches!(
            dispatch_error(HandleError::IdUnavailable { aggregate: "task" }),
            DispatchError::Permanent(_)
        ));
        assert!(matches!(
            dispatch_error(HandleError::Conflict {
                expected: 1,
                current_version: 2
            }),
            DispatchError::Transient(_)
        ));
    }

    #[test]
    fn the_system_actor_holds_the_system_role_in_the_events_tenant() {
        let actor = system_actor("acme").unwrap();
        assert_eq!(actor.tenant_id.as_str(), "acme");
        assert_eq!(actor.user_id.as_str(), SYSTEM_USER);
        assert!(actor.is_system());
        assert!(matches!(system_actor(""), Err(DispatchError::Permanent(_))));
    }
}
