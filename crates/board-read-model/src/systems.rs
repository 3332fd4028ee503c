//! [`Systems`]: a system's row and the alerts raised against it.

use crate::{column, label, CHANNEL, OTHER_TENANT};
use chrono::{DateTime, Utc};
use projection::Projection;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};
use system_board::{Environment, Packages, RecordedEvent, Severity, SystemEvent};
use uuid::Uuid;

/// What `board_systems` holds for one system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemView {
    pub id: Uuid,
    pub tenant_id: String,
    pub name: String,
    /// User id.
    pub owner: String,
    pub environment: Environment,
    /// Sorted by name.
    pub packages: Packages,
    pub decommissioned: bool,
    pub registered_at: DateTime<Utc>,
    /// When its last event was recorded.
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub last_event_id: Uuid,
}

/// One alert raised against a system (a `board_alerts` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertView {
    pub scan_id: Uuid,
    pub cve: String,
    /// The CVSS v3 base score times ten.
    pub cvss_tenths: u8,
    pub severity: Severity,
    pub package: String,
    pub raised_at: DateTime<Utc>,
}

/// What a `SystemSecurityAlertRaised` adds: the alert, and the system version its event made
/// (which orders a system's alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub version: i64,
    pub alert: AlertView,
}

/// The projection's row: the system, and the alerts raised so far (scan, CVE, package), which a
/// repeated alert is refused against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRow {
    pub system: SystemView,
    pub alerts: HashSet<(Uuid, String, String)>,
}

/// The System Management read model: `board_systems` and `board_alerts`.
pub struct Systems;

impl Projection for Systems {
    type Event = SystemEvent;
    type Row = SystemRow;
    type Added = NewAlert;

    const AGGREGATE_TYPES: &'static [&'static str] =
        &[<system_board::System as system_board::Aggregate>::TYPE];
    const TABLES: &'static [&'static str] = &["board_systems", "board_alerts"];
    const CHANNEL: &'static str = CHANNEL;

    fn id(row: &SystemRow) -> Uuid {
        row.system.id
    }

    fn version(row: &SystemRow) -> i64 {
        row.system.version
    }

    fn event_type(event: &SystemEvent) -> &'static str {
        event.event_type()
    }

    async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<SystemRow>, sqlx::Error> {
        let systems = sqlx::query(&format!("{SELECT_SYSTEMS} WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(system_view)
            .collect::<Result<Vec<_>, _>>()?;
        let mut alerts: HashMap<Uuid, HashSet<(Uuid, String, String)>> = HashMap::new();
        for row in sqlx::query(
            "SELECT system_id, scan_id, cve, package FROM board_alerts WHERE system_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?
        {
            alerts.entry(row.get("system_id")).or_default().insert((
                row.get("scan_id"),
                row.get("cve"),
                row.get("package"),
            ));
        }
        Ok(systems
            .into_iter()
            .map(|system| SystemRow {
                alerts: alerts.remove(&system.id).unwrap_or_default(),
                system,
            })
            .collect())
    }

    fn fold(
        row: Option<SystemRow>,
        event: &RecordedEvent<SystemEvent>,
    ) -> Result<(SystemRow, Option<NewAlert>), &'static str> {
        fold(row, event)
    }

    /// Each changed system once, then the new alerts (after the rows they reference).
    async fn write(
        conn: &mut PgConnection,
        _loaded: &HashMap<Uuid, SystemRow>,
        rows: &HashMap<Uuid, SystemRow>,
        changed: &[Uuid],
        added: &[(Uuid, NewAlert)],
    ) -> Result<(), sqlx::Error> {
        let changed: Vec<&SystemView> = changed.iter().map(|id| &rows[id].system).collect();
        if !changed.is_empty() {
            upsert_systems(&mut *conn, &changed).await?;
        }
        if !added.is_empty() {
            insert_alerts(&mut *conn, rows, added).await?;
        }
        Ok(())
    }
}

/// The pure event → row function.
fn fold(
    row: Option<SystemRow>,
    event: &RecordedEvent<SystemEvent>,
) -> Result<(SystemRow, Option<NewAlert>), &'static str> {
    let Some(mut row) = row else {
        let SystemEvent::Registered {
            name,
            owner,
            environment,
            packages,
            ..
        } = &event.event
        else {
            return Err("system does not exist");
        };
        let system = SystemView {
            id: event.aggregate_id,
            tenant_id: event.metadata.tenant_id.clone(),
            name: name.as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            environment: *environment,
            packages: packages.clone(),
            decommissioned: false,
            registered_at: event.occurred_at,
            updated_at: event.occurred_at,
            version: event.version,
            last_event_id: event.event_id,
        };
        return Ok((
            SystemRow {
                system,
                alerts: HashSet::new(),
            },
            None,
        ));
    };
    if row.system.tenant_id != event.metadata.tenant_id {
        return Err(OTHER_TENANT);
    }
    let mut added = None;
    match &event.event {
        SystemEvent::Registered { .. } => return Err("system already exists"),
        SystemEvent::PackagesUpdated { .. } if row.system.decommissioned => {
            return Err("a decommissioned system gets no package updates")
        }
        SystemEvent::PackagesUpdated { packages, .. } => row.system.packages = packages.clone(),
        SystemEvent::SecurityAlertRaised {
            scan_id,
            cve,
            cvss,
            severity,
            package,
        } => {
            if *severity != cvss.severity() {
                return Err("severity does not follow from the CVSS score");
            }
            let key = (
                scan_id.as_uuid(),
                cve.as_str().to_owned(),
                package.as_str().to_owned(),
            );
            if !row.alerts.insert(key) {
                return Err("the scan already raised this alert");
            }
            added = Some(NewAlert {
                version: event.version,
                alert: AlertView {
                    scan_id: scan_id.as_uuid(),
                    cve: cve.as_str().to_owned(),
                    cvss_tenths: cvss.tenths(),
                    severity: *severity,
                    package: package.as_str().to_owned(),
                    raised_at: event.occurred_at,
                },
            });
        }
        SystemEvent::Decommissioned { .. } if row.system.decommissioned => {
            return Err("system is already decommissioned")
        }
        SystemEvent::Decommissioned { .. } => row.system.decommissioned = true,
    }
    row.system.updated_at = event.occurred_at;
    row.system.version = event.version;
    row.system.last_event_id = event.event_id;
    Ok((row, added))
}

pub(crate) const SELECT_SYSTEMS: &str =
    "SELECT id, tenant_id, name, owner, environment, packages, decommissioned, registered_at,
         updated_at, version, last_event_id FROM board_systems";

pub(crate) fn system_view(row: &sqlx::postgres::PgRow) -> Result<SystemView, sqlx::Error> {
    let Json(packages): Json<Packages> = row.try_get("packages")?;
    Ok(SystemView {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        environment: label(row.try_get("environment")?, Environment::parse)?,
        packages,
        decommissioned: row.try_get("decommissioned")?,
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
        last_event_id: row.try_get("last_event_id")?,
    })
}

/// Inserts or replaces whole system rows, all in one statement.
async fn upsert_systems(conn: &mut PgConnection, rows: &[&SystemView]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO board_systems (id, tenant_id, name, owner, environment, packages,
             decommissioned, registered_at, updated_at, version, last_event_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::jsonb[], $7::boolean[], $8::timestamptz[], $9::timestamptz[], $10::bigint[],
             $11::uuid[])
         ON CONFLICT (id) DO UPDATE SET
             name = EXCLUDED.name, owner = EXCLUDED.owner, environment = EXCLUDED.environment,
             packages = EXCLUDED.packages, decommissioned = EXCLUDED.decommissioned,
             updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,
             last_event_id = EXCLUDED.last_event_id",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.tenant_id.as_str()))
    .bind(column(rows, |r| r.name.as_str()))
    .bind(column(rows, |r| r.owner.as_str()))
    .bind(column(rows, |r| r.environment.as_str()))
    .bind(column(rows, |r| Json(&r.packages)))
    .bind(column(rows, |r| r.decommissioned))
    .bind(column(rows, |r| r.registered_at))
    .bind(column(rows, |r| r.updated_at))
    .bind(column(rows, |r| r.version))
    .bind(column(rows, |r| r.last_event_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new alerts, all in one statement. Each is the effect of one event applied once, and
/// the fold refuses a repeat, so there is nothing to replace.
async fn insert_alerts(
    conn: &mut PgConnection,
    rows: &HashMap<Uuid, SystemRow>,
    added: &[(Uuid, NewAlert)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO board_alerts (system_id, tenant_id, scan_id, cve, cvss_tenths, severity,
             package, raised_at, version)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::smallint[],
             $6::text[], $7::text[], $8::timestamptz[], $9::bigint[])",
    )
    .bind(column(added, |(id, _)| *id))
    // Every alert's system is in the batch: its event was just folded into it.
    .bind(column(added, |(id, _)| rows[id].system.tenant_id.as_str()))
    .bind(column(added, |(_, a)| a.alert.scan_id))
    .bind(column(added, |(_, a)| a.alert.cve.as_str()))
    .bind(column(added, |(_, a)| i16::from(a.alert.cvss_tenths)))
    .bind(column(added, |(_, a)| a.alert.severity.as_str()))
    .bind(column(added, |(_, a)| a.alert.package.as_str()))
    .bind(column(added, |(_, a)| a.alert.raised_at))
    .bind(column(added, |(_, a)| a.version))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{at, recorded};
    use system_board::{
        CveId, Cvss, DecommissionReason, PackageName, RawPackage, ScanId, SystemName, UserId,
    };

    fn packages(list: &[(&str, &str)]) -> Packages {
        Packages::parse(
            "packages",
            list.iter()
                .map(|(name, version)| RawPackage { name, version }),
            |i, f| format!("packages[{i}].{f}"),
        )
        .unwrap()
    }

    fn registered() -> SystemEvent {
        SystemEvent::Registered {
            name: SystemName::parse("name", "Payroll API").unwrap(),
            owner: UserId::parse("owner", "olga").unwrap(),
            environment: Environment::Production,
            packages: packages(&[("openssl", "3.0.7"), ("log4j-core", "2.14.1")]),
            registered_by: UserId::parse("by", "olga").unwrap(),
        }
    }

    fn alert(scan: u128, tenths: u32) -> SystemEvent {
        let cvss = Cvss::from_tenths("cvss", tenths).unwrap();
        SystemEvent::SecurityAlertRaised {
            scan_id: ScanId::new(Uuid::from_u128(scan)),
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss,
            severity: cvss.severity(),
            package: PackageName::parse("package", "log4j-core").unwrap(),
        }
    }

    fn decommissioned() -> SystemEvent {
        SystemEvent::Decommissioned {
            reason: DecommissionReason::parse("reason", "replaced").unwrap(),
            decommissioned_by: UserId::parse("by", "olga").unwrap(),
        }
    }

    /// Folds `events` as versions 1.. of one system of tenant acme.
    fn fold_all(events: &[SystemEvent]) -> Result<(SystemRow, Vec<NewAlert>), &'static str> {
        let mut row = None;
        let mut added = Vec::new();
        for (version, event) in (1..).zip(events) {
            let (next, new) = fold(row, &recorded("acme", 1, version, event.clone()))?;
            row = Some(next);
            added.extend(new);
        }
        Ok((row.unwrap(), added))
    }

    #[test]
    fn every_event_folds_into_the_row() {
        let (row, added) = fold_all(&[
            registered(),
            SystemEvent::PackagesUpdated {
                packages: packages(&[("log4j-core", "2.17.1")]),
                updated_by: UserId::parse("by", "olga").unwrap(),
            },
            alert(7, 100),
            decommissioned(),
        ])
        .unwrap();
        let system = &row.system;
        assert_eq!(
            (
                system.name.as_str(),
                system.owner.as_str(),
                system.tenant_id.as_str()
            ),
            ("Payroll API", "olga", "acme")
        );
        assert_eq!(system.environment, Environment::Production);
        assert_eq!(system.packages, packages(&[("log4j-core", "2.17.1")]));
        assert!(system.decommissioned);
        assert_eq!((system.registered_at, system.updated_at), (at(1), at(4)));
        assert_eq!(system.version, 4);
        assert_eq!(system.last_event_id, Uuid::from_u128(4));
        assert_eq!(
            added,
            vec![NewAlert {
                version: 3,
                alert: AlertView {
                    scan_id: Uuid::from_u128(7),
                    cve: "CVE-2021-44228".into(),
                    cvss_tenths: 100,
                    severity: Severity::Critical,
                    package: "log4j-core".into(),
                    raised_at: at(3),
                },
            }]
        );
        assert_eq!(row.alerts.len(), 1);
        // An alert after decommissioning still reports what a scan found.
        let (row, _) = fold_all(&[registered(), decommissioned(), alert(7, 95)]).unwrap();
        assert_eq!(row.alerts.len(), 1);
    }

    #[test]
    fn contradictions_are_refused() {
        let refused = |events: &[SystemEvent]| fold_all(events).unwrap_err();
        assert_eq!(refused(&[decommissioned()]), "system does not exist");
        assert_eq!(
            refused(&[registered(), registered()]),
            "system already exists"
        );
        assert_eq!(
            refused(&[registered(), alert(7, 100), alert(7, 98)]),
            "the scan already raised this alert"
        );
        assert_eq!(
            refused(&[registered(), decommissioned(), decommissioned()]),
            "system is already decommissioned"
        );
        assert_eq!(
            refused(&[
                registered(),
                decommissioned(),
                SystemEvent::PackagesUpdated {
                    packages: packages(&[]),
                    updated_by: UserId::parse("by", "olga").unwrap(),
                }
            ]),
            "a decommissioned system gets no package updates"
        );
        let SystemEvent::SecurityAlertRaised {
            scan_id,
            cve,
            cvss,
            package,
            ..
        } = alert(7, 100)
        else {
            unreachable!()
        };
        let wrong = SystemEvent::SecurityAlertRaised {
            scan_id,
            cve,
            cvss,
            severity: Severity::Low,
            package,
        };
        assert_eq!(
            refused(&[registered(), wrong]),
            "severity does not follow from the CVSS score"
        );
        let (row, _) = fold_all(&[registered()]).unwrap();
        assert_eq!(
            fold(Some(row), &recorded("globex", 1, 2, decommissioned())).unwrap_err(),
            OTHER_TENANT
        );
    }
}
