//! System Management's rules.

use super::*;

fn alert_raised(scan: ScanId, cve: CveId, score: f64, name: &str) -> SystemEvent {
    SystemEvent::SecurityAlertRaised {
        scan_id: scan,
        cve,
        cvss: cvss(score),
        severity: cvss(score).severity(),
        package: package(name),
    }
}

#[test]
fn each_command_records_exactly_these_facts() {
    let registered_event = |by: &str| SystemEvent::Registered {
        name: SystemName::parse("name", "Payroll API").unwrap(),
        owner: uid(OWNER),
        environment: Environment::Production,
        packages: installed(),
        registered_by: uid(by),
    };
    let decommissioned_by = |who: &str| SystemEvent::Decommissioned {
        reason: DecommissionReason::parse("reason", "replaced by Payroll v2").unwrap(),
        decommissioned_by: uid(who),
    };
    assert_facts::<System>(vec![
        (
            "any user registers a system, for another owner too",
            vec![],
            by(REGISTRANT, register()),
            vec![registered_event(REGISTRANT)],
        ),
        (
            "the owner registers their own system",
            vec![],
            by(OWNER, register()),
            vec![registered_event(OWNER)],
        ),
        (
            "the owner updates the packages",
            registered(),
            by(OWNER, update(patched())),
            vec![SystemEvent::PackagesUpdated {
                packages: patched(),
                updated_by: uid(OWNER),
            }],
        ),
        (
            "an administrator updates the packages",
            registered(),
            by(ADMIN, update(patched())),
            vec![SystemEvent::PackagesUpdated {
                packages: patched(),
                updated_by: uid("mia"),
            }],
        ),
        (
            "a list may become empty",
            registered(),
            by(OWNER, update(Packages::default())),
            vec![SystemEvent::PackagesUpdated {
                packages: Packages::default(),
                updated_by: uid(OWNER),
            }],
        ),
        (
            "the platform raises an alert, with the severity of its score",
            registered(),
            by(
                PLATFORM,
                raise_alert(scan_id(), log4shell(), 10.0, "log4j-core"),
            ),
            vec![alert_raised(scan_id(), log4shell(), 10.0, "log4j-core")],
        ),
        (
            "an alert on a decommissioned system: the finding stays true of the past",
            decommissioned(),
            by(
                PLATFORM,
                raise_alert(scan_id(), log4shell(), 10.0, "log4j-core"),
            ),
            vec![alert_raised(scan_id(), log4shell(), 10.0, "log4j-core")],
        ),
        (
            "the same CVE in another package is another alert",
            alerted(),
            by(PLATFORM, raise_alert(scan_id(), log4shell(), 10.0, "zlib")),
            vec![alert_raised(scan_id(), log4shell(), 10.0, "zlib")],
        ),
        (
            "the same CVE and package from another scan is another alert",
            alerted(),
            by(
                PLATFORM,
                raise_alert(other_scan_id(), log4shell(), 10.0, "log4j-core"),
            ),
            vec![alert_raised(
                other_scan_id(),
                log4shell(),
                10.0,
                "log4j-core",
            )],
        ),
        (
            "another CVE in the same package from the same scan is another alert",
            alerted(),
            by(
                PLATFORM,
                raise_alert(scan_id(), cve("CVE-2021-45046"), 9.0, "log4j-core"),
            ),
            vec![alert_raised(
                scan_id(),
                cve("CVE-2021-45046"),
                9.0,
                "log4j-core",
            )],
        ),
        (
            "the owner decommissions",
            registered(),
            by(OWNER, decommission()),
            vec![decommissioned_by(OWNER)],
        ),
        (
            "an administrator decommissions",
            alerted(),
            by(ADMIN, decommission()),
            vec![decommissioned_by("mia")],
        ),
    ]);
}

#[test]
fn every_refusal_with_its_code_and_field() {
    use ErrorCode::*;
    let not_found = || BoardError::NotFound {
        aggregate: "system",
    };
    let not_owner = |action| BoardError::NotOwner { action };
    let not_system = || BoardError::NotSystem {
        action: "raise security alerts",
    };
    let alert = || raise_alert(scan_id(), log4shell(), 10.0, "log4j-core");
    let reordered = packages(&[
        ("zlib", "1.2.11"),
        ("log4j-core", "2.14.1"),
        ("openssl", "3.0.1"),
    ]);
    assert_refusals::<System>(vec![
        (
            "registering twice",
            registered(),
            by(OWNER, register()),
            BoardError::AlreadyExists {
                aggregate: "system",
            },
            Conflict,
            None,
        ),
        (
            "registering a decommissioned system again",
            decommissioned(),
            by(OWNER, register()),
            BoardError::AlreadyExists {
                aggregate: "system",
            },
            Conflict,
            None,
        ),
        (
            "updating an unknown system",
            vec![],
            by(OWNER, update(patched())),
            not_found(),
            NotFound,
            None,
        ),
        (
            "decommissioning an unknown system",
            vec![],
            by(ADMIN, decommission()),
            not_found(),
            NotFound,
            None,
        ),
        (
            "alerting on an unknown system",
            vec![],
            by(PLATFORM, alert()),
            not_found(),
            NotFound,
            None,
        ),
        (
            "a stranger updates the packages",
            registered(),
            by(STRANGER, update(patched())),
            not_owner("update packages"),
            PermissionDenied,
            None,
        ),
        (
            "the registrant is not the owner",
            registered(),
            by(REGISTRANT, update(patched())),
            not_owner("update packages"),
            PermissionDenied,
            None,
        ),
        (
            "security staff are not administrators",
            registered(),
            by(SECURITY, update(patched())),
            not_owner("update packages"),
            PermissionDenied,
            None,
        ),
        (
            "the platform does not update packages",
            registered(),
            by(PLATFORM, update(patched())),
            not_owner("update packages"),
            PermissionDenied,
            None,
        ),
        (
            "permission before state: a stranger on a decommissioned system",
            decommissioned(),
            by(STRANGER, update(patched())),
            not_owner("update packages"),
            PermissionDenied,
            None,
        ),
        (
            "updating a decommissioned system",
            decommissioned(),
            by(OWNER, update(patched())),
            BoardError::Decommissioned {
                action: "update packages",
            },
            FailedPrecondition,
            None,
        ),
        (
            "the same packages",
            registered(),
            by(OWNER, update(installed())),
            BoardError::PackagesUnchanged,
            InvalidArgument,
            Some("packages"),
        ),
        (
            "the same packages in another order",
            registered(),
            by(ADMIN, update(reordered)),
            BoardError::PackagesUnchanged,
            InvalidArgument,
            Some("packages"),
        ),
        (
            "an administrator raises an alert",
            registered(),
            by(ADMIN, alert()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "the owner raises an alert",
            registered(),
            by(OWNER, alert()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "security staff raise an alert",
            registered(),
            by(SECURITY, alert()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "permission before existence: a user alerts on an unknown system",
            vec![],
            by(ADMIN, alert()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "the same alert twice",
            alerted(),
            by(PLATFORM, alert()),
            BoardError::AlertAlreadyRaised {
                cve: log4shell(),
                package: package("log4j-core"),
            },
            FailedPrecondition,
            None,
        ),
        (
            "the same alert with another score is still the same alert",
            alerted(),
            by(
                PLATFORM,
                raise_alert(scan_id(), log4shell(), 9.0, "log4j-core"),
            ),
            BoardError::AlertAlreadyRaised {
                cve: log4shell(),
                package: package("log4j-core"),
            },
            FailedPrecondition,
            None,
        ),
        (
            "a stranger decommissions",
            registered(),
            by(STRANGER, decommission()),
            not_owner("decommission"),
            PermissionDenied,
            None,
        ),
        (
            "decommissioning twice",
            decommissioned(),
            by(ADMIN, decommission()),
            BoardError::Decommissioned {
                action: "decommission",
            },
            FailedPrecondition,
            None,
        ),
    ]);
}

#[test]
fn the_state_shows_the_packages_the_open_alerts_and_whether_decommissioned() {
    let fresh = system_after(&registered());
    assert_eq!(fresh.owner, uid(OWNER));
    assert_eq!(fresh.environment, Environment::Production);
    assert_eq!(fresh.packages, installed());
    assert!(fresh.open_alerts.is_empty());
    assert!(!fresh.decommissioned);

    let history = with(
        alerted(),
        [
            by(OWNER, update(patched())),
            by(
                PLATFORM,
                raise_alert(scan_id(), heartbleed(), 7.5, "openssl"),
            ),
            by(ADMIN, decommission()),
        ],
    );
    let system = system_after(&history);
    assert_eq!(system.packages, patched());
    assert_eq!(
        system.open_alerts,
        vec![
            SecurityAlert {
                scan_id: scan_id(),
                cve: log4shell(),
                cvss: cvss(10.0),
                severity: Severity::Critical,
                package: package("log4j-core"),
            },
            SecurityAlert {
                scan_id: scan_id(),
                cve: heartbleed(),
                cvss: cvss(7.5),
                severity: Severity::High,
                package: package("openssl"),
            },
        ]
    );
    assert!(system.decommissioned);
    assert_replays::<System>(&history);
}

#[test]
fn command_names_are_the_contracts_names() {
    let names: Vec<_> = [
        register(),
        update(patched()),
        alert_command(),
        decommission(),
    ]
    .iter()
    .map(System::command_name)
    .collect();
    assert_eq!(
        names,
        [
            "RegisterSystem",
            "UpdatePackages",
            "RaiseSecurityAlert",
            "DecommissionSystem"
        ]
    );
}

fn alert_command() -> SystemCommand {
    raise_alert(scan_id(), log4shell(), 10.0, "log4j-core")
}

#[test]
fn evolve_refuses_impossible_histories() {
    let (_, registered_events) = record::<System>(&registered());
    let registration = registered_events[0].clone();
    let updated = SystemEvent::PackagesUpdated {
        packages: patched(),
        updated_by: uid(OWNER),
    };
    let decommissioned_event = record::<System>(&decommissioned()).1[1].clone();
    let alert = alert_raised(scan_id(), log4shell(), 10.0, "log4j-core");
    let wrong_severity = SystemEvent::SecurityAlertRaised {
        scan_id: scan_id(),
        cve: log4shell(),
        cvss: cvss(10.0),
        severity: Severity::Low,
        package: package("log4j-core"),
    };
    let cases: Vec<(&str, Vec<SystemEvent>)> = vec![
        ("an update before registration", vec![updated.clone()]),
        ("an alert before registration", vec![alert.clone()]),
        (
            "a decommissioning before registration",
            vec![decommissioned_event.clone()],
        ),
        (
            "registering twice",
            vec![registration.clone(), registration.clone()],
        ),
        (
            "an update after decommissioning",
            vec![
                registration.clone(),
                decommissioned_event.clone(),
                updated.clone(),
            ],
        ),
        (
            "decommissioning twice",
            vec![
                registration.clone(),
                decommissioned_event.clone(),
                decommissioned_event.clone(),
            ],
        ),
        (
            "the same alert twice",
            vec![registration.clone(), alert.clone(), alert.clone()],
        ),
        (
            "a severity the score does not give",
            vec![registration.clone(), wrong_severity],
        ),
    ];
    for (case, history) in cases {
        assert!(replay::<System>(&history).is_err(), "{case}");
    }
    // What decide allows, evolve accepts.
    assert!(replay::<System>(&[
        registration,
        updated,
        alert,
        decommissioned_event,
        alert_raised(other_scan_id(), log4shell(), 10.0, "log4j-core"),
    ])
    .is_ok());
}
