//! The System Board: three bounded contexts that keep a tenant's systems, their vulnerabilities
//! and the resulting work in view, as pure functions on the event-sourcing kernel.
//!
//! - **System Management** ([`system`]): the aggregate [`System`] (type `system`). Any user
//!   registers a system with an owner, an environment and its installed [`Packages`]; the owner
//!   or an administrator updates the packages and decommissions it; the platform raises
//!   security alerts on it.
//! - **Vulnerability Management** ([`scan`]): the aggregate [`VulnerabilityScan`] (type
//!   `vulnerability_scan`). The platform initiates a scan of a system's packages; security
//!   staff, administrators or the platform record findings ([`CveId`] + [`Cvss`] in a scanned
//!   package, with the [`Severity`] the score gives) and complete the scan, which tallies them.
//! - **Task Management** ([`task`]): the aggregate [`Task`] (type `task`). The platform creates
//!   scan-review and remediation tasks; administrators or security staff assign them; the
//!   assignee completes them.
//!
//! The contexts never call each other. [`reactions`] holds the process manager's decisions,
//! each from one recorded event to typed commands with ids derived from the event: a
//! registered system or new packages start a scan; a new scan gets a review task; a CRITICAL
//! finding gets a remediation task due three days later and an alert on its system.
//!
//! Like every context, nothing here does IO, reads a clock or generates ids: `decide(state,
//! &context, command)` checks the rules and returns the facts to record (refusing with a
//! [`BoardError`]), `evolve(state, &event)` folds them, and the caller supplies the time, the
//! actor and every id. Labels ([`Environment`], [`Severity`], …) are spelled the same
//! SCREAMING_SNAKE_CASE way in stored JSON, `as_str` and `parse`.
#![forbid(unsafe_code)]

mod error;
pub mod reactions;
pub mod scan;
pub mod system;
pub mod task;
mod values;

pub use error::BoardError;
/// The kernel's shared values and traits, re-exported so users of these contexts need one
/// import.
pub use es_kernel::{
    replay, Actor, Aggregate, Context, CorruptHistory, EventMetadata, RecordedEvent, Rejection,
    Role, TenantId, UserId, ValidationError,
};
pub use reactions::{react_to_scan, react_to_system, BoardReaction, Reaction};
pub use scan::{Finding, FindingCounts, ScanCommand, ScanEvent, ScanTrigger, VulnerabilityScan};
pub use system::{Environment, SecurityAlert, System, SystemCommand, SystemEvent};
pub use task::{Task, TaskCommand, TaskEvent, TaskKind, TaskPriority, TaskStatus};
pub use values::{
    CveId, Cvss, DecommissionReason, Package, PackageField, PackageName, PackageVersion, Packages,
    RawPackage, ScanId, Severity, SystemId, SystemName, TaskId, TaskNote, TaskTitle, SECURITY_ROLE,
};

/// The three contexts in a deployment. Every aggregate publishes: the contexts collaborate only
/// through these events. No payload has changed shape yet, so no upcasters.
pub const REGISTRATIONS: [es_kernel::ContextRegistration; 3] = [
    es_kernel::ContextRegistration {
        name: "systems",
        upcasters: &[],
        published: &[<System as Aggregate>::TYPE],
    },
    es_kernel::ContextRegistration {
        name: "vulnerabilities",
        upcasters: &[],
        published: &[<VulnerabilityScan as Aggregate>::TYPE],
    },
    es_kernel::ContextRegistration {
        name: "tasks",
        upcasters: &[],
        published: &[<Task as Aggregate>::TYPE],
    },
];

#[cfg(test)]
mod tests;
