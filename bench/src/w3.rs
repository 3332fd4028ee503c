//! W3: closed-loop reads. GetWorkflow of random existing workflows and ListWorkflows (first
//! page of 20, all statuses), by gRPC straight to query-svc and by GraphQL through the gateway
//! (asking for every field the gRPC message carries).

use crate::client::{GraphQl, Grpc};
use crate::cpu::{CpuUse, Targets};
use crate::stats::{round1, Latency, LatencySummary};
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PAGE_SIZE: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    GetWorkflow,
    ListWorkflows,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::GetWorkflow => "GetWorkflow",
            Op::ListWorkflows => "ListWorkflows",
        }
    }
}

// One per worker, moved once: boxing the larger client would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Reader {
    Grpc(Grpc),
    Gateway(GraphQl),
}

impl Reader {
    fn name(&self) -> &'static str {
        match self {
            Reader::Grpc(_) => "grpc",
            Reader::Gateway(_) => "gateway",
        }
    }

    async fn read(&mut self, op: Op, ids: &[String]) -> anyhow::Result<()> {
        let id = || &ids[rand::rng().random_range(0..ids.len())];
        match (self, op) {
            (Reader::Grpc(client), Op::GetWorkflow) => {
                client
                    .get_version(id(), None)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("workflow not found"))?;
            }
            (Reader::Grpc(client), Op::ListWorkflows) => {
                client.list(PAGE_SIZE).await?;
            }
            (Reader::Gateway(client), Op::GetWorkflow) => {
                client.get(id()).await?;
            }
            (Reader::Gateway(client), Op::ListWorkflows) => {
                client.list(PAGE_SIZE).await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct W3Result {
    pub op: Op,
    pub via: &'static str,
    pub concurrency: usize,
    pub requests: u64,
    pub requests_per_s: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latency: LatencySummary,
    pub cpu: CpuUse,
}

/// How long one reader runs before the other takes its turn. The two readers of a cell
/// alternate in turns this long, so both meet the same machine: its load drifts over seconds
/// here, and with one reader after the other the ratio of a cell moved more between runs of
/// one build than between builds. Each turn ends with its calls in flight answered, which at
/// c = 32 idles the readers for a call's time (tens of milliseconds) per turn.
const TURN: Duration = Duration::from_millis(500);

/// What one reader did in its turns of a cell.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latency,
    /// Its turns' time, each until its last call was answered.
    busy: Duration,
    cpu: Option<CpuUse>,
}

impl Tally {
    /// Adds the calls `other` made (the time and CPU of turns are counted by the caller).
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latency.merge(&other.latency);
    }
}

/// `readers` reading alternately, a [`TURN`] each, for `warmup` (not recorded) and then until
/// each has read for `duration`: their results, in the same order.
// The cell's coordinates, each a plain value the caller already has.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    readers: [Reader; 2],
    op: Op,
    ids: Arc<Vec<String>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &Targets,
    cores: usize,
) -> [W3Result; 2] {
    let warm_end = Instant::now() + warmup;
    while Instant::now() < warm_end {
        for reader in &readers {
            turn(reader, op, &ids, concurrency).await;
        }
    }
    let mut tallies = [Tally::default(), Tally::default()];
    while tallies.iter().any(|tally| tally.busy < duration) {
        for (reader, tally) in readers.iter().zip(&mut tallies) {
            let before = cpu.sample();
            let started = Instant::now();
            let done = turn(reader, op, &ids, concurrency).await;
            tally.busy += started.elapsed();
            let used = CpuUse::between(cpu, &before, &cpu.sample(), cores);
            tally.cpu = Some(tally.cpu.map_or(used, |sum| sum.plus(&used, cores)));
            tally.add(done);
        }
    }
    let [first, second] = tallies;
    let [first_reader, second_reader] = readers;
    let result = |reader: Reader, tally: Tally| W3Result {
        op,
        via: reader.name(),
        concurrency,
        requests: tally.requests,
        requests_per_s: round1(tally.requests as f64 / tally.busy.as_secs_f64()),
        errors: tally.errors,
        first_error: tally.first_error,
        latency: tally.latency.summary(),
        cpu: tally.cpu.unwrap_or_default(),
    };
    [result(first_reader, first), result(second_reader, second)]
}

/// `concurrency` workers reading in a closed loop for one [`TURN`], then until each one's last
/// call is answered.
async fn turn(reader: &Reader, op: Op, ids: &Arc<Vec<String>>, concurrency: usize) -> Tally {
    let end = Instant::now() + TURN;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut reader = reader.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < end {
                    let started = Instant::now();
                    match reader.read(op, &ids).await {
                        Ok(()) => {
                            tally.latency.record(started.elapsed());
                            tally.requests += 1;
                        }
                        Err(error) => {
                            tally.errors += 1;
                            tally
                                .first_error
                                .get_or_insert_with(|| format!("{error:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut sum = Tally::default();
    for worker in workers {
        let Ok(tally) = worker.await else { continue };
        sum.add(tally);
    }
    sum
}
