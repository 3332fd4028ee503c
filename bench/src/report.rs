//! The report: what ran where, every result, the derived ratios and the targets;
//! printed as Markdown tables and serialised as JSON.

use crate::env::{Machine, PostgresSettings, Versions};
use crate::limit::LimitResult;
use crate::stats::ratio;
use crate::w1::W1Result;
use crate::w2::{LagStart, W2Result};
use crate::w3::{Op, W3Result};
use crate::w4::W4Result;
use crate::w5::W5Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub database_server: String,
    pub kafka_brokers: String,
    pub workloads: String,
    pub concurrency: Vec<usize>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub w2_rates: Vec<f64>,
    pub w2_duration_s: f64,
    pub w2_warmup_s: f64,
    pub w2_observe_per_s: f64,
    pub w3_concurrency: Vec<usize>,
    pub w3_page_size: u32,
    pub w4_events: Vec<u64>,
    pub w4_apply_events: u64,
    pub snapshot_every: u32,
    pub w5_sizes: Vec<usize>,
    pub w6_connections: Vec<usize>,
    pub w6_rate: f64,
    pub w6_duration_s: f64,
    pub w6_warmup_s: f64,
    pub partitions: i32,
    pub service_db_max_connections: u32,
    pub pgbench: Option<String>,
    pub cpu_accounting: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct W1Ratio {
    pub concurrency: usize,
    pub grpc_commands_per_s: Option<f64>,
    pub gateway_commands_per_s: Option<f64>,
    pub limit_tps: Option<f64>,
    /// W1 (gRPC) / W1-limit.
    pub grpc_over_limit: Option<f64>,
    pub gateway_over_limit: Option<f64>,
    /// Gateway p50 / gRPC p50 of commands.
    pub gateway_p50_over_grpc: Option<f64>,
    /// The same workload through cqrs-es + postgres-es in-process.
    pub peer_commands_per_s: Option<f64>,
    /// RingiFlow gRPC / peer in-process.
    pub grpc_over_peer: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayOverhead {
    pub op: Op,
    pub concurrency: usize,
    /// Gateway p50 latency / direct gRPC p50 latency.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Direct gRPC requests/s / gateway requests/s.
    pub throughput: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub goal: &'static str,
    pub measured: Option<f64>,
    pub met: Option<bool>,
    pub note: String,
}

impl Target {
    /// A p99 in milliseconds that must not exceed `bound`.
    fn p99_within(name: &'static str, goal: &'static str, p99: Option<f64>, bound: f64) -> Self {
        Self {
            name,
            goal,
            measured: p99,
            met: p99.map(|p| p <= bound),
            note: format!("p99 {} ms", opt(p99)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub machine: Machine,
    pub versions: Versions,
    pub postgres: PostgresSettings,
    pub settings: Settings,
    pub w1: Vec<W1Result>,
    pub w1_limit: Vec<LimitResult>,
    /// W1's workload through cqrs-es + postgres-es in-process (`via` "peer").
    pub w1_peer: Vec<W1Result>,
    pub w1_ratios: Vec<W1Ratio>,
    pub w2: Vec<W2Result>,
    pub w3: Vec<W3Result>,
    pub w3_gateway_overhead: Vec<GatewayOverhead>,
    pub w4: Option<W4Result>,
    pub w5: Vec<W5Result>,
    pub isolation: Vec<crate::isolation::IsolationResult>,
    pub w6: Vec<crate::w6::W6Result>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

/// The URL without credentials.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v}"))
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{:.0} %", v * 100.0))
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn met(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

impl Report {
    pub fn new(
        machine: Machine,
        versions: Versions,
        postgres: PostgresSettings,
        settings: Settings,
    ) -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine,
            versions,
            postgres,
            settings,
            w1: Vec::new(),
            w1_limit: Vec::new(),
            w1_peer: Vec::new(),
            w1_ratios: Vec::new(),
            w2: Vec::new(),
            w3: Vec::new(),
            w3_gateway_overhead: Vec::new(),
            w4: None,
            w5: Vec::new(),
            isolation: Vec::new(),
            w6: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn w1_cell(&self, via: &str, concurrency: usize) -> Option<&W1Result> {
        self.w1
            .iter()
            .find(|r| r.via == via && r.concurrency == concurrency)
    }

    fn peer_cell(&self, concurrency: usize) -> Option<&W1Result> {
        self.w1_peer.iter().find(|r| r.concurrency == concurrency)
    }

    fn w3_cell(&self, op: Op, via: &str, concurrency: usize) -> Option<&W3Result> {
        self.w3
            .iter()
            .find(|r| r.op == op && r.via == via && r.concurrency == concurrency)
    }

    /// Derives the ratios and checks the targets.
    pub fn finish(&mut self) {
        for &concurrency in &self.settings.concurrency {
            let grpc = self.w1_cell("grpc", concurrency);
            let gateway = self.w1_cell("gateway", concurrency);
            let limit = self
                .w1_limit
                .iter()
                .find(|r| r.concurrency == concurrency)
                .map(|r| r.tps);
            let peer = self.peer_cell(concurrency).map(|r| r.commands_per_s);
            self.w1_ratios.push(W1Ratio {
                concurrency,
                grpc_commands_per_s: grpc.map(|r| r.commands_per_s),
                gateway_commands_per_s: gateway.map(|r| r.commands_per_s),
                limit_tps: limit,
                grpc_over_limit: grpc
                    .zip(limit)
                    .and_then(|(g, l)| ratio(g.commands_per_s, l)),
                gateway_over_limit: gateway
                    .zip(limit)
                    .and_then(|(g, l)| ratio(g.commands_per_s, l)),
                gateway_p50_over_grpc: gateway
                    .zip(grpc)
                    .and_then(|(g, d)| ratio(g.latency.p50_ms, d.latency.p50_ms)),
                peer_commands_per_s: peer,
                grpc_over_peer: grpc.zip(peer).and_then(|(g, p)| ratio(g.commands_per_s, p)),
            });
        }
        for op in [Op::GetWorkflow, Op::ListWorkflows] {
            for &concurrency in &self.settings.w3_concurrency {
                let (Some(grpc), Some(gateway)) = (
                    self.w3_cell(op, "grpc", concurrency),
                    self.w3_cell(op, "gateway", concurrency),
                ) else {
                    continue;
                };
                self.w3_gateway_overhead.push(GatewayOverhead {
                    op,
                    concurrency,
                    p50: ratio(gateway.latency.p50_ms, grpc.latency.p50_ms),
                    p99: ratio(gateway.latency.p99_ms, grpc.latency.p99_ms),
                    throughput: ratio(grpc.requests_per_s, gateway.requests_per_s),
                });
            }
        }

        let at32 = self
            .w1_ratios
            .iter()
            .find(|r| r.concurrency == 32)
            .and_then(|r| r.grpc_over_limit);
        self.targets.push(Target {
            name: "W1 vs W1-limit",
            goal: "W1 (gRPC) ≥ 60 % of W1-limit at concurrency 32",
            measured: at32,
            met: at32.map(|r| r >= 0.60),
            note: format!("ratio {}", percent(at32)),
        });
        let over_peer = self
            .w1_ratios
            .iter()
            .find(|r| r.concurrency == 32)
            .and_then(|r| r.grpc_over_peer);
        self.targets.push(Target {
            name: "W1 vs a peer",
            goal: "RingiFlow over gRPC ≥ 1.0× cqrs-es + postgres-es in-process at concurrency 32",
            measured: over_peer,
            met: over_peer.map(|r| r >= 1.0),
            note: format!("ratio {}", times(over_peer)),
        });
        let w2 = self
            .w2
            .iter()
            .find(|r| (r.offered_per_s - 200.0).abs() < 0.5);
        let p99 = w2
            .filter(|r| r.freshness.count > 0)
            .map(|r| r.freshness.p99_ms);
        self.targets.push(Target::p99_within(
            "W2 freshness",
            "p99 ≤ 50 ms at 200 commands/s",
            p99,
            50.0,
        ));
        // The goal restated for the local broker (Tansu), which this bench runs on.
        self.targets.push(Target::p99_within(
            "W2 freshness, local broker",
            "p99 ≤ 100 ms at 200 commands/s on the local Tansu broker",
            p99,
            100.0,
        ));
        self.targets.push(Target::p99_within(
            "Relay lag",
            "appended → acknowledged by the broker p99 ≤ 20 ms at 200 commands/s",
            w2.and_then(|r| r.relay_lag.as_ref()).map(|lag| lag.p99_ms),
            20.0,
        ));
        let w6 = |connections: usize| self.w6.iter().find(|r| r.connections == connections);
        let p99 = w6(1_000)
            .filter(|r| r.ack_to_push.count > 0)
            .map(|r| r.ack_to_push.p99_ms);
        self.targets.push(Target {
            name: "W6 push latency",
            goal: "acknowledgement → push p99 ≤ 100 ms at 200 commands/s, 1,000 connections",
            measured: p99,
            met: p99.map(|p| p <= 100.0),
            note: format!(
                "p99 {} ms (of which the change feed → push p99 {} ms)",
                opt(p99),
                opt(w6(1_000).map(|r| r.feed_to_push.p99_ms))
            ),
        });
        let held = w6(5_000).map(|r| r.gateway_kib_per_connection);
        self.targets.push(Target {
            name: "W6 connections",
            goal: "≥ 5,000 connections held with < 20 KiB of gateway memory each",
            measured: held,
            met: w6(5_000).map(|r| {
                r.gateway_kib_per_connection < 20.0 && r.closed.is_empty() && r.missing == 0
            }),
            note: format!("{} KiB per connection", opt(held)),
        });
        let worst = self
            .w3_gateway_overhead
            .iter()
            .filter(|o| o.concurrency == 1)
            .filter_map(|o| o.p50.map(|p| (p, o.op)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        self.targets.push(Target {
            name: "Gateway overhead",
            goal: "gateway p50 ≤ 1.3× direct gRPC p50 (W3 reads, concurrency 1, worse of the two)",
            measured: worst.map(|w| w.0),
            met: worst.map(|w| w.0 <= 1.3),
            note: worst.map_or_else(String::new, |(p, op)| {
                format!("{} {}", op.label(), times(Some(p)))
            }),
        });
        // The W4: the largest backlog's catch-up.
        let catch_up = self
            .w4
            .as_ref()
            .and_then(|r| r.catch_up.iter().max_by_key(|c| c.backlog))
            .and_then(|c| c.measured.as_ref().map(|m| (c.backlog, m)));
        let w4 = catch_up.map(|(_, m)| m.events_per_s);
        self.targets.push(Target {
            name: "W4 catch-up",
            goal: "≥ 30,000 events/s",
            measured: w4,
            met: w4.map(|e| e >= 30_000.0),
            note: match catch_up {
                Some((backlog, m)) if m.complete => {
                    format!("{} events/s ({backlog}-event backlog)", opt(w4))
                }
                Some((backlog, m)) => format!(
                    "{} events/s, then stuck: {} of a {backlog}-event backlog applied",
                    opt(w4),
                    m.events
                ),
                None => "–".to_owned(),
            },
        });
        // The same largest backlog, drained by a consumer that applies nothing.
        let largest = self
            .w4
            .as_ref()
            .and_then(|r| r.catch_up.iter().max_by_key(|c| c.backlog));
        let against_limit = largest.and_then(|c| {
            let (projector, bare) = (c.measured.as_ref()?, c.bare.as_ref()?);
            Some((
                ratio(projector.events_per_s, bare.events_per_s)?,
                bare.events_per_s,
            ))
        });
        self.targets.push(Target {
            name: "W4 vs W4-limit",
            goal: "catch-up ≥ 0.8× a bare consumer of the same backlog",
            measured: against_limit.map(|(r, _)| r),
            met: against_limit.map(|(r, _)| r >= 0.8),
            note: against_limit.map_or_else(
                || "–".to_owned(),
                |(r, bare)| format!("{} (bare consumer {bare} events/s)", times(Some(r))),
            ),
        });
        let rebuild = self
            .w4
            .as_ref()
            .and_then(|r| r.rebuild.as_ref())
            .filter(|m| m.complete);
        let rebuilt = rebuild.map(|m| m.events_per_s);
        self.targets.push(Target {
            name: "W4 rebuild",
            goal: "`projector-svc rebuild` ≥ 30,000 events/s from the event store",
            measured: rebuilt,
            met: rebuilt.map(|e| e >= 30_000.0),
            note: rebuild.map_or_else(
                || "–".to_owned(),
                |m| format!("{} events/s ({} events)", opt(rebuilt), m.events),
            ),
        });
        let with_snapshots = self
            .w5
            .iter()
            .find(|r| r.mode == "with snapshots")
            .and_then(|r| r.largest_over_smallest_p50);
        let without = self
            .w5
            .iter()
            .find(|r| r.mode == "without snapshots")
            .and_then(|r| r.largest_over_smallest_p50);
        self.targets.push(Target {
            name: "W5 with snapshots",
            goal: "10,000-event load ≤ 2× a 10-event load",
            measured: with_snapshots,
            met: with_snapshots.map(|r| r <= 2.0),
            note: format!(
                "with snapshots {}; without snapshots {}",
                times(with_snapshots),
                times(without)
            ),
        });
    }

    pub fn print_header(&self) {
        let m = &self.machine;
        let v = &self.versions;
        let p = &self.postgres;
        let s = &self.settings;
        println!(
            "# RingiFlow benchmarks — {} ({})",
            self.started_at,
            if s.quick { "quick" } else { "full" }
        );
        println!();
        println!(
            "- machine: {} cores, {}, {} GiB RAM, kernel {}",
            m.cores, m.cpu_model, m.memory_gib, m.kernel
        );
        println!(
            "- load average at start: {} (a shared machine: other work competes for the cores)",
            m.load_average_at_start
        );
        println!(
            "- versions: {}; {}; commit {}{}; {} build; {}",
            v.postgres,
            v.rustc,
            v.git_commit,
            if v.git_dirty {
                " (with uncommitted changes)"
            } else {
                ""
            },
            v.build_profile,
            v.pgbench.as_deref().unwrap_or("pgbench not found")
        );
        println!(
            "- postgres: fsync={} synchronous_commit={} shared_buffers={} max_connections={} wal_level={}",
            p.fsync, p.synchronous_commit, p.shared_buffers, p.max_connections, p.wal_level
        );
        println!(
            "- settings: server {}, broker {}, {} partitions, service pools {}, workloads {}; W1/W3 {} s warm-up + {} s per cell; \
             W2 {} s warm-up + {} s per rate, observing ≤ {}/s; W4 backlogs {:?} events ({} apply-only); W5 sizes {:?}, snapshot every {}; \
             W6 {:?} connections, {} commands/s, {} s warm-up + {} s",
            s.database_server,
            s.kafka_brokers,
            s.partitions,
            s.service_db_max_connections,
            s.workloads,
            s.warmup_s,
            s.duration_s,
            s.w2_warmup_s,
            s.w2_duration_s,
            s.w2_observe_per_s,
            s.w4_events,
            s.w4_apply_events,
            s.w5_sizes,
            s.snapshot_every,
            s.w6_connections,
            s.w6_rate,
            s.w6_warmup_s,
            s.w6_duration_s
        );
        println!("- cpu accounting: {}", s.cpu_accounting);
        println!();
    }

    pub fn print_tables(&self) {
        if !self.w1.is_empty() || !self.w1_limit.is_empty() {
            println!("## W1 command throughput (create → submit → approve, closed loop) vs W1-limit (pgbench, same SQL)");
            println!();
            println!("| concurrency | gRPC cmd/s | p50 ms | p99 ms | gateway cmd/s | p50 ms | p99 ms | W1-limit tx/s | gRPC / limit | gateway / limit | CPU ms per gRPC cmd: bench process / postgres / broker | read side caught up after (gRPC / gateway) |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
            for r in &self.w1_ratios {
                let grpc = self.w1_cell("grpc", r.concurrency);
                let gateway = self.w1_cell("gateway", r.concurrency);
                let cpu = grpc.and_then(|g| g.cpu_per_command).map_or_else(
                    || "–".to_owned(),
                    |c| {
                        format!(
                            "{} / {} / {}",
                            c.bench_process_ms, c.postgres_ms, c.broker_ms
                        )
                    },
                );
                let drain = |cell: Option<&W1Result>| match cell.and_then(|c| c.drain.as_ref()) {
                    Some(d) if d.complete => format!("{} s", d.seconds),
                    Some(d) => format!("stuck ({} s)", d.seconds),
                    None => "–".to_owned(),
                };
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                    r.concurrency,
                    opt(r.grpc_commands_per_s),
                    grpc.map_or("–".into(), |g| ms(g.latency.p50_ms)),
                    grpc.map_or("–".into(), |g| ms(g.latency.p99_ms)),
                    opt(r.gateway_commands_per_s),
                    gateway.map_or("–".into(), |g| ms(g.latency.p50_ms)),
                    gateway.map_or("–".into(), |g| ms(g.latency.p99_ms)),
                    opt(r.limit_tps),
                    percent(r.grpc_over_limit),
                    percent(r.gateway_over_limit),
                    cpu,
                    drain(grpc),
                    drain(gateway)
                );
            }
            let limit_cpu: Vec<String> = self
                .w1_limit
                .iter()
                .filter_map(|l| {
                    l.cpu_per_transaction.map(|c| {
                        format!(
                            "c={}: postgres {} / pgbench {}",
                            l.concurrency, c.postgres_ms, c.pgbench_ms
                        )
                    })
                })
                .collect();
            if !limit_cpu.is_empty() {
                println!();
                println!("W1-limit CPU ms per transaction: {}", limit_cpu.join("; "));
            }
            let errors: Vec<String> = self
                .w1
                .iter()
                .filter(|r| r.errors > 0)
                .map(|r| {
                    format!(
                        "{} c={}: {} errors, first: {}",
                        r.via,
                        r.concurrency,
                        r.errors,
                        r.first_error.as_deref().unwrap_or("")
                    )
                })
                .collect();
            for e in errors {
                println!("- {e}");
            }
            println!();
        }
        if !self.w1_peer.is_empty() {
            println!("## W1 vs a peer: the same workload through cqrs-es + postgres-es in-process, same PostgreSQL");
            println!();
            println!("| concurrency | RingiFlow gRPC cmd/s | p50 ms | p99 ms | peer in-process cmd/s | p50 ms | p99 ms | RingiFlow gRPC / peer in-process | CPU ms per peer cmd: bench process / postgres |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            for r in &self.w1_ratios {
                let Some(peer) = self.peer_cell(r.concurrency) else {
                    continue;
                };
                let grpc = self.w1_cell("grpc", r.concurrency);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.concurrency,
                    opt(r.grpc_commands_per_s),
                    grpc.map_or("–".into(), |g| ms(g.latency.p50_ms)),
                    grpc.map_or("–".into(), |g| ms(g.latency.p99_ms)),
                    peer.commands_per_s,
                    ms(peer.latency.p50_ms),
                    ms(peer.latency.p99_ms),
                    times(r.grpc_over_peer),
                    peer.cpu_per_command.map_or("–".into(), |c| format!(
                        "{} / {}",
                        c.bench_process_ms, c.postgres_ms
                    )),
                );
            }
            for r in self.w1_peer.iter().filter(|r| r.errors > 0) {
                println!(
                    "- peer c={}: {} errors, first: {}",
                    r.concurrency,
                    r.errors,
                    r.first_error.as_deref().unwrap_or("")
                );
            }
            println!();
        }
        if !self.w2.is_empty() {
            println!("## W2 freshness (open loop, gRPC): acknowledgement → visible in query-svc GetWorkflow");
            println!();
            println!("| offered cmd/s | achieved cmd/s | shed | errors | ack p50 ms | ack p99 ms | fresh p50 ms | fresh p99 ms | fresh max ms | observed | reads | not visible |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in &self.w2 {
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} (every {}) | {} | {} |",
                    r.offered_per_s,
                    r.achieved_per_s,
                    r.shed,
                    r.errors,
                    ms(r.ack_latency.p50_ms),
                    ms(r.ack_latency.p99_ms),
                    ms(r.freshness.p50_ms),
                    ms(r.freshness.p99_ms),
                    ms(r.freshness.max_ms),
                    r.freshness.count,
                    r.observed_every,
                    r.reads,
                    r.not_visible
                );
            }
            for r in &self.w2 {
                if let Some(lag) = &r.relay_lag {
                    println!(
                        "- {}/s: relay lag ({} → published, {} events): p50 {} ms, p99 {} ms, max {} ms; {} unpublished at the end",
                        r.offered_per_s,
                        match lag.from {
                            LagStart::Commit => "appended (its commit)",
                            LagStart::OccurredAt => "appended (the command's time, before its commit)",
                        },
                        lag.events,
                        ms(lag.p50_ms),
                        ms(lag.p99_ms),
                        ms(lag.max_ms),
                        lag.unpublished
                    );
                }
                if let Some(delivery) = &r.delivery {
                    println!(
                        "- {}/s: delivery (appended → received by a bare consumer fetching as the projector does, {} events): p50 {} ms, p99 {} ms, max {} ms",
                        r.offered_per_s,
                        delivery.count,
                        ms(delivery.p50_ms),
                        ms(delivery.p99_ms),
                        ms(delivery.max_ms),
                    );
                }
            }
            for r in self.w2.iter().filter(|r| r.first_error.is_some()) {
                println!(
                    "- {}/s first error: {}",
                    r.offered_per_s,
                    r.first_error.as_deref().unwrap_or("")
                );
            }
            println!();
        }
        if !self.w6.is_empty() {
            println!("## W6 live updates (GraphQL subscriptions over WebSocket): command acknowledged → push received");
            println!();
            println!("| connections | workflows | cmd/s | ack → push p50 ms | p99 ms | max ms | ack → change feed p50 ms | p99 ms | change feed → push p50 ms | p99 ms | pushes | missing | closed | connect s | gateway RSS before / connected / after KiB | KiB per connection |");
            println!(
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"
            );
            for r in &self.w6 {
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:?} | {} | {} / {} / {} | {} |",
                    r.connections,
                    r.workflows,
                    r.achieved_per_s,
                    ms(r.ack_to_push.p50_ms),
                    ms(r.ack_to_push.p99_ms),
                    ms(r.ack_to_push.max_ms),
                    ms(r.ack_to_feed.p50_ms),
                    ms(r.ack_to_feed.p99_ms),
                    ms(r.feed_to_push.p50_ms),
                    ms(r.feed_to_push.p99_ms),
                    r.ack_to_push.count,
                    r.missing,
                    r.closed,
                    r.connect_s,
                    r.gateway_rss_before_kib,
                    r.gateway_rss_connected_kib,
                    r.gateway_rss_after_kib,
                    r.gateway_kib_per_connection
                );
            }
            for r in self.w6.iter().filter(|r| r.first_error.is_some()) {
                println!(
                    "\nW6 at {} connections: {} command errors, first: {}",
                    r.connections,
                    r.errors,
                    r.first_error.as_deref().unwrap_or("")
                );
            }
            println!();
        }
        if !self.isolation.is_empty() {
            println!(
                "## Isolation: another tenant's read latency while one tenant abuses the gateway"
            );
            println!();
            println!("| attackers | victim reads/s | alone p50 ms | p99 ms | under attack p50 ms | p99 ms | p50 × | p99 × | victim errors | abusive sent | refused | throttled (429) | answered | other |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in &self.isolation {
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.attackers,
                    r.victim_rate_per_s,
                    ms(r.alone.p50_ms),
                    ms(r.alone.p99_ms),
                    ms(r.under_attack.p50_ms),
                    ms(r.under_attack.p99_ms),
                    opt(r.p50_ratio),
                    opt(r.p99_ratio),
                    r.victim_errors,
                    r.attack.sent,
                    r.attack.refused,
                    r.attack.throttled,
                    r.attack.answered,
                    r.attack.other
                );
            }
            println!();
        }
        if !self.w3.is_empty() {
            println!("## W3 reads (closed loop): direct gRPC vs GraphQL through the gateway");
            println!();
            println!("| request | concurrency | gRPC req/s | p50 ms | p99 ms | gateway req/s | p50 ms | p99 ms | gateway / gRPC p50 | gRPC / gateway req/s |");
            println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for o in &self.w3_gateway_overhead {
                let grpc = self.w3_cell(o.op, "grpc", o.concurrency);
                let gateway = self.w3_cell(o.op, "gateway", o.concurrency);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    o.op.label(),
                    o.concurrency,
                    grpc.map_or("–".into(), |r| r.requests_per_s.to_string()),
                    grpc.map_or("–".into(), |r| ms(r.latency.p50_ms)),
                    grpc.map_or("–".into(), |r| ms(r.latency.p99_ms)),
                    gateway.map_or("–".into(), |r| r.requests_per_s.to_string()),
                    gateway.map_or("–".into(), |r| ms(r.latency.p50_ms)),
                    gateway.map_or("–".into(), |r| ms(r.latency.p99_ms)),
                    times(o.p50),
                    times(o.throughput)
                );
            }
            for r in self.w3.iter().filter(|r| r.errors > 0) {
                println!(
                    "- {} {} c={}: {} errors, first: {}",
                    r.op.label(),
                    r.via,
                    r.concurrency,
                    r.errors,
                    r.first_error.as_deref().unwrap_or("")
                );
            }
            println!();
        }
        if let Some(r) = &self.w4 {
            println!(
                "## W4 catch-up: a fresh projector applying a backlog (workflows of 9 events)"
            );
            println!();
            println!("| how | backlog | events applied | seconds | events/s | events/s incl. start-up | complete | CPU ms per event: bench process / postgres / broker |");
            println!("|---|---:|---:|---:|---:|---:|---|---|");
            let row = |m: &crate::w4::Measured, backlog: u64| {
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    m.how,
                    backlog,
                    m.events,
                    m.total_s,
                    m.events_per_s,
                    m.events_per_s_including_startup,
                    if m.complete { "yes" } else { "**no**" },
                    m.cpu_per_event.map_or("–".into(), |c| format!(
                        "{} / {} / {}",
                        c.bench_process_ms, c.postgres_ms, c.broker_ms
                    )),
                );
            };
            for c in &r.catch_up {
                match &c.measured {
                    Some(m) => row(m, c.backlog),
                    None => println!(
                        "| catch-up (projector-svc from Kafka) | {} | – | – | – | – | **no** | – |",
                        c.backlog
                    ),
                }
                if let Some(bare) = &c.bare {
                    row(bare, c.backlog);
                }
            }
            for m in [&r.apply_only, &r.rebuild, &r.rebuild_again]
                .into_iter()
                .flatten()
            {
                row(m, m.events);
            }
            println!();
            for c in &r.catch_up {
                if let Some(produce_s) = c.produce_s {
                    println!(
                        "- producing the {}-event backlog ({} partitions) took {produce_s} s",
                        c.backlog, c.partitions
                    );
                }
                if let Some(problem) = &c.problem {
                    println!("- {}-event backlog: {problem}", c.backlog);
                }
            }
            for problem in &r.problems {
                println!("- {problem}");
            }
            println!();
        }
        for w5 in &self.w5 {
            let how = match w5.snapshot_every {
                Some(every) => {
                    format!("load_snapshot + load_after + fold, a snapshot every {every} events")
                }
                None => "load + replay of the whole history".to_owned(),
            };
            println!("## W5 aggregate load ({}): {how}", w5.mode);
            println!();
            println!("| events | events read after snapshot | iterations | total p50 ms | total p99 ms | load p50 ms | fold p50 ms | p50 / smallest |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
            let smallest = w5.sizes.first().map(|s| s.total.p50_ms).unwrap_or(0.0);
            for s in &w5.sizes {
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    s.events,
                    s.events_folded,
                    s.iterations,
                    ms(s.total.p50_ms),
                    ms(s.total.p99_ms),
                    ms(s.load.p50_ms),
                    ms(s.replay.p50_ms),
                    times(ratio(s.total.p50_ms, smallest))
                );
            }
            println!();
        }
        println!("## Targets");
        println!();
        println!("| target | goal | measured | verdict |");
        println!("|---|---|---|---|");
        for t in &self.targets {
            println!("| {} | {} | {} | {} |", t.name, t.goal, t.note, met(t.met));
        }
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("- {note}");
            }
        }
        if self.settings.quick {
            println!();
            println!("- quick mode: short windows and a small W4 backlog; the numbers are a smoke test, not a measurement");
        }
        println!();
    }
}
