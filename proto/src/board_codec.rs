//! The System Board's events ↔ protobuf payloads (`ringiflow.systemboard.v1`), one
//! [`EventCodec`] per context: [`SystemCodec`] (`SystemEvent`), [`ScanCodec`]
//! (`VulnerabilityScanEvent`) and [`TaskCodec`] (`TaskEvent`). Decoding parses into the domain's
//! newtypes, so a message that would break a domain invariant is refused here, before it
//! reaches a projection or a reaction. Errors name the field within the case's message, e.g.
//! `cve` or `packages[1].version`; a message without a case names `event`.

use crate::board_convert::{self as convert, packages, packages_to_proto};
use crate::systemboard::v1 as pb;
use crate::workflow_codec::{date_time, timestamp};
use es_kernel::{EventCodec, WireError};
use prost::Message;
use system_board::{
    CveId, Cvss, DecommissionReason, PackageName, ScanEvent, ScanId, Severity, SystemEvent,
    SystemId, SystemName, TaskEvent, TaskNote, TaskTitle, UserId, ValidationError,
};

/// The System Management context's wire format (topic `ringiflow.systems.events`).
pub struct SystemCodec;

/// The Vulnerability Management context's wire format (topic
/// `ringiflow.vulnerabilities.events`).
pub struct ScanCodec;

/// The Task Management context's wire format (topic `ringiflow.tasks.events`).
pub struct TaskCodec;

const CONTENT_TYPE: &str = "application/protobuf";

/// The payload message, or `Malformed` when the bytes are not one.
fn parse<M: Message + Default>(schema: &'static str, payload: &[u8]) -> Result<M, WireError> {
    M::decode(payload).map_err(|error| WireError::Malformed {
        schema,
        problem: error.to_string(),
    })
}

fn no_case() -> ValidationError {
    ValidationError::new("event", "no event case is set")
}

impl EventCodec for SystemCodec {
    type Event = SystemEvent;
    const DATA_SCHEMA: &'static str = "ringiflow.systemboard.v1.SystemEvent";
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;
    const TYPES: &'static [&'static str] = SystemEvent::TYPES;

    fn event_type(event: &SystemEvent) -> &'static str {
        event.event_type()
    }

    fn encode(event: &SystemEvent) -> Vec<u8> {
        system_to_proto(event).encode_to_vec()
    }

    fn decode(payload: &[u8]) -> Result<SystemEvent, WireError> {
        Ok(system_from_proto(parse(Self::DATA_SCHEMA, payload)?)?)
    }
}

impl EventCodec for ScanCodec {
    type Event = ScanEvent;
    const DATA_SCHEMA: &'static str = "ringiflow.systemboard.v1.VulnerabilityScanEvent";
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;
    const TYPES: &'static [&'static str] = ScanEvent::TYPES;

    fn event_type(event: &ScanEvent) -> &'static str {
        event.event_type()
    }

    fn encode(event: &ScanEvent) -> Vec<u8> {
        scan_to_proto(event).encode_to_vec()
    }

    fn decode(payload: &[u8]) -> Result<ScanEvent, WireError> {
        Ok(scan_from_proto(parse(Self::DATA_SCHEMA, payload)?)?)
    }
}

impl EventCodec for TaskCodec {
    type Event = TaskEvent;
    const DATA_SCHEMA: &'static str = "ringiflow.systemboard.v1.TaskEvent";
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;
    const TYPES: &'static [&'static str] = TaskEvent::TYPES;

    fn event_type(event: &TaskEvent) -> &'static str {
        event.event_type()
    }

    fn encode(event: &TaskEvent) -> Vec<u8> {
        task_to_proto(event).encode_to_vec()
    }

    fn decode(payload: &[u8]) -> Result<TaskEvent, WireError> {
        Ok(task_from_proto(parse(Self::DATA_SCHEMA, payload)?)?)
    }
}

/// A score with the severity the message claims for it, which must be the one it gives: a
/// payload that disagrees would make projections count a finding under another severity than
/// the domain's replay of the same history.
fn scored(cvss_tenths: u32, severity: i32) -> Result<(Cvss, Severity), ValidationError> {
    let cvss = Cvss::from_tenths("cvss_tenths", cvss_tenths)?;
    let severity = convert::severity("severity", severity)?;
    if severity != cvss.severity() {
        return Err(ValidationError::new(
            "severity",
            format!("must be {} for a CVSS score of {cvss}", cvss.severity()),
        ));
    }
    Ok((cvss, severity))
}

fn system_to_proto(event: &SystemEvent) -> pb::SystemEvent {
    use pb::system_event::Event as Pb;
    let event = match event {
        SystemEvent::Registered {
            name,
            owner,
            environment,
            packages,
            registered_by,
        } => Pb::Registered(pb::SystemRegistered {
            name: name.to_string(),
            owner: owner.to_string(),
            environment: pb::Environment::from(*environment) as i32,
            packages: packages_to_proto(packages),
            registered_by: registered_by.to_string(),
        }),
        SystemEvent::PackagesUpdated {
            packages,
            updated_by,
        } => Pb::PackagesUpdated(pb::PackagesUpdated {
            packages: packages_to_proto(packages),
            updated_by: updated_by.to_string(),
        }),
        SystemEvent::SecurityAlertRaised {
            scan_id,
            cve,
            cvss,
            severity,
            package,
        } => Pb::SecurityAlertRaised(pb::SystemSecurityAlertRaised {
            scan_id: scan_id.to_string(),
            cve: cve.to_string(),
            cvss_tenths: u32::from(cvss.tenths()),
            severity: pb::Severity::from(*severity) as i32,
            package: package.to_string(),
        }),
        SystemEvent::Decommissioned {
            reason,
            decommissioned_by,
        } => Pb::Decommissioned(pb::SystemDecommissioned {
            reason: reason.to_string(),
            decommissioned_by: decommissioned_by.to_string(),
        }),
    };
    pb::SystemEvent { event: Some(event) }
}

fn system_from_proto(event: pb::SystemEvent) -> Result<SystemEvent, ValidationError> {
    use pb::system_event::Event as Pb;
    Ok(match event.event.ok_or_else(no_case)? {
        Pb::Registered(e) => SystemEvent::Registered {
            name: SystemName::parse("name", &e.name)?,
            owner: UserId::parse("owner", &e.owner)?,
            environment: convert::environment("environment", e.environment)?,
            packages: packages("packages", &e.packages)?,
            registered_by: UserId::parse("registered_by", &e.registered_by)?,
        },
        Pb::PackagesUpdated(e) => SystemEvent::PackagesUpdated {
            packages: packages("packages", &e.packages)?,
            updated_by: UserId::parse("updated_by", &e.updated_by)?,
        },
        Pb::SecurityAlertRaised(e) => {
            let scan_id = ScanId::parse("scan_id", &e.scan_id)?;
            let cve = CveId::parse("cve", &e.cve)?;
            let (cvss, severity) = scored(e.cvss_tenths, e.severity)?;
            SystemEvent::SecurityAlertRaised {
                scan_id,
                cve,
                cvss,
                severity,
                package: PackageName::parse("package", &e.package)?,
            }
        }
        Pb::Decommissioned(e) => SystemEvent::Decommissioned {
            reason: DecommissionReason::parse("reason", &e.reason)?,
            decommissioned_by: UserId::parse("decommissioned_by", &e.decommissioned_by)?,
        },
    })
}

fn scan_to_proto(event: &ScanEvent) -> pb::VulnerabilityScanEvent {
    use pb::vulnerability_scan_event::Event as Pb;
    let event = match event {
        ScanEvent::Initiated {
            system_id,
            packages,
            trigger,
        } => Pb::Initiated(pb::VulnScanInitiated {
            system_id: system_id.to_string(),
            packages: packages_to_proto(packages),
            trigger: pb::ScanTrigger::from(*trigger) as i32,
        }),
        ScanEvent::VulnerabilityDetected {
            cve,
            cvss,
            severity,
            package,
            system_id,
        } => Pb::VulnerabilityDetected(pb::VulnerabilityDetected {
            cve: cve.to_string(),
            cvss_tenths: u32::from(cvss.tenths()),
            severity: pb::Severity::from(*severity) as i32,
            package: package.to_string(),
            system_id: system_id.to_string(),
        }),
        ScanEvent::Completed { findings } => Pb::Completed(pb::VulnScanCompleted {
            findings: Some((*findings).into()),
        }),
    };
    pb::VulnerabilityScanEvent { event: Some(event) }
}

fn scan_from_proto(event: pb::VulnerabilityScanEvent) -> Result<ScanEvent, ValidationError> {
    use pb::vulnerability_scan_event::Event as Pb;
    Ok(match event.event.ok_or_else(no_case)? {
        Pb::Initiated(e) => ScanEvent::Initiated {
            system_id: SystemId::parse("system_id", &e.system_id)?,
            packages: packages("packages", &e.packages)?,
            trigger: convert::scan_trigger("trigger", e.trigger)?,
        },
        Pb::VulnerabilityDetected(e) => {
            let cve = CveId::parse("cve", &e.cve)?;
            let (cvss, severity) = scored(e.cvss_tenths, e.severity)?;
            ScanEvent::VulnerabilityDetected {
                cve,
                cvss,
                severity,
                package: PackageName::parse("package", &e.package)?,
                system_id: SystemId::parse("system_id", &e.system_id)?,
            }
        }
        Pb::Completed(e) => ScanEvent::Completed {
            findings: e
                .findings
                .ok_or_else(|| ValidationError::new("findings", "is required"))?
                .into(),
        },
    })
}

fn task_to_proto(event: &TaskEvent) -> pb::TaskEvent {
    use pb::task_event::Event as Pb;
    let event = match event {
        TaskEvent::Created {
            kind,
            system_id,
            scan_id,
            cve,
            title,
            priority,
            due_at,
        } => Pb::Created(pb::TaskCreated {
            kind: pb::TaskKind::from(*kind) as i32,
            system_id: system_id.to_string(),
            scan_id: scan_id.to_string(),
            cve: cve.as_ref().map(CveId::to_string),
            title: title.to_string(),
            priority: pb::TaskPriority::from(*priority) as i32,
            due_at: Some(timestamp(*due_at)),
        }),
        TaskEvent::Assigned {
            assignee,
            assigned_by,
        } => Pb::Assigned(pb::TaskAssigned {
            assignee: assignee.to_string(),
            assigned_by: assigned_by.to_string(),
        }),
        TaskEvent::Completed { completed_by, note } => Pb::Completed(pb::TaskCompleted {
            completed_by: completed_by.to_string(),
            note: note.as_ref().map(TaskNote::to_string),
        }),
    };
    pb::TaskEvent { event: Some(event) }
}

fn task_from_proto(event: pb::TaskEvent) -> Result<TaskEvent, ValidationError> {
    use pb::task_event::Event as Pb;
    Ok(match event.event.ok_or_else(no_case)? {
        Pb::Created(e) => TaskEvent::Created {
            kind: convert::task_kind("kind", e.kind)?,
            system_id: SystemId::parse("system_id", &e.system_id)?,
            scan_id: ScanId::parse("scan_id", &e.scan_id)?,
            cve: e
                .cve
                .as_deref()
                .map(|raw| CveId::parse("cve", raw))
                .transpose()?,
            title: TaskTitle::parse("title", &e.title)?,
            priority: convert::task_priority("priority", e.priority)?,
            due_at: date_time(
                "due_at",
                e.due_at
                    .ok_or_else(|| ValidationError::new("due_at", "is required"))?,
            )?,
        },
        Pb::Assigned(e) => TaskEvent::Assigned {
            assignee: UserId::parse("assignee", &e.assignee)?,
            assigned_by: UserId::parse("assigned_by", &e.assigned_by)?,
        },
        // A blank note is never written (the domain records it as no note): set, it is a note.
        Pb::Completed(e) => TaskEvent::Completed {
            completed_by: UserId::parse("completed_by", &e.completed_by)?,
            note: e
                .note
                .as_deref()
                .map(|raw| TaskNote::parse("note", raw))
                .transpose()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeSet;
    use system_board::{
        Environment, FindingCounts, Packages, RawPackage, ScanTrigger, TaskKind, TaskPriority,
    };

    fn user(id: &str) -> UserId {
        UserId::parse("test", id).unwrap()
    }

    fn cve(raw: &str) -> CveId {
        CveId::parse("test", raw).unwrap()
    }

    fn cvss(tenths: u32) -> Cvss {
        Cvss::from_tenths("test", tenths).unwrap()
    }

    fn package(name: &str) -> PackageName {
        PackageName::parse("test", name).unwrap()
    }

    fn list(packages: &[(&str, &str)]) -> Packages {
        Packages::parse(
            "packages",
            packages
                .iter()
                .map(|&(name, version)| RawPackage { name, version }),
            |i, part| format!("packages[{i}].{part}"),
        )
        .unwrap()
    }

    const SYSTEM: &str = "0195f2a4-6a3e-7c1b-9d2e-4f5a6b7c8d9e";
    const SCAN: &str = "0195f2a4-6a3e-7c1b-9d2e-4f5a6b7c8d9f";

    fn system_id() -> SystemId {
        SystemId::parse("test", SYSTEM).unwrap()
    }

    fn scan_id() -> ScanId {
        ScanId::parse("test", SCAN).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        // Nanoseconds, to show the full precision of a Timestamp survives.
        DateTime::from_timestamp(seconds, 123_456_789).unwrap()
    }

    /// At least one value of every variant, with each optional part both present and absent,
    /// every label value and the edges of the CVSS range.
    fn system_samples() -> Vec<SystemEvent> {
        let mut samples: Vec<_> = Environment::ALL
            .iter()
            .map(|&environment| SystemEvent::Registered {
                name: SystemName::parse("name", "Payroll API（給与）").unwrap(),
                owner: user("olga"),
                environment,
                packages: list(&[("openssl", "3.0.7"), ("log4j-core", "2.14.1")]),
                registered_by: user("mia"),
            })
            .collect();
        samples.extend([
            SystemEvent::PackagesUpdated {
                packages: list(&[("@babel/core", "7.24.0"), ("log4j-core", "2.17.1")]),
                updated_by: user("olga"),
            },
            SystemEvent::PackagesUpdated {
                packages: Packages::default(),
                updated_by: user("admin"),
            },
        ]);
        samples.extend(
            [100, 98, 70, 69, 0].map(|tenths| SystemEvent::SecurityAlertRaised {
                scan_id: scan_id(),
                cve: cve("CVE-2021-44228"),
                cvss: cvss(tenths),
                severity: cvss(tenths).severity(),
                package: package("log4j-core"),
            }),
        );
        samples.push(SystemEvent::Decommissioned {
            reason: DecommissionReason::parse("reason", "replaced by Payroll v2").unwrap(),
            decommissioned_by: user("mia"),
        });
        samples
    }

    fn scan_samples() -> Vec<ScanEvent> {
        let mut samples: Vec<_> = ScanTrigger::ALL
            .iter()
            .map(|&trigger| ScanEvent::Initiated {
                system_id: system_id(),
                packages: list(&[("log4j-core", "2.14.1"), ("openssl", "3.0.7")]),
                trigger,
            })
            .collect();
        samples.push(ScanEvent::Initiated {
            system_id: system_id(),
            packages: Packages::default(),
            trigger: ScanTrigger::Registered,
        });
        samples.extend(
            [100, 89, 40, 39].map(|tenths| ScanEvent::VulnerabilityDetected {
                cve: cve("CVE-2024-1234567"),
                cvss: cvss(tenths),
                severity: cvss(tenths).severity(),
                package: package("openssl"),
                system_id: system_id(),
            }),
        );
        samples.extend([
            ScanEvent::Completed {
                findings: FindingCounts {
                    critical: 1,
                    high: 0,
                    medium: 2,
                    low: 7,
                },
            },
            ScanEvent::Completed {
                findings: FindingCounts::default(),
            },
        ]);
        samples
    }

    fn task_samples() -> Vec<TaskEvent> {
        let created = |kind, cve, priority, due_at| TaskEvent::Created {
            kind,
            system_id: system_id(),
            scan_id: scan_id(),
            cve,
            title: TaskTitle::parse("title", "Remediate CVE-2021-44228 in log4j-core").unwrap(),
            priority,
            due_at,
        };
        let mut samples = vec![
            created(
                TaskKind::Remediation,
                Some(cve("CVE-2021-44228")),
                TaskPriority::High,
                at(1_775_000_000),
            ),
            created(TaskKind::ScanReview, None, TaskPriority::Medium, at(-1)),
        ];
        samples.extend(
            TaskPriority::ALL
                .iter()
                .map(|&priority| created(TaskKind::ScanReview, None, priority, at(1_775_000_000))),
        );
        samples.extend([
            TaskEvent::Assigned {
                assignee: user("sam"),
                assigned_by: user("mia"),
            },
            TaskEvent::Completed {
                completed_by: user("sam"),
                note: Some(TaskNote::parse("note", "patched to 2.17.1").unwrap()),
            },
            TaskEvent::Completed {
                completed_by: user("sam"),
                note: None,
            },
        ]);
        samples
    }

    fn covered<E>(samples: &[E], event_type: fn(&E) -> &'static str) -> BTreeSet<&'static str> {
        samples.iter().map(event_type).collect()
    }

    fn set(types: &[&'static str]) -> BTreeSet<&'static str> {
        types.iter().copied().collect()
    }

    /// Through the codec's bytes, as a consumer would read them.
    fn round_trips<C: EventCodec>(samples: Vec<C::Event>)
    where
        C::Event: PartialEq + std::fmt::Debug,
    {
        for event in samples {
            let bytes = C::encode(&event);
            assert_eq!(C::decode(&bytes).unwrap(), event);
        }
    }

    #[test]
    fn every_variant_of_every_context_round_trips_under_its_event_type() {
        let systems = system_samples();
        assert_eq!(
            covered(&systems, SystemEvent::event_type),
            set(SystemCodec::TYPES)
        );
        round_trips::<SystemCodec>(systems);

        let scans = scan_samples();
        assert_eq!(
            covered(&scans, ScanEvent::event_type),
            set(ScanCodec::TYPES)
        );
        round_trips::<ScanCodec>(scans);

        let tasks = task_samples();
        assert_eq!(
            covered(&tasks, TaskEvent::event_type),
            set(TaskCodec::TYPES)
        );
        round_trips::<TaskCodec>(tasks);
    }

    /// `ce_type` is the name of the case's message: each payload's oneof `event` must hold
    /// exactly one case per stored event type, whose message is named like it, and
    /// `DATA_SCHEMA` must name the payload message.
    #[test]
    fn each_payload_has_one_case_per_event_type_named_like_it() {
        let descriptors =
            prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let cases = |schema: &str| -> BTreeSet<String> {
            let (package, message) = schema.rsplit_once('.').unwrap();
            let file = descriptors
                .file
                .iter()
                .find(|file| {
                    file.package() == package
                        && file.message_type.iter().any(|m| m.name() == message)
                })
                .unwrap_or_else(|| panic!("no message {schema}"));
            let message = file
                .message_type
                .iter()
                .find(|m| m.name() == message)
                .unwrap();
            assert_eq!(message.oneof_decl.len(), 1);
            assert_eq!(message.oneof_decl[0].name(), "event");
            message
                .field
                .iter()
                .map(|field| {
                    assert_eq!(
                        field.oneof_index,
                        Some(0),
                        "{} is outside the oneof",
                        field.name()
                    );
                    let type_name = field.type_name();
                    type_name
                        .strip_prefix(&format!(".{package}."))
                        .unwrap_or_else(|| panic!("{type_name} is not of {package}"))
                        .to_owned()
                })
                .collect()
        };
        let names =
            |types: &[&str]| -> BTreeSet<String> { types.iter().map(|t| t.to_string()).collect() };
        assert_eq!(cases(SystemCodec::DATA_SCHEMA), names(SystemCodec::TYPES));
        assert_eq!(cases(ScanCodec::DATA_SCHEMA), names(ScanCodec::TYPES));
        assert_eq!(cases(TaskCodec::DATA_SCHEMA), names(TaskCodec::TYPES));
    }

    #[test]
    fn bytes_that_are_no_payload_are_malformed_and_an_empty_oneof_is_invalid() {
        let garbage = [0xff, 0xff, 0xff];
        assert!(matches!(
            SystemCodec::decode(&garbage),
            Err(WireError::Malformed { schema, .. }) if schema == SystemCodec::DATA_SCHEMA
        ));
        assert!(matches!(
            ScanCodec::decode(&garbage),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            TaskCodec::decode(&garbage),
            Err(WireError::Malformed { .. })
        ));
        // An empty payload is a message without a case.
        let field = |result: Result<(), WireError>| match result {
            Err(WireError::Invalid(error)) => error.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(SystemCodec::decode(&[]).map(drop)), "event");
        assert_eq!(field(ScanCodec::decode(&[]).map(drop)), "event");
        assert_eq!(field(TaskCodec::decode(&[]).map(drop)), "event");
    }

    /// The first sample of `event_type` on the wire, after `break_it` changed it.
    fn broken_system(
        event_type: &str,
        break_it: impl FnOnce(&mut pb::system_event::Event),
    ) -> pb::SystemEvent {
        let sample = system_samples()
            .into_iter()
            .find(|event| event.event_type() == event_type)
            .unwrap();
        let mut wire = system_to_proto(&sample);
        break_it(wire.event.as_mut().unwrap());
        wire
    }

    fn broken_scan(
        event_type: &str,
        break_it: impl FnOnce(&mut pb::vulnerability_scan_event::Event),
    ) -> pb::VulnerabilityScanEvent {
        let sample = scan_samples()
            .into_iter()
            .find(|event| event.event_type() == event_type)
            .unwrap();
        let mut wire = scan_to_proto(&sample);
        break_it(wire.event.as_mut().unwrap());
        wire
    }

    fn broken_task(
        event_type: &str,
        break_it: impl FnOnce(&mut pb::task_event::Event),
    ) -> pb::TaskEvent {
        let sample = task_samples()
            .into_iter()
            .find(|event| event.event_type() == event_type)
            .unwrap();
        let mut wire = task_to_proto(&sample);
        break_it(wire.event.as_mut().unwrap());
        wire
    }

    fn field_of(result: Result<impl std::fmt::Debug, ValidationError>) -> String {
        result.expect_err("decoded").field
    }

    #[test]
    fn invalid_system_payloads_name_their_field() {
        use pb::system_event::Event as Pb;
        let cases = [
            (pb::SystemEvent::default(), "event"),
            (
                broken_system("SystemRegistered", |e| {
                    if let Pb::Registered(e) = e {
                        e.name = "  ".into();
                    }
                }),
                "name",
            ),
            (
                broken_system("SystemRegistered", |e| {
                    if let Pb::Registered(e) = e {
                        e.owner = "ol ga".into();
                    }
                }),
                "owner",
            ),
            (
                broken_system("SystemRegistered", |e| {
                    if let Pb::Registered(e) = e {
                        e.environment = pb::Environment::Unspecified as i32;
                    }
                }),
                "environment",
            ),
            (
                broken_system("SystemRegistered", |e| {
                    if let Pb::Registered(e) = e {
                        e.packages[1].version.clear();
                    }
                }),
                "packages[1].version",
            ),
            (
                broken_system("PackagesUpdated", |e| {
                    if let Pb::PackagesUpdated(e) = e {
                        e.packages.push(e.packages[0].clone());
                    }
                }),
                "packages[2].name",
            ),
            (
                broken_system("PackagesUpdated", |e| {
                    if let Pb::PackagesUpdated(e) = e {
                        e.updated_by.clear();
                    }
                }),
                "updated_by",
            ),
            (
                broken_system("SystemSecurityAlertRaised", |e| {
                    if let Pb::SecurityAlertRaised(e) = e {
                        e.scan_id = "scan-1".into();
                    }
                }),
                "scan_id",
            ),
            (
                broken_system("SystemSecurityAlertRaised", |e| {
                    if let Pb::SecurityAlertRaised(e) = e {
                        e.cve = "CVE-21-44228".into();
                    }
                }),
                "cve",
            ),
            (
                broken_system("SystemSecurityAlertRaised", |e| {
                    if let Pb::SecurityAlertRaised(e) = e {
                        e.cvss_tenths = 101;
                    }
                }),
                "cvss_tenths",
            ),
            (
                broken_system("SystemSecurityAlertRaised", |e| {
                    if let Pb::SecurityAlertRaised(e) = e {
                        e.package.clear();
                    }
                }),
                "package",
            ),
            (
                broken_system("SystemDecommissioned", |e| {
                    if let Pb::Decommissioned(e) = e {
                        e.reason = "\n".into();
                    }
                }),
                "reason",
            ),
        ];
        for (wire, field) in cases {
            assert_eq!(field_of(system_from_proto(wire.clone())), field, "{wire:?}");
        }
    }

    #[test]
    fn invalid_scan_payloads_name_their_field() {
        use pb::vulnerability_scan_event::Event as Pb;
        let cases = [
            (pb::VulnerabilityScanEvent::default(), "event"),
            (
                broken_scan("VulnScanInitiated", |e| {
                    if let Pb::Initiated(e) = e {
                        e.system_id = "42".into();
                    }
                }),
                "system_id",
            ),
            (
                broken_scan("VulnScanInitiated", |e| {
                    if let Pb::Initiated(e) = e {
                        e.trigger = 7;
                    }
                }),
                "trigger",
            ),
            (
                broken_scan("VulnScanInitiated", |e| {
                    if let Pb::Initiated(e) = e {
                        e.packages[0].name = "log4j core".into();
                    }
                }),
                "packages[0].name",
            ),
            (
                broken_scan("VulnerabilityDetected", |e| {
                    if let Pb::VulnerabilityDetected(e) = e {
                        e.cve = "CVE-2024-0123456".into();
                    }
                }),
                "cve",
            ),
            (
                broken_scan("VulnerabilityDetected", |e| {
                    if let Pb::VulnerabilityDetected(e) = e {
                        e.cvss_tenths = u32::MAX;
                    }
                }),
                "cvss_tenths",
            ),
            (
                broken_scan("VulnerabilityDetected", |e| {
                    if let Pb::VulnerabilityDetected(e) = e {
                        e.severity = pb::Severity::Unspecified as i32;
                    }
                }),
                "severity",
            ),
            (
                broken_scan("VulnerabilityDetected", |e| {
                    if let Pb::VulnerabilityDetected(e) = e {
                        e.system_id.clear();
                    }
                }),
                "system_id",
            ),
            (
                broken_scan("VulnScanCompleted", |e| {
                    if let Pb::Completed(e) = e {
                        e.findings = None;
                    }
                }),
                "findings",
            ),
        ];
        for (wire, field) in cases {
            assert_eq!(field_of(scan_from_proto(wire.clone())), field, "{wire:?}");
        }
    }

    #[test]
    fn invalid_task_payloads_name_their_field() {
        use pb::task_event::Event as Pb;
        let cases = [
            (pb::TaskEvent::default(), "event"),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.kind = pb::TaskKind::Unspecified as i32;
                    }
                }),
                "kind",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.scan_id = "not-a-uuid".into();
                    }
                }),
                "scan_id",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.cve = Some(String::new());
                    }
                }),
                "cve",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.title = "x".repeat(201);
                    }
                }),
                "title",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.priority = 99;
                    }
                }),
                "priority",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.due_at = None;
                    }
                }),
                "due_at",
            ),
            (
                broken_task("TaskCreated", |e| {
                    if let Pb::Created(e) = e {
                        e.due_at = Some(prost_types::Timestamp {
                            seconds: 0,
                            nanos: -1,
                        });
                    }
                }),
                "due_at",
            ),
            (
                broken_task("TaskAssigned", |e| {
                    if let Pb::Assigned(e) = e {
                        e.assignee.clear();
                    }
                }),
                "assignee",
            ),
            (
                broken_task("TaskAssigned", |e| {
                    if let Pb::Assigned(e) = e {
                        e.assigned_by = "m\u{202e}ia".into();
                    }
                }),
                "assigned_by",
            ),
            (
                broken_task("TaskCompleted", |e| {
                    if let Pb::Completed(e) = e {
                        e.note = Some(" ".into());
                    }
                }),
                "note",
            ),
            (
                broken_task("TaskCompleted", |e| {
                    if let Pb::Completed(e) = e {
                        e.completed_by.clear();
                    }
                }),
                "completed_by",
            ),
        ];
        for (wire, field) in cases {
            assert_eq!(field_of(task_from_proto(wire.clone())), field, "{wire:?}");
        }
    }

    /// A severity other than the score's is refused in both events that carry one, whichever
    /// way it errs.
    #[test]
    fn a_severity_that_disagrees_with_the_cvss_is_refused() {
        use pb::system_event::Event as SystemPb;
        use pb::vulnerability_scan_event::Event as ScanPb;
        for (tenths, claimed) in [
            (98, pb::Severity::High),
            (90, pb::Severity::High),
            (89, pb::Severity::Critical),
            (40, pb::Severity::Low),
            (0, pb::Severity::Medium),
        ] {
            let alert = broken_system("SystemSecurityAlertRaised", |e| {
                if let SystemPb::SecurityAlertRaised(e) = e {
                    e.cvss_tenths = tenths;
                    e.severity = claimed as i32;
                }
            });
            let error = system_from_proto(alert).unwrap_err();
            assert_eq!(error.field, "severity", "{error}");
            let finding = broken_scan("VulnerabilityDetected", |e| {
                if let ScanPb::VulnerabilityDetected(e) = e {
                    e.cvss_tenths = tenths;
                    e.severity = claimed as i32;
                }
            });
            let error = scan_from_proto(finding).unwrap_err();
            assert_eq!(error.field, "severity", "{error}");
        }
        // Through the codec, as a consumer meets it.
        let bytes = broken_scan("VulnerabilityDetected", |e| {
            if let ScanPb::VulnerabilityDetected(e) = e {
                e.cvss_tenths = 100;
                e.severity = pb::Severity::Low as i32;
            }
        })
        .encode_to_vec();
        match ScanCodec::decode(&bytes) {
            Err(WireError::Invalid(error)) => {
                assert_eq!(error.field, "severity");
                assert_eq!(error.message, "must be CRITICAL for a CVSS score of 10.0");
            }
            other => panic!("{other:?}"),
        }
    }
}
