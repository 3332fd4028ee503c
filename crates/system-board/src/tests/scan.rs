//! Vulnerability Management's rules.

use super::*;

#[test]
fn each_command_records_exactly_these_facts() {
    assert_facts::<VulnerabilityScan>(vec![
        (
            "the platform initiates a scan of the packages it names",
            vec![],
            by(PLATFORM, initiate()),
            vec![ScanEvent::Initiated {
                system_id: system_id(),
                packages: installed(),
                trigger: ScanTrigger::Registered,
            }],
        ),
        (
            "a scan of nothing is still a scan",
            vec![],
            by(
                PLATFORM,
                ScanCommand::Initiate {
                    system_id: system_id(),
                    packages: Packages::default(),
                    trigger: ScanTrigger::PackagesUpdated,
                },
            ),
            vec![ScanEvent::Initiated {
                system_id: system_id(),
                packages: Packages::default(),
                trigger: ScanTrigger::PackagesUpdated,
            }],
        ),
        (
            "security staff record a finding, for the scanned system",
            initiated(),
            by(SECURITY, record_finding(log4shell(), 10.0, "log4j-core")),
            vec![detected(log4shell(), 10.0, "log4j-core")],
        ),
        (
            "an administrator records a finding",
            initiated(),
            by(ADMIN, record_finding(heartbleed(), 7.5, "openssl")),
            vec![detected(heartbleed(), 7.5, "openssl")],
        ),
        (
            "a scanner running as the platform records a finding",
            initiated(),
            by(PLATFORM, record_finding(heartbleed(), 7.5, "openssl")),
            vec![detected(heartbleed(), 7.5, "openssl")],
        ),
        (
            "the same CVE in another package is another finding",
            with_findings(),
            by(SECURITY, record_finding(log4shell(), 10.0, "openssl")),
            vec![detected(log4shell(), 10.0, "openssl")],
        ),
        (
            "completing tallies the findings by severity",
            with_findings(),
            by(SECURITY, ScanCommand::Complete),
            vec![ScanEvent::Completed {
                findings: FindingCounts {
                    critical: 2,
                    high: 1,
                    medium: 1,
                    low: 0,
                },
            }],
        ),
        (
            "a scan without findings completes with zeros",
            initiated(),
            by(PLATFORM, ScanCommand::Complete),
            vec![ScanEvent::Completed {
                findings: FindingCounts::default(),
            }],
        ),
    ]);
}

#[test]
fn severity_follows_the_cvss_score_at_every_boundary() {
    let cases = [
        (10.0, Severity::Critical),
        (9.0, Severity::Critical),
        (8.9, Severity::High),
        (7.0, Severity::High),
        (6.9, Severity::Medium),
        (4.0, Severity::Medium),
        (3.9, Severity::Low),
        (0.1, Severity::Low),
        (0.0, Severity::Low),
    ];
    for (score, severity) in cases {
        assert_eq!(cvss(score).severity(), severity, "{score}");
        let events = run::<VulnerabilityScan>(
            &initiated(),
            by(SECURITY, record_finding(log4shell(), score, "log4j-core")),
        )
        .unwrap();
        assert_eq!(
            events,
            vec![ScanEvent::VulnerabilityDetected {
                cve: log4shell(),
                cvss: cvss(score),
                severity,
                package: package("log4j-core"),
                system_id: system_id(),
            }],
            "{score}"
        );
    }
}

#[test]
fn every_refusal_with_its_code_and_field() {
    use ErrorCode::*;
    let not_system = || BoardError::NotSystem {
        action: "initiate scans",
    };
    let not_staff = || BoardError::NotSecurityStaff {
        action: "work on vulnerability scans",
    };
    let finding = || record_finding(log4shell(), 10.0, "log4j-core");
    assert_refusals::<VulnerabilityScan>(vec![
        (
            "an administrator initiates a scan",
            vec![],
            by(ADMIN, initiate()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "security staff initiate a scan",
            vec![],
            by(SECURITY, initiate()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "the system's owner initiates a scan",
            vec![],
            by(OWNER, initiate()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "a scan id is new",
            initiated(),
            by(PLATFORM, initiate()),
            BoardError::AlreadyExists {
                aggregate: "vulnerability_scan",
            },
            Conflict,
            None,
        ),
        (
            "recording on an unknown scan",
            vec![],
            by(SECURITY, finding()),
            BoardError::NotFound {
                aggregate: "vulnerability_scan",
            },
            NotFound,
            None,
        ),
        (
            "completing an unknown scan",
            vec![],
            by(ADMIN, ScanCommand::Complete),
            BoardError::NotFound {
                aggregate: "vulnerability_scan",
            },
            NotFound,
            None,
        ),
        (
            "a stranger records a finding",
            initiated(),
            by(STRANGER, finding()),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "the system's owner records a finding",
            initiated(),
            by(OWNER, finding()),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "a holder of a role spelled otherwise",
            initiated(),
            by("sue:Security", finding()),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "permission before existence",
            vec![],
            by(STRANGER, finding()),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "a stranger completes the scan",
            initiated(),
            by(STRANGER, ScanCommand::Complete),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "a finding in a package the scan did not look at",
            initiated(),
            by(SECURITY, record_finding(log4shell(), 10.0, "log4j-api")),
            BoardError::PackageNotScanned {
                package: package("log4j-api"),
            },
            InvalidArgument,
            Some("package"),
        ),
        (
            "package names are compared exactly",
            initiated(),
            by(SECURITY, record_finding(log4shell(), 10.0, "Log4j-Core")),
            BoardError::PackageNotScanned {
                package: package("Log4j-Core"),
            },
            InvalidArgument,
            Some("package"),
        ),
        (
            "the same CVE in the same package twice",
            with_findings(),
            by(PLATFORM, finding()),
            BoardError::FindingAlreadyRecorded {
                cve: log4shell(),
                package: package("log4j-core"),
            },
            FailedPrecondition,
            None,
        ),
        (
            "the same finding with another score",
            with_findings(),
            by(SECURITY, record_finding(log4shell(), 9.0, "log4j-core")),
            BoardError::FindingAlreadyRecorded {
                cve: log4shell(),
                package: package("log4j-core"),
            },
            FailedPrecondition,
            None,
        ),
        (
            "a finding after completion",
            completed_scan(),
            by(SECURITY, record_finding(cve("CVE-2024-0001"), 3.1, "zlib")),
            BoardError::ScanCompleted {
                action: "record findings",
            },
            FailedPrecondition,
            None,
        ),
        (
            "completion is checked before the package",
            completed_scan(),
            by(SECURITY, record_finding(log4shell(), 10.0, "nope")),
            BoardError::ScanCompleted {
                action: "record findings",
            },
            FailedPrecondition,
            None,
        ),
        (
            "completing twice",
            completed_scan(),
            by(ADMIN, ScanCommand::Complete),
            BoardError::ScanCompleted { action: "complete" },
            FailedPrecondition,
            None,
        ),
    ]);
}

#[test]
fn the_state_keeps_the_scanned_packages_and_the_findings() {
    let (scan, history) = record::<VulnerabilityScan>(&completed_scan());
    let scan = scan.unwrap();
    assert_eq!(scan.system_id, system_id());
    assert_eq!(scan.packages, installed());
    assert_eq!(scan.trigger, ScanTrigger::Registered);
    assert_eq!(scan.findings.len(), 4);
    assert_eq!(
        scan.findings[0],
        Finding {
            cve: log4shell(),
            cvss: cvss(10.0),
            severity: Severity::Critical,
            package: package("log4j-core"),
        }
    );
    assert_eq!(scan.counts().total(), 4);
    assert!(scan.completed);
    assert_eq!(history.len(), 6);
    assert_replays::<VulnerabilityScan>(&completed_scan());
}

#[test]
fn command_names_are_the_contracts_names() {
    let names: Vec<_> = [
        initiate(),
        record_finding(log4shell(), 10.0, "log4j-core"),
        ScanCommand::Complete,
    ]
    .iter()
    .map(VulnerabilityScan::command_name)
    .collect();
    assert_eq!(names, ["InitiateScan", "RecordFinding", "CompleteScan"]);
}

#[test]
fn evolve_refuses_impossible_histories() {
    let (_, history) = record::<VulnerabilityScan>(&completed_scan());
    let initiated = history[0].clone();
    let found = history[1].clone();
    let completed = history[5].clone();
    let none_found = ScanEvent::Completed {
        findings: FindingCounts::default(),
    };
    let cases: Vec<(&str, Vec<ScanEvent>)> = vec![
        ("a finding before initiation", vec![found.clone()]),
        ("a completion before initiation", vec![none_found.clone()]),
        (
            "initiating twice",
            vec![initiated.clone(), initiated.clone()],
        ),
        (
            "the same finding twice",
            vec![initiated.clone(), found.clone(), found.clone()],
        ),
        (
            "a finding after completion",
            vec![initiated.clone(), none_found.clone(), found.clone()],
        ),
        (
            "completing twice",
            vec![initiated.clone(), none_found.clone(), none_found.clone()],
        ),
        (
            "a tally that does not match the findings",
            vec![initiated.clone(), found.clone(), none_found.clone()],
        ),
        (
            "a finding in an unscanned package",
            vec![initiated.clone(), detected(log4shell(), 10.0, "left-pad")],
        ),
        (
            "a finding for another system",
            vec![
                initiated.clone(),
                ScanEvent::VulnerabilityDetected {
                    cve: log4shell(),
                    cvss: cvss(10.0),
                    severity: Severity::Critical,
                    package: package("log4j-core"),
                    system_id: SystemId::new(Uuid::from_u128(1)),
                },
            ],
        ),
        (
            "a severity the score does not give",
            vec![
                initiated.clone(),
                ScanEvent::VulnerabilityDetected {
                    cve: log4shell(),
                    cvss: cvss(10.0),
                    severity: Severity::High,
                    package: package("log4j-core"),
                    system_id: system_id(),
                },
            ],
        ),
    ];
    for (case, history) in cases {
        assert!(replay::<VulnerabilityScan>(&history).is_err(), "{case}");
    }
    assert!(replay::<VulnerabilityScan>(&history).is_ok());
    assert_eq!(
        completed,
        ScanEvent::Completed {
            findings: FindingCounts {
                critical: 2,
                high: 1,
                medium: 1,
                low: 0
            }
        }
    );
}

#[test]
fn finding_counts_tally_every_severity() {
    let counts = FindingCounts::of([
        Severity::Low,
        Severity::Critical,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Low,
    ]);
    assert_eq!(
        counts,
        FindingCounts {
            critical: 1,
            high: 1,
            medium: 1,
            low: 3,
        }
    );
    assert_eq!(counts.total(), 6);
}
