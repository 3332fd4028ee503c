//! Applying one event to the read model, in one transaction, exactly once and in version order.

use crate::views::StepStatus;
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;
use workflow_domain::{Decision, RecordedEvent, Status, WorkflowEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event was the next version of its workflow and is now reflected.
    Applied,
    /// The read model already reflects this version (a redelivery); nothing was written.
    AlreadyApplied,
    /// An earlier version has not been applied yet; nothing was written. Applying past a gap
    /// would build the row on a history it never saw.
    Gap { expected: i64, got: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "event {event_id} ({event_type} version {version}) contradicts the read model: {problem}"
    )]
    Contradiction {
        event_id: Uuid,
        event_type: &'static str,
        version: i64,
        problem: &'static str,
    },
}

impl ProjectionError {
    /// Whether applying the same event again later can succeed. A contradiction never will:
    /// the event has to be set aside for a person to look at.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectionError::Database(error) => crate::is_transient(error),
            ProjectionError::Contradiction { .. } => false,
        }
    }
}

/// Applies `event` if it is exactly the next version of its workflow.
pub async fn apply(pool: &PgPool, event: &RecordedEvent) -> Result<ApplyOutcome, ProjectionError> {
    let mut tx = pool.begin().await?;
    // The row lock serialises concurrent appliers of one workflow (e.g. two consumers during a
    // rebalance), so the version check below stays true until commit.
    let stored: Option<(i64, String)> =
        sqlx::query_as("SELECT version, tenant_id FROM workflows WHERE id = $1 FOR UPDATE")
            .bind(event.aggregate_id)
            .fetch_optional(&mut *tx)
            .await?;
    let stored_version = stored.as_ref().map_or(0, |(version, _)| *version);
    // Returning before commit drops the transaction, which rolls it back: nothing is written.
    if event.version <= stored_version {
        return Ok(ApplyOutcome::AlreadyApplied);
    }
    if event.version > stored_version + 1 {
        return Ok(ApplyOutcome::Gap {
            expected: stored_version + 1,
            got: event.version,
        });
    }
    match stored {
        Some((_, tenant)) if tenant != event.metadata.tenant_id => {
            return Err(contradiction(
                event,
                "tenant differs from the workflow's tenant",
            ));
        }
        Some(_) => write_change(&mut tx, event).await?,
        None => write_new(&mut tx, event).await?,
    }
    tx.commit().await?;
    Ok(ApplyOutcome::Applied)
}

fn contradiction(event: &RecordedEvent, problem: &'static str) -> ProjectionError {
    ProjectionError::Contradiction {
        event_id: event.event_id,
        event_type: event.event.event_type(),
        version: event.version,
        problem,
    }
}

/// The first event of a workflow: its row and one waiting step per route entry.
async fn write_new(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), ProjectionError> {
    let WorkflowEvent::Created {
        title,
        description,
        priority,
        applicant_id,
        applicant_name,
        route,
    } = &event.event
    else {
        return Err(contradiction(event, "workflow does not exist"));
    };
    if route.is_empty() {
        return Err(contradiction(event, "route has no steps"));
    }
    let step_count =
        i32::try_from(route.len()).map_err(|_| contradiction(event, "route has too many steps"))?;
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, title, description, priority, status, applicant_id,
             applicant_name, step_count, created_at, updated_at, last_event_id, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)",
    )
    .bind(event.aggregate_id)
    .bind(&event.metadata.tenant_id)
    .bind(title.as_str())
    .bind(description.as_str())
    .bind(priority.as_str())
    .bind(Status::Draft.as_str())
    .bind(applicant_id.as_str())
    .bind(applicant_name.as_str())
    .bind(step_count)
    .bind(event.occurred_at)
    .bind(event.event_id)
    .bind(event.version)
    .execute(&mut *conn)
    .await?;
    let approvers: Vec<&str> = route
        .steps()
        .map(|(_, approver)| approver.as_str())
        .collect();
    // WITH ORDINALITY numbers the approvers from 1, exactly like the route's step numbers.
    sqlx::query(
        "INSERT INTO workflow_steps (workflow_id, tenant_id, step_no, approver_id, status)
         SELECT $1, $2, step_no::integer, approver_id, $3
         FROM UNNEST($4::text[]) WITH ORDINALITY AS route (approver_id, step_no)",
    )
    .bind(event.aggregate_id)
    .bind(&event.metadata.tenant_id)
    .bind(StepStatus::Waiting.as_str())
    .bind(approvers)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The UPDATE of the workflow row every later event runs. Binds `$1` id, `$2` version, `$3`
/// event id and `$4` occurred_at; the event's own columns start at `$5`.
macro_rules! update_workflow {
    ($rest:literal) => {
        concat!(
            "UPDATE workflows SET version = $2, last_event_id = $3, updated_at = $4, ",
            $rest
        )
    };
}

fn stamped<'q>(sql: &'q str, event: &'q RecordedEvent) -> Query<'q, Postgres, PgArguments> {
    sqlx::query(sql)
        .bind(event.aggregate_id)
        .bind(event.version)
        .bind(event.event_id)
        .bind(event.occurred_at)
}

/// Every guarded statement must hit exactly one row; none means the event contradicts the row.
fn one_row(
    result: PgQueryResult,
    event: &RecordedEvent,
    problem: &'static str,
) -> Result<(), ProjectionError> {
    match result.rows_affected() {
        1 => Ok(()),
        _ => Err(contradiction(event, problem)),
    }
}

fn step_no(event: &RecordedEvent, step: workflow_domain::StepNo) -> Result<i32, ProjectionError> {
    i32::try_from(step.get()).map_err(|_| contradiction(event, "step number out of range"))
}

async fn write_change(
    conn: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    match &event.event {
        WorkflowEvent::Created { .. } => {
            return Err(contradiction(event, "workflow already exists"))
        }
        WorkflowEvent::Submitted {} => {
            let result = stamped(
                update_workflow!("status = $5, submitted_at = $4 WHERE id = $1 AND status = $6"),
                event,
            )
            .bind(Status::InProgress.as_str())
            .bind(Status::Draft.as_str())
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "only a draft can be submitted")?;
        }
        WorkflowEvent::StepAssigned { step, approver_id } => {
            let step_no = step_no(event, *step)?;
            let result = sqlx::query(
                "UPDATE workflow_steps SET status = $3, approver_id = $4
                 WHERE workflow_id = $1 AND step_no = $2 AND status = $5",
            )
            .bind(event.aggregate_id)
            .bind(step_no)
            .bind(StepStatus::Pending.as_str())
            .bind(approver_id.as_str())
            .bind(StepStatus::Waiting.as_str())
            .execute(&mut *conn)
            .await?;
            one_row(
                result,
                event,
                "assigned step does not exist or is not waiting",
            )?;
            let result = stamped(
                update_workflow!(
                    "current_step = $5, current_approver_id = $6
                     WHERE id = $1 AND status = $7 AND current_step IS NULL"
                ),
                event,
            )
            .bind(step_no)
            .bind(approver_id.as_str())
            .bind(Status::InProgress.as_str())
            .execute(&mut *conn)
            .await?;
            one_row(
                result,
                event,
                "workflow is not in progress or another step is pending",
            )?;
        }
        WorkflowEvent::StepCompleted {
            step,
            decision,
            decided_by,
            comment,
        } => {
            let step_no = step_no(event, *step)?;
            let outcome = match decision {
                Decision::Approved => StepStatus::Approved,
                Decision::Rejected => StepStatus::Rejected,
            };
            let result = sqlx::query(
                "UPDATE workflow_steps SET status = $3, decided_by = $4, decided_at = $5, comment = $6
                 WHERE workflow_id = $1 AND step_no = $2 AND status = $7",
            )
            .bind(event.aggregate_id)
            .bind(step_no)
            .bind(outcome.as_str())
            .bind(decided_by.as_str())
            .bind(event.occurred_at)
            .bind(comment)
            .bind(StepStatus::Pending.as_str())
            .execute(&mut *conn)
            .await?;
            one_row(
                result,
                event,
                "completed step does not exist or is not pending",
            )?;
            let result = stamped(
                update_workflow!(
                    "current_step = NULL, current_approver_id = NULL WHERE id = $1 AND current_step = $5"
                ),
                event,
            )
            .bind(step_no)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "completed step is not the current step")?;
        }
        WorkflowEvent::Approved {} | WorkflowEvent::Rejected { .. } => {
            let status = if matches!(event.event, WorkflowEvent::Approved {}) {
                Status::Approved
            } else {
                Status::Rejected
            };
            let result = stamped(
                update_workflow!("status = $5, completed_at = $4 WHERE id = $1 AND status = $6"),
                event,
            )
            .bind(status.as_str())
            .bind(Status::InProgress.as_str())
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "only a workflow in progress can be decided")?;
        }
    }
    Ok(())
}
