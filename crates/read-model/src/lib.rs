//! The workflow read model in the read database (never the event store): the projection that
//! keeps it up to date, a run of events per transaction, and the tenant-scoped queries over it:
//! filtered and sorted lists, "my tasks", text search and the dashboard.
//!
//! The projection is idempotent on `(aggregate_id, version)`: an event is applied only when it
//! is exactly the next version of its workflow, so redelivered events change nothing, and an
//! event arriving before its predecessor is buffered and applied right after it.
#![forbid(unsafe_code)]

mod cursor;
mod dashboard;
mod fold;
pub mod freshness;
mod projection;
mod queries;
mod search;
mod settings;
mod views;

pub use cursor::SortDirection;
pub use dashboard::{dashboard, Dashboard, Zone};
pub use projection::{stored_version, Workflows};
pub use queries::{
    changed_workflows, current_assignees, get_workflow, get_workflows, list_my_tasks,
    list_workflows, Assignee, Page, QueryError, WorkflowFilter, WorkflowPage, WorkflowQuery,
    WorkflowSort, MAX_PAGE_SIZE,
};
pub use search::{search_workflows, MatchedField, SearchHit, SearchText, SearchTextError};
pub use settings::{ConnectError, DatabaseSettings};
pub use views::{
    AssignmentView, AttachmentView, CommentView, StepStatus, StepView, WorkflowDetail, WorkflowView,
};

use sqlx::PgPool;

/// The read database's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Brings the read database schema up to date. Safe to run from several processes at once:
/// sqlx serialises migrations with an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Versions of this build's migrations that the read database has not applied (all of them
/// when it was never migrated): what a service that skips migrating at start checks instead.
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    migrations::pending(&MIGRATOR, pool).await
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                // serialization_failure, deadlock_detected
                "40001" | "40P01"
                // admin_shutdown, crash_shutdown, cannot_connect_now
                | "57P01" | "57P02" | "57P03"
                // unique_violation: appliers of one workflow are serialised, so two inserting
                // the same new workflow should never collide; if they ever do, the retry sees
                // the winner's row and reports the event as already applied.
                | "23505"
            ) || code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
        }),
        _ => false,
    }
}
