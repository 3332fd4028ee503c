//! A tenant's workflows at a glance, counted in one statement so every number comes from the
//! same snapshot.

use crate::queries::{push_overdue, push_waiting_for, Assignee, QueryError};
use chrono::{DateTime, FixedOffset, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::HashMap;
use workflow_domain::Status;

/// Where "today" is: a UTC offset, or a time zone of the IANA database (whose offset changes
/// with daylight saving time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    Offset(FixedOffset),
    /// Checked by the database, which holds the time zone database.
    Named(String),
}

impl Zone {
    /// `""` or `Z`: UTC; `+09:00`, `-0530`, `+09`: that offset from UTC; otherwise the name of a
    /// time zone, e.g. `Asia/Tokyo` or `UTC`. `None` for an offset out of range or a name no
    /// time zone can have.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.is_empty() || raw == "Z" {
            return FixedOffset::east_opt(0).map(Zone::Offset);
        }
        if let Some((sign, offset)) = raw
            .strip_prefix('+')
            .map(|rest| (1, rest))
            .or_else(|| raw.strip_prefix('-').map(|rest| (-1, rest)))
        {
            let (hours, minutes) = match offset.split_once(':') {
                Some(parts) => parts,
                None if offset.len() == 4 => offset.split_at_checked(2)?,
                None => (offset, "00"),
            };
            let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
            if minutes >= 60 {
                return None;
            }
            return FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).map(Zone::Offset);
        }
        // The database reads a name it does not know as a POSIX zone, where `UTC+3` is three
        // hours west; so digits and `+`, which only such zones and `Etc/GMT+9`-like names hold,
        // are refused outside an `Area/Location` name.
        let characters = |c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '_' | '-');
        let area_location = |c: char| characters(c) || c.is_ascii_digit() || c == '+';
        let plausible = if raw.contains('/') {
            raw.chars().all(area_location)
        } else {
            raw.chars().all(characters)
        };
        plausible.then(|| Zone::Named(raw.to_owned()))
    }
}

fn two_digits(raw: &str) -> Option<i32> {
    (raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().ok())
        .flatten()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Every status in [`Status::ALL`] order, with zero for a status no workflow has.
    pub by_status: Vec<(Status, u64)>,
    /// Waiting for the caller, as [`list_my_tasks`](crate::list_my_tasks) lists them.
    pub pending_for_me: u64,
    /// In progress, with the current step's deadline passed.
    pub overdue: u64,
    /// Approved, rejected or cancelled since `today_started_at`.
    pub completed_today: u64,
    /// Midnight at the start of today in the zone asked for.
    pub today_started_at: DateTime<Utc>,
    /// From the first submission to the final decision, over approved and rejected workflows;
    /// `None` when there are none.
    pub average_decision_seconds: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct DashboardRow {
    today_started_at: DateTime<Utc>,
    by_status: Option<Json<HashMap<String, i64>>>,
    pending_for_me: i64,
    overdue: i64,
    completed_today: i64,
    average_decision_seconds: Option<f64>,
}

/// The dashboard of `me`'s tenant at `now`, "today" being the day of `now` in `zone`.
pub async fn dashboard(
    pool: &PgPool,
    tenant_id: &str,
    me: &Assignee,
    now: DateTime<Utc>,
    zone: &Zone,
) -> Result<Dashboard, QueryError> {
    let mut query = QueryBuilder::new("WITH today AS (SELECT date_trunc('day', ");
    // A time zone given as an interval is that offset east of UTC.
    match zone {
        Zone::Offset(offset) => {
            let interval = format!("make_interval(secs => {})", offset.local_minus_utc());
            query.push_bind(now).push(format_args!(
                " AT TIME ZONE {interval}) AT TIME ZONE {interval}"
            ));
        }
        Zone::Named(name) => {
            query
                .push_bind(now)
                .push(" AT TIME ZONE ")
                .push_bind(name.as_str())
                .push(") AT TIME ZONE ")
                .push_bind(name.as_str());
        }
    }
    query
        .push(
            " AS started_at)
             SELECT (SELECT started_at FROM today) AS today_started_at,
                    (SELECT json_object_agg(status, n)
                     FROM (SELECT w.status, count(*) AS n FROM workflows w WHERE w.tenant_id = ",
        )
        .push_bind(tenant_id)
        .push(" GROUP BY w.status) c) AS by_status");
    push_count(&mut query, tenant_id, "pending_for_me", |q| {
        push_waiting_for(q, me)
    });
    push_count(&mut query, tenant_id, "overdue", |q| push_overdue(q, now));
    push_count(&mut query, tenant_id, "completed_today", |q| {
        q.push(format_args!(
            " AND w.status IN ({}) AND w.completed_at >= (SELECT started_at FROM today)",
            listed(Status::ALL.iter().filter(|s| s.is_terminal()))
        ));
    });
    query
        .push(
            ", (SELECT avg(extract(epoch FROM w.completed_at - w.first_submitted_at))::float8
                FROM workflows w WHERE w.tenant_id = ",
        )
        .push_bind(tenant_id)
        .push(format_args!(
            " AND w.status IN ({})) AS average_decision_seconds",
            listed(&[Status::Approved, Status::Rejected])
        ));
    let row: DashboardRow =
        query
            .build_query_as()
            .fetch_one(pool)
            .await
            .map_err(|error| match (zone, &error) {
                // invalid_parameter_value: the only parameter the database checks is the zone.
                (Zone::Named(name), sqlx::Error::Database(db))
                    if db.code().as_deref() == Some("22023") =>
                {
                    QueryError::UnknownTimeZone(name.clone())
                }
                _ => QueryError::Database(error),
            })?;
    let by_status = row.by_status.map(|Json(counts)| counts).unwrap_or_default();
    // Counts are never negative.
    Ok(Dashboard {
        by_status: Status::ALL
            .into_iter()
            .map(|status| {
                let count = by_status.get(status.as_str()).copied().unwrap_or(0);
                (status, count.unsigned_abs())
            })
            .collect(),
        pending_for_me: row.pending_for_me.unsigned_abs(),
        overdue: row.overdue.unsigned_abs(),
        completed_today: row.completed_today.unsigned_abs(),
        today_started_at: row.today_started_at,
        average_decision_seconds: row.average_decision_seconds,
    })
}

/// Appends `, (SELECT count(*) …) AS <name>` of the tenant's workflows meeting `condition`.
fn push_count<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    tenant_id: &'a str,
    name: &str,
    condition: impl FnOnce(&mut QueryBuilder<'a, Postgres>),
) {
    query
        .push(", (SELECT count(*) FROM workflows w WHERE w.tenant_id = ")
        .push_bind(tenant_id);
    condition(query);
    query.push(format_args!(") AS {name}"));
}

/// Statuses as an SQL list of literals.
fn listed<'s>(statuses: impl IntoIterator<Item = &'s Status>) -> String {
    let quoted: Vec<String> = statuses
        .into_iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse_as_offsets_or_names() {
        let offset = |seconds| Some(Zone::Offset(FixedOffset::east_opt(seconds).unwrap()));
        for (raw, zone) in [
            ("", offset(0)),
            ("Z", offset(0)),
            ("+09:00", offset(9 * 3600)),
            ("+0900", offset(9 * 3600)),
            ("+09", offset(9 * 3600)),
            ("-05:30", offset(-(5 * 3600 + 30 * 60))),
            ("Asia/Tokyo", Some(Zone::Named("Asia/Tokyo".into()))),
            (
                "America/Port-au-Prince",
                Some(Zone::Named("America/Port-au-Prince".into())),
            ),
            ("Etc/GMT+9", Some(Zone::Named("Etc/GMT+9".into()))),
            ("UTC", Some(Zone::Named("UTC".into()))),
            ("UTC+3", None),
            ("EST5EDT", None),
            ("+24:00", None),
            ("+09:60", None),
            ("+9", None),
            ("+09:0", None),
            ("+0９:00", None),
            ("-", None),
            ("Asia/Tokyo; DROP TABLE", None),
            ("東京", None),
        ] {
            assert_eq!(Zone::parse(raw), zone, "{raw:?}");
        }
    }
}
