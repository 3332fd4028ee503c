//! Applying one event to the read model, in one transaction, exactly once and in version order,
//! whatever order and however often the events arrive.

use crate::views::StepStatus;
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Connection, Executor, FromRow, PgConnection, PgPool, Postgres};
use uuid::Uuid;
use workflow_domain::{Decision, EventMetadata, RecordedEvent, Status, WorkflowEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event was the next version of its workflow and is now reflected, together with any
    /// buffered successors it unblocked.
    Applied,
    /// The read model already reflects this version (a redelivery); nothing was written.
    AlreadyApplied,
    /// An earlier version has not been applied yet. The event is kept in `pending_events` and
    /// applied in the same transaction as its predecessor, so early delivery ends in exactly
    /// the state of in-order delivery.
    Buffered { expected: i64, got: i64 },
    /// The workflow is parked after a dead letter; nothing was written. The event belongs in the
    /// dead-letter topic after the one that parked it.
    Parked,
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

/// Why a workflow is set aside, as recorded in `parked_aggregates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    pub aggregate_id: Uuid,
    /// Unknown when the message that parked it did not decode.
    pub tenant_id: Option<String>,
    pub reason: String,
    pub first_event_id: Option<Uuid>,
}

/// What [`unpark`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpark {
    Unparked,
    NotParked,
    /// A buffered event of the workflow still cannot be applied.
    Stuck,
    /// More dead letters were produced for the workflow than the caller has seen.
    UnseenDeadLetters,
}

/// Applies `event` if it is exactly the next version of its workflow, buffers it if it is
/// early, and refuses it if the workflow is parked.
pub async fn apply(pool: &PgPool, event: &RecordedEvent) -> Result<ApplyOutcome, ProjectionError> {
    apply_on(&mut *pool.acquire().await?, event).await
}

/// [`apply`] through a given connection: its `search_path` decides which tables are written,
/// and inside a transaction the event gets a savepoint of its own.
pub async fn apply_on(
    conn: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<ApplyOutcome, ProjectionError> {
    apply_event(conn, event, Parking::Respect).await
}

/// Like [`apply`], but also for a parked workflow: how a dead letter is replayed once its cause
/// is fixed. Never returns [`ApplyOutcome::Parked`].
pub async fn replay(pool: &PgPool, event: &RecordedEvent) -> Result<ApplyOutcome, ProjectionError> {
    apply_event(&mut *pool.acquire().await?, event, Parking::Ignore).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parking {
    Respect,
    Ignore,
}

/// What the read model holds for one workflow, read in one round trip.
#[derive(sqlx::FromRow)]
struct Stored {
    version: Option<i64>,
    tenant_id: Option<String>,
    /// Whether `pending_events` holds anything of it.
    buffered: bool,
    parked: bool,
}

async fn apply_event(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    parking: Parking,
) -> Result<ApplyOutcome, ProjectionError> {
    let mut tx = conn.begin().await?;
    let stored = lock(&mut tx, event.aggregate_id).await?;
    let stored_version = stored.version.unwrap_or(0);
    // Returning before commit drops the transaction, which rolls it back: nothing is written.
    if event.version <= stored_version {
        return Ok(ApplyOutcome::AlreadyApplied);
    }
    if stored.parked && parking == Parking::Respect {
        return Ok(ApplyOutcome::Parked);
    }
    if event.version > stored_version + 1 {
        // A redelivered early event is already buffered; the first copy stays.
        sqlx::query(
            "INSERT INTO pending_events (aggregate_id, version, event) VALUES ($1, $2, $3)
             ON CONFLICT (aggregate_id, version) DO NOTHING",
        )
        .bind(event.aggregate_id)
        .bind(event.version)
        .bind(Json(BufferedEvent::from(event)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(ApplyOutcome::Buffered {
            expected: stored_version + 1,
            got: event.version,
        });
    }
    write(&mut tx, event, stored.tenant_id.as_deref()).await?;
    if stored.buffered {
        drain(
            &mut tx,
            event.aggregate_id,
            &event.metadata.tenant_id,
            event.version,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ApplyOutcome::Applied)
}

/// Serialises every writer of one workflow and reads what the read model holds for it.
///
/// The table lock comes first and is the one any write takes anyway (it never blocks another
/// projector): a rebuild's switch holds a stronger one, so an apply either finishes before the
/// switch or starts after it, and never writes a row it read before the switch replaced it. The
/// advisory lock then serialises appliers of the workflow even before its row exists, so an
/// early event and its predecessor cannot both miss each other. It is keyed by schema as well,
/// so a rebuild's shadow never waits for the live projector.
async fn lock(conn: &mut PgConnection, aggregate_id: Uuid) -> Result<Stored, sqlx::Error> {
    let (high, low) = aggregate_id.as_u64_pair();
    let key = (high ^ low) as i64;
    // One round trip for all three statements: without parameters a statement string goes over
    // the simple query protocol, which takes several, and LOCK TABLE takes no parameters anyway.
    // Only an integer and a UUID are formatted in. Each statement takes its own snapshot, so
    // the last one sees everything committed before the locks were granted. (Not
    // `sqlx::raw_sql`: its future is not provably `Send` inside the projector's spawned task.)
    let statements = format!(
        "LOCK TABLE workflows, workflow_steps, pending_events IN ROW EXCLUSIVE MODE;
         SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), 0) # ({key})::bigint);
         SELECT w.version, w.tenant_id,
                EXISTS (SELECT 1 FROM pending_events p WHERE p.aggregate_id = one.id) AS buffered,
                EXISTS (SELECT 1 FROM parked_aggregates p WHERE p.aggregate_id = one.id) AS parked
         FROM (VALUES ('{aggregate_id}'::uuid)) AS one (id) LEFT JOIN workflows w ON w.id = one.id"
    );
    let rows = conn.fetch_all(statements.as_str()).await?;
    // The last statement's row comes last.
    Stored::from_row(rows.last().ok_or(sqlx::Error::RowNotFound)?)
}

/// Writes `event` as the next version of a workflow of `tenant_id` (`None`: not created yet).
async fn write(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    tenant_id: Option<&str>,
) -> Result<(), ProjectionError> {
    match tenant_id {
        Some(tenant) if tenant != event.metadata.tenant_id => Err(contradiction(
            event,
            "tenant differs from the workflow's tenant",
        )),
        Some(_) => write_change(conn, event).await,
        None => write_new(conn, event).await,
    }
}

/// How far [`drain`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// No buffered event follows the stored version any more.
    Complete,
    /// The buffered successor cannot be applied; it stays buffered and the workflow is parked.
    Stuck,
}

/// Applies the buffered successors of `version` in version order, deleting them as they apply.
///
/// A successor that contradicts the read model has no Kafka message left to dead-letter (its
/// offset was committed when it was buffered), so it stays buffered — nothing is lost — and the
/// workflow is parked, which routes its later events to the dead-letter topic instead of piling
/// them up behind it. Each successor runs in a savepoint so a failure undoes only itself.
pub(crate) async fn drain(
    conn: &mut PgConnection,
    aggregate_id: Uuid,
    tenant_id: &str,
    mut version: i64,
) -> Result<Drained, ProjectionError> {
    loop {
        let next: Option<Json<BufferedEvent>> = sqlx::query_scalar(
            "DELETE FROM pending_events WHERE aggregate_id = $1 AND version = $2 RETURNING event",
        )
        .bind(aggregate_id)
        .bind(version + 1)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(Json(buffered)) = next else {
            return Ok(Drained::Complete);
        };
        let event = RecordedEvent::from(buffered);
        let mut savepoint = conn.begin().await?;
        match write(&mut savepoint, &event, Some(tenant_id)).await {
            Ok(()) => savepoint.commit().await?,
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => {
                savepoint.rollback().await?;
                sqlx::query(
                    "INSERT INTO pending_events (aggregate_id, version, event) VALUES ($1, $2, $3)",
                )
                .bind(aggregate_id)
                .bind(event.version)
                .bind(Json(BufferedEvent::from(&event)))
                .execute(&mut *conn)
                .await?;
                let park = Park {
                    aggregate_id,
                    tenant_id: Some(tenant_id.to_owned()),
                    reason: format!(
                        "buffered version {} cannot be applied: {error}",
                        event.version
                    ),
                    first_event_id: Some(event.event_id),
                };
                record_park(&mut *conn, &park, 0).await?;
                return Ok(Drained::Stuck);
            }
        }
        version += 1;
    }
}

/// Parks a workflow after one of its events was dead-lettered, counting that dead letter. An
/// already parked workflow keeps its first reason.
pub async fn park(pool: &PgPool, park: &Park) -> Result<(), sqlx::Error> {
    record_park(pool, park, 1).await
}

async fn record_park<'e, E>(executor: E, park: &Park, dead_letters: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query(
        "INSERT INTO parked_aggregates (aggregate_id, tenant_id, reason, first_event_id, dead_letters)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (aggregate_id)
         DO UPDATE SET dead_letters = parked_aggregates.dead_letters + EXCLUDED.dead_letters",
    )
    .bind(park.aggregate_id)
    .bind(&park.tenant_id)
    .bind(&park.reason)
    .bind(park.first_event_id)
    .bind(dead_letters)
    .execute(executor)
    .await?;
    Ok(())
}

/// Lets a parked workflow's events be applied again, once its dead letters are dealt with: first
/// applies any buffered successors its replayed events unblocked, then unparks it unless one of
/// them still fails or more than `seen_dead_letters` dead letters were produced for it (one may
/// have been produced while the caller was reading the dead-letter topic).
pub async fn unpark(
    pool: &PgPool,
    aggregate_id: Uuid,
    seen_dead_letters: i64,
) -> Result<Unpark, ProjectionError> {
    let mut tx = pool.begin().await?;
    let stored = lock(&mut tx, aggregate_id).await?;
    if !stored.parked {
        return Ok(Unpark::NotParked);
    }
    if let (true, Some(version), Some(tenant)) =
        (stored.buffered, stored.version, &stored.tenant_id)
    {
        if drain(&mut tx, aggregate_id, tenant, version).await? == Drained::Stuck {
            // Keep what did apply.
            tx.commit().await?;
            return Ok(Unpark::Stuck);
        }
    }
    let unparked =
        sqlx::query("DELETE FROM parked_aggregates WHERE aggregate_id = $1 AND dead_letters <= $2")
            .bind(aggregate_id)
            .bind(seen_dead_letters)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    tx.commit().await?;
    Ok(if unparked {
        Unpark::Unparked
    } else {
        Unpark::UnseenDeadLetters
    })
}

/// The version the read model holds for a workflow of any tenant (`None`: not created yet).
pub async fn stored_version(pool: &PgPool, aggregate_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM workflows WHERE id = $1")
        .bind(aggregate_id)
        .fetch_optional(pool)
        .await
}

/// A [`RecordedEvent`] as buffered in `pending_events`. Its own type because the domain's
/// envelope is not serialisable; the domain event inside keeps its `{"type", "data"}` form.
#[derive(serde::Serialize, serde::Deserialize)]
struct BufferedEvent {
    event_id: Uuid,
    position: i64,
    aggregate_type: String,
    aggregate_id: Uuid,
    version: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
    metadata: EventMetadata,
    event: WorkflowEvent,
}

impl From<&RecordedEvent> for BufferedEvent {
    fn from(event: &RecordedEvent) -> Self {
        Self {
            event_id: event.event_id,
            position: event.position,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id,
            version: event.version,
            occurred_at: event.occurred_at,
            metadata: event.metadata.clone(),
            event: event.event.clone(),
        }
    }
}

impl From<BufferedEvent> for RecordedEvent {
    fn from(event: BufferedEvent) -> Self {
        Self {
            event_id: event.event_id,
            position: event.position,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            version: event.version,
            occurred_at: event.occurred_at,
            metadata: event.metadata,
            event: event.event,
        }
    }
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
