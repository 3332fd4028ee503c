//! The projection pipeline: applies events to a read model exactly once and in version order
//! per aggregate, whatever order and however often they arrive, a whole run of events per
//! transaction. Written once for every read model; a read model implements [`Projection`]
//! (load its rows, fold an event into a row, write the changed rows) and the pipeline does the
//! rest: locks, version gating, buffering early events in `pending_events`, parking an
//! aggregate after a dead letter (`parked_aggregates`), and a NOTIFY naming every changed row
//! and its version on commit. Names no context.
#![forbid(unsafe_code)]

mod notify;
pub mod shadow;

pub use notify::{notification, payloads};

use es_kernel::{EventMetadata, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use uuid::Uuid;

/// A read model the pipeline keeps: one row per aggregate of the types it follows, each row
/// knowing the version it reflects.
pub trait Projection: Send + Sync + 'static {
    /// The followed context's events.
    type Event: Clone + Serialize + DeserializeOwned + Send + Sync + Unpin;
    /// What the read model holds for one aggregate.
    type Row: Clone + Send + Sync;
    /// What a fold adds besides the row, written as new rows (e.g. a comment).
    type Added: Send + Sync;

    /// The aggregate types whose events the read model is built from: all a rebuild or verify
    /// reads from the event store, which holds other types too.
    const AGGREGATE_TYPES: &'static [&'static str];
    /// The tables `write` writes, each after the tables it references (a rebuild's switch
    /// empties them in reverse order and fills them in this one), locked before the rows are
    /// read. The first is the row table: one row per aggregate, its id in `id`, its tenant in
    /// `tenant_id`, the version it reflects in `version`; every other table references it with
    /// a foreign key (what `verify` scopes their rows by). A rebuild's shadow copies keep only
    /// the unique indexes, so `load` and `write` should find rows through a key.
    const TABLES: &'static [&'static str];
    /// How `verify` names the rows of some of [`Self::TABLES`] in what it prints: `(table, SQL
    /// text expression over the row `t`)`. A table not listed is named by the values of its
    /// primary key, space-separated.
    const KEYS: &'static [(&'static str, &'static str)] = &[];
    /// Notified on commit with the `id:version` of every changed row (see [`payloads`]).
    const CHANNEL: &'static str;

    fn id(row: &Self::Row) -> Uuid;
    fn version(row: &Self::Row) -> i64;
    fn event_type(event: &Self::Event) -> &'static str;

    /// The rows of `ids` that exist.
    fn load(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;

    /// Folds `event`, the next version of its aggregate, into the row (`None`: not created
    /// yet). An event that cannot follow the row is refused with what is wrong.
    fn fold(
        row: Option<Self::Row>,
        event: &RecordedEvent<Self::Event>,
    ) -> Result<(Self::Row, Option<Self::Added>), &'static str>;

    /// Writes `changed` (each once, as folded) and `added`. `loaded` holds the rows as they were
    /// read, so a write can skip what did not change; `rows` every row the batch holds.
    fn write(
        conn: &mut PgConnection,
        loaded: &HashMap<Uuid, Self::Row>,
        rows: &HashMap<Uuid, Self::Row>,
        changed: &[Uuid],
        added: &[(Uuid, Self::Added)],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event was the next version of its aggregate and is now reflected, together with any
    /// buffered successors it unblocked.
    Applied,
    /// The read model already reflects this version (a redelivery); nothing was written.
    AlreadyApplied,
    /// An earlier version has not been applied yet. The event is kept in `pending_events` and
    /// applied in the same transaction as its predecessor, so early delivery ends in exactly
    /// the state of in-order delivery.
    Buffered { expected: i64, got: i64 },
    /// The aggregate is parked after a dead letter; nothing was written. The event belongs in the
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
            ProjectionError::Database(error) => !refuses_the_data(error),
        }
    }
}

/// Why an aggregate is set aside, as recorded in `parked_aggregates`.
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
    /// A buffered event of the aggregate still cannot be applied.
    Stuck,
    /// More dead letters were produced for the aggregate than the caller has seen.
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
    /// Its aggregate is parked after a dead letter.
    Parked,
    /// It contradicts the read model; always [`ProjectionError::Contradiction`].
    Refused(ProjectionError),
}

/// Applies a run of events in one transaction: each that is exactly the next version of its
/// aggregate is applied, an early one is buffered, a redelivered one is skipped. Stops at the
/// first event that is parked or contradicts the read model, committing everything before it.
/// An `Err` is always a database error; the transaction is then rolled back.
///
/// Costs a fixed number of statements whatever the run's length: the rows of every aggregate
/// the run touches are read at once, the events are folded in memory (see `fold`), and each
/// changed row is written once.
pub async fn apply_batch<P: Projection>(
    conn: &mut PgConnection,
    events: &[RecordedEvent<P::Event>],
) -> Result<Applied, ProjectionError> {
    apply_events::<P>(conn, events, Parking::Respect).await
}

/// Applies `event` if it is exactly the next version of its aggregate, buffers it if it is
/// early, and refuses it if the aggregate is parked.
pub async fn apply<P: Projection>(
    pool: &PgPool,
    event: &RecordedEvent<P::Event>,
) -> Result<ApplyOutcome, ProjectionError> {
    let applied = apply_events::<P>(
        &mut *pool.acquire().await?,
        std::slice::from_ref(event),
        Parking::Respect,
    )
    .await?;
    single(applied)
}

/// Like [`apply`], but also for a parked aggregate: how a dead letter is replayed once its cause
/// is fixed. Never returns [`ApplyOutcome::Parked`].
pub async fn replay<P: Projection>(
    pool: &PgPool,
    event: &RecordedEvent<P::Event>,
) -> Result<ApplyOutcome, ProjectionError> {
    let applied = apply_events::<P>(
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

async fn apply_events<P: Projection>(
    conn: &mut PgConnection,
    events: &[RecordedEvent<P::Event>],
    parking: Parking,
) -> Result<Applied, ProjectionError> {
    let mut tx = conn.begin().await?;
    let mut batch = Batch::<P>::load(&mut tx, events.iter().map(|e| e.aggregate_id)).await?;
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
type Pending<E> = (RecordedEvent<E>, bool);

/// The rows of the aggregates one transaction touches, loaded under their locks, with the
/// changes folded into them so far.
struct Batch<P: Projection> {
    /// As loaded, to write only what changed.
    loaded: HashMap<Uuid, P::Row>,
    rows: HashMap<Uuid, P::Row>,
    parked: HashSet<Uuid>,
    pending: HashMap<Uuid, BTreeMap<i64, Pending<P::Event>>>,
    /// Changed rows, in the order they first changed.
    dirty: Vec<Uuid>,
    /// What the folded events added besides rows, each with its aggregate.
    added: Vec<(Uuid, P::Added)>,
    /// Buffered events applied from `pending_events`, to delete from it.
    drained: Vec<(Uuid, i64)>,
    parks: Vec<Park>,
}

/// How far [`Batch::drain`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// No buffered event follows the stored version any more.
    Complete,
    /// The buffered successor cannot be applied; it stays buffered and the aggregate is parked.
    Stuck,
}

impl<P: Projection> Batch<P> {
    /// Locks the aggregates and reads what the read model holds for them.
    ///
    /// The table lock comes first and is the one any write takes anyway (it never blocks
    /// another projector): a rebuild's switch holds a stronger one, so a batch either finishes
    /// before the switch or starts after it, and never writes a row it read before the switch
    /// replaced it. Advisory locks then serialise appliers of each aggregate even before its row
    /// exists, so an early event and its predecessor cannot both miss each other; they are
    /// taken in key order, so two batches sharing aggregates never deadlock, and keyed by schema
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
            "LOCK TABLE {}, pending_events IN ROW EXCLUSIVE MODE;
             SELECT count(pg_advisory_xact_lock(hashtextextended(current_schema(), 0) # key))
             FROM unnest(ARRAY[{}]::bigint[]) AS key",
            P::TABLES.join(", "),
            keys.join(",")
        );
        conn.execute(statements.as_str()).await?;
        // Each statement from here on takes its own snapshot, so it sees everything committed
        // before the locks were granted.
        let rows: HashMap<Uuid, P::Row> = P::load(&mut *conn, &ids)
            .await?
            .into_iter()
            .map(|row| (P::id(&row), row))
            .collect();
        let parked = sqlx::query_scalar(
            "SELECT aggregate_id FROM parked_aggregates WHERE aggregate_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let buffered: Vec<Json<BufferedEvent<P::Event>>> =
            sqlx::query_scalar("SELECT event FROM pending_events WHERE aggregate_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        let mut pending: HashMap<Uuid, BTreeMap<i64, Pending<P::Event>>> = HashMap::new();
        for Json(event) in buffered {
            let event = RecordedEvent::from(event);
            pending
                .entry(event.aggregate_id)
                .or_default()
                .insert(event.version, (event, true));
        }
        Ok(Self {
            loaded: rows.clone(),
            rows,
            parked,
            pending,
            dirty: Vec::new(),
            added: Vec::new(),
            drained: Vec::new(),
            parks: Vec::new(),
        })
    }

    fn version(&self, id: Uuid) -> i64 {
        self.rows.get(&id).map_or(0, P::version)
    }

    /// Settles one event in memory, or says why the caller has to deal with it.
    fn settle(
        &mut self,
        event: &RecordedEvent<P::Event>,
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
            .map_err(|problem| Stopped::Refused(contradiction::<P>(event, problem)))?;
        self.drain(id);
        Ok(ApplyOutcome::Applied)
    }

    /// Folds the next version of an aggregate into its row; on refusal the row is unchanged.
    fn fold(&mut self, event: &RecordedEvent<P::Event>) -> Result<(), &'static str> {
        let id = event.aggregate_id;
        let (row, added) = P::fold(self.rows.get(&id).cloned(), event)?;
        self.rows.insert(id, row);
        if let Some(added) = added {
            self.added.push((id, added));
        }
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
        Ok(())
    }

    /// Applies the buffered successors of the aggregate's version, in version order.
    ///
    /// A successor that contradicts the read model has no Kafka message left to dead-letter
    /// (its offset was committed when it was buffered), so it stays buffered — nothing is lost
    /// — and the aggregate is parked, which routes its later events to the dead-letter topic
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
                            contradiction::<P>(&event, problem)
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

    /// Writes every change: the read model's (each changed row once, what the folds added),
    /// the NOTIFY naming the changed rows, the buffer's additions and removals, and the
    /// aggregates parked on the way.
    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.dirty.is_empty() {
            // Wakes the readers waiting to see these rows at these versions; delivered on
            // commit, in one round trip however many rows changed.
            let payloads = payloads(
                self.dirty
                    .iter()
                    .map(|id| (*id, P::version(&self.rows[id]))),
            );
            sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                .bind(P::CHANNEL)
                .bind(payloads)
                .execute(&mut *conn)
                .await?;
        }
        P::write(
            &mut *conn,
            &self.loaded,
            &self.rows,
            &self.dirty,
            &self.added,
        )
        .await?;
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
        let buffered: Vec<Json<BufferedEvent<P::Event>>> = self
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

/// Applies the buffered successors of each aggregate's stored version, parking an aggregate whose
/// successor cannot be applied. For a rebuild's switch, whose new rows may have buffered
/// events next in line.
pub async fn drain_buffered<P: Projection>(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<(), ProjectionError> {
    let mut batch = Batch::<P>::load(&mut *conn, ids.iter().copied()).await?;
    for id in ids {
        batch.drain(*id);
    }
    batch.write(conn).await?;
    Ok(())
}

/// Parks an aggregate after one of its events was dead-lettered, counting that dead letter. An
/// already parked aggregate keeps its first reason.
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

/// Lets a parked aggregate's events be applied again, once its dead letters are dealt with: first
/// applies any buffered successors its replayed events unblocked, then unparks it unless one of
/// them still fails or more than `seen_dead_letters` dead letters were produced for it (one may
/// have been produced while the caller was reading the dead-letter topic).
pub async fn unpark<P: Projection>(
    pool: &PgPool,
    aggregate_id: Uuid,
    seen_dead_letters: i64,
) -> Result<Unpark, ProjectionError> {
    let mut tx = pool.begin().await?;
    let mut batch = Batch::<P>::load(&mut tx, [aggregate_id]).await?;
    if !batch.parked.contains(&aggregate_id) {
        return Ok(Unpark::NotParked);
    }
    if batch.rows.contains_key(&aggregate_id) && batch.drain(aggregate_id) == Drained::Stuck {
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

/// How many aggregates are parked: while any is, the read model is knowingly incomplete.
pub async fn parked_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM parked_aggregates")
        .fetch_one(pool)
        .await
}

/// A [`RecordedEvent`] as buffered in `pending_events`. Its own type because the kernel's
/// envelope is not serialisable; the event inside keeps its stored `{"type", "data"}` form.
#[derive(serde::Serialize, serde::Deserialize)]
struct BufferedEvent<E> {
    event_id: Uuid,
    position: i64,
    aggregate_type: String,
    aggregate_id: Uuid,
    version: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
    metadata: EventMetadata,
    event: E,
}

impl<E: Clone> From<&RecordedEvent<E>> for BufferedEvent<E> {
    fn from(event: &RecordedEvent<E>) -> Self {
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

impl<E> From<BufferedEvent<E>> for RecordedEvent<E> {
    fn from(event: BufferedEvent<E>) -> Self {
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

fn contradiction<P: Projection>(
    event: &RecordedEvent<P::Event>,
    problem: &'static str,
) -> ProjectionError {
    ProjectionError::Contradiction {
        event_id: event.event_id,
        event_type: P::event_type(&event.event),
        version: event.version,
        problem,
    }
}

/// Whether the database refused the values themselves (a data exception such as a date out of
/// range, or an integrity violation other than a duplicate key): the event's fault.
pub fn refuses_the_data(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            (code.starts_with("22") || code.starts_with("23")) && code.as_ref() != "23505"
        }),
        _ => false,
    }
}
