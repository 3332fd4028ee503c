//! Workflow definitions: named, versioned routes that administrators maintain and workflows
//! pin at creation, so a later version never changes a workflow already under way.

use crate::{DefinitionId, DefinitionName, DomainError, Route};
use es_kernel::{events, Aggregate, Context, CorruptHistory};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionCommand {
    Create {
        name: DefinitionName,
        route: Route,
    },
    /// `name: None` keeps the current name.
    PublishVersion {
        route: Route,
        name: Option<DefinitionName>,
    },
    Archive,
}

events! {
    /// Facts about a workflow definition; stored like [`WorkflowEvent`](crate::WorkflowEvent)s.
    pub enum DefinitionEvent {
        /// Version 1. `{"name":"出張申請","route":[{"approver":{"role":"manager"},"sla_hours":48}]}`
        "DefinitionCreated" => Created { name: DefinitionName, route: Route },
        /// `{"version":2,"name":"出張申請","route":[…]}`; `name` is always the resulting name.
        "DefinitionVersionPublished" => VersionPublished {
            version: u32,
            name: DefinitionName,
            route: Route,
        },
        /// `{}`
        "DefinitionArchived" => Archived {},
    }
}

/// The definition version a workflow was created from. JSON:
/// `{"id":"<uuid>","version":3,"name":"出張申請"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionRef {
    pub id: DefinitionId,
    pub version: u32,
    pub name: DefinitionName,
}

/// The current version of a definition: what a new workflow pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub name: DefinitionName,
    /// 1 for the created definition, then one more per published version.
    pub version: u32,
    pub route: Route,
    /// Archived definitions keep their history but start no new workflows.
    pub archived: bool,
}

impl Definition {
    /// What a `CreateWorkflow` command records about this definition, and the route it uses.
    pub fn pin(&self, id: DefinitionId) -> Result<(DefinitionRef, Route), DomainError> {
        self.require_active()?;
        Ok((
            DefinitionRef {
                id,
                version: self.version,
                name: self.name.clone(),
            },
            self.route.clone(),
        ))
    }

    fn require_active(&self) -> Result<(), DomainError> {
        if self.archived {
            return Err(DomainError::DefinitionArchived);
        }
        Ok(())
    }
}

impl Aggregate for Definition {
    const TYPE: &'static str = "definition";
    const STATE_SCHEMA: i32 = 1;

    type Command = DefinitionCommand;
    type Event = DefinitionEvent;
    type Error = DomainError;

    fn command_name(command: &DefinitionCommand) -> &'static str {
        match command {
            DefinitionCommand::Create { .. } => "CreateDefinition",
            DefinitionCommand::PublishVersion { .. } => "PublishDefinitionVersion",
            DefinitionCommand::Archive => "ArchiveDefinition",
        }
    }

    fn event_type(event: &DefinitionEvent) -> &'static str {
        event.event_type()
    }

    fn decide(
        state: Option<&Definition>,
        context: &Context,
        command: DefinitionCommand,
    ) -> Result<Vec<DefinitionEvent>, DomainError> {
        // Permission first: whoever may not manage definitions learns nothing about them.
        if !context.actor.is_admin() {
            return Err(DomainError::NotAdmin {
                action: "manage workflow definitions",
            });
        }
        match (state, command) {
            (None, DefinitionCommand::Create { name, route }) => {
                Ok(vec![DefinitionEvent::Created { name, route }])
            }
            (Some(_), DefinitionCommand::Create { .. }) => Err(DomainError::AlreadyExists {
                aggregate: Self::TYPE,
            }),
            (None, _) => Err(DomainError::NotFound {
                aggregate: Self::TYPE,
            }),
            (Some(definition), DefinitionCommand::PublishVersion { route, name }) => {
                definition.require_active()?;
                Ok(vec![DefinitionEvent::VersionPublished {
                    // Saturating keeps a (never reached) overflow from panicking; `evolve`
                    // would refuse the repeated number.
                    version: definition.version.saturating_add(1),
                    name: name.unwrap_or_else(|| definition.name.clone()),
                    route,
                }])
            }
            (Some(definition), DefinitionCommand::Archive) => {
                definition.require_active()?;
                Ok(vec![DefinitionEvent::Archived {}])
            }
        }
    }

    fn evolve(
        state: Option<Definition>,
        event: &DefinitionEvent,
    ) -> Result<Option<Definition>, CorruptHistory> {
        let corrupt = |problem| CorruptHistory {
            event_type: event.event_type(),
            problem,
        };
        let Some(mut definition) = state else {
            return match event {
                DefinitionEvent::Created { route, .. } if route.is_empty() => {
                    Err(corrupt("route has no steps"))
                }
                DefinitionEvent::Created { name, route } => Ok(Some(Definition {
                    name: name.clone(),
                    version: 1,
                    route: route.clone(),
                    archived: false,
                })),
                _ => Err(corrupt("definition does not exist")),
            };
        };
        match event {
            DefinitionEvent::Created { .. } => return Err(corrupt("definition already exists")),
            DefinitionEvent::VersionPublished { .. } if definition.archived => {
                return Err(corrupt("an archived definition gets no new versions"))
            }
            DefinitionEvent::VersionPublished { version, .. }
                if Some(*version) != definition.version.checked_add(1) =>
            {
                return Err(corrupt("versions must increase one at a time"))
            }
            DefinitionEvent::VersionPublished { route, .. } if route.is_empty() => {
                return Err(corrupt("route has no steps"))
            }
            DefinitionEvent::VersionPublished {
                version,
                name,
                route,
            } => {
                definition.version = *version;
                definition.name = name.clone();
                definition.route = route.clone();
            }
            DefinitionEvent::Archived {} if definition.archived => {
                return Err(corrupt("definition is already archived"))
            }
            DefinitionEvent::Archived {} => definition.archived = true,
        }
        Ok(Some(definition))
    }
}
