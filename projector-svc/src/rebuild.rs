//! `rebuild` and `verify`: the read model rebuilt from the event store in a shadow (see
//! `read_model::shadow`) by the same projection code the live projector runs, then switched
//! to or compared with the live tables.

use anyhow::Context;
use event_store::{EventStore, ScannedEvent};
use projection::{ApplyOutcome, ProjectionError, Stopped};
use read_model::shadow::{self, Scope, Switch};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use std::fmt;
use std::process::ExitCode;
use std::time::Instant;
use uuid::Uuid;
use workflow_domain::{Aggregate, RecordedEvent, Workflow, WorkflowEvent};

/// Events read and applied per shadow transaction.
const BATCH: i64 = 1_000;

/// The aggregate types the read model is built from; the store holds others too (definitions,
/// and whatever later contexts append), which this projection never reads.
const PROJECTED_TYPES: &[&str] = &[Workflow::TYPE];

/// An event of the store the projection cannot apply.
struct Failure {
    aggregate_id: Uuid,
    version: i64,
    event_id: Uuid,
    problem: String,
}

impl Failure {
    fn of(scanned: &ScannedEvent<WorkflowEvent>, problem: String) -> Self {
        Self {
            aggregate_id: scanned.aggregate_id,
            version: scanned.version,
            event_id: scanned.event_id,
            problem,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} (workflow {} version {}) cannot be applied: {}",
            self.event_id, self.aggregate_id, self.version, self.problem
        )
    }
}

/// The shadow, through the connection that owns it, and what went into it so far.
struct Shadow {
    conn: PgConnection,
    scope: Scope,
    applied: u64,
    failures: Vec<Failure>,
}

impl Shadow {
    async fn create(read_database_url: &str, scope: Scope) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect(read_database_url)
            .await
            .context("cannot connect to the read database")?;
        shadow::create(&mut conn)
            .await
            .context("cannot create the shadow")?;
        Ok(Self {
            conn,
            scope,
            applied: 0,
            failures: Vec::new(),
        })
    }

    /// Applies every event in scope, one transaction per page of the store.
    async fn load(&mut self, store: &EventStore) -> anyhow::Result<()> {
        let mut after = (Uuid::nil(), 0);
        loop {
            let batch = store
                .scan(
                    PROJECTED_TYPES,
                    self.scope.tenant_id.as_deref(),
                    self.scope.aggregate_id,
                    after,
                    BATCH,
                )
                .await
                .context("cannot read the event store")?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = (last.aggregate_id, last.version);
            let mut tx = self.conn.begin().await?;
            apply_all(&mut tx, batch, &mut self.applied, &mut self.failures).await?;
            tx.commit().await?;
        }
    }

    async fn remove(mut self) -> anyhow::Result<()> {
        shadow::remove(&mut self.conn)
            .await
            .context("cannot drop the shadow")
    }
}

/// Brings the shadow up to the live tables: loads the events of every workflow it is behind on
/// (see `shadow::behind`) and applies them through `conn`, which writes to the shadow — its own
/// connection, or a switch's locked transaction.
async fn catch_up(
    conn: &mut PgConnection,
    store: &EventStore,
    scope: &Scope,
    applied: &mut u64,
    failures: &mut Vec<Failure>,
) -> anyhow::Result<()> {
    let behind = shadow::behind(conn, scope).await?;
    if behind.is_empty() {
        return Ok(());
    }
    let events = store
        .after_versions(PROJECTED_TYPES, &behind)
        .await
        .context("cannot read the event store")?;
    Ok(apply_all(conn, events, applied, failures).await?)
}

/// Applies events in order, each run of decoded events in one batch; only an error worth
/// retrying (the database is away) stops it.
async fn apply_all(
    conn: &mut PgConnection,
    events: Vec<ScannedEvent<WorkflowEvent>>,
    applied: &mut u64,
    failures: &mut Vec<Failure>,
) -> Result<(), ProjectionError> {
    let mut rest = events.as_slice();
    while let Some(first) = rest.first() {
        let run: Vec<RecordedEvent<WorkflowEvent>> = rest
            .iter()
            .map_while(|scanned| scanned.event.as_ref().ok().cloned())
            .collect();
        if let Err(error) = &first.event {
            failures.push(Failure::of(first, error.to_string()));
            rest = &rest[1..];
            continue;
        }
        let batch = projection::apply_batch::<read_model::Workflows>(conn, &run).await?;
        for (scanned, outcome) in rest.iter().zip(&batch.outcomes) {
            match outcome {
                ApplyOutcome::Applied => *applied += 1,
                // The store has no gaps and the shadow parks nothing, so these mean a version
                // missing from the store.
                outcome => failures.push(Failure::of(
                    scanned,
                    format!("unexpected outcome {outcome:?}"),
                )),
            }
        }
        let settled = batch.outcomes.len();
        rest = &rest[settled..];
        if let Some(stopped) = batch.stopped {
            let problem = match stopped {
                Stopped::Parked => format!("unexpected outcome {:?}", ApplyOutcome::Parked),
                Stopped::Refused(error) => error.to_string(),
            };
            failures.push(Failure::of(&rest[0], problem));
            rest = &rest[1..];
        }
    }
    Ok(())
}

fn rate(events: u64, started: Instant) -> String {
    let seconds = started.elapsed().as_secs_f64();
    format!(
        "{events} events in {seconds:.2} s ({:.0} events/s)",
        events as f64 / seconds.max(f64::EPSILON)
    )
}

/// The event store, read through its upcasting read path; a rebuild only reads, one batch at a
/// time.
async fn event_store(url: &str) -> anyhow::Result<EventStore> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("cannot connect to the event store")?;
    Ok(EventStore::new(pool, &[workflow_domain::REGISTRATION]))
}

/// `projector-svc rebuild`. Refuses to switch if any event cannot be applied: the live read
/// model is left as it is rather than replaced by one known to be incomplete.
pub(crate) async fn rebuild(
    read_database_url: &str,
    event_store_url: &str,
) -> anyhow::Result<ExitCode> {
    let store = event_store(event_store_url).await?;
    let mut shadow = Shadow::create(read_database_url, Scope::default()).await?;
    let result = load_and_switch(&mut shadow, &store).await;
    shadow.remove().await?;
    result
}

async fn load_and_switch(shadow: &mut Shadow, store: &EventStore) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    shadow.load(store).await?;
    println!("loaded {}", rate(shadow.applied, started));
    if !all_applied(&shadow.failures) {
        return Ok(ExitCode::FAILURE);
    }
    let loaded = shadow.applied;
    let mut switch = Switch::begin(&mut shadow.conn)
        .await
        .context("cannot lock the read model")?;
    catch_up(
        switch.shadow(),
        store,
        &shadow.scope,
        &mut shadow.applied,
        &mut shadow.failures,
    )
    .await?;
    if !all_applied(&shadow.failures) {
        // Dropping the switch rolls it back and releases the lock.
        return Ok(ExitCode::FAILURE);
    }
    let switched = switch.commit().await.context("cannot switch")?;
    println!(
        "caught up {} events under the lock; switched {} workflows and {} steps; \
         unparked {}, cleared {} buffered events, applied buffered events of {} workflows",
        shadow.applied - loaded,
        switched.workflows,
        switched.steps,
        switched.unparked,
        switched.pending_cleared,
        switched.pending_drained,
    );
    println!("rebuilt {}", rate(shadow.applied, started));
    Ok(ExitCode::SUCCESS)
}

/// Whether every event applied, so the rebuild may go on; prints the failures if not.
fn all_applied(failures: &[Failure]) -> bool {
    for failure in failures {
        println!("{failure}");
    }
    if !failures.is_empty() {
        println!(
            "rebuild abandoned: {} event(s) cannot be applied; the read model is unchanged",
            failures.len()
        );
    }
    failures.is_empty()
}

/// `projector-svc verify`: one line per difference between the read model and the events in
/// scope (an event that cannot be applied is one, too). Exit status 1 if there is any.
pub(crate) async fn verify(
    read_database_url: &str,
    event_store_url: &str,
    scope: Scope,
) -> anyhow::Result<ExitCode> {
    let store = event_store(event_store_url).await?;
    let mut shadow = Shadow::create(read_database_url, scope).await?;
    let result = load_and_compare(&mut shadow, &store).await;
    shadow.remove().await?;
    result
}

async fn load_and_compare(shadow: &mut Shadow, store: &EventStore) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    shadow.load(store).await?;
    // Not under a lock: the live projector keeps working, and a workflow it got further with
    // since the load is brought level instead of reported.
    catch_up(
        &mut shadow.conn,
        store,
        &shadow.scope,
        &mut shadow.applied,
        &mut shadow.failures,
    )
    .await?;
    let differences = shadow::diff(&mut shadow.conn, &shadow.scope).await?;
    for failure in &shadow.failures {
        println!("{failure}");
    }
    for difference in &differences {
        println!("{difference}");
    }
    let found = shadow.failures.len() + differences.len();
    eprintln!(
        "verify: {found} difference(s); checked {}",
        rate(shadow.applied, started)
    );
    Ok(if found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
