//! [`Scans`]: a vulnerability scan's row and the vulnerabilities it found.

use crate::{column, label, CHANNEL, OTHER_TENANT};
use chrono::{DateTime, Utc};
use projection::Projection;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use system_board::{FindingCounts, Packages, RecordedEvent, ScanEvent, ScanTrigger, Severity};
use uuid::Uuid;

/// What `board_scans` holds for one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanView {
    pub id: Uuid,
    pub tenant_id: String,
    pub system_id: Uuid,
    pub trigger: ScanTrigger,
    /// The packages the scan looked at.
    pub packages: Packages,
    pub completed: bool,
    pub initiated_at: DateTime<Utc>,
    pub version: i64,
}

/// One finding: a CVE in one of a system's packages (a `board_vulnerabilities` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnerabilityView {
    /// The scan that found it.
    pub scan_id: Uuid,
    pub system_id: Uuid,
    pub cve: String,
    /// The CVSS v3 base score times ten.
    pub cvss_tenths: u8,
    pub severity: Severity,
    pub package: String,
    pub detected_at: DateTime<Utc>,
}

/// The projection's row: the scan, and the severity of each finding so far by (CVE, package),
/// which a repeated finding and the completing tally are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRow {
    pub scan: ScanView,
    pub findings: HashMap<(String, String), Severity>,
}

/// The Vulnerability Management read model: `board_scans` and `board_vulnerabilities`.
pub struct Scans;

impl Projection for Scans {
    type Event = ScanEvent;
    type Row = ScanRow;
    type Added = VulnerabilityView;

    const AGGREGATE_TYPES: &'static [&'static str] =
        &[<system_board::VulnerabilityScan as system_board::Aggregate>::TYPE];
    const TABLES: &'static [&'static str] = &["board_scans", "board_vulnerabilities"];
    const CHANNEL: &'static str = CHANNEL;

    fn id(row: &ScanRow) -> Uuid {
        row.scan.id
    }

    fn version(row: &ScanRow) -> i64 {
        row.scan.version
    }

    fn event_type(event: &ScanEvent) -> &'static str {
        event.event_type()
    }

    async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<ScanRow>, sqlx::Error> {
        let scans = sqlx::query(
            "SELECT id, tenant_id, system_id, trigger, packages, completed, initiated_at, version
             FROM board_scans WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            let Json(packages): Json<Packages> = row.try_get("packages")?;
            Ok(ScanView {
                id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                system_id: row.try_get("system_id")?,
                trigger: label(row.try_get("trigger")?, ScanTrigger::parse)?,
                packages,
                completed: row.try_get("completed")?,
                initiated_at: row.try_get("initiated_at")?,
                version: row.try_get("version")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let mut findings: HashMap<Uuid, HashMap<(String, String), Severity>> = HashMap::new();
        for row in sqlx::query(
            "SELECT scan_id, cve, package, severity FROM board_vulnerabilities
             WHERE scan_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?
        {
            findings.entry(row.try_get("scan_id")?).or_default().insert(
                (row.try_get("cve")?, row.try_get("package")?),
                label(row.try_get("severity")?, Severity::parse)?,
            );
        }
        Ok(scans
            .into_iter()
            .map(|scan| ScanRow {
                findings: findings.remove(&scan.id).unwrap_or_default(),
                scan,
            })
            .collect())
    }

    fn fold(
        row: Option<ScanRow>,
        event: &RecordedEvent<ScanEvent>,
    ) -> Result<(ScanRow, Option<VulnerabilityView>), &'static str> {
        fold(row, event)
    }

    /// Each changed scan once, then the new findings (after the rows they reference).
    async fn write(
        conn: &mut PgConnection,
        _loaded: &HashMap<Uuid, ScanRow>,
        rows: &HashMap<Uuid, ScanRow>,
        changed: &[Uuid],
        added: &[(Uuid, VulnerabilityView)],
    ) -> Result<(), sqlx::Error> {
        let changed: Vec<&ScanView> = changed.iter().map(|id| &rows[id].scan).collect();
        if !changed.is_empty() {
            upsert_scans(&mut *conn, &changed).await?;
        }
        if !added.is_empty() {
            insert_vulnerabilities(&mut *conn, rows, added).await?;
        }
        Ok(())
    }
}

/// The pure event → row function.
fn fold(
    row: Option<ScanRow>,
    event: &RecordedEvent<ScanEvent>,
) -> Result<(ScanRow, Option<VulnerabilityView>), &'static str> {
    let Some(mut row) = row else {
        let ScanEvent::Initiated {
            system_id,
            packages,
            trigger,
        } = &event.event
        else {
            return Err("scan does not exist");
        };
        let scan = ScanView {
            id: event.aggregate_id,
            tenant_id: event.metadata.tenant_id.clone(),
            system_id: system_id.as_uuid(),
            trigger: *trigger,
            packages: packages.clone(),
            completed: false,
            initiated_at: event.occurred_at,
            version: event.version,
        };
        return Ok((
            ScanRow {
                scan,
                findings: HashMap::new(),
            },
            None,
        ));
    };
    if row.scan.tenant_id != event.metadata.tenant_id {
        return Err(OTHER_TENANT);
    }
    let mut added = None;
    match &event.event {
        ScanEvent::Initiated { .. } => return Err("scan already exists"),
        ScanEvent::VulnerabilityDetected {
            cve,
            cvss,
            severity,
            package,
            system_id,
        } => {
            if row.scan.completed {
                return Err("a completed scan records no findings");
            }
            if system_id.as_uuid() != row.scan.system_id {
                return Err("finding names another system than the scan");
            }
            if !row.scan.packages.contains(package) {
                return Err("finding is in a package the scan did not look at");
            }
            if *severity != cvss.severity() {
                return Err("severity does not follow from the CVSS score");
            }
            let key = (cve.as_str().to_owned(), package.as_str().to_owned());
            if row.findings.insert(key, *severity).is_some() {
                return Err("finding is already recorded");
            }
            added = Some(VulnerabilityView {
                scan_id: row.scan.id,
                system_id: row.scan.system_id,
                cve: cve.as_str().to_owned(),
                cvss_tenths: cvss.tenths(),
                severity: *severity,
                package: package.as_str().to_owned(),
                detected_at: event.occurred_at,
            });
        }
        ScanEvent::Completed { .. } if row.scan.completed => {
            return Err("scan is already completed")
        }
        ScanEvent::Completed { findings }
            if *findings != FindingCounts::of(row.findings.values().copied()) =>
        {
            return Err("the tally does not match the recorded findings")
        }
        ScanEvent::Completed { .. } => row.scan.completed = true,
    }
    row.scan.version = event.version;
    Ok((row, added))
}

/// Inserts or replaces whole scan rows, all in one statement.
async fn upsert_scans(conn: &mut PgConnection, rows: &[&ScanView]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO board_scans (id, tenant_id, system_id, trigger, packages, completed,
             initiated_at, version)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[],
             $6::boolean[], $7::timestamptz[], $8::bigint[])
         ON CONFLICT (id) DO UPDATE SET
             completed = EXCLUDED.completed, version = EXCLUDED.version",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.tenant_id.as_str()))
    .bind(column(rows, |r| r.system_id))
    .bind(column(rows, |r| r.trigger.as_str()))
    .bind(column(rows, |r| Json(&r.packages)))
    .bind(column(rows, |r| r.completed))
    .bind(column(rows, |r| r.initiated_at))
    .bind(column(rows, |r| r.version))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new findings, all in one statement; the fold refuses a repeat.
async fn insert_vulnerabilities(
    conn: &mut PgConnection,
    rows: &HashMap<Uuid, ScanRow>,
    added: &[(Uuid, VulnerabilityView)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO board_vulnerabilities (scan_id, tenant_id, system_id, cve, cvss_tenths,
             severity, package, detected_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::smallint[],
             $6::text[], $7::text[], $8::timestamptz[])",
    )
    .bind(column(added, |(id, _)| *id))
    .bind(column(added, |(id, _)| rows[id].scan.tenant_id.as_str()))
    .bind(column(added, |(_, v)| v.system_id))
    .bind(column(added, |(_, v)| v.cve.as_str()))
    .bind(column(added, |(_, v)| i16::from(v.cvss_tenths)))
    .bind(column(added, |(_, v)| v.severity.as_str()))
    .bind(column(added, |(_, v)| v.package.as_str()))
    .bind(column(added, |(_, v)| v.detected_at))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{at, recorded};
    use system_board::{CveId, Cvss, PackageName, RawPackage, SystemId};

    const SYSTEM: u128 = 9;

    fn initiated() -> ScanEvent {
        ScanEvent::Initiated {
            system_id: SystemId::new(Uuid::from_u128(SYSTEM)),
            packages: Packages::parse(
                "packages",
                [RawPackage {
                    name: "log4j-core",
                    version: "2.14.1",
                }],
                |i, f| format!("packages[{i}].{f}"),
            )
            .unwrap(),
            trigger: ScanTrigger::Registered,
        }
    }

    fn detected(cve: &str, tenths: u32) -> ScanEvent {
        let cvss = Cvss::from_tenths("cvss", tenths).unwrap();
        ScanEvent::VulnerabilityDetected {
            cve: CveId::parse("cve", cve).unwrap(),
            cvss,
            severity: cvss.severity(),
            package: PackageName::parse("package", "log4j-core").unwrap(),
            system_id: SystemId::new(Uuid::from_u128(SYSTEM)),
        }
    }

    fn completed(critical: u32, medium: u32) -> ScanEvent {
        ScanEvent::Completed {
            findings: FindingCounts {
                critical,
                high: 0,
                medium,
                low: 0,
            },
        }
    }

    fn fold_all(events: &[ScanEvent]) -> Result<(ScanRow, Vec<VulnerabilityView>), &'static str> {
        let mut row = None;
        let mut added = Vec::new();
        for (version, event) in (1..).zip(events) {
            let (next, new) = fold(row, &recorded("acme", 2, version, event.clone()))?;
            row = Some(next);
            added.extend(new);
        }
        Ok((row.unwrap(), added))
    }

    #[test]
    fn every_event_folds_into_the_row() {
        let (row, added) = fold_all(&[
            initiated(),
            detected("CVE-2021-44228", 100),
            detected("CVE-2021-45046", 50),
            completed(1, 1),
        ])
        .unwrap();
        let scan = &row.scan;
        assert_eq!(scan.id, Uuid::from_u128(2));
        assert_eq!(scan.system_id, Uuid::from_u128(SYSTEM));
        assert_eq!(scan.trigger, ScanTrigger::Registered);
        assert!(scan.completed);
        assert_eq!((scan.initiated_at, scan.version), (at(1), 4));
        assert_eq!(
            added
                .iter()
                .map(|v| (v.cve.as_str(), v.cvss_tenths, v.severity, v.detected_at))
                .collect::<Vec<_>>(),
            vec![
                ("CVE-2021-44228", 100, Severity::Critical, at(2)),
                ("CVE-2021-45046", 50, Severity::Medium, at(3)),
            ]
        );
        assert!(added.iter().all(|v| v.scan_id == scan.id
            && v.system_id == scan.system_id
            && v.package == "log4j-core"));
    }

    #[test]
    fn contradictions_are_refused() {
        let refused = |events: &[ScanEvent]| fold_all(events).unwrap_err();
        assert_eq!(refused(&[completed(0, 0)]), "scan does not exist");
        assert_eq!(refused(&[initiated(), initiated()]), "scan already exists");
        assert_eq!(
            refused(&[
                initiated(),
                detected("CVE-2021-44228", 100),
                detected("CVE-2021-44228", 100)
            ]),
            "finding is already recorded"
        );
        assert_eq!(
            refused(&[
                initiated(),
                completed(0, 0),
                detected("CVE-2021-44228", 100)
            ]),
            "a completed scan records no findings"
        );
        assert_eq!(
            refused(&[initiated(), completed(0, 0), completed(0, 0)]),
            "scan is already completed"
        );
        assert_eq!(
            refused(&[
                initiated(),
                detected("CVE-2021-44228", 100),
                completed(0, 1)
            ]),
            "the tally does not match the recorded findings"
        );
        let elsewhere = ScanEvent::VulnerabilityDetected {
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: Cvss::from_tenths("cvss", 100).unwrap(),
            severity: Severity::Critical,
            package: PackageName::parse("package", "openssl").unwrap(),
            system_id: SystemId::new(Uuid::from_u128(SYSTEM)),
        };
        assert_eq!(
            refused(&[initiated(), elsewhere]),
            "finding is in a package the scan did not look at"
        );
        let other_system = ScanEvent::VulnerabilityDetected {
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: Cvss::from_tenths("cvss", 100).unwrap(),
            severity: Severity::Critical,
            package: PackageName::parse("package", "log4j-core").unwrap(),
            system_id: SystemId::new(Uuid::from_u128(SYSTEM + 1)),
        };
        assert_eq!(
            refused(&[initiated(), other_system]),
            "finding names another system than the scan"
        );
        let wrong_severity = ScanEvent::VulnerabilityDetected {
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: Cvss::from_tenths("cvss", 100).unwrap(),
            severity: Severity::High,
            package: PackageName::parse("package", "log4j-core").unwrap(),
            system_id: SystemId::new(Uuid::from_u128(SYSTEM)),
        };
        assert_eq!(
            refused(&[initiated(), wrong_severity]),
            "severity does not follow from the CVSS score"
        );
        let (row, _) = fold_all(&[initiated()]).unwrap();
        assert_eq!(
            fold(Some(row), &recorded("globex", 2, 2, completed(0, 0))).unwrap_err(),
            OTHER_TENANT
        );
    }
}
