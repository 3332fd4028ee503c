//! W2: freshness under a fixed offered load. Commands are issued open-loop at `rate` per second
//! by gRPC (a tick every 1/rate, each command its own task, never waiting for earlier ones):
//! each tick advances a workflow whose previous command was acknowledged (create → submit →
//! approve) or creates a new one. After an acknowledgement at version v, an observer polls
//! query-svc GetWorkflow until it reports version ≥ v; freshness is acknowledgement → first
//! such answer.
//!
//! Observers poll every `POLL_FLOOR` for the first 10 ms, then every elapsed/10 (so the error is
//! ≤ 10 % plus one round trip), capped at 100 ms. Above `observe_per_s` acknowledgements per second
//! only every k-th one is observed, so the observers' own load on query-svc stays bounded.

use crate::client::{Grpc, Step};
use crate::cpu::{CpuUse, Targets};
use crate::stats::{round1, Latency, LatencySummary};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const POLL_FLOOR: Duration = Duration::from_millis(1);
const POLL_CAP: Duration = Duration::from_millis(100);
/// An observer gives up after this long (counted as `not_visible`); a hang guard only.
const OBSERVE_BOUND: Duration = Duration::from_secs(60);
/// Ticks are skipped (counted as `shed`) while this many commands are outstanding, so an
/// overloaded system degrades into a visible number instead of unbounded memory.
const MAX_IN_FLIGHT: usize = 2_000;

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
    pub polls: u64,
    pub cpu: CpuUse,
    /// Where the freshness goes, first half: event appended (`occurred_at`) → marked published
    /// by the relay after the broker acknowledged it, from the event store's own timestamps.
    pub relay_lag: Option<RelayLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayLag {
    pub events: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub unpublished: i64,
}

/// Relay lag over every event of the store (the segment's stack is fresh, so: of this run).
pub async fn relay_lag(event_store: &sqlx::PgPool) -> anyhow::Result<RelayLag> {
    let (events, p50, p99, max, unpublished): (i64, Option<f64>, Option<f64>, Option<f64>, i64) =
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE o.published_at IS NOT NULL),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag),
                count(*) FILTER (WHERE o.published_at IS NULL)
         FROM (SELECT o.published_at,
                      (EXTRACT(EPOCH FROM (o.published_at - e.occurred_at)) * 1000)::float8 AS lag
               FROM outbox o JOIN events e USING (position)) AS o",
        )
        .fetch_one(event_store)
        .await?;
    let round = |v: Option<f64>| crate::stats::round3(v.unwrap_or(0.0));
    Ok(RelayLag {
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
    polls: AtomicU64,
}

async fn observe(
    mut client: Grpc,
    shared: Arc<Shared>,
    workflow_id: String,
    version: i64,
    acked: Instant,
) {
    loop {
        shared.polls.fetch_add(1, Ordering::Relaxed);
        match client.get_version(&workflow_id).await {
            Ok(Some(seen)) if seen >= version => {
                shared.freshness.lock().unwrap().record(acked.elapsed());
                return;
            }
            Ok(_) => {}
            Err(error) => {
                shared
                    .first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("GetWorkflow: {error:#}"));
            }
        }
        let elapsed = acked.elapsed();
        if elapsed > OBSERVE_BOUND {
            shared.not_visible.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let pause = if elapsed < Duration::from_millis(10) {
            POLL_FLOOR
        } else {
            (elapsed / 10).min(POLL_CAP)
        };
        tokio::time::sleep(pause).await;
    }
}

pub async fn run(
    client: Grpc,
    rate: f64,
    duration: Duration,
    observe_per_s: f64,
    cpu: &Targets,
    cores: usize,
) -> W2Result {
    let shared = Arc::new(Shared::default());
    let observed_every = (rate / observe_per_s).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total_ticks = (rate * duration.as_secs_f64()).round() as u64;
    // Command tasks; each one, once acknowledged, becomes the observer of its own command.
    let mut tasks = JoinSet::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (mut issued, mut shed) = (0u64, 0u64);
    let before = cpu.sample();
    let start = Instant::now();
    for tick in 0..total_ticks {
        let scheduled = start + interval.mul_f64(tick as f64);
        tokio::time::sleep_until(scheduled.into()).await;
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
        let observe_this = issued % observed_every == 0;
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let title = format!("bench w2 {tick}");
            let outcome = client.command(step, &workflow_id, &title).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(ack) => {
                    let acked = Instant::now();
                    shared.ack_latency.lock().unwrap().record(acked - scheduled);
                    shared.acknowledged.fetch_add(1, Ordering::Relaxed);
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
    let offered_window = start.elapsed();
    while tasks.join_next().await.is_some() {}
    let after = cpu.sample();
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
        polls: shared.polls.load(Ordering::Relaxed),
        cpu: CpuUse::between(cpu, &before, &after, cores),
        relay_lag: None,
    }
}
