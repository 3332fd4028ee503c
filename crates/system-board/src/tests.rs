//! Given/when/then: given past commands, when a command arrives, then these events or this
//! error. Shared fixtures live here; each context's rules, the values, the reactions and the
//! stored shapes in a submodule.

mod reactions;
mod scan;
mod shapes;
mod system;
mod task;
mod values;

use super::*;
use chrono::{DateTime, Utc};
use error_code::ErrorCode;
use es_kernel::testing::*;
use std::fmt::Debug;
use uuid::Uuid;

/// The platform's own reactions (and scanners running as the platform).
const PLATFORM: &str = "platform:system";
/// olga owns the system; ray registered it for her.
const OWNER: &str = "olga";
const REGISTRANT: &str = "ray";
const ADMIN: &str = "mia:admin";
const SECURITY: &str = "sam:security";
const STRANGER: &str = "eve";

fn packages(list: &[(&str, &str)]) -> Packages {
    Packages::parse(
        "packages",
        list.iter()
            .map(|&(name, version)| RawPackage { name, version }),
        |i, f| format!("packages[{i}].{f}"),
    )
    .unwrap()
}

fn installed() -> Packages {
    packages(&[
        ("openssl", "3.0.1"),
        ("log4j-core", "2.14.1"),
        ("zlib", "1.2.11"),
    ])
}

fn patched() -> Packages {
    packages(&[
        ("openssl", "3.0.1"),
        ("log4j-core", "2.17.1"),
        ("zlib", "1.2.11"),
    ])
}

fn cve(raw: &str) -> CveId {
    CveId::parse("cve", raw).unwrap()
}

fn cvss(score: f64) -> Cvss {
    Cvss::parse("cvss", score).unwrap()
}

fn package(name: &str) -> PackageName {
    PackageName::parse("package", name).unwrap()
}

fn system_id() -> SystemId {
    SystemId::new(Uuid::from_u128(0x5157))
}

fn scan_id() -> ScanId {
    ScanId::new(Uuid::from_u128(0x5ca9))
}

fn other_scan_id() -> ScanId {
    ScanId::new(Uuid::from_u128(0x5caa))
}

fn log4shell() -> CveId {
    cve("CVE-2021-44228")
}

fn heartbleed() -> CveId {
    cve("CVE-2014-0160")
}

/// A refusal row: the case, what happened before, the command, the error, its code and field.
type Refusal<C> = (
    &'static str,
    Vec<Act<C>>,
    Act<C>,
    BoardError,
    ErrorCode,
    Option<&'static str>,
);

/// Each `when` is refused with exactly this error, which maps to this code and field.
fn assert_refusals<A>(rows: Vec<Refusal<A::Command>>)
where
    A: Aggregate<Error = BoardError>,
    A::Command: Clone + Debug,
    A::Event: Debug + PartialEq,
{
    for (case, given, when, error, code, field) in rows {
        assert_eq!(error.code(), code, "{case}: {error}");
        assert_eq!(error.field(), field, "{case}: {error}");
        assert_eq!(run::<A>(&given, when), Err(error), "{case}");
    }
}

/// Each `when` records exactly these events.
fn assert_facts<A>(rows: Vec<Case<A::Command, Vec<A::Event>>>)
where
    A: Aggregate,
    A::Command: Clone + Debug,
    A::Event: Debug + PartialEq,
    A::Error: PartialEq,
{
    for (case, given, when, expected) in rows {
        assert_eq!(run::<A>(&given, when), Ok(expected), "{case}");
    }
}

/// Folding the recorded history from scratch reaches the state deciding step by step did.
fn assert_replays<A>(given: &[Act<A::Command>])
where
    A: Aggregate + PartialEq,
    A::Command: Clone + Debug,
{
    let (state, history) = record::<A>(given);
    assert_eq!(replay::<A>(&history).unwrap(), state);
}

// System Management.

type SystemAct = Act<SystemCommand>;

fn register() -> SystemCommand {
    SystemCommand::Register {
        name: SystemName::parse("name", "Payroll API").unwrap(),
        owner: uid(OWNER),
        environment: Environment::Production,
        packages: installed(),
    }
}

fn update(packages: Packages) -> SystemCommand {
    SystemCommand::UpdatePackages { packages }
}

fn raise_alert(scan: ScanId, cve: CveId, score: f64, name: &str) -> SystemCommand {
    SystemCommand::RaiseSecurityAlert {
        scan_id: scan,
        cve,
        cvss: cvss(score),
        package: package(name),
    }
}

fn decommission() -> SystemCommand {
    SystemCommand::Decommission {
        reason: DecommissionReason::parse("reason", "replaced by Payroll v2").unwrap(),
    }
}

fn registered() -> Vec<SystemAct> {
    vec![by(REGISTRANT, register())]
}

fn alerted() -> Vec<SystemAct> {
    with(
        registered(),
        [by(
            PLATFORM,
            raise_alert(scan_id(), log4shell(), 10.0, "log4j-core"),
        )],
    )
}

fn decommissioned() -> Vec<SystemAct> {
    with(registered(), [by(OWNER, decommission())])
}

fn system_after(given: &[SystemAct]) -> System {
    record::<System>(given).0.expect("registered")
}

// Vulnerability Management.

type ScanAct = Act<ScanCommand>;

fn initiate() -> ScanCommand {
    ScanCommand::Initiate {
        system_id: system_id(),
        packages: installed(),
        trigger: ScanTrigger::Registered,
    }
}

fn record_finding(cve: CveId, score: f64, name: &str) -> ScanCommand {
    ScanCommand::RecordFinding {
        cve,
        cvss: cvss(score),
        package: package(name),
    }
}

fn initiated() -> Vec<ScanAct> {
    vec![by(PLATFORM, initiate())]
}

fn with_findings() -> Vec<ScanAct> {
    with(
        initiated(),
        [
            by(SECURITY, record_finding(log4shell(), 10.0, "log4j-core")),
            by(SECURITY, record_finding(heartbleed(), 7.5, "openssl")),
            by(ADMIN, record_finding(cve("CVE-2022-37434"), 9.8, "zlib")),
            by(PLATFORM, record_finding(cve("CVE-2018-25032"), 5.3, "zlib")),
        ],
    )
}

fn completed_scan() -> Vec<ScanAct> {
    with(with_findings(), [by(SECURITY, ScanCommand::Complete)])
}

fn detected(cve: CveId, score: f64, name: &str) -> ScanEvent {
    ScanEvent::VulnerabilityDetected {
        cve,
        cvss: cvss(score),
        severity: cvss(score).severity(),
        package: package(name),
        system_id: system_id(),
    }
}

// Task Management.

type TaskAct = Act<TaskCommand>;

fn remediation_title() -> TaskTitle {
    TaskTitle::parse(
        "title",
        "Remediate CVE-2021-44228 in log4j-core (CVSS 10.0)",
    )
    .unwrap()
}

fn create_remediation() -> TaskCommand {
    TaskCommand::Create {
        kind: TaskKind::Remediation,
        system_id: system_id(),
        scan_id: scan_id(),
        cve: Some(log4shell()),
        title: remediation_title(),
        priority: TaskPriority::High,
        due_at: hours_after_t0(72),
    }
}

fn assign(who: &str) -> TaskCommand {
    TaskCommand::Assign { assignee: uid(who) }
}

fn complete(note: Option<&str>) -> TaskCommand {
    TaskCommand::Complete {
        note: note.map(|note| TaskNote::parse("note", note).unwrap()),
    }
}

fn created() -> Vec<TaskAct> {
    vec![by(PLATFORM, create_remediation())]
}

/// Assigned to sam (security staff) by mia (admin).
fn assigned() -> Vec<TaskAct> {
    with(created(), [by(ADMIN, assign("sam"))])
}

fn completed_task() -> Vec<TaskAct> {
    with(
        assigned(),
        [by(SECURITY, complete(Some("patched to 2.17.1")))],
    )
}

fn task_after(given: &[TaskAct]) -> Task {
    record::<Task>(given).0.expect("created")
}

fn days_after_t0(days: i64) -> DateTime<Utc> {
    hours_after_t0(24 * days)
}
