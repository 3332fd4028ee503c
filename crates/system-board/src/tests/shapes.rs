//! The stored shapes: event payloads and snapshots are read back for years, so they are pinned.

use super::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every event of `histories` round-trips under its stored type, and together they cover
/// every stored type of `A`, which are unique.
fn assert_every_event_round_trips<A>(histories: &[Vec<Act<A::Command>>], types: &[&'static str])
where
    A: Aggregate,
    A::Command: Clone + Debug,
    A::Event: PartialEq + Debug,
{
    let mut seen = BTreeSet::new();
    for given in histories {
        for event in record::<A>(given).1 {
            let event_type = A::event_type(&event);
            stored(&event, event_type);
            seen.insert(event_type);
        }
    }
    let all: BTreeSet<_> = types.iter().copied().collect();
    assert_eq!(seen, all);
    assert_eq!(all.len(), types.len(), "the stored names are unique");
}

/// The state reads back from its snapshot unchanged.
fn assert_snapshot_round_trips<A>(given: &[Act<A::Command>])
where
    A: Aggregate + PartialEq,
    A::Command: Clone + Debug,
{
    let state = record::<A>(given).0.expect("exists");
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(serde_json::from_value::<A>(json).unwrap(), state);
}

#[test]
fn every_event_round_trips_under_its_stored_type() {
    let system_history = with(
        alerted(),
        [by(OWNER, update(patched())), by(ADMIN, decommission())],
    );
    assert_every_event_round_trips::<System>(
        std::slice::from_ref(&system_history),
        SystemEvent::TYPES,
    );
    assert_eq!(
        SystemEvent::TYPES,
        [
            "SystemRegistered",
            "PackagesUpdated",
            "SystemSecurityAlertRaised",
            "SystemDecommissioned"
        ]
    );
    assert_every_event_round_trips::<VulnerabilityScan>(&[completed_scan()], ScanEvent::TYPES);
    assert_eq!(
        ScanEvent::TYPES,
        [
            "VulnScanInitiated",
            "VulnerabilityDetected",
            "VulnScanCompleted"
        ]
    );
    let untitled = with(assigned(), [by(SECURITY, complete(None))]);
    assert_every_event_round_trips::<Task>(&[completed_task(), untitled], TaskEvent::TYPES);
    assert_eq!(
        TaskEvent::TYPES,
        ["TaskCreated", "TaskAssigned", "TaskCompleted"]
    );

    assert_snapshot_round_trips::<System>(&system_history);
    assert_snapshot_round_trips::<VulnerabilityScan>(&completed_scan());
    assert_snapshot_round_trips::<Task>(&completed_task());
}

#[test]
fn aggregate_types_are_pinned() {
    assert_eq!(System::TYPE, "system");
    assert_eq!(VulnerabilityScan::TYPE, "vulnerability_scan");
    assert_eq!(Task::TYPE, "task");
}

fn uuid_text(id: Uuid) -> String {
    id.to_string()
}

#[test]
fn system_payloads_are_pinned() {
    let installed_json = json!([
        {"name": "log4j-core", "version": "2.14.1"},
        {"name": "openssl", "version": "3.0.1"},
        {"name": "zlib", "version": "1.2.11"},
    ]);
    let cases: Vec<(SystemEvent, Value)> = vec![
        (
            record::<System>(&registered()).1.remove(0),
            json!({"type": "SystemRegistered", "data": {
                "name": "Payroll API",
                "owner": "olga",
                "environment": "PRODUCTION",
                "packages": installed_json,
                "registered_by": "ray",
            }}),
        ),
        (
            SystemEvent::PackagesUpdated {
                packages: Packages::default(),
                updated_by: uid("mia"),
            },
            json!({"type": "PackagesUpdated", "data": {"packages": [], "updated_by": "mia"}}),
        ),
        (
            record::<System>(&alerted()).1.remove(1),
            json!({"type": "SystemSecurityAlertRaised", "data": {
                "scan_id": uuid_text(scan_id().as_uuid()),
                "cve": "CVE-2021-44228",
                "cvss": 10.0,
                "severity": "CRITICAL",
                "package": "log4j-core",
            }}),
        ),
        (
            record::<System>(&decommissioned()).1.remove(1),
            json!({"type": "SystemDecommissioned", "data": {
                "reason": "replaced by Payroll v2",
                "decommissioned_by": "olga",
            }}),
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(stored(&event, event.event_type()), expected);
    }
}

#[test]
fn scan_payloads_are_pinned() {
    let cases: Vec<(ScanEvent, Value)> = vec![
        (
            ScanEvent::Initiated {
                system_id: system_id(),
                packages: packages(&[("zlib", "1.2.11")]),
                trigger: ScanTrigger::PackagesUpdated,
            },
            json!({"type": "VulnScanInitiated", "data": {
                "system_id": uuid_text(system_id().as_uuid()),
                "packages": [{"name": "zlib", "version": "1.2.11"}],
                "trigger": "PACKAGES_UPDATED",
            }}),
        ),
        (
            detected(heartbleed(), 7.5, "openssl"),
            json!({"type": "VulnerabilityDetected", "data": {
                "cve": "CVE-2014-0160",
                "cvss": 7.5,
                "severity": "HIGH",
                "package": "openssl",
                "system_id": uuid_text(system_id().as_uuid()),
            }}),
        ),
        (
            record::<VulnerabilityScan>(&completed_scan()).1.remove(5),
            json!({"type": "VulnScanCompleted", "data": {
                "findings": {"critical": 2, "high": 1, "medium": 1, "low": 0},
            }}),
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(stored(&event, event.event_type()), expected);
    }
}

#[test]
fn task_payloads_are_pinned() {
    let cases: Vec<(TaskEvent, Value)> = vec![
        (
            record::<Task>(&created()).1.remove(0),
            json!({"type": "TaskCreated", "data": {
                "kind": "REMEDIATION",
                "system_id": uuid_text(system_id().as_uuid()),
                "scan_id": uuid_text(scan_id().as_uuid()),
                "cve": "CVE-2021-44228",
                "title": "Remediate CVE-2021-44228 in log4j-core (CVSS 10.0)",
                "priority": "HIGH",
                "due_at": "2025-04-04T09:00:00Z",
            }}),
        ),
        (
            TaskEvent::Created {
                kind: TaskKind::ScanReview,
                system_id: system_id(),
                scan_id: scan_id(),
                cve: None,
                title: TaskTitle::parse("title", "Review").unwrap(),
                priority: TaskPriority::Medium,
                due_at: days_after_t0(7),
            },
            json!({"type": "TaskCreated", "data": {
                "kind": "SCAN_REVIEW",
                "system_id": uuid_text(system_id().as_uuid()),
                "scan_id": uuid_text(scan_id().as_uuid()),
                "title": "Review",
                "priority": "MEDIUM",
                "due_at": "2025-04-08T09:00:00Z",
            }}),
        ),
        (
            record::<Task>(&assigned()).1.remove(1),
            json!({"type": "TaskAssigned", "data": {"assignee": "sam", "assigned_by": "mia"}}),
        ),
        (
            record::<Task>(&completed_task()).1.remove(2),
            json!({"type": "TaskCompleted", "data": {
                "completed_by": "sam",
                "note": "patched to 2.17.1",
            }}),
        ),
        (
            TaskEvent::Completed {
                completed_by: uid("sam"),
                note: None,
            },
            json!({"type": "TaskCompleted", "data": {"completed_by": "sam"}}),
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(stored(&event, event.event_type()), expected);
    }
}

#[test]
fn a_stored_cvss_written_as_an_integer_or_with_noise_reads_as_its_tenth() {
    let read = |cvss: Value| {
        serde_json::from_value::<ScanEvent>(json!({"type": "VulnerabilityDetected", "data": {
            "cve": "CVE-2021-44228",
            "cvss": cvss,
            "severity": "CRITICAL",
            "package": "log4j-core",
            "system_id": uuid_text(system_id().as_uuid()),
        }}))
        .unwrap()
    };
    assert_eq!(read(json!(10)), detected(log4shell(), 10.0, "log4j-core"));
    assert_eq!(
        read(serde_json::from_str("9.800000000000001").unwrap()),
        detected(log4shell(), 9.8, "log4j-core")
    );
}
