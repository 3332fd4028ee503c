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

// The cell's coordinates, each a plain value the caller already has.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    reader: Reader,
    op: Op,
    ids: Arc<Vec<String>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &Targets,
    cores: usize,
) -> W3Result {
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let via = reader.name();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut reader = reader.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let (mut done, mut errors, mut first_error, mut latency) =
                    (0u64, 0u64, None, Latency::default());
                while Instant::now() < end {
                    let started = Instant::now();
                    let outcome = reader.read(op, &ids).await;
                    let finished = Instant::now();
                    match outcome {
                        Ok(()) => {
                            if started >= warm_end {
                                latency.record(finished - started);
                            }
                            if finished >= warm_end && finished <= end {
                                done += 1;
                            }
                        }
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{error:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (done, errors, first_error, latency)
            })
        })
        .collect();
    tokio::time::sleep_until(warm_end.into()).await;
    let before = cpu.sample();
    tokio::time::sleep_until(end.into()).await;
    let after = cpu.sample();
    let (mut requests, mut errors, mut first_error, mut latency) = (0, 0, None, Latency::default());
    for worker in workers {
        let Ok((done, e, first, l)) = worker.await else {
            continue;
        };
        requests += done;
        errors += e;
        first_error = first_error.or(first);
        latency.merge(&l);
    }
    W3Result {
        op,
        via,
        concurrency,
        requests,
        requests_per_s: round1(requests as f64 / duration.as_secs_f64()),
        errors,
        first_error,
        latency: latency.summary(),
        cpu: CpuUse::between(cpu, &before, &after, cores),
    }
}
