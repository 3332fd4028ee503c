//! The System Board's read models in the read database: three projections, one per aggregate
//! type, kept by the kernel's pipeline (`projection`: version gating, buffering of early events,
//! parking, one transaction per batch, NOTIFY on [`CHANNEL`]), and the tenant-scoped queries
//! the board's query service answers from.
//!
//! - [`Systems`]: `SystemEvent`s → `board_systems`, each alert a new `board_alerts` row.
//! - [`Scans`]: `ScanEvent`s → `board_scans`, each finding a new `board_vulnerabilities` row.
//! - [`Tasks`]: `TaskEvent`s → `board_tasks`.
//!
//! Each fold is pure and refuses an event that cannot follow the row (the pipeline then
//! dead-letters it); each write is set-based (`UNNEST` upserts, each changed row once), so a
//! batch costs a fixed number of statements. The tables are created by the read database's
//! migrations (`read_model::MIGRATOR`, `20261220000001_system_board.sql`).
//!
//! A system's open vulnerabilities are the findings of its latest scan (by initiation time):
//! the scan of the packages it has now. They are derived when read, so the three projections
//! never read each other's tables.
#![forbid(unsafe_code)]

mod queries;
mod scans;
mod systems;
mod tasks;

pub use queries::{
    get_system, list_systems, list_tasks, system_vulnerabilities, Page, QueryError, SystemDetail,
    TaskFilter, MAX_PAGE_SIZE,
};
pub use scans::{ScanRow, ScanView, Scans, VulnerabilityView};
pub use systems::{AlertView, NewAlert, SystemRow, SystemView, Systems};
pub use tasks::{TaskView, Tasks};

/// Notified on commit with `id:version` of every board row a batch changed (systems, scans and
/// tasks alike: their ids are distinct UUIDs).
pub const CHANNEL: &str = "ringiflow_board_applied";

/// One array per column, for UNNEST: `rows` mapped through `value`.
fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// A stored label read back; a value the migration's CHECK lets through always parses.
fn label<T>(raw: &str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error> {
    parse(raw).ok_or_else(|| sqlx::Error::Decode(format!("unknown label {raw:?}").into()))
}

/// The refusal of an event whose tenant is not the row's.
const OTHER_TENANT: &str = "tenant differs from the row's tenant";

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use system_board::{EventMetadata, RecordedEvent};
    use uuid::Uuid;

    /// `seconds` after an arbitrary instant.
    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + seconds, 0).unwrap()
    }

    /// `event` as version `version` of aggregate `aggregate` of `tenant`, recorded at
    /// `at(version)` with event id `version`.
    pub(crate) fn recorded<E>(
        tenant: &str,
        aggregate: u128,
        version: i64,
        event: E,
    ) -> RecordedEvent<E> {
        RecordedEvent {
            event_id: Uuid::from_u128(version as u128),
            position: version,
            aggregate_type: "test".into(),
            aggregate_id: Uuid::from_u128(aggregate),
            version,
            occurred_at: at(version),
            metadata: EventMetadata {
                tenant_id: tenant.into(),
                user_id: "olga".into(),
                correlation_id: Uuid::nil(),
                causation_id: Uuid::nil(),
                traceparent: None,
            },
            event,
        }
    }
}
