//! Tenant-scoped reads. Every query takes the caller's tenant and filters by it: a row of
//! another tenant is indistinguishable from one that does not exist.
//!
//! Lists are keyset-paged: a page token is the sort key of the page's last item (systems: name
//! and id; tasks: due time and id), with the list's filters, base64url-encoded. A token is
//! opaque to clients; one that does not decode, or was issued for another list or other
//! filters, is [`QueryError::InvalidPageToken`]. Keyset pages cost the same however deep, and a
//! row written between two pages is neither repeated nor skipped unless its key moved.

use crate::label;
use crate::scans::VulnerabilityView;
use crate::systems::{system_view, AlertView, SystemView, SELECT_SYSTEMS};
use crate::tasks::{task_view, TaskView, SELECT_TASKS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use std::collections::HashMap;
use system_board::{FindingCounts, Severity};
use uuid::Uuid;

/// The largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("page size must be between 1 and {MAX_PAGE_SIZE}")]
    InvalidPageSize,
    #[error("page token was not issued by this list with these filters")]
    InvalidPageToken,
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueryError {
    /// Whether the same query can succeed later (the database is unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        let QueryError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // serialization_failure, deadlock_detected, shutdowns, connection exceptions,
                // insufficient resources
                matches!(
                    code.as_ref(),
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03"
                ) || code.starts_with("08")
                    || code.starts_with("53")
            }),
            _ => false,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Continues after the last item; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// A system as GetSystem and ListSystems answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDetail {
    pub system: SystemView,
    /// The findings of the system's latest scan, by severity; zeros before any.
    pub open_vulnerabilities: FindingCounts,
    /// Every alert raised against it, oldest first.
    pub alerts: Vec<AlertView>,
}

/// Which tasks [`list_tasks`] lists; every condition that is set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only the tasks assigned to this user (completed ones included).
    pub assignee: Option<String>,
    /// Only the tasks about this system.
    pub system_id: Option<Uuid>,
    /// Only the tasks not completed that were due before this instant (now, for "overdue").
    pub overdue_at: Option<DateTime<Utc>>,
}

/// The system with its open vulnerability counts and alerts; `None` when the tenant has no such
/// system.
pub async fn get_system(
    pool: &PgPool,
    tenant_id: &str,
    system_id: Uuid,
) -> Result<Option<SystemDetail>, QueryError> {
    let system = sqlx::query(&format!(
        "{SELECT_SYSTEMS} WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(system_id)
    .fetch_optional(pool)
    .await?
    .map(|row| system_view(&row))
    .transpose()?;
    let Some(system) = system else {
        return Ok(None);
    };
    Ok(details(pool, tenant_id, vec![system]).await?.pop())
}

/// A page of the tenant's systems (decommissioned ones included) by name, then id.
pub async fn list_systems(
    pool: &PgPool,
    tenant_id: &str,
    page_size: u32,
    page_token: Option<&str>,
) -> Result<Page<SystemDetail>, QueryError> {
    check_page_size(page_size)?;
    let after = page_token.map(SystemKey::decode).transpose()?;
    let mut query = QueryBuilder::<Postgres>::new(SELECT_SYSTEMS);
    query.push(" WHERE tenant_id = ").push_bind(tenant_id);
    if let Some(after) = &after {
        query
            .push(" AND (name, id) > (")
            .push_bind(after.name.as_str())
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY name, id LIMIT ")
        .push_bind(i64::from(page_size) + 1);
    let mut systems = query
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(system_view)
        .collect::<Result<Vec<_>, _>>()?;
    let next_page_token = next_page(&mut systems, page_size, |last| {
        SystemKey {
            name: last.name.clone(),
            id: last.id,
        }
        .encode()
    });
    Ok(Page {
        items: details(pool, tenant_id, systems).await?,
        next_page_token,
    })
}

/// The system's open vulnerabilities — the findings of its latest scan — most severe first (by
/// score, then CVE, then package); `None` when the tenant has no such system.
pub async fn system_vulnerabilities(
    pool: &PgPool,
    tenant_id: &str,
    system_id: Uuid,
) -> Result<Option<Vec<VulnerabilityView>>, QueryError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM board_systems WHERE tenant_id = $1 AND id = $2)",
    )
    .bind(tenant_id)
    .bind(system_id)
    .fetch_one(pool)
    .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT scan_id, system_id, cve, cvss_tenths, severity, package, detected_at
         FROM board_vulnerabilities
         WHERE tenant_id = $1 AND scan_id = (
             SELECT id FROM board_scans WHERE tenant_id = $1 AND system_id = $2
             ORDER BY initiated_at DESC, id DESC LIMIT 1)
         ORDER BY cvss_tenths DESC, cve, package",
    )
    .bind(tenant_id)
    .bind(system_id)
    .fetch_all(pool)
    .await?;
    let vulnerabilities = rows
        .iter()
        .map(|row| {
            Ok(VulnerabilityView {
                scan_id: row.try_get("scan_id")?,
                system_id: row.try_get("system_id")?,
                cve: row.try_get("cve")?,
                cvss_tenths: tenths(row.try_get("cvss_tenths")?)?,
                severity: label(row.try_get("severity")?, Severity::parse)?,
                package: row.try_get("package")?,
                detected_at: row.try_get("detected_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(vulnerabilities))
}

/// A page of the tenant's tasks matching every condition of `filter`, soonest due first, then
/// by id.
pub async fn list_tasks(
    pool: &PgPool,
    tenant_id: &str,
    filter: &TaskFilter,
    page_size: u32,
    page_token: Option<&str>,
) -> Result<Page<TaskView>, QueryError> {
    check_page_size(page_size)?;
    let after = page_token
        .map(|token| TaskKey::decode(token, filter))
        .transpose()?;
    let mut query = QueryBuilder::<Postgres>::new(SELECT_TASKS);
    query.push(" WHERE tenant_id = ").push_bind(tenant_id);
    if let Some(assignee) = &filter.assignee {
        query.push(" AND assignee = ").push_bind(assignee.as_str());
    }
    if let Some(system_id) = filter.system_id {
        query.push(" AND system_id = ").push_bind(system_id);
    }
    if let Some(now) = filter.overdue_at {
        query
            .push(" AND status <> 'COMPLETED' AND due_at < ")
            .push_bind(now);
    }
    if let Some(after) = &after {
        query
            .push(" AND (due_at, id) > (")
            .push_bind(after.due_at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY due_at, id LIMIT ")
        .push_bind(i64::from(page_size) + 1);
    let mut tasks = query
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(task_view)
        .collect::<Result<Vec<_>, _>>()?;
    let next_page_token = next_page(&mut tasks, page_size, |last| {
        TaskKey {
            due_at: last.due_at,
            id: last.id,
        }
        .encode(filter)
    });
    Ok(Page {
        items: tasks,
        next_page_token,
    })
}

fn check_page_size(page_size: u32) -> Result<(), QueryError> {
    if (1..=MAX_PAGE_SIZE).contains(&page_size) {
        Ok(())
    } else {
        Err(QueryError::InvalidPageSize)
    }
}

/// Cuts the one extra row read beyond the page, and says where the next page starts if it was
/// there.
fn next_page<T>(
    items: &mut Vec<T>,
    page_size: u32,
    token: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() <= page_size as usize {
        return None;
    }
    items.truncate(page_size as usize);
    items.last().map(token)
}

fn tenths(raw: i16) -> Result<u8, sqlx::Error> {
    u8::try_from(raw).map_err(|_| sqlx::Error::Decode(format!("CVSS tenths {raw}").into()))
}

/// Adds to each system its open vulnerability counts and its alerts: two statements however many
/// systems.
async fn details(
    pool: &PgPool,
    tenant_id: &str,
    systems: Vec<SystemView>,
) -> Result<Vec<SystemDetail>, QueryError> {
    if systems.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = systems.iter().map(|system| system.id).collect();
    let mut counts: HashMap<Uuid, FindingCounts> = HashMap::new();
    for row in sqlx::query(
        "SELECT latest.system_id, v.severity, count(*) AS n
         FROM (SELECT DISTINCT ON (system_id) system_id, id FROM board_scans
               WHERE tenant_id = $1 AND system_id = ANY($2)
               ORDER BY system_id, initiated_at DESC, id DESC) AS latest
         JOIN board_vulnerabilities v ON v.scan_id = latest.id
         GROUP BY latest.system_id, v.severity",
    )
    .bind(tenant_id)
    .bind(&ids)
    .fetch_all(pool)
    .await?
    {
        let n = u32::try_from(row.try_get::<i64, _>("n")?).unwrap_or(u32::MAX);
        let entry = counts.entry(row.try_get("system_id")?).or_default();
        match label(row.try_get("severity")?, Severity::parse)? {
            Severity::Critical => entry.critical = n,
            Severity::High => entry.high = n,
            Severity::Medium => entry.medium = n,
            Severity::Low => entry.low = n,
        }
    }
    let mut alerts: HashMap<Uuid, Vec<AlertView>> = HashMap::new();
    for row in sqlx::query(
        "SELECT system_id, scan_id, cve, cvss_tenths, severity, package, raised_at
         FROM board_alerts WHERE tenant_id = $1 AND system_id = ANY($2)
         ORDER BY system_id, version",
    )
    .bind(tenant_id)
    .bind(&ids)
    .fetch_all(pool)
    .await?
    {
        alerts
            .entry(row.try_get("system_id")?)
            .or_default()
            .push(AlertView {
                scan_id: row.try_get("scan_id")?,
                cve: row.try_get("cve")?,
                cvss_tenths: tenths(row.try_get("cvss_tenths")?)?,
                severity: label(row.try_get("severity")?, Severity::parse)?,
                package: row.try_get("package")?,
                raised_at: row.try_get("raised_at")?,
            });
    }
    Ok(systems
        .into_iter()
        .map(|system| SystemDetail {
            open_vulnerabilities: counts.remove(&system.id).unwrap_or_default(),
            alerts: alerts.remove(&system.id).unwrap_or_default(),
            system,
        })
        .collect())
}

fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(token: &str) -> Result<String, QueryError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(QueryError::InvalidPageToken)
}

/// Where a page of systems ends: `systems:<id>:<name>` (the name last, as it may hold `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SystemKey {
    name: String,
    id: Uuid,
}

impl SystemKey {
    fn encode(&self) -> String {
        encode(&format!("systems:{}:{}", self.id, self.name))
    }

    fn decode(token: &str) -> Result<Self, QueryError> {
        let text = decode(token)?;
        let (id, name) = text
            .strip_prefix("systems:")
            .and_then(|rest| rest.split_once(':'))
            .ok_or(QueryError::InvalidPageToken)?;
        Ok(Self {
            name: name.to_owned(),
            id: Uuid::parse_str(id).map_err(|_| QueryError::InvalidPageToken)?,
        })
    }
}

/// Where a page of tasks ends, and the filters it was issued for:
/// `tasks:<mine 0|1><overdue 0|1>:<system id or ->:<due_at in µs>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskKey {
    due_at: DateTime<Utc>,
    id: Uuid,
}

impl TaskKey {
    fn filters(filter: &TaskFilter) -> String {
        format!(
            "{}{}:{}",
            u8::from(filter.assignee.is_some()),
            u8::from(filter.overdue_at.is_some()),
            filter
                .system_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string())
        )
    }

    fn encode(&self, filter: &TaskFilter) -> String {
        encode(&format!(
            "tasks:{}:{}:{}",
            Self::filters(filter),
            self.due_at.timestamp_micros(),
            self.id
        ))
    }

    fn decode(token: &str, filter: &TaskFilter) -> Result<Self, QueryError> {
        let text = decode(token)?;
        let key = text
            .strip_prefix("tasks:")
            .and_then(|rest| rest.strip_prefix(&Self::filters(filter)))
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or(QueryError::InvalidPageToken)?;
        let (micros, id) = key.split_once(':').ok_or(QueryError::InvalidPageToken)?;
        let due_at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(QueryError::InvalidPageToken)?;
        let id = Uuid::parse_str(id).map_err(|_| QueryError::InvalidPageToken)?;
        Ok(Self { due_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tokens_round_trip_and_refuse_others() {
        let key = SystemKey {
            name: "a: b".into(),
            id: Uuid::from_u128(5),
        };
        assert_eq!(SystemKey::decode(&key.encode()).unwrap(), key);
        for bad in [
            "",
            "!!",
            &encode("systems:nope:x"),
            &encode("tasks:00:-:1:x"),
        ] {
            assert!(matches!(
                SystemKey::decode(bad),
                Err(QueryError::InvalidPageToken)
            ));
        }
    }

    #[test]
    fn task_tokens_hold_their_filters() {
        let key = TaskKey {
            due_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::from_u128(5),
        };
        let mine = TaskFilter {
            assignee: Some("sam".into()),
            ..TaskFilter::default()
        };
        let token = key.encode(&mine);
        assert_eq!(TaskKey::decode(&token, &mine).unwrap(), key);
        // The same user filter for someone else is the same request shape.
        let theirs = TaskFilter {
            assignee: Some("kim".into()),
            ..TaskFilter::default()
        };
        assert_eq!(TaskKey::decode(&token, &theirs).unwrap(), key);
        for other in [
            TaskFilter::default(),
            TaskFilter {
                system_id: Some(Uuid::from_u128(1)),
                ..mine.clone()
            },
            TaskFilter {
                overdue_at: Some(Utc::now()),
                ..mine.clone()
            },
        ] {
            assert!(matches!(
                TaskKey::decode(&token, &other),
                Err(QueryError::InvalidPageToken)
            ));
        }
        let systems = SystemKey {
            name: "x".into(),
            id: Uuid::from_u128(5),
        }
        .encode();
        assert!(TaskKey::decode(&systems, &TaskFilter::default()).is_err());
    }
}
