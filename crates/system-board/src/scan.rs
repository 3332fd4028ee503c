//! Vulnerability Management: scans of a system's packages and the vulnerabilities they find.
//!
//! The platform initiates a scan whenever a system is registered or its packages change (see
//! the reactions), with the package list of that moment. Security staff (or a scanner running
//! as the platform) record findings, each a CVE in one of the scanned packages, until the scan
//! is completed, which tallies the findings by severity and closes it for good.

use crate::values::{is_security_staff, labels};
use crate::{BoardError, CveId, Cvss, PackageName, Packages, Severity, SystemId};
use es_kernel::{events, Aggregate, Context, CorruptHistory};
use serde::{Deserialize, Serialize};

labels! {
    /// Why a scan was started.
    pub enum ScanTrigger {
        /// The system was just registered.
        Registered => "REGISTERED",
        /// The system's packages changed.
        PackagesUpdated => "PACKAGES_UPDATED",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanCommand {
    /// The platform only; the scan's id is new.
    Initiate {
        system_id: SystemId,
        packages: Packages,
        trigger: ScanTrigger,
    },
    /// Administrators, security staff or the platform; `package` must be a scanned package.
    RecordFinding {
        cve: CveId,
        cvss: Cvss,
        package: PackageName,
    },
    /// Administrators, security staff or the platform; once.
    Complete,
}

/// How many findings a scan recorded, by severity. JSON:
/// `{"critical":1,"high":0,"medium":2,"low":0}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindingCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
}

impl FindingCounts {
    pub fn of(severities: impl IntoIterator<Item = Severity>) -> Self {
        let mut counts = Self::default();
        for severity in severities {
            let count = match severity {
                Severity::Critical => &mut counts.critical,
                Severity::High => &mut counts.high,
                Severity::Medium => &mut counts.medium,
                Severity::Low => &mut counts.low,
            };
            *count = count.saturating_add(1);
        }
        counts
    }

    pub fn total(&self) -> u64 {
        [self.critical, self.high, self.medium, self.low]
            .into_iter()
            .map(u64::from)
            .sum()
    }
}

events! {
    /// Facts about a vulnerability scan, stored like the
    /// [`SystemEvent`](crate::SystemEvent)s.
    pub enum ScanEvent {
        /// `{"system_id":"<uuid>","packages":[{"name":"log4j-core","version":"2.14.1"}],
        ///   "trigger":"REGISTERED"}`
        "VulnScanInitiated" => Initiated {
            system_id: SystemId,
            packages: Packages,
            trigger: ScanTrigger,
        },
        /// `{"cve":"CVE-2021-44228","cvss":10.0,"severity":"CRITICAL","package":"log4j-core",
        ///   "system_id":"<uuid>"}`; `severity` is always the one `cvss` gives.
        "VulnerabilityDetected" => VulnerabilityDetected {
            cve: CveId,
            cvss: Cvss,
            severity: Severity,
            package: PackageName,
            system_id: SystemId,
        },
        /// `{"findings":{"critical":1,"high":0,"medium":2,"low":0}}`
        "VulnScanCompleted" => Completed { findings: FindingCounts },
    }
}

/// A vulnerability a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub cve: CveId,
    pub cvss: Cvss,
    pub severity: Severity,
    pub package: PackageName,
}

/// What the aggregate remembers between commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnerabilityScan {
    pub system_id: SystemId,
    /// The packages as they were when the scan started.
    pub packages: Packages,
    pub trigger: ScanTrigger,
    /// Oldest first.
    pub findings: Vec<Finding>,
    pub completed: bool,
}

impl VulnerabilityScan {
    /// The tally `Complete` records.
    pub fn counts(&self) -> FindingCounts {
        FindingCounts::of(self.findings.iter().map(|finding| finding.severity))
    }

    fn has_finding(&self, cve: &CveId, package: &PackageName) -> bool {
        self.findings
            .iter()
            .any(|finding| finding.cve == *cve && finding.package == *package)
    }

    fn require_open(&self, action: &'static str) -> Result<(), BoardError> {
        if self.completed {
            return Err(BoardError::ScanCompleted { action });
        }
        Ok(())
    }
}

impl Aggregate for VulnerabilityScan {
    const TYPE: &'static str = "vulnerability_scan";
    const STATE_SCHEMA: i32 = 1;

    type Command = ScanCommand;
    type Event = ScanEvent;
    type Error = BoardError;

    fn command_name(command: &ScanCommand) -> &'static str {
        match command {
            ScanCommand::Initiate { .. } => "InitiateScan",
            ScanCommand::RecordFinding { .. } => "RecordFinding",
            ScanCommand::Complete => "CompleteScan",
        }
    }

    fn event_type(event: &ScanEvent) -> &'static str {
        event.event_type()
    }

    fn decide(
        state: Option<&VulnerabilityScan>,
        context: &Context,
        command: ScanCommand,
    ) -> Result<Vec<ScanEvent>, BoardError> {
        let actor = &context.actor;
        // Permission first, since it depends on the actor alone: whoever may not work on scans
        // learns nothing about them.
        match &command {
            ScanCommand::Initiate { .. } if !actor.is_system() => {
                return Err(BoardError::NotSystem {
                    action: "initiate scans",
                })
            }
            ScanCommand::RecordFinding { .. } | ScanCommand::Complete
                if !(actor.is_system() || is_security_staff(actor)) =>
            {
                return Err(BoardError::NotSecurityStaff {
                    action: "work on vulnerability scans",
                })
            }
            _ => {}
        }
        let Some(scan) = state else {
            return match command {
                ScanCommand::Initiate {
                    system_id,
                    packages,
                    trigger,
                } => Ok(vec![ScanEvent::Initiated {
                    system_id,
                    packages,
                    trigger,
                }]),
                _ => Err(BoardError::NotFound {
                    aggregate: Self::TYPE,
                }),
            };
        };
        match command {
            ScanCommand::Initiate { .. } => Err(BoardError::AlreadyExists {
                aggregate: Self::TYPE,
            }),
            ScanCommand::RecordFinding { cve, cvss, package } => {
                scan.require_open("record findings")?;
                if !scan.packages.contains(&package) {
                    return Err(BoardError::PackageNotScanned { package });
                }
                if scan.has_finding(&cve, &package) {
                    return Err(BoardError::FindingAlreadyRecorded { cve, package });
                }
                Ok(vec![ScanEvent::VulnerabilityDetected {
                    cve,
                    cvss,
                    severity: cvss.severity(),
                    package,
                    system_id: scan.system_id,
                }])
            }
            ScanCommand::Complete => {
                scan.require_open("complete")?;
                Ok(vec![ScanEvent::Completed {
                    findings: scan.counts(),
                }])
            }
        }
    }

    fn evolve(
        state: Option<VulnerabilityScan>,
        event: &ScanEvent,
    ) -> Result<Option<VulnerabilityScan>, CorruptHistory> {
        let corrupt = |problem| CorruptHistory {
            event_type: event.event_type(),
            problem,
        };
        let Some(mut scan) = state else {
            return match event {
                ScanEvent::Initiated {
                    system_id,
                    packages,
                    trigger,
                } => Ok(Some(VulnerabilityScan {
                    system_id: *system_id,
                    packages: packages.clone(),
                    trigger: *trigger,
                    findings: Vec::new(),
                    completed: false,
                })),
                _ => Err(corrupt("scan does not exist")),
            };
        };
        match event {
            ScanEvent::Initiated { .. } => return Err(corrupt("scan already exists")),
            ScanEvent::VulnerabilityDetected {
                cve,
                cvss,
                severity,
                package,
                system_id,
            } => {
                if scan.completed {
                    return Err(corrupt("a completed scan records no findings"));
                }
                if *system_id != scan.system_id {
                    return Err(corrupt("finding names another system than the scan"));
                }
                if !scan.packages.contains(package) {
                    return Err(corrupt("finding is in a package the scan did not look at"));
                }
                if *severity != cvss.severity() {
                    return Err(corrupt("severity does not follow from the CVSS score"));
                }
                if scan.has_finding(cve, package) {
                    return Err(corrupt("finding is already recorded"));
                }
                scan.findings.push(Finding {
                    cve: cve.clone(),
                    cvss: *cvss,
                    severity: *severity,
                    package: package.clone(),
                });
            }
            ScanEvent::Completed { .. } if scan.completed => {
                return Err(corrupt("scan is already completed"))
            }
            ScanEvent::Completed { findings } if *findings != scan.counts() => {
                return Err(corrupt("the tally does not match the recorded findings"))
            }
            ScanEvent::Completed { .. } => scan.completed = true,
        }
        Ok(Some(scan))
    }
}
