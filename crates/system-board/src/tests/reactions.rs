//! The reactions: which commands each event asks for, with ids that a redelivery repeats.

use super::*;
use crate::reactions::purpose;
use es_kernel::derived_id;

const EVENT_ID: Uuid = Uuid::from_u128(0xe7e7);

/// `event` as the store recorded it for aggregate `aggregate_id`, at t0.
fn recorded<E>(aggregate_id: Uuid, event: E) -> RecordedEvent<E> {
    RecordedEvent {
        event_id: EVENT_ID,
        position: 42,
        aggregate_type: "any".into(),
        aggregate_id,
        version: 1,
        occurred_at: t0(),
        metadata: EventMetadata {
            tenant_id: "acme".into(),
            user_id: "ray".into(),
            correlation_id: Uuid::from_u128(0xc0),
            causation_id: Uuid::from_u128(0xca),
            traceparent: None,
        },
        event,
    }
}

fn system_event(event: SystemEvent) -> RecordedEvent<SystemEvent> {
    recorded(system_id().as_uuid(), event)
}

fn scan_event(event: ScanEvent) -> RecordedEvent<ScanEvent> {
    recorded(scan_id().as_uuid(), event)
}

fn registered_event() -> SystemEvent {
    record::<System>(&registered()).1.remove(0)
}

fn initiated_event() -> ScanEvent {
    record::<VulnerabilityScan>(&initiated()).1.remove(0)
}

#[test]
fn a_registered_system_gets_a_scan_of_its_packages() {
    assert_eq!(
        react_to_system(&system_event(registered_event())),
        vec![BoardReaction::Scan(Reaction {
            aggregate_id: derived_id(EVENT_ID, "vulnerability-scan"),
            command_id: derived_id(EVENT_ID, "initiate-scan"),
            command: ScanCommand::Initiate {
                system_id: system_id(),
                packages: installed(),
                trigger: ScanTrigger::Registered,
            },
        })]
    );
}

#[test]
fn updated_packages_get_a_scan_of_the_new_packages() {
    let updated = SystemEvent::PackagesUpdated {
        packages: patched(),
        updated_by: uid(OWNER),
    };
    assert_eq!(
        react_to_system(&system_event(updated)),
        vec![BoardReaction::Scan(Reaction {
            aggregate_id: derived_id(EVENT_ID, purpose::SCAN),
            command_id: derived_id(EVENT_ID, purpose::INITIATE_SCAN),
            command: ScanCommand::Initiate {
                system_id: system_id(),
                packages: patched(),
                trigger: ScanTrigger::PackagesUpdated,
            },
        })]
    );
}

#[test]
fn alerts_and_decommissioning_cause_nothing() {
    let (_, history) = record::<System>(&with(alerted(), [by(OWNER, decommission())]));
    let quiet: Vec<_> = history[1..].to_vec();
    assert_eq!(
        quiet
            .iter()
            .map(SystemEvent::event_type)
            .collect::<Vec<_>>(),
        ["SystemSecurityAlertRaised", "SystemDecommissioned"]
    );
    for event in quiet {
        assert_eq!(react_to_system(&system_event(event)), vec![]);
    }
}

#[test]
fn a_new_scan_gets_a_review_task_due_in_seven_days() {
    let reactions = react_to_scan(&scan_event(initiated_event()));
    let [BoardReaction::Task(review)] = reactions.as_slice() else {
        panic!("one task: {reactions:?}");
    };
    assert_eq!(
        review.aggregate_id,
        derived_id(EVENT_ID, "scan-review-task")
    );
    assert_eq!(
        review.command_id,
        derived_id(EVENT_ID, "create-scan-review-task")
    );
    let title = format!(
        "Review the vulnerability scan of system {} after registration (3 packages)",
        system_id()
    );
    assert_eq!(
        review.command,
        TaskCommand::Create {
            kind: TaskKind::ScanReview,
            system_id: system_id(),
            scan_id: scan_id(),
            cve: None,
            title: TaskTitle::parse("title", &title).unwrap(),
            priority: TaskPriority::Medium,
            due_at: days_after_t0(7),
        }
    );
}

#[test]
fn the_review_title_says_why_the_scan_ran_and_how_big_it_is() {
    let initiated = |packages, trigger| {
        scan_event(ScanEvent::Initiated {
            system_id: system_id(),
            packages,
            trigger,
        })
    };
    let title = |event: &RecordedEvent<ScanEvent>| match react_to_scan(event).as_slice() {
        [BoardReaction::Task(Reaction {
            command: TaskCommand::Create { title, .. },
            ..
        })] => title.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    let one = packages(&[("zlib", "1.3")]);
    assert!(title(&initiated(one, ScanTrigger::PackagesUpdated))
        .ends_with("after a package update (1 package)"));
    assert!(
        title(&initiated(Packages::default(), ScanTrigger::Registered))
            .ends_with("after registration (0 packages)")
    );
}

#[test]
fn a_critical_finding_gets_a_remediation_task_due_in_three_days_and_an_alert() {
    for score in [9.0, 9.8, 10.0] {
        let event = scan_event(detected(log4shell(), score, "log4j-core"));
        let title = format!(
            "Remediate CVE-2021-44228 in log4j-core (CVSS {})",
            cvss(score)
        );
        assert_eq!(
            react_to_scan(&event),
            vec![
                BoardReaction::Task(Reaction {
                    aggregate_id: derived_id(EVENT_ID, "remediation-task"),
                    command_id: derived_id(EVENT_ID, "create-remediation-task"),
                    command: TaskCommand::Create {
                        kind: TaskKind::Remediation,
                        system_id: system_id(),
                        scan_id: scan_id(),
                        cve: Some(log4shell()),
                        title: TaskTitle::parse("title", &title).unwrap(),
                        priority: TaskPriority::High,
                        due_at: hours_after_t0(72),
                    },
                }),
                BoardReaction::System(Reaction {
                    aggregate_id: system_id().as_uuid(),
                    command_id: derived_id(EVENT_ID, "raise-security-alert"),
                    command: SystemCommand::RaiseSecurityAlert {
                        scan_id: scan_id(),
                        cve: log4shell(),
                        cvss: cvss(score),
                        package: package("log4j-core"),
                    },
                }),
            ],
            "{score}"
        );
    }
}

#[test]
fn the_deadline_counts_from_when_the_event_occurred() {
    let mut event = scan_event(detected(log4shell(), 10.0, "log4j-core"));
    event.occurred_at = hours_after_t0(5) + chrono::TimeDelta::milliseconds(123);
    let due = react_to_scan(&event)
        .into_iter()
        .find_map(|reaction| match reaction {
            BoardReaction::Task(Reaction {
                command: TaskCommand::Create { due_at, .. },
                ..
            }) => Some(due_at),
            _ => None,
        });
    assert_eq!(
        due,
        Some(hours_after_t0(5 + 72) + chrono::TimeDelta::milliseconds(123))
    );

    event.occurred_at = DateTime::<Utc>::MAX_UTC - chrono::TimeDelta::days(1);
    assert!(
        react_to_scan(&event).len() == 2,
        "a deadline past the end of time saturates instead of panicking"
    );
}

#[test]
fn findings_below_critical_and_completions_cause_nothing() {
    for score in [8.9, 7.0, 6.9, 4.0, 3.9, 0.0] {
        let event = scan_event(detected(log4shell(), score, "log4j-core"));
        assert_eq!(react_to_scan(&event), vec![], "{score}");
    }
    let completed = ScanEvent::Completed {
        findings: FindingCounts {
            critical: 1,
            ..FindingCounts::default()
        },
    };
    assert_eq!(react_to_scan(&scan_event(completed)), vec![]);
}

#[test]
fn a_redelivered_event_asks_for_the_same_commands_and_another_event_for_other_ids() {
    let system_events = [registered_event()];
    let scan_events = [initiated_event(), detected(log4shell(), 10.0, "log4j-core")];
    let mut every_id = Vec::new();
    for event in system_events {
        let first = react_to_system(&system_event(event.clone()));
        assert_eq!(react_to_system(&system_event(event.clone())), first);
        let mut other = system_event(event);
        other.event_id = Uuid::from_u128(0xe7e8);
        assert_ne!(react_to_system(&other), first);
        every_id.extend(
            first
                .iter()
                .flat_map(|r| [r.aggregate_id(), r.command_id()]),
        );
    }
    for event in scan_events {
        let first = react_to_scan(&scan_event(event.clone()));
        assert_eq!(react_to_scan(&scan_event(event.clone())), first);
        let mut other = scan_event(event);
        other.event_id = Uuid::from_u128(0xe7e8);
        let second = react_to_scan(&other);
        for (a, b) in first.iter().zip(&second) {
            assert_ne!(a.command_id(), b.command_id());
        }
        for reaction in &first {
            every_id.push(reaction.command_id());
            // The alert goes to the existing system; new aggregates get derived ids.
            if reaction.aggregate_type() != "system" {
                every_id.push(reaction.aggregate_id());
            }
        }
    }
    let distinct: std::collections::BTreeSet<_> = every_id.iter().collect();
    assert_eq!(
        distinct.len(),
        every_id.len(),
        "one id per purpose: {every_id:?}"
    );
    assert_eq!(every_id.len(), 2 + 2 + 3);
}

#[test]
fn a_long_package_name_still_yields_a_valid_title() {
    let name = "p".repeat(PackageName::MAX_BYTES);
    let scan = with(
        vec![by(
            PLATFORM,
            ScanCommand::Initiate {
                system_id: system_id(),
                packages: packages(&[(name.as_str(), "1.0")]),
                trigger: ScanTrigger::Registered,
            },
        )],
        [by(SECURITY, record_finding(log4shell(), 9.1, &name))],
    );
    let (_, history) = record::<VulnerabilityScan>(&scan);
    let reactions = react_to_scan(&scan_event(history[1].clone()));
    let Some(BoardReaction::Task(Reaction {
        command: TaskCommand::Create { title, .. },
        ..
    })) = reactions.first()
    else {
        panic!("{reactions:?}");
    };
    assert_eq!(title.as_str().chars().count(), TaskTitle::MAX_CHARS);
    assert!(title
        .as_str()
        .starts_with("Remediate CVE-2021-44228 in ppp"));
    assert!(title.as_str().ends_with('…'));
}

#[test]
fn reactions_say_where_they_go() {
    let reactions = react_to_scan(&scan_event(detected(log4shell(), 10.0, "log4j-core")));
    let routes: Vec<_> = reactions
        .iter()
        .map(|r| (r.aggregate_type(), r.command_name()))
        .collect();
    assert_eq!(
        routes,
        [("task", "CreateTask"), ("system", "RaiseSecurityAlert")]
    );
    let scan = react_to_system(&system_event(registered_event()));
    assert_eq!(scan[0].aggregate_type(), VulnerabilityScan::TYPE);
    assert_eq!(scan[0].command_name(), "InitiateScan");
}

/// `event` of `aggregate` as the `id`th event delivered.
fn delivered<E>(id: u128, aggregate: Uuid, event: E) -> RecordedEvent<E> {
    RecordedEvent {
        event_id: Uuid::from_u128(id),
        ..recorded(aggregate, event)
    }
}

/// The reactions' commands, run as the platform through the aggregates, carry a registration
/// all the way to a remediation task and an alert; redelivering everything changes nothing.
#[test]
fn from_registration_to_remediation_task_and_alert() {
    let platform = Context {
        actor: actor(PLATFORM),
        now: t0(),
    };
    let security = Context {
        actor: actor(SECURITY),
        now: t0(),
    };

    // A system is registered.
    let system_uuid = system_id().as_uuid();
    let (mut system, registration) = record::<System>(&registered());
    let registration = delivered(1, system_uuid, registration[0].clone());

    // → its scan starts.
    let reactions = react_to_system(&registration);
    let [BoardReaction::Scan(start)] = reactions.as_slice() else {
        panic!("a scan: {reactions:?}");
    };
    let started = VulnerabilityScan::decide(None, &platform, start.command.clone()).unwrap();
    let mut scan = VulnerabilityScan::evolve(None, &started[0]).unwrap();
    let scan_uuid = start.aggregate_id;

    // → its review task is created.
    let reactions = react_to_scan(&delivered(2, scan_uuid, started[0].clone()));
    let [BoardReaction::Task(review)] = reactions.as_slice() else {
        panic!("a review task: {reactions:?}");
    };
    assert!(Task::decide(None, &platform, review.command.clone()).is_ok());

    // A critical finding is recorded.
    let found = VulnerabilityScan::decide(
        scan.as_ref(),
        &security,
        record_finding(log4shell(), 10.0, "log4j-core"),
    )
    .unwrap();
    scan = VulnerabilityScan::evolve(scan, &found[0]).unwrap();
    assert_eq!(scan.as_ref().unwrap().findings.len(), 1);

    // → a remediation task and an alert on the system.
    let detection = delivered(3, scan_uuid, found[0].clone());
    let reactions = react_to_scan(&detection);
    let [BoardReaction::Task(task), BoardReaction::System(alert)] = reactions.as_slice() else {
        panic!("a task and an alert: {reactions:?}");
    };
    assert_eq!(alert.aggregate_id, system_uuid);
    let created = Task::decide(None, &platform, task.command.clone()).unwrap();
    let task_state = Task::evolve(None, &created[0]).unwrap().unwrap();
    assert_eq!(task_state.scan_id, ScanId::new(scan_uuid));
    assert_eq!(task_state.due_at, days_after_t0(3));
    let raised = System::decide(system.as_ref(), &platform, alert.command.clone()).unwrap();
    system = System::evolve(system, &raised[0]).unwrap();
    assert_eq!(system.as_ref().unwrap().open_alerts.len(), 1);

    // Redelivered: the same ids (which the store deduplicates) and, past the store, the
    // system refuses the alert it already has.
    assert_eq!(react_to_scan(&detection), reactions);
    assert!(matches!(
        System::decide(system.as_ref(), &platform, alert.command.clone()),
        Err(BoardError::AlertAlreadyRaised { .. })
    ));
}
