//! W2: freshness under a fixed offered load. Commands are issued open-loop at `rate` per second
//! by gRPC (a tick every 1/rate, each command its own task, never waiting for earlier ones):
//! each tick advances a workflow whose previous command was acknowledged (create → submit →
//! approve) or creates a new one. After an acknowledgement at version v, an observer asks
//! query-svc for the workflow at version ≥ v (`GetWorkflow` with `min_version`, the
//! read-your-writes wait every client has: query-svc answers once a projection commit brings
//! the version, or after its bounded wait with what it has, and the observer asks again);
//! freshness is acknowledgement → the answer with version ≥ v. Earlier versions of this
//! workload polled instead, and at 200 observations/s the polls were a fifth of PostgreSQL's
//! work on this machine: the instrument loaded what it measured.
//!
//! The first `warmup` of ticks runs the same way but is not recorded (the relay's producer and
//! the projector's consumer connect and join their group then), nor are its events in the hop
//! figures.
//!
//! Where the time goes, per hop, from the event's `occurred_at` (stamped just before the append):
//! the relay's lag (→ marked published once the broker acknowledged it, from the event store's
//! own timestamps) and delivery (→ received by a bare consumer that fetches as the projector does,
//! in a group of its own); the rest of the freshness is the projector's apply and commit, its
//! NOTIFY and query-svc's answer.
//!
//! Above `observe_per_s` acknowledgements per second only every k-th one is observed.

use crate::client::{Grpc, Step};
use crate::cpu::{CpuUse, Targets};
use crate::stack::Stack;
use crate::stats::{round1, Latency, LatencySummary};
use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// After a failed call, the observer waits this long before asking again.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// An observer gives up after this long (counted as `not_visible`); a hang guard only.
const OBSERVE_BOUND: Duration = Duration::from_secs(60);
/// Ticks are skipped (counted as `shed`) while this many commands are outstanding, so an
/// overloaded system degrades into a visible number instead of unbounded memory.
const MAX_IN_FLIGHT: usize = 2_000;
/// The tap waits at most this long for its partitions before the warm-up starts anyway.
const JOIN_BOUND: Duration = Duration::from_secs(15);
/// After the last observation, how long the tap keeps receiving what is still on its way.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize)]
pub struct W2Result {
    pub offered_per_s: f64,
    pub duration_s: f64,
    pub issued: u64,
    pub acknowledged: u64,
    pub achieved_per_s: f64,
    pub shed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Command latency from the tick's scheduled time (includes any scheduling delay).
    pub ack_latency: LatencySummary,
    /// Acknowledgement → visible through query-svc GetWorkflow.
    pub freshness: LatencySummary,
    pub observed_every: u64,
    pub not_visible: u64,
    /// GetWorkflow calls the observers made.
    pub reads: u64,
    pub cpu: CpuUse,
    /// Where the freshness goes, first hop: event appended (`occurred_at`) → marked published
    /// by the relay after the broker acknowledged it, from the event store's own timestamps.
    pub relay_lag: Option<RelayLag>,
    /// Event appended → received by a bare consumer (relay, broker and fetch).
    pub delivery: Option<LatencySummary>,
    pub warmup_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayLag {
    pub from: LagStart,
    pub events: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub unpublished: i64,
}

/// Where a relay lag starts.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagStart {
    /// The append's commit timestamp, when the server records them.
    Commit,
    /// The command's own time, taken before its append ran.
    OccurredAt,
}

/// Relay lag over the events appended since `since` (the segment's stack is fresh, so: of this
/// run's measured window): from each append's commit, when the server records commit timestamps
/// (`track_commit_timestamp`, on in the local stacks), since the relay can only see an event
/// once it committed; else from the event's `occurred_at`, which also counts the append itself.
pub async fn relay_lag(
    event_store: &sqlx::PgPool,
    since: DateTime<Utc>,
) -> anyhow::Result<RelayLag> {
    let (events, p50, p99, max, unpublished, from_commit): (
        i64,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        i64,
        bool,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE o.published_at IS NOT NULL),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag),
                count(*) FILTER (WHERE o.published_at IS NULL),
                current_setting('track_commit_timestamp')::bool
         FROM (SELECT o.published_at,
                      (EXTRACT(EPOCH FROM (o.published_at - CASE
                           WHEN current_setting('track_commit_timestamp')::bool
                           THEN pg_xact_commit_timestamp(e.xmin)
                           ELSE e.occurred_at END)) * 1000)::float8 AS lag
               FROM outbox o JOIN events e USING (position)
               WHERE e.occurred_at >= $1) AS o",
    )
    .bind(since)
    .fetch_one(event_store)
    .await?;
    let round = |v: Option<f64>| crate::stats::round3(v.unwrap_or(0.0));
    Ok(RelayLag {
        from: if from_commit {
            LagStart::Commit
        } else {
            LagStart::OccurredAt
        },
        events,
        p50_ms: round(p50),
        p99_ms: round(p99),
        max_ms: round(max),
        unpublished,
    })
}

#[derive(Default)]
struct Shared {
    ready: Mutex<VecDeque<(String, Step)>>,
    ack_latency: Mutex<Latency>,
    freshness: Mutex<Latency>,
    first_error: Mutex<Option<String>>,
    acknowledged: AtomicU64,
    errors: AtomicU64,
    not_visible: AtomicU64,
    reads: AtomicU64,
}

async fn observe(
    mut client: Grpc,
    shared: Arc<Shared>,
    workflow_id: String,
    version: i64,
    acked: Instant,
) {
    loop {
        shared.reads.fetch_add(1, Ordering::Relaxed);
        match client.get_version(&workflow_id, Some(version)).await {
            Ok(Some(seen)) if seen >= version => {
                shared.freshness.lock().unwrap().record(acked.elapsed());
                return;
            }
            // Query-svc's wait ran out first: ask again.
            Ok(_) => {}
            Err(error) => {
                shared
                    .first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("GetWorkflow: {error:#}"));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        if acked.elapsed() > OBSERVE_BOUND {
            shared.not_visible.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// Appended → received, for every event a bare consumer of the stack's topic sees that was
/// appended since the window opened.
struct Tap {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Latency>,
}

impl Tap {
    /// Subscribes and waits (bounded) for the partitions to be assigned, so that what it
    /// measures is fetching, not joining the group.
    async fn start(
        stack: &Stack,
        since: Arc<Mutex<Option<DateTime<Utc>>>>,
    ) -> anyhow::Result<Self> {
        let consumer = crate::w4::bare_consumer(
            &stack.kafka,
            stack.fetch_wait_max_ms,
            &format!("ringiflow-bench-tap-{}", Uuid::new_v4()),
        )?;
        let stop = CancellationToken::new();
        let joined = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let (stop, joined) = (stop.clone(), joined.clone());
            async move {
                let mut delivery = Latency::default();
                let mut announced = false;
                loop {
                    if !announced && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                        joined.notify_one();
                        announced = true;
                    }
                    let message = tokio::select! {
                        _ = stop.cancelled() => return delivery,
                        message = consumer.recv() => message,
                        // Polling drives the group join before any message exists.
                        _ = tokio::time::sleep(Duration::from_millis(50)), if !announced => continue,
                    };
                    let received = Utc::now();
                    let Ok(message) = message else { continue };
                    let Ok(event) = messaging::decode::<proto::WorkflowCodec, _>(&message) else {
                        continue;
                    };
                    if since
                        .lock()
                        .unwrap()
                        .is_some_and(|since| event.occurred_at >= since)
                    {
                        if let Ok(elapsed) = (received - event.occurred_at).to_std() {
                            delivery.record(elapsed);
                        }
                    }
                }
            }
        });
        if tokio::time::timeout(JOIN_BOUND, joined.notified())
            .await
            .is_err()
        {
            eprintln!("warning: the W2 tap was not assigned partitions within {JOIN_BOUND:?}");
        }
        Ok(Self { stop, task })
    }

    /// Waits for what is still on its way (bounded), then the figures.
    async fn finish(self) -> Option<LatencySummary> {
        tokio::time::sleep(DRAIN).await;
        self.stop.cancel();
        self.task.await.ok().map(|latency| latency.summary())
    }
}

/// The offered load of one W2 run.
pub struct Load {
    /// Commands per second.
    pub rate: f64,
    /// Run but not recorded, before the window.
    pub warmup: Duration,
    pub duration: Duration,
    /// At most about this many acknowledgements per second are observed.
    pub observe_per_s: f64,
    /// Measure delivery with a bare consumer of the topic.
    pub tap: bool,
}

pub async fn run(stack: &Stack, client: Grpc, load: Load, cpu: &Targets, cores: usize) -> W2Result {
    let Load {
        rate,
        warmup,
        duration,
        observe_per_s,
        tap,
    } = load;
    let window_opens = Arc::new(Mutex::new(None));
    let tap = match tap {
        false => None,
        true => match Tap::start(stack, window_opens.clone()).await {
            Ok(tap) => Some(tap),
            Err(error) => {
                eprintln!("warning: no W2 tap: {error:#}");
                None
            }
        },
    };
    let shared = Arc::new(Shared::default());
    let observed_every = (rate / observe_per_s).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let warmup_ticks = (rate * warmup.as_secs_f64()).round() as u64;
    let total_ticks = warmup_ticks + (rate * duration.as_secs_f64()).round() as u64;
    let mut measured_from = None;
    // Command tasks; each one, once acknowledged, becomes the observer of its own command.
    let mut tasks = JoinSet::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (mut issued, mut shed) = (0u64, 0u64);
    let mut before = cpu.sample();
    let start = Instant::now();
    let mut window_start = start;
    for tick in 0..total_ticks {
        let scheduled = start + interval.mul_f64(tick as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let recorded = tick >= warmup_ticks;
        if tick == warmup_ticks {
            let now = Utc::now();
            *window_opens.lock().unwrap() = Some(now);
            measured_from = Some(now);
            window_start = Instant::now();
            before = cpu.sample();
            (issued, shed) = (0, 0);
        }
        while tasks.try_join_next().is_some() {}
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            shed += 1;
            continue;
        }
        issued += 1;
        let (workflow_id, step) = shared
            .ready
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| (String::new(), Step::Create));
        let mut client = client.clone();
        let shared = shared.clone();
        let in_flight = in_flight.clone();
        let observe_this = recorded && issued % observed_every == 0;
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let title = format!("bench w2 {tick}");
            let outcome = client.command(step, &workflow_id, &title).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(ack) => {
                    let acked = Instant::now();
                    if recorded {
                        shared.ack_latency.lock().unwrap().record(acked - scheduled);
                        shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(next) = step.next() {
                        shared
                            .ready
                            .lock()
                            .unwrap()
                            .push_back((ack.workflow_id.clone(), next));
                    }
                    if observe_this {
                        observe(client, shared, ack.workflow_id, ack.version, acked).await;
                    }
                }
                Err(error) => {
                    // Errors count in the warm-up too: none is expected at all.
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared
                        .first_error
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| format!("{step:?}: {error:#}"));
                }
            }
        });
    }
    let offered_window = window_start.elapsed();
    while tasks.join_next().await.is_some() {}
    let after = cpu.sample();
    let delivery = match tap {
        Some(tap) => tap.finish().await,
        None => None,
    };
    let relay_lag = match measured_from {
        Some(since) => relay_lag(&stack.event_store, since).await.ok(),
        None => None,
    };
    let acknowledged = shared.acknowledged.load(Ordering::Relaxed);
    let ack_latency = shared.ack_latency.lock().unwrap().summary();
    let freshness = shared.freshness.lock().unwrap().summary();
    let first_error = shared.first_error.lock().unwrap().clone();
    W2Result {
        offered_per_s: rate,
        duration_s: round1(offered_window.as_secs_f64()),
        issued,
        acknowledged,
        achieved_per_s: round1(acknowledged as f64 / offered_window.as_secs_f64()),
        shed,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        ack_latency,
        freshness,
        observed_every,
        not_visible: shared.not_visible.load(Ordering::Relaxed),
        reads: shared.reads.load(Ordering::Relaxed),
        cpu: CpuUse::between(cpu, &before, &after, cores),
        relay_lag,
        delivery,
        warmup_s: warmup.as_secs_f64(),
    }
}
