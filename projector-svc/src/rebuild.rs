//! `rebuild` and `verify`: a read model rebuilt from the event store in a shadow (see
//! `projection::shadow`) by the same projection code the live projector runs, then switched
//! to or compared with the live tables. One code path for every projection: the events it
//! reads are its `Projection::Event`s of its `Projection::AGGREGATE_TYPES`, the tables it
//! builds its `Projection::TABLES`.

use anyhow::Context;
use es_kernel::RecordedEvent;
use event_store::{EventStore, ScannedEvent};
use projection::shadow::{self, Scope, Switch};
use projection::{ApplyOutcome, Projection, ProjectionError, Stopped};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use std::fmt;
use std::marker::PhantomData;
use std::process::ExitCode;
use std::time::Instant;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Events read from the store per page; each applier applies its share of a page in one
/// transaction.
const BATCH: i64 = 1_000;

/// Connections that fill a shadow beside the one that owns it.
const HELPERS: usize = 1;

/// The read models `rebuild` and `verify` work on, by name (`--projection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProjectionName {
    /// The workflow read model (`workflows`, `workflow_steps`, comments, attachments).
    Workflows,
    /// The System Board's systems and their alerts.
    Systems,
    /// The System Board's vulnerability scans and their findings.
    Scans,
    /// The System Board's tasks.
    Tasks,
    /// Every one of them, one after the other.
    All,
}

impl ProjectionName {
    /// The read models this name stands for, in the order a run takes them.
    fn each(self) -> &'static [ProjectionName] {
        use ProjectionName::*;
        match self {
            All => &[Workflows, Systems, Scans, Tasks],
            Workflows => &[Workflows],
            Systems => &[Systems],
            Scans => &[Scans],
            Tasks => &[Tasks],
        }
    }
}

impl fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        let value = self.to_possible_value().expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// An event of the store the projection cannot apply.
struct Failure {
    /// What the aggregate is, in what is printed (its aggregate type).
    aggregate: &'static str,
    aggregate_id: Uuid,
    version: i64,
    event_id: Uuid,
    problem: String,
}

impl Failure {
    fn of<P: Projection>(scanned: &ScannedEvent<P::Event>, problem: String) -> Self {
        Self {
            aggregate: match P::AGGREGATE_TYPES {
                [one] => one,
                _ => "aggregate",
            },
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
            "event {} ({} {} version {}) cannot be applied: {}",
            self.event_id, self.aggregate, self.aggregate_id, self.version, self.problem
        )
    }
}

/// The shadow of `P`, through the connection that owns it, and what went into it so far.
struct Shadow<P: Projection> {
    conn: PgConnection,
    /// More connections pointed at the shadow, which fill it beside `conn` (see `load`).
    helpers: Vec<PgConnection>,
    scope: Scope,
    applied: u64,
    failures: Vec<Failure>,
    projection: PhantomData<P>,
}

impl<P: Projection> Shadow<P> {
    async fn create(read_database_url: &str, scope: Scope) -> anyhow::Result<Self> {
        let connect = || async {
            PgConnection::connect(read_database_url)
                .await
                .context("cannot connect to the read database")
        };
        let mut conn = connect().await?;
        shadow::create::<P>(&mut conn)
            .await
            .context("cannot create the shadow")?;
        let mut helpers = Vec::with_capacity(HELPERS);
        for _ in 0..HELPERS {
            let mut helper = connect().await?;
            shadow::enter(&mut helper)
                .await
                .context("cannot point a connection at the shadow")?;
            helpers.push(helper);
        }
        Ok(Self {
            conn,
            helpers,
            scope,
            applied: 0,
            failures: Vec::new(),
            projection: PhantomData,
        })
    }

    /// Applies every event in scope. One task pages through the store while the appliers —
    /// `conn` and the helpers — apply what it read: each applier the aggregates that hash to
    /// it, in store order, one transaction per page. All of an aggregate's events go through
    /// one applier, in order, so each applies as it would alone. With one connection reading
    /// and one applying, a rebuild used about one of this machine's two cores.
    async fn load(&mut self, store: &EventStore) -> anyhow::Result<()> {
        let Self {
            conn,
            helpers,
            scope,
            applied,
            failures,
            ..
        } = self;
        let appliers: Vec<&mut PgConnection> =
            std::iter::once(conn).chain(helpers.iter_mut()).collect();
        let (shares, received): (Vec<_>, Vec<_>) = appliers
            .iter()
            .map(|_| mpsc::channel::<Vec<ScannedEvent<P::Event>>>(1))
            .unzip();
        let scope = &*scope;
        let read = async move {
            let mut after = (Uuid::nil(), 0);
            loop {
                let page = store
                    .scan::<P::Event>(
                        P::AGGREGATE_TYPES,
                        scope.tenant_id.as_deref(),
                        scope.aggregate_id,
                        after,
                        BATCH,
                    )
                    .await
                    .context("cannot read the event store")?;
                let Some(last) = page.last() else {
                    return anyhow::Ok(());
                };
                after = (last.aggregate_id, last.version);
                let mut split: Vec<Vec<_>> = shares.iter().map(|_| Vec::new()).collect();
                for event in page {
                    let (_, low) = event.aggregate_id.as_u64_pair();
                    split[(low % shares.len() as u64) as usize].push(event);
                }
                for (share, events) in shares.iter().zip(split) {
                    // A closed channel is an applier that failed; it reports why.
                    if !events.is_empty() && share.send(events).await.is_err() {
                        return Ok(());
                    }
                }
            }
        };
        let apply = appliers
            .into_iter()
            .zip(received)
            .map(|(conn, mut received)| async move {
                let (mut applied, mut failures) = (0, Vec::new());
                while let Some(events) = received.recv().await {
                    let mut tx = conn.begin().await?;
                    apply_all::<P>(&mut tx, events, &mut applied, &mut failures).await?;
                    tx.commit().await?;
                }
                anyhow::Ok((applied, failures))
            });
        let (read, appliers) = tokio::join!(read, futures::future::join_all(apply));
        for outcome in appliers {
            let (count, failed) = outcome?;
            *applied += count;
            failures.extend(failed);
        }
        read?;
        // In store order, as one applier would have found them.
        failures.sort_by_key(|failure| (failure.aggregate_id, failure.version));
        Ok(())
    }

    async fn remove(mut self) -> anyhow::Result<()> {
        for helper in self.helpers.drain(..) {
            // Closed, not dropped: the server logs a dropped connection as an error.
            helper.close().await.context("cannot disconnect a helper")?;
        }
        shadow::remove(&mut self.conn)
            .await
            .context("cannot drop the shadow")
    }
}

/// Brings the shadow up to the live tables: loads the events of every aggregate it is behind
/// on (see `shadow::behind`) and applies them through `conn`, which writes to the shadow — its
/// own connection, or a switch's locked transaction.
async fn catch_up<P: Projection>(
    conn: &mut PgConnection,
    store: &EventStore,
    scope: &Scope,
    applied: &mut u64,
    failures: &mut Vec<Failure>,
) -> anyhow::Result<()> {
    let behind = shadow::behind::<P>(conn, scope).await?;
    if behind.is_empty() {
        return Ok(());
    }
    let events = store
        .after_versions::<P::Event>(P::AGGREGATE_TYPES, &behind)
        .await
        .context("cannot read the event store")?;
    Ok(apply_all::<P>(conn, events, applied, failures).await?)
}

/// Applies events in order, each run of decoded events in one batch; only an error worth
/// retrying (the database is away) stops it.
async fn apply_all<P: Projection>(
    conn: &mut PgConnection,
    events: Vec<ScannedEvent<P::Event>>,
    applied: &mut u64,
    failures: &mut Vec<Failure>,
) -> Result<(), ProjectionError> {
    let mut rest = events.as_slice();
    while let Some(first) = rest.first() {
        let run: Vec<RecordedEvent<P::Event>> = rest
            .iter()
            .map_while(|scanned| scanned.event.as_ref().ok().cloned())
            .collect();
        if let Err(error) = &first.event {
            failures.push(Failure::of::<P>(first, error.to_string()));
            rest = &rest[1..];
            continue;
        }
        let batch = projection::apply_batch::<P>(conn, &run).await?;
        for (scanned, outcome) in rest.iter().zip(&batch.outcomes) {
            match outcome {
                ApplyOutcome::Applied => *applied += 1,
                // The store has no gaps and the shadow parks nothing, so these mean a version
                // missing from the store.
                outcome => failures.push(Failure::of::<P>(
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
            failures.push(Failure::of::<P>(&rest[0], problem));
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

/// The event store, read through its upcasting read path (every context this binary projects);
/// a rebuild only reads, one batch at a time.
async fn event_store(url: &str) -> anyhow::Result<EventStore> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("cannot connect to the event store")?;
    let contexts: Vec<es_kernel::ContextRegistration> =
        std::iter::once(workflow_domain::REGISTRATION)
            .chain(system_board::REGISTRATIONS)
            .collect();
    Ok(EventStore::new(pool, &contexts))
}

/// `projector-svc rebuild`. Refuses to switch a read model if any of its events cannot be
/// applied: it is left as it is rather than replaced by one known to be incomplete. With
/// several read models, each is rebuilt and switched on its own, one after the other.
pub(crate) async fn rebuild(
    read_database_url: &str,
    event_store_url: &str,
    projection: ProjectionName,
) -> anyhow::Result<ExitCode> {
    let store = event_store(event_store_url).await?;
    let each = projection.each();
    let mut status = ExitCode::SUCCESS;
    for name in each {
        if each.len() > 1 {
            println!("{name}:");
        }
        let rebuilt = match name {
            ProjectionName::Workflows => {
                rebuild_one::<read_model::Workflows>(read_database_url, &store).await?
            }
            ProjectionName::Systems => {
                rebuild_one::<board_read_model::Systems>(read_database_url, &store).await?
            }
            ProjectionName::Scans => {
                rebuild_one::<board_read_model::Scans>(read_database_url, &store).await?
            }
            ProjectionName::Tasks => {
                rebuild_one::<board_read_model::Tasks>(read_database_url, &store).await?
            }
            ProjectionName::All => unreachable!("`each` lists single read models"),
        };
        if rebuilt != ExitCode::SUCCESS {
            status = rebuilt;
        }
    }
    Ok(status)
}

async fn rebuild_one<P: Projection>(
    read_database_url: &str,
    store: &EventStore,
) -> anyhow::Result<ExitCode> {
    let mut shadow = Shadow::<P>::create(read_database_url, Scope::default()).await?;
    let result = load_and_switch(&mut shadow, store).await;
    shadow.remove().await?;
    result
}

async fn load_and_switch<P: Projection>(
    shadow: &mut Shadow<P>,
    store: &EventStore,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    shadow.load(store).await?;
    println!("loaded {}", rate(shadow.applied, started));
    if !all_applied(&shadow.failures) {
        return Ok(ExitCode::FAILURE);
    }
    let loaded = shadow.applied;
    let mut switch = Switch::<P>::begin(&mut shadow.conn)
        .await
        .context("cannot lock the read model")?;
    catch_up::<P>(
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
        "caught up {} events under the lock; switched: {switched}; unparked {}, cleared {} \
         buffered events, applied buffered events of {} aggregates",
        shadow.applied - loaded,
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

/// `projector-svc verify`: one line per difference between the read model(s) and the events in
/// scope (an event that cannot be applied is one, too), each naming its table. Exit status 1 if
/// there is any.
pub(crate) async fn verify(
    read_database_url: &str,
    event_store_url: &str,
    projection: ProjectionName,
    scope: Scope,
) -> anyhow::Result<ExitCode> {
    let store = event_store(event_store_url).await?;
    let mut found = 0;
    for name in projection.each() {
        let scope = scope.clone();
        found += match name {
            ProjectionName::Workflows => {
                verify_one::<read_model::Workflows>(*name, read_database_url, &store, scope).await?
            }
            ProjectionName::Systems => {
                verify_one::<board_read_model::Systems>(*name, read_database_url, &store, scope)
                    .await?
            }
            ProjectionName::Scans => {
                verify_one::<board_read_model::Scans>(*name, read_database_url, &store, scope)
                    .await?
            }
            ProjectionName::Tasks => {
                verify_one::<board_read_model::Tasks>(*name, read_database_url, &store, scope)
                    .await?
            }
            ProjectionName::All => unreachable!("`each` lists single read models"),
        };
    }
    Ok(if found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Verifies one read model; how many differences it found.
async fn verify_one<P: Projection>(
    name: ProjectionName,
    read_database_url: &str,
    store: &EventStore,
    scope: Scope,
) -> anyhow::Result<usize> {
    let mut shadow = Shadow::<P>::create(read_database_url, scope).await?;
    let result = load_and_compare(name, &mut shadow, store).await;
    shadow.remove().await?;
    result
}

async fn load_and_compare<P: Projection>(
    name: ProjectionName,
    shadow: &mut Shadow<P>,
    store: &EventStore,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    shadow.load(store).await?;
    // Not under a lock: the live projector keeps working, and an aggregate it got further with
    // since the load is brought level instead of reported.
    catch_up::<P>(
        &mut shadow.conn,
        store,
        &shadow.scope,
        &mut shadow.applied,
        &mut shadow.failures,
    )
    .await?;
    let differences = shadow::diff::<P>(&mut shadow.conn, &shadow.scope).await?;
    for failure in &shadow.failures {
        println!("{failure}");
    }
    for difference in &differences {
        println!("{difference}");
    }
    let found = shadow.failures.len() + differences.len();
    eprintln!(
        "verify {name}: {found} difference(s); checked {}",
        rate(shadow.applied, started)
    );
    Ok(found)
}
