//! The System Board (`ringiflow.systemboard.v1`): systems and their packages, the scans of
//! those packages and what they found, and the tasks the platform creates from them. Commands
//! go to command-svc's `SystemBoardCommandService`, reads to query-svc's
//! `SystemBoardQueryService`, both through `schema::call`, as the workflow's do.
//!
//! The output types below are converted from the query contract the way `schema::types` does
//! the workflow's: empty strings and zero timestamps the contract uses for "none" become
//! `null`, and anything query-svc should never send (an UNSPECIFIED label, a missing required
//! timestamp) is an INTERNAL error, never a guess.

pub(super) mod mutation;
pub(super) mod query;

use super::types::{broken_contract, optional_time, required_time};
use async_graphql::connection::PageInfo;
use async_graphql::{Enum, InputObject, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use proto::systemboard::v1 as pb;

/// Where a system runs.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Environment {
    Production,
    Staging,
    Development,
    Test,
}

/// How bad a vulnerability is; follows from its CVSS v3 base score: CRITICAL from 9.0, HIGH
/// from 7.0, MEDIUM from 4.0, LOW below.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// What a task asks for.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// Look through a new scan's findings.
    ScanReview,
    /// Fix a critical vulnerability; the task names its CVE.
    Remediation,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskPriority {
    Low,
    Medium,
    High,
    Urgent,
}

/// Where a task stands: OPEN until it is assigned, ASSIGNED, then COMPLETED.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskStatus {
    Open,
    Assigned,
    Completed,
}

/// One installed package, as its ecosystem spells it (`log4j-core`, `2.14.1`).
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    name: String,
    version: String,
}

/// A package to register or update; names are compared exactly and a list holds each once.
#[derive(InputObject)]
pub(crate) struct PackageInput {
    name: String,
    version: String,
}

/// How many vulnerabilities there are of each severity.
#[derive(SimpleObject, Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VulnerabilityCounts {
    critical: u32,
    high: u32,
    medium: u32,
    low: u32,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct System {
    id: ID,
    /// The system's version the read side holds (one per event): pass it as `expectedVersion`.
    version: i64,
    name: String,
    /// The user id of who is responsible for the system.
    owner: String,
    environment: Environment,
    /// Sorted by name.
    packages: Vec<Package>,
    decommissioned: bool,
    /// The findings of the system's latest scan (which looked at the packages it has now), by
    /// severity; zeros before any finding. `systemVulnerabilities` lists them.
    open_vulnerabilities: VulnerabilityCounts,
    /// Every alert raised against the system (one per critical finding), oldest first.
    security_alerts: Vec<SecurityAlert>,
    registered_at: DateTime<Utc>,
    /// When its last event was recorded.
    updated_at: DateTime<Utc>,
}

/// A critical finding of one of the system's scans.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct SecurityAlert {
    scan_id: ID,
    cve: String,
    /// The CVSS v3 base score, e.g. 9.8.
    cvss: f64,
    severity: Severity,
    package: String,
    raised_at: DateTime<Utc>,
}

/// One finding: a CVE in one of the system's packages.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Vulnerability {
    /// The scan that found it.
    scan_id: ID,
    cve: String,
    /// The CVSS v3 base score, e.g. 9.8.
    cvss: f64,
    severity: Severity,
    package: String,
    detected_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Task {
    id: ID,
    /// Pass it as `expectedVersion`.
    version: i64,
    kind: TaskKind,
    status: TaskStatus,
    system_id: ID,
    /// The scan the task is about: the one to review, or the one that found the vulnerability.
    scan_id: ID,
    /// The vulnerability to remediate; null for scan reviews.
    cve: Option<String>,
    title: String,
    priority: TaskPriority,
    due_at: DateTime<Utc>,
    /// User id; null while the task is OPEN.
    assignee: Option<String>,
    created_at: DateTime<Utc>,
    /// Null until the task is COMPLETED.
    completed_at: Option<DateTime<Utc>>,
}

/// One recorded event of a causal chain, without its payload. `causationId` is the `eventId`
/// of the event the platform reacted to, or the id of the command a person sent for the
/// chain's first event: the links to draw.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct ChainEvent {
    event_id: ID,
    /// e.g. `VulnScanInitiated`.
    event_type: String,
    /// `system`, `vulnerability_scan` or `task`.
    aggregate_type: String,
    aggregate_id: ID,
    /// 1..n: the aggregate version this event made.
    version: i64,
    occurred_at: DateTime<Utc>,
    correlation_id: ID,
    causation_id: ID,
    /// The user whose command caused it; the platform's own id for its reactions.
    user_id: String,
}

/// A page of systems. The contract pages with a token per page, not a cursor per item, so a
/// page has `nodes` and no `edges`: `pageInfo.endCursor` is the `after` of the next page.
#[derive(SimpleObject)]
pub(crate) struct SystemConnection {
    nodes: Vec<System>,
    page_info: PageInfo,
}

/// A page of tasks; paged like `SystemConnection`.
#[derive(SimpleObject)]
pub(crate) struct TaskConnection {
    nodes: Vec<Task>,
    page_info: PageInfo,
}

/// Forward paging by the contract's page token: empty on the last page.
fn page_info(next_page_token: String) -> PageInfo {
    let end_cursor = (!next_page_token.is_empty()).then_some(next_page_token);
    PageInfo {
        has_previous_page: false,
        has_next_page: end_cursor.is_some(),
        start_cursor: None,
        end_cursor,
    }
}

/// CVSS scores travel in tenths (98 for 9.8).
fn cvss(tenths: u32) -> f64 {
    f64::from(tenths) / 10.0
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl From<Environment> for pb::Environment {
    fn from(environment: Environment) -> Self {
        match environment {
            Environment::Production => Self::Production,
            Environment::Staging => Self::Staging,
            Environment::Development => Self::Development,
            Environment::Test => Self::Test,
        }
    }
}

impl TryFrom<pb::Environment> for Environment {
    type Error = async_graphql::Error;
    fn try_from(environment: pb::Environment) -> Result<Self> {
        match environment {
            pb::Environment::Production => Ok(Self::Production),
            pb::Environment::Staging => Ok(Self::Staging),
            pb::Environment::Development => Ok(Self::Development),
            pb::Environment::Test => Ok(Self::Test),
            pb::Environment::Unspecified => Err(broken_contract("an unspecified environment")),
        }
    }
}

impl TryFrom<pb::Severity> for Severity {
    type Error = async_graphql::Error;
    fn try_from(severity: pb::Severity) -> Result<Self> {
        match severity {
            pb::Severity::Low => Ok(Self::Low),
            pb::Severity::Medium => Ok(Self::Medium),
            pb::Severity::High => Ok(Self::High),
            pb::Severity::Critical => Ok(Self::Critical),
            pb::Severity::Unspecified => Err(broken_contract("an unspecified severity")),
        }
    }
}

impl TryFrom<pb::TaskKind> for TaskKind {
    type Error = async_graphql::Error;
    fn try_from(kind: pb::TaskKind) -> Result<Self> {
        match kind {
            pb::TaskKind::ScanReview => Ok(Self::ScanReview),
            pb::TaskKind::Remediation => Ok(Self::Remediation),
            pb::TaskKind::Unspecified => Err(broken_contract("an unspecified task kind")),
        }
    }
}

impl TryFrom<pb::TaskPriority> for TaskPriority {
    type Error = async_graphql::Error;
    fn try_from(priority: pb::TaskPriority) -> Result<Self> {
        match priority {
            pb::TaskPriority::Low => Ok(Self::Low),
            pb::TaskPriority::Medium => Ok(Self::Medium),
            pb::TaskPriority::High => Ok(Self::High),
            pb::TaskPriority::Urgent => Ok(Self::Urgent),
            pb::TaskPriority::Unspecified => Err(broken_contract("an unspecified task priority")),
        }
    }
}

impl TryFrom<pb::TaskStatus> for TaskStatus {
    type Error = async_graphql::Error;
    fn try_from(status: pb::TaskStatus) -> Result<Self> {
        match status {
            pb::TaskStatus::Open => Ok(Self::Open),
            pb::TaskStatus::Assigned => Ok(Self::Assigned),
            pb::TaskStatus::Completed => Ok(Self::Completed),
            pb::TaskStatus::Unspecified => Err(broken_contract("an unspecified task status")),
        }
    }
}

impl From<pb::Package> for Package {
    fn from(package: pb::Package) -> Self {
        Self {
            name: package.name,
            version: package.version,
        }
    }
}

impl From<PackageInput> for pb::Package {
    fn from(package: PackageInput) -> Self {
        Self {
            name: package.name,
            version: package.version,
        }
    }
}

impl From<pb::VulnerabilityCounts> for VulnerabilityCounts {
    fn from(counts: pb::VulnerabilityCounts) -> Self {
        Self {
            critical: counts.critical,
            high: counts.high,
            medium: counts.medium,
            low: counts.low,
        }
    }
}

impl TryFrom<pb::System> for System {
    type Error = async_graphql::Error;
    fn try_from(system: pb::System) -> Result<Self> {
        // Read the enums through prost's accessors first: they map unknown values to UNSPECIFIED.
        let environment = system.environment().try_into()?;
        Ok(Self {
            id: ID(system.id),
            version: system.version,
            name: system.name,
            owner: system.owner,
            environment,
            packages: system.packages.into_iter().map(Package::from).collect(),
            decommissioned: system.decommissioned,
            open_vulnerabilities: system
                .open_vulnerabilities
                .map(VulnerabilityCounts::from)
                .unwrap_or_default(),
            security_alerts: system
                .security_alerts
                .into_iter()
                .map(SecurityAlert::try_from)
                .collect::<Result<_>>()?,
            registered_at: required_time("system.registered_at", system.registered_at)?,
            updated_at: required_time("system.updated_at", system.updated_at)?,
        })
    }
}

impl TryFrom<pb::SecurityAlert> for SecurityAlert {
    type Error = async_graphql::Error;
    fn try_from(alert: pb::SecurityAlert) -> Result<Self> {
        Ok(Self {
            severity: alert.severity().try_into()?,
            scan_id: ID(alert.scan_id),
            cve: alert.cve,
            cvss: cvss(alert.cvss_tenths),
            package: alert.package,
            raised_at: required_time("security_alert.raised_at", alert.raised_at)?,
        })
    }
}

impl TryFrom<pb::Vulnerability> for Vulnerability {
    type Error = async_graphql::Error;
    fn try_from(vulnerability: pb::Vulnerability) -> Result<Self> {
        Ok(Self {
            severity: vulnerability.severity().try_into()?,
            scan_id: ID(vulnerability.scan_id),
            cve: vulnerability.cve,
            cvss: cvss(vulnerability.cvss_tenths),
            package: vulnerability.package,
            detected_at: required_time("vulnerability.detected_at", vulnerability.detected_at)?,
        })
    }
}

impl TryFrom<pb::Task> for Task {
    type Error = async_graphql::Error;
    fn try_from(task: pb::Task) -> Result<Self> {
        Ok(Self {
            kind: task.kind().try_into()?,
            status: task.status().try_into()?,
            priority: task.priority().try_into()?,
            id: ID(task.id),
            version: task.version,
            system_id: ID(task.system_id),
            scan_id: ID(task.scan_id),
            cve: non_empty(task.cve),
            title: task.title,
            due_at: required_time("task.due_at", task.due_at)?,
            assignee: non_empty(task.assignee),
            created_at: required_time("task.created_at", task.created_at)?,
            completed_at: optional_time(task.completed_at)?,
        })
    }
}

impl TryFrom<pb::ChainEvent> for ChainEvent {
    type Error = async_graphql::Error;
    fn try_from(event: pb::ChainEvent) -> Result<Self> {
        Ok(Self {
            occurred_at: required_time("chain_event.occurred_at", event.occurred_at)?,
            event_id: ID(event.event_id),
            event_type: event.event_type,
            aggregate_type: event.aggregate_type,
            aggregate_id: ID(event.aggregate_id),
            version: event.version,
            correlation_id: ID(event.correlation_id),
            causation_id: ID(event.causation_id),
            user_id: event.user_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn time(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn task() -> pb::Task {
        pb::Task {
            id: "t-1".into(),
            version: 1,
            kind: pb::TaskKind::ScanReview.into(),
            status: pb::TaskStatus::Open.into(),
            system_id: "s-1".into(),
            scan_id: "scan-1".into(),
            title: "Review".into(),
            priority: pb::TaskPriority::Medium.into(),
            due_at: time(1_700_000_000),
            created_at: time(1_699_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn empty_fields_of_a_task_become_null() {
        let converted = Task::try_from(task()).unwrap();
        assert_eq!(
            (converted.kind, converted.status, converted.priority),
            (TaskKind::ScanReview, TaskStatus::Open, TaskPriority::Medium)
        );
        assert_eq!(
            (converted.cve, converted.assignee, converted.completed_at),
            (None, None, None)
        );
    }

    #[test]
    fn answers_breaking_the_contract_are_internal_errors() {
        let unknown_kind = pb::Task { kind: 99, ..task() };
        let no_due_at = pb::Task {
            due_at: None,
            ..task()
        };
        let system = pb::System {
            environment: pb::Environment::Unspecified.into(),
            registered_at: time(1),
            updated_at: time(1),
            ..Default::default()
        };
        let errors = [
            Task::try_from(unknown_kind).unwrap_err(),
            Task::try_from(no_due_at).unwrap_err(),
            System::try_from(system).unwrap_err(),
        ];
        for error in errors {
            assert_eq!(
                error.extensions.expect("extensions").get("code"),
                Some(&async_graphql::Value::from("INTERNAL"))
            );
        }
    }

    #[test]
    fn scores_come_back_as_the_decimal_they_were() {
        assert_eq!(cvss(98), 9.8);
        assert_eq!(cvss(0), 0.0);
        assert_eq!(cvss(100), 10.0);
    }

    #[test]
    fn the_page_token_is_the_end_cursor() {
        let last = page_info(String::new());
        assert!(!last.has_next_page && last.end_cursor.is_none());
        let more = page_info("abc".into());
        assert!(more.has_next_page);
        assert_eq!(more.end_cursor.as_deref(), Some("abc"));
    }
}
