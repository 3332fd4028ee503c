//! W5: aggregate load time against history length. For each size a workflow with exactly that
//! many events is written straight into a fresh event-store database (see `fill`): Created
//! (20-step route), Submitted, then StepAssigned/StepCompleted pairs cycling through the route —
//! a history `replay` accepts at any length. Then the load a command pays runs back to back on a
//! warm cache, two ways, as command-svc's handler does it:
//!
//! * without snapshots: `EventStore::load` + `workflow_domain::replay` of the whole history;
//! * with snapshots: `EventStore::load_snapshot` + `load_after(snapshot version)` + fold the
//!   rest onto the snapshot's state. The store holds the snapshots command-svc would have left
//!   behind at its default `--snapshot-every` (one at every multiple of it), so a size that is a
//!   multiple has no events after its newest snapshot, the best case; the worst case has
//!   `snapshot_every - 1` after it.
//!
//! The rows of one history are stored contiguously (written in one go), the kindest layout for
//! the heap; a real long-lived workflow's rows are spread over many pages.

use crate::client::TENANT;
use crate::stats::{ratio, Latency, LatencySummary};
use anyhow::Context;
use event_store::{EventStore, Snapshot};
use serde::Serialize;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;
use workflow_domain::{
    Aggregate, CommentBody, Description, DisplayName, Priority, Route, Title, UserId, Workflow,
    WorkflowEvent,
};

const ROUTE_STEPS: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct W5Size {
    pub events: usize,
    /// Events read and folded after the snapshot (all of them without snapshots).
    pub events_folded: usize,
    pub iterations: u64,
    /// Everything the handler does before `decide`.
    pub total: LatencySummary,
    /// Reading: snapshot (if any) and events.
    pub load: LatencySummary,
    /// Folding the events read.
    pub replay: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct W5Result {
    pub mode: &'static str,
    pub snapshot_every: Option<i64>,
    pub sizes: Vec<W5Size>,
    /// p50 of the largest history over p50 of the smallest.
    pub largest_over_smallest_p50: Option<f64>,
}

pub fn history(len: usize) -> anyhow::Result<Vec<WorkflowEvent>> {
    let approvers: Vec<String> = (1..=ROUTE_STEPS).map(|i| format!("approver-{i}")).collect();
    let route = Route::of_users("route", approvers.iter().map(String::as_str))?;
    let mut events = vec![
        WorkflowEvent::Created {
            title: Title::parse("title", "bench long history")?,
            description: Description::parse("description", "a workflow with a very long history")?,
            priority: Priority::High,
            applicant_id: UserId::parse("applicant", "applicant")?,
            applicant_name: DisplayName::parse("name", "applicant san")?,
            route,
            definition: None,
            due_date: None,
        },
        WorkflowEvent::Submitted {},
    ];
    // A long discussion is how a real workflow gets thousands of events.
    let author = UserId::parse("author", &approvers[0])?;
    let author_name = DisplayName::parse("name", "approver san")?;
    while events.len() < len {
        events.push(WorkflowEvent::CommentAdded {
            author_id: author.clone(),
            author_name: author_name.clone(),
            body: CommentBody::parse("body", &format!("comment {}", events.len()))?,
        });
    }
    events.truncate(len.max(1));
    Ok(events)
}

/// The snapshots command-svc leaves behind: one at every multiple of `every`.
async fn take_snapshots(
    store: &EventStore,
    aggregate_id: Uuid,
    events: &[WorkflowEvent],
    every: i64,
) -> anyhow::Result<()> {
    let mut state = None;
    for (i, event) in events.iter().enumerate() {
        state = Workflow::evolve(state, event)?;
        let version = i as i64 + 1;
        if version % every == 0 {
            let state = state.clone().context("a created workflow has state")?;
            store
                .save_snapshot(aggregate_id, &Snapshot { version, state })
                .await?;
        }
    }
    Ok(())
}

async fn measure(
    store: &EventStore,
    aggregate_id: Uuid,
    size: usize,
    snapshots: bool,
    min_time: Duration,
) -> anyhow::Result<W5Size> {
    let (mut total, mut load, mut replay) =
        (Latency::default(), Latency::default(), Latency::default());
    let started = Instant::now();
    let mut iterations = 0u64;
    let mut folded = 0;
    while iterations < 5 || (started.elapsed() < min_time && iterations < 100_000) {
        let t0 = Instant::now();
        let snapshot = if snapshots {
            store
                .load_snapshot::<Workflow>(TENANT, aggregate_id)
                .await?
        } else {
            None
        };
        let (from_version, state) = snapshot.map_or((0, None), |s| (s.version, Some(s.state)));
        let history = store
            .history::<workflow_domain::Workflow>(TENANT, aggregate_id, from_version)
            .await?;
        let t1 = Instant::now();
        let state = history.iter().try_fold(state, |state, recorded| {
            Workflow::evolve(state, &recorded.event)
        })?;
        let t2 = Instant::now();
        anyhow::ensure!(state.is_some(), "the W5 history folds into no workflow");
        std::hint::black_box(state);
        folded = history.len();
        load.record(t1 - t0);
        replay.record(t2 - t1);
        total.record(t2 - t0);
        iterations += 1;
    }
    Ok(W5Size {
        events: size,
        events_folded: folded,
        iterations,
        total: total.summary(),
        load: load.summary(),
        replay: replay.summary(),
    })
}

fn result(mode: &'static str, snapshot_every: Option<i64>, sizes: Vec<W5Size>) -> W5Result {
    let largest_over_smallest_p50 = match (sizes.first(), sizes.last()) {
        (Some(small), Some(large)) if sizes.len() > 1 => {
            ratio(large.total.p50_ms, small.total.p50_ms)
        }
        _ => None,
    };
    W5Result {
        mode,
        snapshot_every,
        sizes,
        largest_over_smallest_p50,
    }
}

pub async fn run(
    pool: &PgPool,
    sizes: &[usize],
    snapshot_every: i64,
    min_time: Duration,
) -> anyhow::Result<Vec<W5Result>> {
    let store = EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION]);
    store.migrate().await.context("event store migrations")?;
    let mut aggregates = Vec::new();
    for &size in sizes {
        let events = history(size)?;
        let aggregate_id = Uuid::now_v7();
        let rows: Vec<crate::fill::Row> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (aggregate_id, i as i64 + 1, e))
            .collect();
        crate::fill::insert(pool, &rows).await?;
        if snapshot_every > 0 {
            take_snapshots(&store, aggregate_id, &events, snapshot_every).await?;
        }
        // Warm the cache and check the history is what we think it is.
        let warm = store
            .history::<workflow_domain::Workflow>(TENANT, aggregate_id, 0)
            .await?;
        anyhow::ensure!(
            warm.len() == size,
            "loaded {} events, wrote {size}",
            warm.len()
        );
        workflow_domain::replay::<Workflow>(warm.iter().map(|r| &r.event))
            .context("the W5 history does not replay")?;
        aggregates.push((size, aggregate_id));
    }
    let mut without = Vec::new();
    let mut with = Vec::new();
    for &(size, aggregate_id) in &aggregates {
        without.push(measure(&store, aggregate_id, size, false, min_time).await?);
        if snapshot_every > 0 {
            with.push(measure(&store, aggregate_id, size, true, min_time).await?);
        }
    }
    let mut results = vec![result("without snapshots", None, without)];
    if snapshot_every > 0 {
        results.push(result("with snapshots", Some(snapshot_every), with));
    }
    Ok(results)
}
