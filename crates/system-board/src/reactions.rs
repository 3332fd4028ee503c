//! How the contexts react to each other: pure process-manager decisions from one recorded event
//! to the commands other aggregates must run.
//!
//! Every id is derived from the event's id and a purpose ([`derived_id`]), so a redelivered or
//! replayed event yields identical commands for identical (new or existing) aggregates, and the
//! store's command idempotency turns the repeat into a no-op. The caller runs each command as
//! the system actor of the event's tenant (`event.metadata.tenant_id`); deadlines count from
//! the event's `occurred_at`, never from a clock.
//!
//! - `SystemRegistered`, `PackagesUpdated` → `InitiateScan` on a new scan, with the packages the
//!   event names.
//! - `VulnScanInitiated` → `CreateTask` (scan review, MEDIUM, due in 7 days).
//! - `VulnerabilityDetected` with severity CRITICAL → `CreateTask` (remediation, HIGH, due in 3
//!   days) and `RaiseSecurityAlert` on the scanned system.
//! - Anything else, task events included → nothing.

use crate::{
    CveId, Cvss, PackageName, ScanCommand, ScanEvent, ScanId, ScanTrigger, Severity, SystemCommand,
    SystemEvent, SystemId, TaskCommand, TaskKind, TaskPriority, TaskTitle, VulnerabilityScan,
};
use crate::{System, Task};
use chrono::{DateTime, TimeDelta, Utc};
use es_kernel::{derived_id, Aggregate, RecordedEvent};
use uuid::Uuid;

/// How long a scan's review may take.
pub const SCAN_REVIEW_DAYS: i64 = 7;
/// How long the remediation of a critical vulnerability may take.
pub const REMEDIATION_DAYS: i64 = 3;

/// The purposes ids are derived for, one per effect of an event: `derived_id(event_id, p)`.
pub mod purpose {
    /// The new scan a system event starts.
    pub const SCAN: &str = "vulnerability-scan";
    pub const INITIATE_SCAN: &str = "initiate-scan";
    /// The review task of a new scan.
    pub const REVIEW_TASK: &str = "scan-review-task";
    pub const CREATE_REVIEW_TASK: &str = "create-scan-review-task";
    /// The remediation task of a critical finding.
    pub const REMEDIATION_TASK: &str = "remediation-task";
    pub const CREATE_REMEDIATION_TASK: &str = "create-remediation-task";
    /// The alert a critical finding raises on its system (an existing aggregate: only the
    /// command's id is derived).
    pub const RAISE_ALERT: &str = "raise-security-alert";
}

/// One command for one aggregate of type `C`'s context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction<C> {
    pub aggregate_id: Uuid,
    /// The idempotency key of the command.
    pub command_id: Uuid,
    pub command: C,
}

/// A reaction, typed by the context that must run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardReaction {
    System(Reaction<SystemCommand>),
    Scan(Reaction<ScanCommand>),
    Task(Reaction<TaskCommand>),
}

impl BoardReaction {
    /// The `Aggregate::TYPE` of the aggregate that runs the command.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            BoardReaction::System(_) => System::TYPE,
            BoardReaction::Scan(_) => VulnerabilityScan::TYPE,
            BoardReaction::Task(_) => Task::TYPE,
        }
    }

    pub fn aggregate_id(&self) -> Uuid {
        match self {
            BoardReaction::System(reaction) => reaction.aggregate_id,
            BoardReaction::Scan(reaction) => reaction.aggregate_id,
            BoardReaction::Task(reaction) => reaction.aggregate_id,
        }
    }

    pub fn command_id(&self) -> Uuid {
        match self {
            BoardReaction::System(reaction) => reaction.command_id,
            BoardReaction::Scan(reaction) => reaction.command_id,
            BoardReaction::Task(reaction) => reaction.command_id,
        }
    }

    /// The `Aggregate::command_name` of the command.
    pub fn command_name(&self) -> &'static str {
        match self {
            BoardReaction::System(reaction) => System::command_name(&reaction.command),
            BoardReaction::Scan(reaction) => VulnerabilityScan::command_name(&reaction.command),
            BoardReaction::Task(reaction) => Task::command_name(&reaction.command),
        }
    }
}

/// A new system, or new packages, get a scan of the packages the event names.
pub fn react_to_system(event: &RecordedEvent<SystemEvent>) -> Vec<BoardReaction> {
    let (packages, trigger) = match &event.event {
        SystemEvent::Registered { packages, .. } => (packages, ScanTrigger::Registered),
        SystemEvent::PackagesUpdated { packages, .. } => (packages, ScanTrigger::PackagesUpdated),
        SystemEvent::SecurityAlertRaised { .. } | SystemEvent::Decommissioned { .. } => {
            return Vec::new()
        }
    };
    vec![BoardReaction::Scan(Reaction {
        aggregate_id: derived_id(event.event_id, purpose::SCAN),
        command_id: derived_id(event.event_id, purpose::INITIATE_SCAN),
        command: ScanCommand::Initiate {
            system_id: SystemId::new(event.aggregate_id),
            packages: packages.clone(),
            trigger,
        },
    })]
}

/// A new scan gets a review task; a critical finding gets a remediation task and an alert on
/// its system. Findings below CRITICAL wait for the review.
pub fn react_to_scan(event: &RecordedEvent<ScanEvent>) -> Vec<BoardReaction> {
    let scan_id = ScanId::new(event.aggregate_id);
    match &event.event {
        ScanEvent::Initiated {
            system_id,
            packages,
            trigger,
        } => vec![BoardReaction::Task(Reaction {
            aggregate_id: derived_id(event.event_id, purpose::REVIEW_TASK),
            command_id: derived_id(event.event_id, purpose::CREATE_REVIEW_TASK),
            command: TaskCommand::Create {
                kind: TaskKind::ScanReview,
                system_id: *system_id,
                scan_id,
                cve: None,
                title: review_title(*system_id, packages.len(), *trigger),
                priority: TaskPriority::Medium,
                due_at: days_after(event.occurred_at, SCAN_REVIEW_DAYS),
            },
        })],
        ScanEvent::VulnerabilityDetected {
            cve,
            cvss,
            severity: Severity::Critical,
            package,
            system_id,
        } => vec![
            BoardReaction::Task(Reaction {
                aggregate_id: derived_id(event.event_id, purpose::REMEDIATION_TASK),
                command_id: derived_id(event.event_id, purpose::CREATE_REMEDIATION_TASK),
                command: TaskCommand::Create {
                    kind: TaskKind::Remediation,
                    system_id: *system_id,
                    scan_id,
                    cve: Some(cve.clone()),
                    title: remediation_title(cve, package, *cvss),
                    priority: TaskPriority::High,
                    due_at: days_after(event.occurred_at, REMEDIATION_DAYS),
                },
            }),
            BoardReaction::System(Reaction {
                aggregate_id: system_id.as_uuid(),
                command_id: derived_id(event.event_id, purpose::RAISE_ALERT),
                command: SystemCommand::RaiseSecurityAlert {
                    scan_id,
                    cve: cve.clone(),
                    cvss: *cvss,
                    package: package.clone(),
                },
            }),
        ],
        ScanEvent::VulnerabilityDetected { .. } | ScanEvent::Completed { .. } => Vec::new(),
    }
}

/// Saturates at the end of chrono's range, which no store time comes near.
fn days_after(occurred_at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    occurred_at
        .checked_add_signed(TimeDelta::days(days))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// E.g. "Review the vulnerability scan of system <uuid> after registration (12 packages)".
/// The system's name is not in the scan's events, so the id names it; the board shows names.
fn review_title(system_id: SystemId, packages: usize, trigger: ScanTrigger) -> TaskTitle {
    let after = match trigger {
        ScanTrigger::Registered => "registration",
        ScanTrigger::PackagesUpdated => "a package update",
    };
    let plural = if packages == 1 { "" } else { "s" };
    TaskTitle::generated(&format!(
        "Review the vulnerability scan of system {system_id} after {after} \
         ({packages} package{plural})"
    ))
}

/// E.g. "Remediate CVE-2021-44228 in log4j-core (CVSS 10.0)"; cut to fit a long package name.
fn remediation_title(cve: &CveId, package: &PackageName, cvss: Cvss) -> TaskTitle {
    TaskTitle::generated(&format!("Remediate {cve} in {package} (CVSS {cvss})"))
}
