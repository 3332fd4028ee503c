//! [`Tasks`]: a task's row.

use crate::{column, label, CHANNEL, OTHER_TENANT};
use chrono::{DateTime, Utc};
use projection::Projection;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use std::convert::Infallible;
use system_board::{RecordedEvent, TaskEvent, TaskKind, TaskPriority, TaskStatus};
use uuid::Uuid;

/// What `board_tasks` holds for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub id: Uuid,
    pub tenant_id: String,
    pub kind: TaskKind,
    /// OPEN without an assignee, ASSIGNED with one, COMPLETED for good.
    pub status: TaskStatus,
    pub system_id: Uuid,
    pub scan_id: Uuid,
    /// The vulnerability to remediate; `None` for scan reviews.
    pub cve: Option<String>,
    pub title: String,
    pub priority: TaskPriority,
    pub due_at: DateTime<Utc>,
    /// User id; `None` while OPEN.
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `None` until COMPLETED.
    pub completed_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// The Task Management read model: `board_tasks`.
pub struct Tasks;

impl Projection for Tasks {
    type Event = TaskEvent;
    type Row = TaskView;
    /// A task event adds nothing besides its row.
    type Added = Infallible;

    const AGGREGATE_TYPES: &'static [&'static str] =
        &[<system_board::Task as system_board::Aggregate>::TYPE];
    const TABLES: &'static [&'static str] = &["board_tasks"];
    const CHANNEL: &'static str = CHANNEL;

    fn id(row: &TaskView) -> Uuid {
        row.id
    }

    fn version(row: &TaskView) -> i64 {
        row.version
    }

    fn event_type(event: &TaskEvent) -> &'static str {
        event.event_type()
    }

    async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<TaskView>, sqlx::Error> {
        sqlx::query(&format!("{SELECT_TASKS} WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(conn)
            .await?
            .iter()
            .map(task_view)
            .collect()
    }

    fn fold(
        row: Option<TaskView>,
        event: &RecordedEvent<TaskEvent>,
    ) -> Result<(TaskView, Option<Infallible>), &'static str> {
        fold(row, event).map(|row| (row, None))
    }

    async fn write(
        conn: &mut PgConnection,
        _loaded: &HashMap<Uuid, TaskView>,
        rows: &HashMap<Uuid, TaskView>,
        changed: &[Uuid],
        _added: &[(Uuid, Infallible)],
    ) -> Result<(), sqlx::Error> {
        let changed: Vec<&TaskView> = changed.iter().map(|id| &rows[id]).collect();
        if !changed.is_empty() {
            upsert_tasks(conn, &changed).await?;
        }
        Ok(())
    }
}

/// The pure event → row function.
fn fold(row: Option<TaskView>, event: &RecordedEvent<TaskEvent>) -> Result<TaskView, &'static str> {
    let Some(mut task) = row else {
        let TaskEvent::Created {
            kind,
            system_id,
            scan_id,
            cve,
            title,
            priority,
            due_at,
        } = &event.event
        else {
            return Err("task does not exist");
        };
        return Ok(TaskView {
            id: event.aggregate_id,
            tenant_id: event.metadata.tenant_id.clone(),
            kind: *kind,
            status: TaskStatus::Open,
            system_id: system_id.as_uuid(),
            scan_id: scan_id.as_uuid(),
            cve: cve.as_ref().map(|cve| cve.as_str().to_owned()),
            title: title.as_str().to_owned(),
            priority: *priority,
            due_at: *due_at,
            assignee: None,
            created_at: event.occurred_at,
            completed_at: None,
            version: event.version,
        });
    };
    if task.tenant_id != event.metadata.tenant_id {
        return Err(OTHER_TENANT);
    }
    let completed = task.status == TaskStatus::Completed;
    match &event.event {
        TaskEvent::Created { .. } => return Err("task already exists"),
        TaskEvent::Assigned { .. } if completed => return Err("a completed task is not assigned"),
        TaskEvent::Assigned { assignee, .. }
            if task.assignee.as_deref() == Some(assignee.as_str()) =>
        {
            return Err("task is already assigned to this user")
        }
        TaskEvent::Assigned { assignee, .. } => {
            task.assignee = Some(assignee.as_str().to_owned());
            task.status = TaskStatus::Assigned;
        }
        TaskEvent::Completed { .. } if completed => return Err("task is already completed"),
        TaskEvent::Completed { completed_by, .. }
            if task.assignee.as_deref() != Some(completed_by.as_str()) =>
        {
            return Err("only the assignee completes a task")
        }
        TaskEvent::Completed { .. } => {
            task.status = TaskStatus::Completed;
            task.completed_at = Some(event.occurred_at);
        }
    }
    task.version = event.version;
    Ok(task)
}

pub(crate) const SELECT_TASKS: &str =
    "SELECT id, tenant_id, kind, status, system_id, scan_id, cve, title, priority, due_at,
         assignee, created_at, completed_at, version FROM board_tasks";

pub(crate) fn task_view(row: &sqlx::postgres::PgRow) -> Result<TaskView, sqlx::Error> {
    Ok(TaskView {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: label(row.try_get("kind")?, TaskKind::parse)?,
        status: label(row.try_get("status")?, TaskStatus::parse)?,
        system_id: row.try_get("system_id")?,
        scan_id: row.try_get("scan_id")?,
        cve: row.try_get("cve")?,
        title: row.try_get("title")?,
        priority: label(row.try_get("priority")?, TaskPriority::parse)?,
        due_at: row.try_get("due_at")?,
        assignee: row.try_get("assignee")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        version: row.try_get("version")?,
    })
}

/// Inserts or replaces whole task rows, all in one statement.
async fn upsert_tasks(conn: &mut PgConnection, rows: &[&TaskView]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO board_tasks (id, tenant_id, kind, status, system_id, scan_id, cve, title,
             priority, due_at, assignee, created_at, completed_at, version)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],
             $6::uuid[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
             $12::timestamptz[], $13::timestamptz[], $14::bigint[])
         ON CONFLICT (id) DO UPDATE SET
             status = EXCLUDED.status, assignee = EXCLUDED.assignee,
             completed_at = EXCLUDED.completed_at, version = EXCLUDED.version",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.tenant_id.as_str()))
    .bind(column(rows, |r| r.kind.as_str()))
    .bind(column(rows, |r| r.status.as_str()))
    .bind(column(rows, |r| r.system_id))
    .bind(column(rows, |r| r.scan_id))
    .bind(column(rows, |r| r.cve.as_deref()))
    .bind(column(rows, |r| r.title.as_str()))
    .bind(column(rows, |r| r.priority.as_str()))
    .bind(column(rows, |r| r.due_at))
    .bind(column(rows, |r| r.assignee.as_deref()))
    .bind(column(rows, |r| r.created_at))
    .bind(column(rows, |r| r.completed_at))
    .bind(column(rows, |r| r.version))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{at, recorded};
    use system_board::{CveId, ScanId, SystemId, TaskNote, TaskTitle, UserId};

    fn created() -> TaskEvent {
        TaskEvent::Created {
            kind: TaskKind::Remediation,
            system_id: SystemId::new(Uuid::from_u128(9)),
            scan_id: ScanId::new(Uuid::from_u128(8)),
            cve: Some(CveId::parse("cve", "CVE-2021-44228").unwrap()),
            title: TaskTitle::parse("title", "Remediate CVE-2021-44228").unwrap(),
            priority: TaskPriority::High,
            due_at: at(100),
        }
    }

    fn assigned(to: &str) -> TaskEvent {
        TaskEvent::Assigned {
            assignee: UserId::parse("assignee", to).unwrap(),
            assigned_by: UserId::parse("by", "mia").unwrap(),
        }
    }

    fn completed(by: &str) -> TaskEvent {
        TaskEvent::Completed {
            completed_by: UserId::parse("by", by).unwrap(),
            note: Some(TaskNote::parse("note", "patched").unwrap()),
        }
    }

    fn fold_all(events: &[TaskEvent]) -> Result<TaskView, &'static str> {
        let mut row = None;
        for (version, event) in (1..).zip(events) {
            row = Some(fold(row, &recorded("acme", 3, version, event.clone()))?);
        }
        Ok(row.unwrap())
    }

    #[test]
    fn every_event_folds_into_the_row() {
        let open = fold_all(&[created()]).unwrap();
        assert_eq!(
            open,
            TaskView {
                id: Uuid::from_u128(3),
                tenant_id: "acme".into(),
                kind: TaskKind::Remediation,
                status: TaskStatus::Open,
                system_id: Uuid::from_u128(9),
                scan_id: Uuid::from_u128(8),
                cve: Some("CVE-2021-44228".into()),
                title: "Remediate CVE-2021-44228".into(),
                priority: TaskPriority::High,
                due_at: at(100),
                assignee: None,
                created_at: at(1),
                completed_at: None,
                version: 1,
            }
        );
        let reassigned = fold_all(&[created(), assigned("sam"), assigned("kim")]).unwrap();
        assert_eq!(reassigned.status, TaskStatus::Assigned);
        assert_eq!(reassigned.assignee.as_deref(), Some("kim"));
        let done = fold_all(&[created(), assigned("sam"), completed("sam")]).unwrap();
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.assignee.as_deref(), Some("sam"));
        assert_eq!((done.completed_at, done.version), (Some(at(3)), 3));
    }

    #[test]
    fn contradictions_are_refused() {
        let refused = |events: &[TaskEvent]| fold_all(events).unwrap_err();
        assert_eq!(refused(&[assigned("sam")]), "task does not exist");
        assert_eq!(refused(&[created(), created()]), "task already exists");
        assert_eq!(
            refused(&[created(), assigned("sam"), assigned("sam")]),
            "task is already assigned to this user"
        );
        assert_eq!(
            refused(&[created(), completed("sam")]),
            "only the assignee completes a task"
        );
        assert_eq!(
            refused(&[created(), assigned("sam"), completed("kim")]),
            "only the assignee completes a task"
        );
        assert_eq!(
            refused(&[
                created(),
                assigned("sam"),
                completed("sam"),
                completed("sam")
            ]),
            "task is already completed"
        );
        assert_eq!(
            refused(&[
                created(),
                assigned("sam"),
                completed("sam"),
                assigned("kim")
            ]),
            "a completed task is not assigned"
        );
        let task = fold_all(&[created()]).unwrap();
        assert_eq!(
            fold(Some(task), &recorded("globex", 3, 2, assigned("sam"))).unwrap_err(),
            OTHER_TENANT
        );
    }
}
