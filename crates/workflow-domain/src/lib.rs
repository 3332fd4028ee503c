//! The approval-workflow bounded context ("ringi") as pure functions.
//!
//! Two aggregates, [`Workflow`] and [`Definition`], each implementing [`Aggregate`]:
//! `decide(state, &context, command) -> Result<Vec<Event>, DomainError>` checks every rule and
//! returns the facts to record; `evolve(state, &event)` folds a fact into the state. Neither
//! does IO, reads a clock or generates ids: the caller supplies all of that (the time in
//! [`Context::now`]), which keeps every rule testable given/when/then.
#![forbid(unsafe_code)]

mod attachment;
mod definition;
mod error;
mod route;
mod upcasters;
mod values;
mod workflow;

pub use attachment::{Attachment, AttachmentField, RawAttachment};
pub use definition::{Definition, DefinitionCommand, DefinitionEvent, DefinitionRef};
pub use error::DomainError;
/// The kernel's shared values and traits, re-exported so users of this context need one import.
pub use es_kernel::{
    parse_date, replay, Actor, Aggregate, Context, CorruptHistory, DisplayName, EventMetadata,
    RecordedEvent, Rejection, Role, TenantId, UserId, ValidationError, DATES,
};
pub use route::{Approver, RawApprover, RawStep, Route, SlaHours, StepField, StepSpec};
pub use upcasters::UPCASTERS;
pub use values::{
    Comment, CommentBody, DefinitionId, DefinitionName, Description, Priority, Reason, StepNo,
    Title, WorkflowId,
};
pub use workflow::{
    Assignment, Decision, Draft, DraftChanges, Progress, Status, Workflow, WorkflowCommand,
    WorkflowEvent, WorkflowState,
};

/// The workflow context's topic unless a deployment moves it (`REGISTRATION.default_topic()`,
/// spelled out for the services' setting defaults).
pub const TOPIC: &str = "ringiflow.workflow.events";

/// The workflow context in a deployment: workflows publish their events; definitions live in the
/// event store alone (command-svc reads a definition there to pin it into a new workflow).
pub const REGISTRATION: es_kernel::ContextRegistration = es_kernel::ContextRegistration {
    name: "workflow",
    upcasters: UPCASTERS,
    published: &[Workflow::TYPE],
};

#[cfg(test)]
mod tests;
