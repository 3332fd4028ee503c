//! Applying events to the read model: exactly once and in version order per workflow, whatever
//! order and however often they arrive, a whole run of events per transaction.

use crate::fold;
use crate::queries;
use crate::views::{StepView, WorkflowView};
use sqlx::types::Json;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;
use workflow_domain::{EventMetadata, RecordedEvent, WorkflowEvent};

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

/// What [`apply_batch`] did with a run of events.
#[derive(Debug)]
pub struct Applied {
    /// One outcome per event it settled, in order: a prefix of the run.
    pub outcomes: Vec<ApplyOutcome>,
    /// Why it stopped before the end of the run, at event `outcomes.len()`, of which nothing
    /// was written; `None` when it settled every event.
    pub stopped: Option<Stopped>,
}

/// An event [`apply_batch`] leaves for the caller, who has to dead-letter it.
#[derive(Debug)]
pub enum Stopped {
    /// Its workflow is parked after a dead letter.
    Parked,
    /// It contradicts the read model; always [`ProjectionError::Contradiction`].
    Refused(ProjectionError),
}

/// Applies a run of events in one transaction: each that is exactly the next version of its
/// workflow is applied, an early one is buffered, a redelivered one is skipped. Stops at the
/// first event that is parked or contradicts the read model, committing everything before it.
/// An `Err` is always a database error; the transaction is then rolled back.
///
/// Costs a fixed number of statements whatever the run's length: the rows of every workflow
/// the run touches are read at once, the events are folded in memory (see `fold`), and each
/// changed row is written once.
pub async fn apply_batch(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<Applied, ProjectionError> {
    apply_events(conn, events, Parking::Respect).await
}

/// Applies `event` if it is exactly the next version of its workflow, buffers it if it is
/// early, and refuses it if the workflow is parked.
pub async fn apply(pool: &PgPool, event: &RecordedEvent) -> Result<ApplyOutcome, ProjectionError> {
    let applied = apply_events(
        &mut *pool.acquire().await?,
        std::slice::from_ref(event),
        Parking::Respect,
    )
    .await?;
    single(applied)
}

/// Like [`apply`], but also for a parked workflow: how a dead letter is replayed once its cause
/// is fixed. Never returns [`ApplyOutcome::Parked`].
pub async fn replay(pool: &PgPool, event: &RecordedEvent) -> Result<ApplyOutcome, ProjectionError> {
    let applied = apply_events(
        &mut *pool.acquire().await?,
        std::slice::from_ref(event),
        Parking::Ignore,
    )
    .await?;
    single(applied)
}

fn single(applied: Applied) -> Result<ApplyOutcome, ProjectionError> {
    match (applied.outcomes.first(), applied.stopped) {
        (Some(outcome), None) => Ok(*outcome),
        (_, Some(Stopped::Parked)) => Ok(ApplyOutcome::Parked),
        (_, Some(Stopped::Refused(error))) => Err(error),
        (None, None) => unreachable!("a run of one event settles it or stops at it"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parking {
    Respect,
    Ignore,
}

async fn apply_events(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
    parking: Parking,
) -> Result<Applied, ProjectionError> {
    let mut tx = conn.begin().await?;
    let mut batch = Batch::load(&mut tx, events.iter().map(|e| e.aggregate_id)).await?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut stopped = None;
    for event in events {
        match batch.settle(event, parking) {
            Ok(outcome) => outcomes.push(outcome),
            Err(stop) => {
                stopped = Some(stop);
                break;
            }
        }
    }
    batch.write(&mut tx).await?;
    tx.commit().await?;
    Ok(Applied { outcomes, stopped })
}

/// A buffered event, and whether it is in `pending_events` already (rather than buffered by
/// this batch).
type Pending = (RecordedEvent, bool);

/// The read model of the workflows one transaction touches, loaded under their locks, with the
/// changes folded into it so far.
struct Batch {
    /// As loaded, to write only what changed.
    loaded: HashMap<Uuid, WorkflowView>,
    views: HashMap<Uuid, WorkflowView>,
    parked: HashSet<Uuid>,
    pending: HashMap<Uuid, BTreeMap<i64, Pending>>,
    /// Changed rows, in the order they first changed.
    dirty: Vec<Uuid>,
    /// Buffered events applied from `pending_events`, to delete from it.
    drained: Vec<(Uuid, i64)>,
    parks: Vec<Park>,
}

/// How far [`Batch::drain`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// No buffered event follows the stored version any more.
    Complete,
    /// The buffered successor cannot be applied; it stays buffered and the workflow is parked.
    Stuck,
}

impl Batch {
    /// Locks the workflows and reads what the read model holds for them.
    ///
    /// The table lock comes first and is the one any write takes anyway (it never blocks
    /// another projector): a rebuild's switch holds a stronger one, so a batch either finishes
    /// before the switch or starts after it, and never writes a row it read before the switch
    /// replaced it. Advisory locks then serialise appliers of each workflow even before its row
    /// exists, so an early event and its predecessor cannot both miss each other; they are
    /// taken in key order, so two batches sharing workflows never deadlock, and keyed by schema
    /// as well, so a rebuild's shadow never waits for the live projector.
    async fn load(
        conn: &mut PgConnection,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<Self, sqlx::Error> {
        let ids: Vec<Uuid> = ids
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut keys: Vec<i64> = ids
            .iter()
            .map(|id| {
                let (high, low) = id.as_u64_pair();
                (high ^ low) as i64
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let keys: Vec<String> = keys.iter().map(i64::to_string).collect();
        // One round trip for both statements: without parameters a statement string goes over
        // the simple query protocol, and LOCK TABLE takes no parameters anyway. Only integers
        // are formatted in; a function scan over an array yields it in order. (Not
        // `sqlx::raw_sql`: its future is not provably `Send` inside the projector's task.)
        let statements = format!(
            "LOCK TABLE workflows, workflow_steps, pending_events IN ROW EXCLUSIVE MODE;
             SELECT count(pg_advisory_xact_lock(hashtextextended(current_schema(), 0) # key))
             FROM unnest(ARRAY[{}]::bigint[]) AS key",
            keys.join(",")
        );
        conn.execute(statements.as_str()).await?;
        // Each statement from here on takes its own snapshot, so it sees everything committed
        // before the locks were granted.
        let views: HashMap<Uuid, WorkflowView> = queries::workflows_by_id(&mut *conn, &ids)
            .await?
            .into_iter()
            .map(|view| (view.id, view))
            .collect();
        let parked = sqlx::query_scalar(
            "SELECT aggregate_id FROM parked_aggregates WHERE aggregate_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let buffered: Vec<Json<BufferedEvent>> =
            sqlx::query_scalar("SELECT event FROM pending_events WHERE aggregate_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        let mut pending: HashMap<Uuid, BTreeMap<i64, Pending>> = HashMap::new();
        for Json(event) in buffered {
            let event = RecordedEvent::from(event);
            pending
                .entry(event.aggregate_id)
                .or_default()
                .insert(event.version, (event, true));
        }
        Ok(Self {
            loaded: views.clone(),
            views,
            parked,
            pending,
            dirty: Vec::new(),
            drained: Vec::new(),
            parks: Vec::new(),
        })
    }

    fn version(&self, id: Uuid) -> i64 {
        self.views.get(&id).map_or(0, |view| view.version)
    }

    /// Settles one event in memory, or says why the caller has to deal with it.
    fn settle(&mut self, event: &RecordedEvent, parking: Parking) -> Result<ApplyOutcome, Stopped> {
        let id = event.aggregate_id;
        let stored = self.version(id);
        if event.version <= stored {
            return Ok(ApplyOutcome::AlreadyApplied);
        }
        if parking == Parking::Respect && self.parked.contains(&id) {
            return Err(Stopped::Parked);
        }
        if event.version > stored + 1 {
            // A redelivered early event is already buffered; the first copy stays.
            self.pending
                .entry(id)
                .or_default()
                .entry(event.version)
                .or_insert_with(|| (event.clone(), false));
            return Ok(ApplyOutcome::Buffered {
                expected: stored + 1,
                got: event.version,
            });
        }
        self.fold(event)
            .map_err(|problem| Stopped::Refused(contradiction(event, problem)))?;
        self.drain(id);
        Ok(ApplyOutcome::Applied)
    }

    /// Folds the next version of a workflow into its row; on refusal the row is unchanged.
    fn fold(&mut self, event: &RecordedEvent) -> Result<(), &'static str> {
        let id = event.aggregate_id;
        let next = fold::evolve(self.views.get(&id).cloned(), event)?;
        self.views.insert(id, next);
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
        Ok(())
    }

    /// Applies the buffered successors of the workflow's version, in version order.
    ///
    /// A successor that contradicts the read model has no Kafka message left to dead-letter
    /// (its offset was committed when it was buffered), so it stays buffered — nothing is lost
    /// — and the workflow is parked, which routes its later events to the dead-letter topic
    /// instead of piling them up behind it.
    fn drain(&mut self, id: Uuid) -> Drained {
        loop {
            let next_version = self.version(id) + 1;
            let Some((event, stored)) = self
                .pending
                .get_mut(&id)
                .and_then(|queue| queue.remove(&next_version))
            else {
                return Drained::Complete;
            };
            match self.fold(&event) {
                Ok(()) => {
                    if stored {
                        self.drained.push((id, next_version));
                    }
                }
                Err(problem) => {
                    self.parked.insert(id);
                    self.parks.push(Park {
                        aggregate_id: id,
                        tenant_id: Some(event.metadata.tenant_id.clone()),
                        reason: format!(
                            "buffered version {next_version} cannot be applied: {}",
                            contradiction(&event, problem)
                        ),
                        first_event_id: Some(event.event_id),
                    });
                    self.pending
                        .entry(id)
                        .or_default()
                        .insert(next_version, (event, stored));
                    return Drained::Stuck;
                }
            }
        }
    }

    /// Writes every change: each changed row once, each changed step once, the buffer's
    /// additions and removals, and the workflows parked on the way.
    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let rows: Vec<&WorkflowView> = self.dirty.iter().map(|id| &self.views[id]).collect();
        if !rows.is_empty() {
            upsert_workflows(&mut *conn, &rows).await?;
            let steps: Vec<(&WorkflowView, &StepView)> = rows
                .iter()
                .flat_map(|view| {
                    let before = self.loaded.get(&view.id);
                    view.steps
                        .iter()
                        .filter(move |step| {
                            before.is_none_or(|before| !before.steps.contains(step))
                        })
                        .map(move |step| (*view, step))
                })
                .collect();
            upsert_steps(&mut *conn, &steps).await?;
        }
        if !self.drained.is_empty() {
            let (ids, versions): (Vec<Uuid>, Vec<i64>) = self.drained.iter().copied().unzip();
            sqlx::query(
                "DELETE FROM pending_events p USING UNNEST($1::uuid[], $2::bigint[]) AS d (id, version)
                 WHERE p.aggregate_id = d.id AND p.version = d.version",
            )
            .bind(ids)
            .bind(versions)
            .execute(&mut *conn)
            .await?;
        }
        let buffered: Vec<Json<BufferedEvent>> = self
            .pending
            .values()
            .flat_map(BTreeMap::values)
            .filter(|(_, stored)| !stored)
            .map(|(event, _)| Json(BufferedEvent::from(event)))
            .collect();
        if !buffered.is_empty() {
            let ids: Vec<Uuid> = buffered.iter().map(|e| e.aggregate_id).collect();
            let versions: Vec<i64> = buffered.iter().map(|e| e.version).collect();
            sqlx::query(
                "INSERT INTO pending_events (aggregate_id, version, event)
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::jsonb[])
                 ON CONFLICT (aggregate_id, version) DO NOTHING",
            )
            .bind(ids)
            .bind(versions)
            .bind(buffered)
            .execute(&mut *conn)
            .await?;
        }
        for park in &self.parks {
            record_park(&mut *conn, park, 0).await?;
        }
        Ok(())
    }
}

/// Inserts or replaces whole workflow rows, all in one statement.
async fn upsert_workflows(
    conn: &mut PgConnection,
    rows: &[&WorkflowView],
) -> Result<(), sqlx::Error> {
    let step = |n: Option<u32>| n.map(|n| n as i32);
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, title, description, priority, status, applicant_id,
             applicant_name, current_step, current_approver_id, step_count, created_at,
             updated_at, submitted_at, completed_at, last_event_id, version)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::integer[], $10::text[], $11::integer[],
             $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
             $16::uuid[], $17::bigint[])
         ON CONFLICT (id) DO UPDATE SET
             title = EXCLUDED.title, description = EXCLUDED.description,
             priority = EXCLUDED.priority, status = EXCLUDED.status,
             applicant_id = EXCLUDED.applicant_id, applicant_name = EXCLUDED.applicant_name,
             current_step = EXCLUDED.current_step,
             current_approver_id = EXCLUDED.current_approver_id,
             step_count = EXCLUDED.step_count, updated_at = EXCLUDED.updated_at,
             submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
             last_event_id = EXCLUDED.last_event_id, version = EXCLUDED.version",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.tenant_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.description.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.priority.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.applicant_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.applicant_name.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| step(r.current_step))
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.current_approver_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.step_count as i32).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.submitted_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.completed_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.last_event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts or replaces steps, all in one statement.
async fn upsert_steps(
    conn: &mut PgConnection,
    steps: &[(&WorkflowView, &StepView)],
) -> Result<(), sqlx::Error> {
    if steps.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_steps (workflow_id, step_no, tenant_id, approver_id, status,
             decided_by, decided_at, comment)
         SELECT * FROM UNNEST($1::uuid[], $2::integer[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::timestamptz[], $8::text[])
         ON CONFLICT (workflow_id, step_no) DO UPDATE SET
             approver_id = EXCLUDED.approver_id, status = EXCLUDED.status,
             decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at,
             comment = EXCLUDED.comment",
    )
    .bind(steps.iter().map(|(w, _)| w.id).collect::<Vec<_>>())
    .bind(
        steps
            .iter()
            .map(|(_, s)| s.number as i32)
            .collect::<Vec<_>>(),
    )
    .bind(
        steps
            .iter()
            .map(|(w, _)| w.tenant_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        steps
            .iter()
            .map(|(_, s)| s.approver_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        steps
            .iter()
            .map(|(_, s)| s.status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        steps
            .iter()
            .map(|(_, s)| s.decided_by.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(steps.iter().map(|(_, s)| s.decided_at).collect::<Vec<_>>())
    .bind(
        steps
            .iter()
            .map(|(_, s)| s.comment.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies the buffered successors of each workflow's stored version, parking a workflow whose
/// successor cannot be applied. For a rebuild's switch, whose new rows may have buffered
/// events next in line.
pub(crate) async fn drain_buffered(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<(), ProjectionError> {
    let mut batch = Batch::load(&mut *conn, ids.iter().copied()).await?;
    for id in ids {
        batch.drain(*id);
    }
    batch.write(conn).await?;
    Ok(())
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
    let mut batch = Batch::load(&mut tx, [aggregate_id]).await?;
    if !batch.parked.contains(&aggregate_id) {
        return Ok(Unpark::NotParked);
    }
    if batch.views.contains_key(&aggregate_id) && batch.drain(aggregate_id) == Drained::Stuck {
        // Keep what did apply.
        batch.write(&mut tx).await?;
        tx.commit().await?;
        return Ok(Unpark::Stuck);
    }
    batch.write(&mut tx).await?;
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
