//! The approval-workflow bounded context ("ringi") as pure functions.
//!
//! Two aggregates, [`Workflow`] and [`Definition`], each implementing [`Aggregate`]:
//! `decide(state, &context, command) -> Result<Vec<Event>, DomainError>` checks every rule and
//! returns the facts to record; `evolve(state, &event)` folds a fact into the state. Neither
//! does IO, reads a clock or generates ids: the caller supplies all of that (the time in
//! [`Context::now`]), which keeps every rule testable given/when/then.
#![forbid(unsafe_code)]

mod aggregate;
mod attachment;
mod definition;
mod envelope;
mod error;
mod route;
mod values;
mod workflow;

pub use aggregate::{replay, Aggregate, Context, CorruptHistory};
pub use attachment::{Attachment, AttachmentField, RawAttachment};
pub use definition::{Definition, DefinitionCommand, DefinitionEvent, DefinitionRef};
pub use envelope::{EventMetadata, RecordedEvent};
pub use error::DomainError;
pub use route::{Approver, RawApprover, RawStep, Route, SlaHours, StepField, StepSpec};
pub use values::{
    parse_date, Actor, Comment, CommentBody, DefinitionId, DefinitionName, Description,
    DisplayName, Priority, Reason, Role, StepNo, TenantId, Title, UserId, ValidationError,
    WorkflowId, DATES,
};
pub use workflow::{
    Assignment, Decision, Draft, DraftChanges, Progress, Status, Workflow, WorkflowCommand,
    WorkflowEvent, WorkflowState,
};

#[cfg(test)]
mod tests;
