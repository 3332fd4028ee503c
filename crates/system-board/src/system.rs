//! System Management: the systems a tenant runs, who owns them, what they have installed, and
//! the security alerts raised against them.
//!
//! Registered → packages updated any number of times → decommissioned (once, for good). Alerts
//! arrive from the platform (a reaction to a critical finding) at any time, even after
//! decommissioning: an alert reports what a scan found, which stays true of the past.

use crate::values::labels;
use crate::{
    BoardError, CveId, Cvss, DecommissionReason, PackageName, Packages, ScanId, Severity,
    SystemName,
};
use es_kernel::{events, Actor, Aggregate, Context, CorruptHistory, UserId};
use serde::{Deserialize, Serialize};

labels! {
    /// Where a system runs.
    pub enum Environment {
        Production => "PRODUCTION",
        Staging => "STAGING",
        Development => "DEVELOPMENT",
        Test => "TEST",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemCommand {
    /// Any user of the tenant; `owner` may name someone else.
    Register {
        name: SystemName,
        owner: UserId,
        environment: Environment,
        packages: Packages,
    },
    /// The owner or an administrator; the whole new list, not a difference.
    UpdatePackages { packages: Packages },
    /// The platform only (a reaction to a critical finding of scan `scan_id`).
    RaiseSecurityAlert {
        scan_id: ScanId,
        cve: CveId,
        cvss: Cvss,
        package: PackageName,
    },
    /// The owner or an administrator.
    Decommission { reason: DecommissionReason },
}

events! {
    /// Facts about a system. The serde tag is the stored `event_type`; `data` is the payload,
    /// always a JSON object. Packages are arrays of `{"name":…,"version":…}` sorted by name;
    /// labels are their SCREAMING_SNAKE_CASE wire spelling.
    pub enum SystemEvent {
        /// `{"name":"Payroll API","owner":"olga","environment":"PRODUCTION",
        ///   "packages":[{"name":"log4j-core","version":"2.14.1"}],"registered_by":"olga"}`
        "SystemRegistered" => Registered {
            name: SystemName,
            owner: UserId,
            environment: Environment,
            packages: Packages,
            registered_by: UserId,
        },
        /// `{"packages":[…the whole new list…],"updated_by":"olga"}`
        "PackagesUpdated" => PackagesUpdated {
            packages: Packages,
            updated_by: UserId,
        },
        /// `{"scan_id":"<uuid>","cve":"CVE-2021-44228","cvss":10.0,"severity":"CRITICAL",
        ///   "package":"log4j-core"}`; `severity` is always the one `cvss` gives.
        "SystemSecurityAlertRaised" => SecurityAlertRaised {
            scan_id: ScanId,
            cve: CveId,
            cvss: Cvss,
            severity: Severity,
            package: PackageName,
        },
        /// `{"reason":"replaced by Payroll v2","decommissioned_by":"mia"}`
        "SystemDecommissioned" => Decommissioned {
            reason: DecommissionReason,
            decommissioned_by: UserId,
        },
    }
}

/// An alert raised against a system: a vulnerability one of its scans found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAlert {
    pub scan_id: ScanId,
    pub cve: CveId,
    pub cvss: Cvss,
    pub severity: Severity,
    pub package: PackageName,
}

impl SecurityAlert {
    /// One alert per scan, CVE and package: a redelivered finding must not alert twice.
    fn is_for(&self, scan_id: ScanId, cve: &CveId, package: &PackageName) -> bool {
        self.scan_id == scan_id && self.cve == *cve && self.package == *package
    }
}

/// What the aggregate remembers between commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    pub name: SystemName,
    pub owner: UserId,
    pub environment: Environment,
    pub packages: Packages,
    /// Every alert raised so far, oldest first. All are open: nothing closes an alert yet.
    pub open_alerts: Vec<SecurityAlert>,
    pub decommissioned: bool,
}

impl System {
    fn require_owner(&self, actor: &Actor, action: &'static str) -> Result<(), BoardError> {
        if actor.user_id != self.owner && !actor.is_admin() {
            return Err(BoardError::NotOwner { action });
        }
        Ok(())
    }

    fn require_active(&self, action: &'static str) -> Result<(), BoardError> {
        if self.decommissioned {
            return Err(BoardError::Decommissioned { action });
        }
        Ok(())
    }

    fn has_alert(&self, scan_id: ScanId, cve: &CveId, package: &PackageName) -> bool {
        self.open_alerts
            .iter()
            .any(|alert| alert.is_for(scan_id, cve, package))
    }
}

impl Aggregate for System {
    const TYPE: &'static str = "system";
    const STATE_SCHEMA: i32 = 1;

    type Command = SystemCommand;
    type Event = SystemEvent;
    type Error = BoardError;

    fn command_name(command: &SystemCommand) -> &'static str {
        match command {
            SystemCommand::Register { .. } => "RegisterSystem",
            SystemCommand::UpdatePackages { .. } => "UpdatePackages",
            SystemCommand::RaiseSecurityAlert { .. } => "RaiseSecurityAlert",
            SystemCommand::Decommission { .. } => "DecommissionSystem",
        }
    }

    fn event_type(event: &SystemEvent) -> &'static str {
        event.event_type()
    }

    fn decide(
        state: Option<&System>,
        context: &Context,
        command: SystemCommand,
    ) -> Result<Vec<SystemEvent>, BoardError> {
        let actor = &context.actor;
        // Permission first where it depends on the actor alone: whoever may not raise alerts
        // learns nothing about the system.
        if matches!(command, SystemCommand::RaiseSecurityAlert { .. }) && !actor.is_system() {
            return Err(BoardError::NotSystem {
                action: "raise security alerts",
            });
        }
        let Some(system) = state else {
            return match command {
                SystemCommand::Register {
                    name,
                    owner,
                    environment,
                    packages,
                } => Ok(vec![SystemEvent::Registered {
                    name,
                    owner,
                    environment,
                    packages,
                    registered_by: actor.user_id.clone(),
                }]),
                _ => Err(BoardError::NotFound {
                    aggregate: Self::TYPE,
                }),
            };
        };
        match command {
            SystemCommand::Register { .. } => Err(BoardError::AlreadyExists {
                aggregate: Self::TYPE,
            }),
            SystemCommand::UpdatePackages { packages } => {
                system.require_owner(actor, "update packages")?;
                system.require_active("update packages")?;
                if packages == system.packages {
                    return Err(BoardError::PackagesUnchanged);
                }
                Ok(vec![SystemEvent::PackagesUpdated {
                    packages,
                    updated_by: actor.user_id.clone(),
                }])
            }
            SystemCommand::RaiseSecurityAlert {
                scan_id,
                cve,
                cvss,
                package,
            } => {
                if system.has_alert(scan_id, &cve, &package) {
                    return Err(BoardError::AlertAlreadyRaised { cve, package });
                }
                Ok(vec![SystemEvent::SecurityAlertRaised {
                    scan_id,
                    cve,
                    cvss,
                    severity: cvss.severity(),
                    package,
                }])
            }
            SystemCommand::Decommission { reason } => {
                system.require_owner(actor, "decommission")?;
                system.require_active("decommission")?;
                Ok(vec![SystemEvent::Decommissioned {
                    reason,
                    decommissioned_by: actor.user_id.clone(),
                }])
            }
        }
    }

    fn evolve(
        state: Option<System>,
        event: &SystemEvent,
    ) -> Result<Option<System>, CorruptHistory> {
        let corrupt = |problem| CorruptHistory {
            event_type: event.event_type(),
            problem,
        };
        let Some(mut system) = state else {
            return match event {
                SystemEvent::Registered {
                    name,
                    owner,
                    environment,
                    packages,
                    ..
                } => Ok(Some(System {
                    name: name.clone(),
                    owner: owner.clone(),
                    environment: *environment,
                    packages: packages.clone(),
                    open_alerts: Vec::new(),
                    decommissioned: false,
                })),
                _ => Err(corrupt("system does not exist")),
            };
        };
        match event {
            SystemEvent::Registered { .. } => return Err(corrupt("system already exists")),
            SystemEvent::PackagesUpdated { .. } if system.decommissioned => {
                return Err(corrupt("a decommissioned system gets no package updates"))
            }
            SystemEvent::PackagesUpdated { packages, .. } => system.packages = packages.clone(),
            SystemEvent::SecurityAlertRaised {
                scan_id,
                cve,
                cvss,
                severity,
                package,
            } => {
                if *severity != cvss.severity() {
                    return Err(corrupt("severity does not follow from the CVSS score"));
                }
                if system.has_alert(*scan_id, cve, package) {
                    return Err(corrupt("the scan already raised this alert"));
                }
                system.open_alerts.push(SecurityAlert {
                    scan_id: *scan_id,
                    cve: cve.clone(),
                    cvss: *cvss,
                    severity: *severity,
                    package: package.clone(),
                });
            }
            SystemEvent::Decommissioned { .. } if system.decommissioned => {
                return Err(corrupt("system is already decommissioned"))
            }
            SystemEvent::Decommissioned { .. } => system.decommissioned = true,
        }
        Ok(Some(system))
    }
}
