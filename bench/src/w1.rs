//! W1: closed-loop command throughput. `concurrency` workers each run create → submit →
//! approve sequences (a one-step route: 1 + 2 + 2 events) back to back, by gRPC, through the
//! gateway, or through the in-process peer (`crate::peer`): whatever [`Runner`] they are given.
//! Commands completing inside the measured window count for throughput; commands started
//! inside it give the latencies.

use crate::client::{Runner, Step};
use crate::cpu::{CpuUse, PerUnit, Targets};
use crate::stats::{round1, Latency, LatencySummary};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct W1Result {
    pub via: &'static str,
    pub concurrency: usize,
    pub commands: u64,
    pub commands_per_s: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latency: LatencySummary,
    pub cpu: CpuUse,
    pub cpu_per_command: Option<PerUnit>,
    /// How long the relay and projector needed afterwards to make the read side catch up.
    pub drain: Option<crate::stack::Drain>,
}

struct Worker {
    completed_in_window: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latency,
}

async fn worker<R: Runner>(mut client: R, id: usize, warm_end: Instant, end: Instant) -> Worker {
    let mut out = Worker {
        completed_in_window: 0,
        errors: 0,
        first_error: None,
        latency: Latency::default(),
    };
    let mut sequence = 0u64;
    'sequences: while Instant::now() < end {
        sequence += 1;
        let title = format!("bench w1 {id}-{sequence}");
        let mut workflow_id = String::new();
        let mut step = Some(Step::Create);
        while let Some(current) = step {
            if Instant::now() >= end {
                break 'sequences;
            }
            let started = Instant::now();
            let outcome = client.command(current, &workflow_id, &title).await;
            let finished = Instant::now();
            match outcome {
                Ok(workflow) => {
                    if started >= warm_end {
                        out.latency.record(finished - started);
                    }
                    if finished >= warm_end && finished <= end {
                        out.completed_in_window += 1;
                    }
                    workflow_id = workflow;
                    step = current.next();
                }
                Err(error) => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("{current:?}: {error:#}"));
                    // Start a fresh workflow; a pause keeps a broken backend from spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue 'sequences;
                }
            }
        }
    }
    out
}

pub async fn run<R: Runner>(
    client: R,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &Targets,
    cores: usize,
) -> W1Result {
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let via = client.name();
    let workers: Vec<_> = (0..concurrency)
        .map(|id| tokio::spawn(worker(client.clone(), id, warm_end, end)))
        .collect();
    tokio::time::sleep_until(warm_end.into()).await;
    let before = cpu.sample();
    tokio::time::sleep_until(end.into()).await;
    let after = cpu.sample();
    let mut latency = Latency::default();
    let (mut commands, mut errors, mut first_error) = (0, 0, None);
    for handle in workers {
        let Ok(w) = handle.await else { continue };
        commands += w.completed_in_window;
        errors += w.errors;
        first_error = first_error.or(w.first_error);
        latency.merge(&w.latency);
    }
    let cpu_use = CpuUse::between(cpu, &before, &after, cores);
    W1Result {
        via,
        concurrency,
        commands,
        commands_per_s: round1(commands as f64 / duration.as_secs_f64()),
        errors,
        first_error,
        latency: latency.summary(),
        cpu_per_command: cpu_use.per_unit_ms(commands as f64),
        cpu: cpu_use,
        drain: None,
    }
}
