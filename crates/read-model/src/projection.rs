//! Applying events to the read model: exactly once and in version order per workflow, whatever
//! order and however often they arrive, a whole run of events per transaction.

use crate::fold::{self, Appended, Folded};
use crate::queries;
use crate::views::{AttachmentView, CommentView, StepView, WorkflowView};
use sqlx::types::Json;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;
use workflow_domain::{Approver, EventMetadata, RecordedEvent, WorkflowEvent};

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
    /// Whether to wait and apply the same event again, rather than set it aside (dead-letter
    /// it) for a person to look at. Set aside are exactly the events to blame themselves: one
    /// that contradicts the read model, or whose values the database refuses (a data exception
    /// such as a date out of range, or an integrity violation).
    ///
    /// Everything else — the database away, overloaded or losing a race, but also a schema that
    /// does not match this build — is waited out: it is not the event's fault, and
    /// dead-lettering would set aside every event of every tenant until someone noticed.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectionError::Contradiction { .. } => false,
            ProjectionError::Database(error) => !crate::refuses_the_data(error),
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
    events: &[RecordedEvent<WorkflowEvent>],
) -> Result<Applied, ProjectionError> {
    apply_events(conn, events, Parking::Respect).await
}

/// Applies `event` if it is exactly the next version of its workflow, buffers it if it is
/// early, and refuses it if the workflow is parked.
pub async fn apply(
    pool: &PgPool,
    event: &RecordedEvent<WorkflowEvent>,
) -> Result<ApplyOutcome, ProjectionError> {
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
pub async fn replay(
    pool: &PgPool,
    event: &RecordedEvent<WorkflowEvent>,
) -> Result<ApplyOutcome, ProjectionError> {
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
    events: &[RecordedEvent<WorkflowEvent>],
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
type Pending = (RecordedEvent<WorkflowEvent>, bool);

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
    /// Discussion entries the folded events added, each with its workflow.
    comments: Vec<(Uuid, CommentView)>,
    attachments: Vec<(Uuid, AttachmentView)>,
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
            "LOCK TABLE workflows, workflow_steps, workflow_comments, workflow_attachments,
                        pending_events
             IN ROW EXCLUSIVE MODE;
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
            comments: Vec::new(),
            attachments: Vec::new(),
            drained: Vec::new(),
            parks: Vec::new(),
        })
    }

    fn version(&self, id: Uuid) -> i64 {
        self.views.get(&id).map_or(0, |view| view.version)
    }

    /// Settles one event in memory, or says why the caller has to deal with it.
    fn settle(
        &mut self,
        event: &RecordedEvent<WorkflowEvent>,
        parking: Parking,
    ) -> Result<ApplyOutcome, Stopped> {
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
    fn fold(&mut self, event: &RecordedEvent<WorkflowEvent>) -> Result<(), &'static str> {
        let id = event.aggregate_id;
        let Folded { view, appended } = fold::evolve(self.views.get(&id).cloned(), event)?;
        self.views.insert(id, view);
        match appended {
            Some(Appended::Comment(comment)) => self.comments.push((id, comment)),
            Some(Appended::Attachment(attachment)) => self.attachments.push((id, attachment)),
            None => {}
        }
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

    /// Writes every change: each changed row once, each changed step once, the new discussion
    /// entries, the buffer's additions and removals, and the workflows parked on the way.
    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let rows: Vec<&WorkflowView> = self.dirty.iter().map(|id| &self.views[id]).collect();
        if !rows.is_empty() {
            // Wakes the readers waiting to see these workflows at these versions (see
            // `freshness`); delivered on commit, in one round trip however many rows changed.
            let payloads = crate::freshness::payloads(rows.iter().map(|row| (row.id, row.version)));
            sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                .bind(crate::freshness::CHANNEL)
                .bind(payloads)
                .execute(&mut *conn)
                .await?;
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
        // After the workflow rows, which the entries reference.
        insert_comments(&mut *conn, &self.with_tenant(&self.comments)).await?;
        insert_attachments(&mut *conn, &self.with_tenant(&self.attachments)).await?;
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

    /// Discussion entries with the tenant of their workflow, which every row carries.
    fn with_tenant<'b, T>(&'b self, entries: &'b [(Uuid, T)]) -> Vec<(Uuid, &'b str, &'b T)> {
        entries
            .iter()
            .map(|(id, entry)| (*id, self.views[id].tenant_id.as_str(), entry))
            .collect()
    }
}

/// One array per column, for UNNEST: `rows` mapped through `value`.
fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// The user and the role column of an approver: exactly one is set.
fn approver_columns(approver: &Approver) -> (Option<&str>, Option<&str>) {
    match approver {
        Approver::User(user) => (Some(user.as_str()), None),
        Approver::Role(role) => (None, Some(role.as_str())),
    }
}

/// Inserts or replaces whole workflow rows, all in one statement.
async fn upsert_workflows(
    conn: &mut PgConnection,
    rows: &[&WorkflowView],
) -> Result<(), sqlx::Error> {
    fn assignee(view: &WorkflowView) -> (Option<&str>, Option<&str>) {
        view.current
            .as_ref()
            .map_or((None, None), |c| approver_columns(&c.assignee))
    }
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, title, description, priority, status, applicant_id,
             applicant_name, definition_id, definition_version, definition_name, due_date,
             current_step, current_approver_id, current_assignee_role, current_due_at,
             current_escalated_at, step_count, comment_count, attachment_count, created_at,
             updated_at, submitted_at, completed_at, last_event_id, version,
             current_assigned_at, first_submitted_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::uuid[], $10::integer[], $11::text[],
             $12::date[], $13::integer[], $14::text[], $15::text[], $16::timestamptz[],
             $17::timestamptz[], $18::integer[], $19::integer[], $20::integer[],
             $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::timestamptz[],
             $25::uuid[], $26::bigint[], $27::timestamptz[], $28::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET
             title = EXCLUDED.title, description = EXCLUDED.description,
             priority = EXCLUDED.priority, status = EXCLUDED.status,
             applicant_id = EXCLUDED.applicant_id, applicant_name = EXCLUDED.applicant_name,
             definition_id = EXCLUDED.definition_id,
             definition_version = EXCLUDED.definition_version,
             definition_name = EXCLUDED.definition_name, due_date = EXCLUDED.due_date,
             current_step = EXCLUDED.current_step,
             current_approver_id = EXCLUDED.current_approver_id,
             current_assignee_role = EXCLUDED.current_assignee_role,
             current_due_at = EXCLUDED.current_due_at,
             current_escalated_at = EXCLUDED.current_escalated_at,
             step_count = EXCLUDED.step_count, comment_count = EXCLUDED.comment_count,
             attachment_count = EXCLUDED.attachment_count, updated_at = EXCLUDED.updated_at,
             submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
             last_event_id = EXCLUDED.last_event_id, version = EXCLUDED.version,
             current_assigned_at = EXCLUDED.current_assigned_at,
             first_submitted_at = EXCLUDED.first_submitted_at",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.tenant_id.as_str()))
    .bind(column(rows, |r| r.title.as_str()))
    .bind(column(rows, |r| r.description.as_str()))
    .bind(column(rows, |r| r.priority.as_str()))
    .bind(column(rows, |r| r.status.as_str()))
    .bind(column(rows, |r| r.applicant_id.as_str()))
    .bind(column(rows, |r| r.applicant_name.as_str()))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.id.as_uuid())
    }))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.version as i32)
    }))
    .bind(column(rows, |r| {
        r.definition.as_ref().map(|d| d.name.as_str())
    }))
    .bind(column(rows, |r| r.due_date))
    .bind(column(rows, |r| r.current.as_ref().map(|c| c.step as i32)))
    .bind(column(rows, |r| assignee(r).0))
    .bind(column(rows, |r| assignee(r).1))
    .bind(column(rows, |r| r.current.as_ref().and_then(|c| c.due_at)))
    .bind(column(rows, |r| {
        r.current.as_ref().and_then(|c| c.escalated_at)
    }))
    .bind(column(rows, |r| r.step_count as i32))
    .bind(column(rows, |r| r.comment_count as i32))
    .bind(column(rows, |r| r.attachment_count as i32))
    .bind(column(rows, |r| r.created_at))
    .bind(column(rows, |r| r.updated_at))
    .bind(column(rows, |r| r.submitted_at))
    .bind(column(rows, |r| r.completed_at))
    .bind(column(rows, |r| r.last_event_id))
    .bind(column(rows, |r| r.version))
    .bind(column(rows, |r| r.current.as_ref().map(|c| c.assigned_at)))
    .bind(column(rows, |r| r.first_submitted_at))
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
        "INSERT INTO workflow_steps (workflow_id, step_no, tenant_id, approver_id, approver_role,
             sla_hours, status, due_at, escalated_at, delegated_by, delegated_to, decided_by,
             decided_at, comment)
         SELECT * FROM UNNEST($1::uuid[], $2::integer[], $3::text[], $4::text[], $5::text[],
             $6::integer[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[],
             $11::text[], $12::text[], $13::timestamptz[], $14::text[])
         ON CONFLICT (workflow_id, step_no) DO UPDATE SET
             approver_id = EXCLUDED.approver_id, approver_role = EXCLUDED.approver_role,
             sla_hours = EXCLUDED.sla_hours, status = EXCLUDED.status,
             due_at = EXCLUDED.due_at, escalated_at = EXCLUDED.escalated_at,
             delegated_by = EXCLUDED.delegated_by, delegated_to = EXCLUDED.delegated_to,
             decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at,
             comment = EXCLUDED.comment",
    )
    .bind(column(steps, |(w, _)| w.id))
    .bind(column(steps, |(_, s)| s.number as i32))
    .bind(column(steps, |(w, _)| w.tenant_id.as_str()))
    .bind(column(steps, |(_, s)| approver_columns(&s.approver).0))
    .bind(column(steps, |(_, s)| approver_columns(&s.approver).1))
    .bind(column(steps, |(_, s)| {
        s.sla_hours.map(|hours| hours as i32)
    }))
    .bind(column(steps, |(_, s)| s.status.as_str()))
    .bind(column(steps, |(_, s)| s.due_at))
    .bind(column(steps, |(_, s)| s.escalated_at))
    .bind(column(steps, |(_, s)| s.delegated_by.as_deref()))
    .bind(column(steps, |(_, s)| s.delegated_to.as_deref()))
    .bind(column(steps, |(_, s)| s.decided_by.as_deref()))
    .bind(column(steps, |(_, s)| s.decided_at))
    .bind(column(steps, |(_, s)| s.comment.as_deref()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new comments, all in one statement. Each is the effect of one event applied once
/// (the version check sees to that), so there is nothing to replace.
async fn insert_comments(
    conn: &mut PgConnection,
    comments: &[(Uuid, &str, &CommentView)],
) -> Result<(), sqlx::Error> {
    if comments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_comments (event_id, workflow_id, version, tenant_id, author_id,
             author_name, body, created_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::timestamptz[])",
    )
    .bind(column(comments, |(_, _, c)| c.id))
    .bind(column(comments, |(workflow, _, _)| *workflow))
    .bind(column(comments, |(_, _, c)| c.version))
    .bind(column(comments, |(_, tenant, _)| *tenant))
    .bind(column(comments, |(_, _, c)| c.author_id.as_str()))
    .bind(column(comments, |(_, _, c)| c.author_name.as_str()))
    .bind(column(comments, |(_, _, c)| c.body.as_str()))
    .bind(column(comments, |(_, _, c)| c.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts new attachments, all in one statement; like [`insert_comments`].
async fn insert_attachments(
    conn: &mut PgConnection,
    attachments: &[(Uuid, &str, &AttachmentView)],
) -> Result<(), sqlx::Error> {
    if attachments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_attachments (event_id, workflow_id, version, tenant_id, file_name,
             media_type, size_bytes, sha256, storage_uri, attached_by, attached_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
             $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])",
    )
    .bind(column(attachments, |(_, _, a)| a.id))
    .bind(column(attachments, |(workflow, _, _)| *workflow))
    .bind(column(attachments, |(_, _, a)| a.version))
    .bind(column(attachments, |(_, tenant, _)| *tenant))
    .bind(column(attachments, |(_, _, a)| a.document.file_name()))
    .bind(column(attachments, |(_, _, a)| a.document.media_type()))
    // At most 1 GiB by the domain's rules, far inside a bigint.
    .bind(column(attachments, |(_, _, a)| {
        a.document.size_bytes() as i64
    }))
    .bind(column(attachments, |(_, _, a)| a.document.sha256()))
    .bind(column(attachments, |(_, _, a)| a.document.storage_uri()))
    .bind(column(attachments, |(_, _, a)| a.attached_by.as_str()))
    .bind(column(attachments, |(_, _, a)| a.attached_at))
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

/// How many workflows are parked: while any is, the read model is knowingly incomplete.
pub async fn parked_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM parked_aggregates")
        .fetch_one(pool)
        .await
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

impl From<&RecordedEvent<WorkflowEvent>> for BufferedEvent {
    fn from(event: &RecordedEvent<WorkflowEvent>) -> Self {
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

impl From<BufferedEvent> for RecordedEvent<WorkflowEvent> {
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

fn contradiction(event: &RecordedEvent<WorkflowEvent>, problem: &'static str) -> ProjectionError {
    ProjectionError::Contradiction {
        event_id: event.event_id,
        event_type: event.event.event_type(),
        version: event.version,
        problem,
    }
}
