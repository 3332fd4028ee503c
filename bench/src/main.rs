//! `bench`: measures the RingiFlow mesh against the physical limit of the machine it runs on.
//!
//! It starts what it measures itself, in this process, like the end-to-end tests: command-svc
//! (with its relay), projector-svc, query-svc and gateway as libraries on port 0, against fresh
//! `bench_*` databases on the given PostgreSQL server (by default the local stack's, from
//! `scripts/dev up`) and fresh topics on a private Tansu broker per workload segment (the
//! binary and storage engine the local stack uses), or on an existing broker
//! (`--kafka-brokers`). The local stack's own services, databases, topic and broker are never
//! touched; everything the run creates is dropped at the end. It runs the workloads W1–W5 and W1's
//! peer (cqrs-es + postgres-es in-process; see BENCHMARKS.md), prints Markdown tables and writes
//! the full results as JSON.
#![forbid(unsafe_code)]

mod broker;
mod client;
mod cpu;
mod env;
mod fill;
mod isolation;
mod limit;
mod peer;
mod report;
mod stack;
mod stats;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;
mod w6;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use client::{GraphQl, Grpc, Step, Tokens, Via};
use platform::settings::AuthSettings;
use report::{Report, Settings};
use stack::{Infra, Stack};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Workload {
    W1,
    W1Limit,
    W2,
    W3,
    W4,
    W5,
    /// One tenant's abusive requests against another tenant's read latency (issue 9).
    Isolation,
    /// W1's workload through cqrs-es + postgres-es in-process, on the same PostgreSQL.
    Peer,
    /// Live updates: command → push over WebSocket with thousands of subscribers (issue 12).
    W6,
}

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "RingiFlow benchmarks: the mesh against the machine's physical limit"
)]
struct Cli {
    /// PostgreSQL server to create the run's fresh databases on (any database name; it is
    /// replaced). Default: the local stack of `scripts/dev up`.
    #[arg(
        long,
        env = "RINGIFLOW_BENCH_DATABASE_URL",
        default_value = "postgres://ringiflow@127.0.0.1:55432/postgres"
    )]
    database_url: String,
    /// Use this Kafka-protocol broker (e.g. the local stack's, 127.0.0.1:9092) for every segment
    /// instead of a private Tansu broker per segment.
    #[arg(long, env = "RINGIFLOW_BENCH_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Smoke run: short windows and a small W4 backlog. Numbers are indicative only.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (comma separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// W1 / W1-limit / peer concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrency: Vec<usize>,
    /// Seconds measured per W1 / W1-limit / peer / W3 cell [default: 10, quick 2].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of warm-up before each W1 / peer / W3 cell [default: 2, quick 0.5].
    #[arg(long)]
    warmup: Option<f64>,
    /// W2 offered loads, commands per second.
    #[arg(long, value_delimiter = ',', default_value = "200,1000")]
    w2_rates: Vec<f64>,
    /// Seconds of offered load per W2 rate [default: 20, quick 3].
    #[arg(long)]
    w2_duration: Option<f64>,
    /// Seconds of the same load before each W2 window, not recorded [default: 5, quick 2].
    #[arg(long)]
    w2_warmup: Option<f64>,
    /// W2 observes at most about this many acknowledgements per second (every k-th above).
    #[arg(long, default_value_t = 200.0)]
    w2_observe_per_s: f64,
    /// W2 without its delivery tap: no per-hop delivery figures, and no second consumer of
    /// the topic taking broker CPU the production system would not spend.
    #[arg(long)]
    w2_no_tap: bool,
    /// W6 WebSocket connections held, one run each (mind `ulimit -n`: the benchmark holds one
    /// descriptor per connection, and so does the gateway process).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    w6_connections: Vec<usize>,
    /// W6 commands per second (comments on the subscribed workflows).
    #[arg(long, default_value_t = 200.0)]
    w6_rate: f64,
    /// Seconds of W6 load measured per run [default: 20, quick 5].
    #[arg(long)]
    w6_duration: Option<f64>,
    /// Seconds of the same load before each W6 window, not recorded [default: 5, quick 2].
    #[arg(long)]
    w6_warmup: Option<f64>,
    /// W3 concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    w3_concurrency: Vec<usize>,
    /// W4 backlog sizes in events, each caught up on a fresh broker [default: 5000,200000;
    /// quick 2000,20000]. The largest is also rebuilt.
    #[arg(long, value_delimiter = ',')]
    w4_events: Vec<u64>,
    /// W4 "apply only" event count [default: 50000, quick 5000].
    #[arg(long)]
    w4_apply_events: Option<u64>,
    /// W5 history lengths.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    w5_sizes: Vec<usize>,
    /// W5 "with snapshots" reads the snapshots command-svc takes every this many events (its
    /// `--snapshot-every` default); 0 measures without snapshots only.
    #[arg(long, default_value_t = 100)]
    snapshot_every: u32,
    /// Partitions of the run's topics (the local stack's topic has 3).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Pool size of the in-process command-svc and query-svc (their default is 16), and of the
    /// peer.
    #[arg(long, default_value_t = 16)]
    db_max_connections: u32,
    /// pgbench binary [default: on PATH, else /usr/lib/postgresql/<newest>/bin/pgbench].
    #[arg(long)]
    pgbench: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/latest.json"))]
    out: PathBuf,
    /// Keep the run's databases and topics (for inspection) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Signing settings of the in-process services (the same env vars as the services).
    #[command(flatten)]
    auth: AuthSettings,
}

impl Cli {
    fn runs(&self, workload: Workload) -> bool {
        self.only.is_empty() || self.only.contains(&workload)
    }

    fn secs(value: Option<f64>, full: f64, quick: f64, is_quick: bool) -> Duration {
        Duration::from_secs_f64(value.unwrap_or(if is_quick { quick } else { full }))
    }
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(bench(cli));
    // Exit without running the remaining destructors: a Kafka client whose broker died can
    // block forever in librdkafka's destroy, and everything worth keeping is written already.
    match outcome {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        platform::telemetry::init(&platform::settings::TelemetrySettings {
            log_format: platform::settings::LogFormat::Pretty,
        });
    }
    let infra = Infra::new(
        cli.database_url.clone(),
        cli.kafka_brokers.clone(),
        broker::tansu_binary(),
        cli.partitions,
        cli.db_max_connections,
    );
    // Ctrl-C still drops what the run created.
    let outcome = tokio::select! {
        outcome = run(&cli, &infra) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if cli.keep {
        eprintln!(
            "keeping the run's databases (bench_*_{id}) and topics (ringiflow.bench.*.{id})",
            id = infra.run_id
        );
    } else {
        infra.cleanup().await;
    }
    // Only empty: the logs of brokers that panicked stay.
    let _ =
        std::fs::remove_dir(std::env::temp_dir().join(format!("ringiflow-bench-{}", infra.run_id)));
    outcome
}

async fn run(cli: &Cli, infra: &Infra) -> anyhow::Result<()> {
    let quick = cli.quick;
    let duration = Cli::secs(cli.duration, 10.0, 2.0, quick);
    let warmup = Cli::secs(cli.warmup, 2.0, 0.5, quick);
    let w2_duration = Cli::secs(cli.w2_duration, 20.0, 3.0, quick);
    let w2_warmup = Cli::secs(cli.w2_warmup, 5.0, 2.0, quick);
    let w6_duration = Cli::secs(cli.w6_duration, 20.0, 5.0, quick);
    let w6_warmup = Cli::secs(cli.w6_warmup, 5.0, 2.0, quick);
    let w4_backlogs = if cli.w4_events.is_empty() {
        if quick {
            vec![2_000, 20_000]
        } else {
            vec![5_000, 200_000]
        }
    } else {
        cli.w4_events.clone()
    };
    let w4_apply_events = cli
        .w4_apply_events
        .unwrap_or(if quick { 5_000 } else { 50_000 });
    let w5_min_time = Duration::from_secs_f64(if quick { 0.3 } else { 3.0 });
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let pgbench = limit::find_pgbench(cli.pgbench.as_deref());

    // The machine, the versions and the settings come first, so a failed run still says where.
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&cli.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (start the local stack with `scripts/dev up`)",
                report::redact(&cli.database_url)
            )
        })?;
    let backend_pid: Option<i32> = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&admin)
        .await
        .ok();
    let broker_port = cli
        .kafka_brokers
        .as_deref()
        .and_then(|b| b.split(',').next())
        .and_then(|b| b.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let cpu = cpu::Targets::discover(backend_pid, broker_port);
    let machine = env::machine();
    let cores = machine.cores;
    let mut report = Report::new(
        machine,
        env::versions(&admin, &workspace, pgbench.as_deref()).await,
        env::postgres_settings(&admin).await,
        Settings {
            quick,
            database_server: report::redact(&cli.database_url),
            kafka_brokers: match (&cli.kafka_brokers, &infra.tansu) {
                (Some(brokers), _) => brokers.clone(),
                (None, Some(tansu)) => format!("a private broker per segment: {} (SQLite storage)", tansu.display()),
                (None, None) => "none: no Tansu binary found and no --kafka-brokers".to_owned(),
            },
            workloads: if cli.only.is_empty() { "all".to_owned() } else { format!("{:?}", cli.only) },
            concurrency: cli.concurrency.clone(),
            warmup_s: warmup.as_secs_f64(),
            duration_s: duration.as_secs_f64(),
            w2_rates: cli.w2_rates.clone(),
            w2_duration_s: w2_duration.as_secs_f64(),
            w2_warmup_s: w2_warmup.as_secs_f64(),
            w2_observe_per_s: cli.w2_observe_per_s,
            w3_concurrency: cli.w3_concurrency.clone(),
            w3_page_size: w3::PAGE_SIZE,
            w4_events: w4_backlogs.clone(),
            w4_apply_events,
            snapshot_every: cli.snapshot_every,
            w5_sizes: cli.w5_sizes.clone(),
            w6_connections: cli.w6_connections.clone(),
            w6_rate: cli.w6_rate,
            w6_duration_s: w6_duration.as_secs_f64(),
            w6_warmup_s: w6_warmup.as_secs_f64(),
            partitions: cli.partitions,
            service_db_max_connections: cli.db_max_connections,
            pgbench: pgbench.as_ref().map(|p| p.display().to_string()),
            cpu_accounting: format!(
                "postmaster pid {:?}, broker pid {} (from /proc; None = not on this machine, not counted)",
                cpu.postmaster,
                if cli.kafka_brokers.is_some() { format!("{:?}", cpu.broker) } else { "of each private broker".to_owned() }
            ),
        },
    );
    admin.close().await;
    report.print_header();

    if cli.runs(Workload::W5) {
        eprintln!("==> W5 aggregate load (sizes {:?})", cli.w5_sizes);
        let (_, pool) = infra.fresh_database("aggload", 4).await?;
        match w5::run(&pool, &cli.w5_sizes, cli.snapshot_every.into(), w5_min_time).await {
            Ok(results) => report.w5.extend(results),
            Err(error) => report.notes.push(format!("W5 failed: {error:#}")),
        }
        pool.close().await;
    }

    let tokens = Tokens::issue(&cli.auth.jwt()?);
    let limit_db = if cli.runs(Workload::W1Limit) {
        match &pgbench {
            Some(_) => {
                let (url, pool) = infra.fresh_database("limit", 1).await?;
                event_store::EventStore::new(pool.clone(), &[workflow_domain::REGISTRATION])
                    .migrate()
                    .await
                    .context("migrate the W1-limit database")?;
                pool.close().await;
                Some(url)
            }
            None => {
                report.notes.push("W1-limit skipped: pgbench not found (install postgresql-contrib or pass --pgbench)".into());
                None
            }
        }
    } else {
        None
    };
    let scripts_dir = std::env::temp_dir()
        .join(format!("ringiflow-bench-{}", infra.run_id))
        .join("pgbench");
    let scripts = limit::write_scripts(&scripts_dir)?;

    // Segments, each on a fresh stack (and a fresh private broker): what needs a healthy read
    // side first, W1, W1-limit and the peer one concurrency at a time, interleaved so that each
    // ratio compares neighbours in time.
    let mut segments = Vec::new();
    if cli.runs(Workload::W2) {
        segments.extend(cli.w2_rates.iter().map(|&rate| Segment::W2(rate)));
    }
    if cli.runs(Workload::W3) {
        segments.push(Segment::W3);
    }
    if cli.runs(Workload::Isolation) {
        segments.push(Segment::Isolation);
    }
    if cli.runs(Workload::W6) {
        segments.extend(cli.w6_connections.iter().map(|&n| Segment::W6(n)));
    }
    for &concurrency in &cli.concurrency {
        if cli.runs(Workload::W1) || limit_db.is_some() {
            segments.push(Segment::W1(concurrency));
        }
        if cli.runs(Workload::Peer) {
            segments.push(Segment::Peer(concurrency));
        }
    }
    let plan = Plan {
        duration,
        warmup,
        w2_duration,
        w2_warmup,
        w6_duration,
        w6_warmup,
        cores,
    };
    for segment in segments {
        let name = segment.name();
        // W1-limit alone needs no stack.
        if matches!(segment, Segment::W1(_)) && !cli.runs(Workload::W1) {
            if let Segment::W1(concurrency) = segment {
                run_limit(
                    &mut report,
                    &limit_db,
                    &pgbench,
                    &scripts,
                    concurrency,
                    &plan,
                    &cpu,
                )
                .await;
            }
            continue;
        }
        // Nor does the peer: it is its own stack, in this process.
        if let Segment::Peer(concurrency) = segment {
            run_peer(
                &mut report,
                infra,
                concurrency,
                cli.db_max_connections,
                &plan,
                &cpu,
            )
            .await;
            continue;
        }
        let broker = match infra.broker(&name).await {
            Ok(broker) => broker,
            Err(error) => {
                report
                    .notes
                    .push(format!("{name} skipped: no broker: {error:#}"));
                continue;
            }
        };
        let cpu = cpu.with_broker(broker.own.as_ref().map(broker::OwnBroker::pid));
        let outcome = async {
            eprintln!(
                "==> {name}: starting command-svc, projector-svc, query-svc and gateway in-process"
            );
            let stack = Stack::start(infra, &broker.addr).await?;
            let grpc = Grpc::new(&stack.command_url, &stack.query_url, &tokens)?;
            let graphql = GraphQl::new(&stack.gateway_url, &tokens)?;
            let outcome = run_segment(
                segment,
                &stack,
                &grpc,
                &graphql,
                &mut report,
                cli,
                &plan,
                &cpu,
                &limit_db,
                &pgbench,
                &scripts,
            )
            .await;
            // Stopped before its broker: a producer still sending to a dying broker is noise.
            stack.stop().await;
            outcome
        }
        .await;
        if let Err(error) = outcome {
            eprintln!("error: {name}: {error:#}");
            report
                .notes
                .push(format!("{name} stopped early: {error:#}"));
        }
        if let Some(panic) = broker.release(cli.keep) {
            eprintln!("warning: the broker of {name} panicked: {panic}");
            report
                .notes
                .push(format!("the broker of {name} panicked: {panic}"));
        }
    }
    let _ = std::fs::remove_dir_all(&scripts_dir);

    if cli.runs(Workload::W4) {
        let mut w4 = w4::W4Result::default();
        for &events in &w4_backlogs {
            eprintln!("==> W4 catch-up of a {events}-event backlog");
            match infra.broker(&format!("w4-{events}")).await {
                Ok(broker) => {
                    let cpu = cpu.with_broker(broker.own.as_ref().map(broker::OwnBroker::pid));
                    w4.catch_up
                        .push(w4::run_catch_up(infra, &broker.addr, events, &cpu, cores).await);
                    if let Some(panic) = broker.release(cli.keep) {
                        report.notes.push(format!(
                            "the broker of W4 ({events} events) panicked: {panic}"
                        ));
                    }
                }
                Err(error) => w4.problems.push(format!(
                    "catch-up of {events} skipped: no broker: {error:#}"
                )),
            }
        }
        let largest = w4_backlogs.iter().copied().max().unwrap_or(0);
        eprintln!("==> W4 apply only and rebuild");
        w4::run_offline(infra, largest, w4_apply_events, &cpu, cores, &mut w4).await;
        report.w4 = Some(w4);
    }

    report.finish();
    report.print_tables();
    if let Some(dir) = cli.out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", cli.out.display()))?;
    eprintln!("results written to {}", cli.out.display());
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    W2(f64),
    W3,
    Isolation,
    W6(usize),
    W1(usize),
    Peer(usize),
}

impl Segment {
    fn name(self) -> String {
        match self {
            Segment::W2(rate) => format!("w2-{rate}"),
            Segment::W3 => "w3".to_owned(),
            Segment::Isolation => "isolation".to_owned(),
            Segment::W6(connections) => format!("w6-{connections}"),
            Segment::W1(concurrency) => format!("w1-c{concurrency}"),
            Segment::Peer(concurrency) => format!("peer-c{concurrency}"),
        }
    }
}

struct Plan {
    duration: Duration,
    warmup: Duration,
    w2_duration: Duration,
    w2_warmup: Duration,
    w6_duration: Duration,
    w6_warmup: Duration,
    cores: usize,
}

async fn run_limit(
    report: &mut Report,
    limit_db: &Option<String>,
    pgbench: &Option<PathBuf>,
    scripts: &[PathBuf],
    concurrency: usize,
    plan: &Plan,
    cpu: &cpu::Targets,
) {
    if let (Some(url), Some(pgbench)) = (limit_db, pgbench) {
        eprintln!("==> W1-limit   concurrency {concurrency} (pgbench)");
        match limit::run(
            pgbench,
            scripts,
            url,
            concurrency,
            plan.duration,
            cpu,
            plan.cores,
        )
        .await
        {
            Ok(result) => report.w1_limit.push(result),
            Err(error) => report.notes.push(format!(
                "W1-limit at concurrency {concurrency} failed: {error:#}"
            )),
        }
    }
}

/// W1's workload through the peer (cqrs-es + postgres-es, in-process) on a fresh database, with
/// a pool as large as command-svc's.
async fn run_peer(
    report: &mut Report,
    infra: &Infra,
    concurrency: usize,
    pool_size: u32,
    plan: &Plan,
    cpu: &cpu::Targets,
) {
    eprintln!("==> peer       concurrency {concurrency} (cqrs-es + postgres-es, in-process)");
    let outcome = async {
        let (_, pool) = infra.fresh_database("peer", pool_size).await?;
        let peer = peer::Peer::start(pool.clone()).await?;
        let result = w1::run(
            peer,
            concurrency,
            plan.warmup,
            plan.duration,
            cpu,
            plan.cores,
        )
        .await;
        pool.close().await;
        anyhow::Ok(result)
    }
    .await;
    match outcome {
        Ok(result) => report.w1_peer.push(result),
        Err(error) => report.notes.push(format!(
            "peer at concurrency {concurrency} failed: {error:#}"
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_segment(
    segment: Segment,
    stack: &Stack,
    grpc: &Grpc,
    graphql: &GraphQl,
    report: &mut Report,
    cli: &Cli,
    plan: &Plan,
    cpu: &cpu::Targets,
    limit_db: &Option<String>,
    pgbench: &Option<PathBuf>,
    scripts: &[PathBuf],
) -> anyhow::Result<()> {
    let (duration, warmup, cores) = (plan.duration, plan.warmup, plan.cores);
    match segment {
        Segment::W2(rate) => {
            eprintln!(
                "==> W2 freshness at {rate} commands/s for {:?}",
                plan.w2_duration
            );
            let load = w2::Load {
                rate,
                warmup: plan.w2_warmup,
                duration: plan.w2_duration,
                observe_per_s: cli.w2_observe_per_s,
                tap: !cli.w2_no_tap,
            };
            let result = w2::run(stack, grpc.clone(), load, cpu, cores).await;
            report.w2.push(result);
        }
        Segment::W3 => {
            seed(stack, grpc, 2_000).await?;
            note_drain(&mut report.notes, "before W3", stack.quiesce().await?);
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id::text FROM workflows ORDER BY random() LIMIT 5000")
                    .fetch_all(&stack.read_db)
                    .await?;
            let ids = Arc::new(ids);
            for op in [w3::Op::GetWorkflow, w3::Op::ListWorkflows] {
                for &concurrency in &cli.w3_concurrency {
                    let results = w3::run(
                        [
                            w3::Reader::Grpc(grpc.clone()),
                            w3::Reader::Gateway(graphql.clone()),
                        ],
                        op,
                        ids.clone(),
                        concurrency,
                        warmup,
                        duration,
                        cpu,
                        cores,
                    )
                    .await;
                    for result in results {
                        eprintln!(
                            "==> W3 {:<13} {:<7} concurrency {concurrency}: {} req/s",
                            op.label(),
                            result.via,
                            result.requests_per_s
                        );
                        report.w3.push(result);
                    }
                }
            }
        }
        Segment::Isolation => {
            seed(stack, grpc, 2_000).await?;
            note_drain(
                &mut report.notes,
                "before isolation",
                stack.quiesce().await?,
            );
            let victim_workflow: String =
                sqlx::query_scalar("SELECT id::text FROM workflows ORDER BY random() LIMIT 1")
                    .fetch_one(&stack.read_db)
                    .await?;
            // A gateway as deployed, rate limits included: they are part of what is measured.
            let shutdown = tokio_util::sync::CancellationToken::new();
            let gateway = gateway::Application::build(
                stack::settings(
                    "gateway",
                    &[
                        ("listen-addr", "127.0.0.1:0".to_owned()),
                        ("command-url", stack.command_url.clone()),
                        ("query-url", stack.query_url.clone()),
                    ],
                )?,
                shutdown.clone(),
            )
            .await?;
            let url = format!("http://127.0.0.1:{}/graphql", gateway.port());
            let serving = tokio::spawn(gateway.run_until_stopped());
            let jwt = cli.auth.jwt()?;
            let tokens = client::Tokens::issue(&jwt);
            let attacker_token = jwt.issue(
                &platform::auth::Identity {
                    tenant_id: "mallory-corp".to_owned(),
                    user_id: "mallory".to_owned(),
                    display_name: "Mallory".to_owned(),
                    roles: vec![],
                },
                chrono::Duration::hours(1),
            )?;
            for attackers in [8, 32] {
                eprintln!(
                    "==> isolation: a victim read at 50/s, alone and under {attackers} attackers"
                );
                let result = isolation::run(
                    GraphQl::new(&url, &tokens)?,
                    victim_workflow.clone(),
                    GraphQl::new(&url, &tokens)?,
                    attacker_token.clone(),
                    attackers,
                    duration,
                )
                .await;
                report.isolation.push(result);
            }
            shutdown.cancel();
            let _ = serving.await;
        }
        Segment::W6(connections) => {
            eprintln!(
                "==> W6 push latency at {} commands/s with {connections} WebSocket connections",
                cli.w6_rate
            );
            // The gateway runs as its own process so its memory is its own: the binary built
            // next to this one (scripts/bench builds both).
            let gateway = std::env::current_exe()?.with_file_name("gateway");
            let load = w6::Load {
                connections,
                rate: cli.w6_rate,
                warmup: plan.w6_warmup,
                duration: plan.w6_duration,
            };
            let result = w6::run(stack, &gateway, grpc.clone(), &cli.auth.jwt()?, load).await?;
            report.w6.push(result);
        }
        Segment::W1(concurrency) => {
            eprintln!("==> W1 grpc    concurrency {concurrency}");
            let mut result = w1::run(
                Via::Grpc(grpc.clone()),
                concurrency,
                warmup,
                duration,
                cpu,
                cores,
            )
            .await;
            result.drain = Some(stack.quiesce().await?);
            report.w1.push(result);
            run_limit(report, limit_db, pgbench, scripts, concurrency, plan, cpu).await;
            eprintln!("==> W1 gateway concurrency {concurrency}");
            let mut result = w1::run(
                Via::Gateway(graphql.clone()),
                concurrency,
                warmup,
                duration,
                cpu,
                cores,
            )
            .await;
            result.drain = Some(stack.quiesce().await?);
            report.w1.push(result);
        }
        Segment::Peer(_) => unreachable!("the peer runs without a stack (see `run`)"),
    }
    Ok(())
}

fn note_drain(notes: &mut Vec<String>, when: &str, drain: stack::Drain) {
    if let Some(stuck) = drain.stuck {
        notes.push(format!("{when}: {stuck}"));
    }
}

/// Makes sure the read side has at least `count` workflows for W3 to read.
async fn seed(stack: &Stack, grpc: &Grpc, count: i64) -> anyhow::Result<()> {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM workflows")
        .fetch_one(&stack.read_db)
        .await?;
    let missing = (count - existing).max(0) as usize;
    if missing == 0 {
        return Ok(());
    }
    eprintln!("==> seeding {missing} workflows for W3");
    let workers = 16;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let mut client = grpc.clone();
            tokio::spawn(async move {
                for i in (w..missing).step_by(workers) {
                    let ack = client
                        .command(Step::Create, "", &format!("bench seed {i}"))
                        .await?;
                    if i % 2 == 0 {
                        client.command(Step::Submit, &ack.workflow_id, "").await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
