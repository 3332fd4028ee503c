//! W4: catch-up, three ways over the same backlog (three-step routes, approved: 9 events per
//! workflow):
//!
//! * **catch-up**: the backlog is produced into a fresh topic with `messaging::encode` — the
//!   relay's own encoding — then a real projector-svc starts with a fresh consumer group and a
//!   fresh read database, and the read database is polled until it holds every event (sum of
//!   workflow versions = events). This is the W4.
//! * **apply only**: `read_model::apply_batch` — the projector's transaction — called on runs of
//!   the projector's batch size on a fresh read database, no broker: what the projector could
//!   do if fetching were free.
//! * **rebuild**: the events written into a fresh event store, then `projector-svc rebuild`
//!   (in-process, through `projector_svc::run`) into a fresh, migrated read database, then
//!   again over its own result (the switch then has nothing to write).

use crate::cpu::{CpuUse, PerUnit, Targets};
use crate::stack::{settings, Infra};
use crate::stats::{round1, round3};
use anyhow::{bail, Context};
use chrono::Utc;
use messaging::KafkaSettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use workflow_domain::{
    Aggregate, Approver, Decision, Description, DisplayName, EventMetadata, Priority,
    RecordedEvent, Route, StepNo, Title, UserId, Workflow, WorkflowEvent,
};

pub const STEPS: u32 = 3;
/// Created, Submitted, (Assigned, Completed) × steps, Approved.
pub const EVENTS_PER_WORKFLOW: u64 = 2 + 2 * STEPS as u64 + 1;
/// The projector made no progress for this long: the measurement ends as incomplete. A hang
/// guard, not a performance assertion.
const STALL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub how: &'static str,
    pub events: u64,
    /// Start → done (for catch-up: projector start, so including joining the group).
    pub total_s: f64,
    /// The rate the target is about: for catch-up measured from the first poll that saw
    /// progress, over the events applied after it.
    pub events_per_s: f64,
    pub events_per_s_including_startup: f64,
    pub complete: bool,
    pub cpu: CpuUse,
    pub cpu_per_event: Option<PerUnit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    pub backlog: u64,
    pub partitions: i32,
    pub produce_s: Option<f64>,
    pub measured: Option<Measured>,
    /// W4-limit: a bare consumer draining the same backlog from the same broker with the
    /// projector's fetch settings, applying nothing.
    pub bare: Option<Measured>,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct W4Result {
    /// One per backlog size, each on a fresh broker.
    pub catch_up: Vec<CatchUp>,
    pub apply_only: Option<Measured>,
    pub rebuild: Option<Measured>,
    /// The same rebuild run again over the read model the first one left.
    pub rebuild_again: Option<Measured>,
    pub problems: Vec<String>,
}

/// The whole life of one approved workflow, as the store would have recorded it.
pub fn workflow_history(
    aggregate_id: Uuid,
    first_position: i64,
) -> anyhow::Result<Vec<RecordedEvent<WorkflowEvent>>> {
    let applicant = UserId::parse("applicant", "applicant")?;
    let approvers: Vec<String> = (1..=STEPS).map(|i| format!("approver-{i}")).collect();
    let route = Route::of_users("route", approvers.iter().map(String::as_str))?;
    let mut events = vec![
        WorkflowEvent::Created {
            title: Title::parse("title", "bench catch-up")?,
            description: Description::parse("description", "a workflow of the W4 backlog")?,
            priority: Priority::Medium,
            applicant_id: applicant.clone(),
            applicant_name: DisplayName::parse("name", "applicant san")?,
            route: route.clone(),
            definition: None,
            due_date: None,
        },
        WorkflowEvent::Submitted {},
    ];
    for (step, approver) in approvers.iter().enumerate() {
        let step = StepNo::parse("step", step as u32 + 1)?;
        let approver = UserId::parse("approver", approver)?;
        events.push(WorkflowEvent::StepAssigned {
            step,
            assignee: Approver::User(approver.clone()),
            due_at: None,
        });
        events.push(WorkflowEvent::StepCompleted {
            step,
            decision: Decision::Approved,
            decided_by: approver,
            comment: "ok".to_owned(),
        });
    }
    events.push(WorkflowEvent::Approved {});
    let correlation_id = Uuid::now_v7();
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, event)| RecordedEvent {
            event_id: Uuid::now_v7(),
            position: first_position + i as i64,
            aggregate_type: Workflow::TYPE.to_owned(),
            aggregate_id,
            version: i as i64 + 1,
            occurred_at: Utc::now(),
            metadata: EventMetadata {
                tenant_id: crate::client::TENANT.to_owned(),
                user_id: "applicant".to_owned(),
                correlation_id,
                causation_id: Uuid::now_v7(),
                traceparent: None,
            },
            event,
        })
        .collect())
}

/// Every workflow's history; the backlog order interleaves them like real traffic: 1,000
/// workflows at a time, version by version.
fn backlog(workflows: u64) -> anyhow::Result<Vec<RecordedEvent<WorkflowEvent>>> {
    let mut position = 1i64;
    let mut histories = Vec::with_capacity(workflows as usize);
    for _ in 0..workflows {
        histories.push(workflow_history(Uuid::now_v7(), position)?);
        position += EVENTS_PER_WORKFLOW as i64;
    }
    let mut events = Vec::with_capacity((workflows * EVENTS_PER_WORKFLOW) as usize);
    for chunk in histories.chunks(1_000) {
        for version in 0..EVENTS_PER_WORKFLOW as usize {
            events.extend(chunk.iter().map(|history| history[version].clone()));
        }
    }
    Ok(events)
}

async fn produce(
    kafka: &KafkaSettings,
    events: &[RecordedEvent<WorkflowEvent>],
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), messaging::ensure_topic(kafka))
        .await
        .context("creating the W4 topic timed out: is the broker healthy?")?
        .context("cannot create the W4 topic")?;
    // Not the relay's idempotent producer: the backlog only has to arrive, in order per
    // partition (one request in flight), and Tansu's idempotent-produce path is the part of it
    // that fails under load (see BENCHMARKS.md).
    let mut config = messaging::producer_config(kafka);
    config
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("queue.buffering.max.messages", "1000000")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "120000");
    let producer: FutureProducer = config.create()?;
    for chunk in events.chunks(10_000) {
        let mut deliveries = Vec::with_capacity(chunk.len());
        for event in chunk {
            let message =
                messaging::encode::<proto::WorkflowCodec>(event, messaging::CE_SOURCE_COMMAND_SVC);
            let record = FutureRecord::to(&kafka.topic)
                .key(&message.key)
                .payload(&message.payload)
                .headers(message.headers);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => bail!("cannot enqueue a W4 event: {error}"),
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => bail!("the broker refused a W4 event: {error}"),
                Err(_) => bail!("W4 delivery cancelled"),
            }
        }
    }
    Ok(())
}

fn measured(
    how: &'static str,
    events: u64,
    total_s: f64,
    steady: Option<(f64, u64)>,
    complete: bool,
    cpu: CpuUse,
) -> Measured {
    let (steady_s, steady_events) = steady.unwrap_or((total_s, events));
    Measured {
        how,
        events,
        total_s: round3(total_s),
        events_per_s: round1(steady_events as f64 / steady_s.max(1e-9)),
        events_per_s_including_startup: round1(events as f64 / total_s.max(1e-9)),
        complete,
        cpu_per_event: cpu.per_unit_ms(events as f64),
        cpu,
    }
}

async fn catch_up(
    infra: &Infra,
    brokers: &str,
    topic: String,
    events: u64,
    cpu: &Targets,
    cores: usize,
) -> anyhow::Result<Measured> {
    let (read_url, read_db) = infra.fresh_database("catchup_read", 2).await?;
    let projector = projector_settings(infra, brokers, &topic, read_url)?;
    let shutdown = CancellationToken::new();
    // Its own runtime: a projector stuck closing against a livelocked broker is abandoned.
    let services = crate::stack::Services::new("catch-up")?;
    let before = cpu.sample();
    let started = Instant::now();
    let projector = services
        .run(projector_svc::Application::build(
            projector,
            shutdown.clone(),
        ))
        .await
        .context("projector-svc did not start")?;
    let task = services.spawn(projector.run_until_stopped());
    let mut first_progress = None;
    let mut last = (0u64, Instant::now());
    let mut last_report = Instant::now();
    let (complete, applied) = loop {
        let projected =
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(SUM(version), 0)::bigint FROM workflows")
                .fetch_one(&read_db)
                .await? as u64;
        if projected > 0 && first_progress.is_none() {
            first_progress = Some((Instant::now(), projected));
        }
        if projected >= events {
            break (true, projected);
        }
        if projected != last.0 {
            last = (projected, Instant::now());
        } else if last.1.elapsed() > STALL {
            eprintln!("warning: the projector made no progress for {STALL:?} at {projected} of {events} events");
            break (false, projected);
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "    … {projected} of {events} events applied after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A stalled run is measured up to its last progress.
    let done = if complete { Instant::now() } else { last.1 };
    let after = cpu.sample();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    drop(services);
    read_db.close().await;
    let total_s = done.duration_since(started).as_secs_f64();
    let steady = first_progress
        .filter(|(first, _)| done > *first)
        .map(|(first, seen)| (done.duration_since(first).as_secs_f64(), applied - seen));
    let mut result = measured(
        "catch-up (projector-svc from Kafka)",
        applied,
        total_s,
        steady,
        complete,
        CpuUse::between(cpu, &before, &after, cores),
    );
    result.events = applied;
    Ok(result)
}

async fn apply_only(
    infra: &Infra,
    events: &[RecordedEvent<WorkflowEvent>],
    cpu: &Targets,
    cores: usize,
) -> anyhow::Result<Measured> {
    let (_, pool) = infra.fresh_database("apply_read", 2).await?;
    read_model::migrate(&pool)
        .await
        .context("migrate the apply-only read database")?;
    let before = cpu.sample();
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    for run in events.chunks(projector_svc::MAX_BATCH) {
        let applied = projection::apply_batch::<read_model::Workflows>(&mut conn, run)
            .await
            .context("apply-only")?;
        if let Some(stopped) = applied.stopped {
            bail!(
                "apply-only stopped after {} events: {stopped:?}",
                applied.outcomes.len()
            );
        }
    }
    drop(conn);
    let total_s = started.elapsed().as_secs_f64();
    let after = cpu.sample();
    pool.close().await;
    Ok(measured(
        "apply only (read_model::apply_batch, no broker)",
        events.len() as u64,
        total_s,
        None,
        true,
        CpuUse::between(cpu, &before, &after, cores),
    ))
}

/// The rebuild into an empty read database, then again over its result.
async fn rebuild(
    infra: &Infra,
    events: &[RecordedEvent<WorkflowEvent>],
    cpu: &Targets,
    cores: usize,
) -> anyhow::Result<(Measured, Measured)> {
    let (events_url, store) = infra.fresh_database("rebuild_events", 2).await?;
    event_store::EventStore::new(store.clone(), &[workflow_domain::REGISTRATION])
        .migrate()
        .await
        .context("migrate the rebuild event store")?;
    let rows: Vec<crate::fill::Row> = events
        .iter()
        .map(|e| (e.aggregate_id, e.version, &e.event))
        .collect();
    crate::fill::insert(&store, &rows).await?;
    store.close().await;
    // Migrated before the clock starts, as a deployed read database is: the figure is the
    // rebuild's, not the schema's creation (about 0.15 s on this machine, a fifth of a rebuild
    // of 20k events).
    let (read_url, read_db) = infra.fresh_database("rebuild_read", 1).await?;
    read_model::migrate(&read_db)
        .await
        .context("migrate the rebuild read database")?;
    read_db.close().await;
    let args = [
        "projector-svc",
        "--read-database-url",
        &read_url,
        "rebuild",
        "--event-store-url",
        &events_url,
    ];
    let run = async |how| {
        let settings = <projector_svc::Settings as clap::Parser>::try_parse_from(args)
            .context("rebuild settings")?;
        println!("(projector-svc rebuild prints:)");
        let before = cpu.sample();
        let started = Instant::now();
        let exit = projector_svc::run(settings)
            .await
            .context("projector-svc rebuild")?;
        let total_s = started.elapsed().as_secs_f64();
        let after = cpu.sample();
        println!();
        let complete = exit == std::process::ExitCode::SUCCESS;
        anyhow::Ok(measured(
            how,
            events.len() as u64,
            total_s,
            None,
            complete,
            CpuUse::between(cpu, &before, &after, cores),
        ))
    };
    let first = run("rebuild (projector-svc rebuild from the event store)").await?;
    // What an operator repairing a read model runs: the switch writes only what differs.
    let again = run("rebuild again, over its own result").await?;
    Ok((first, again))
}

/// Catch-up from Kafka with a backlog of about `events` on the broker at `brokers`.
pub async fn run_catch_up(
    infra: &Infra,
    brokers: &str,
    events: u64,
    cpu: &Targets,
    cores: usize,
) -> CatchUp {
    let workflows = events.div_ceil(EVENTS_PER_WORKFLOW);
    let mut result = CatchUp {
        backlog: workflows * EVENTS_PER_WORKFLOW,
        partitions: infra.partitions,
        produce_s: None,
        measured: None,
        bare: None,
        problem: None,
    };
    let events = match backlog(workflows) {
        Ok(events) => events,
        Err(error) => {
            result.problem = Some(format!("{error:#}"));
            return result;
        }
    };
    let topic = infra.topic("catchup");
    let kafka = KafkaSettings {
        brokers: brokers.to_owned(),
        topic: topic.clone(),
        topic_partitions: infra.partitions,
        topic_replication: 1,
        security: Default::default(),
    };
    eprintln!(
        "    producing {} events ({workflows} workflows) into {topic} …",
        events.len()
    );
    let produce_started = Instant::now();
    if let Err(error) = produce(&kafka, &events).await {
        result.problem = Some(format!("producing the backlog: {error:#}"));
        return result;
    }
    result.produce_s = Some(round1(produce_started.elapsed().as_secs_f64()));
    eprintln!(
        "    produced in {:.1} s; a projector catches up on a fresh read database …",
        produce_started.elapsed().as_secs_f64()
    );
    let projector = match projector_settings(infra, brokers, &topic, "unused".to_owned()) {
        Ok(projector) => projector,
        Err(error) => {
            result.problem = Some(format!("{error:#}"));
            return result;
        }
    };
    match catch_up(
        infra,
        brokers,
        topic.clone(),
        events.len() as u64,
        cpu,
        cores,
    )
    .await
    {
        Ok(measured) => result.measured = Some(measured),
        Err(error) => result.problem = Some(format!("catch-up: {error:#}")),
    }
    eprintln!("    a bare consumer drains the same backlog, applying nothing …");
    match drain_bare(
        &kafka,
        projector.kafka_fetch_wait_max_ms,
        events.len() as u64,
        infra,
        cpu,
        cores,
    )
    .await
    {
        Ok(measured) => result.bare = Some(measured),
        Err(error) => {
            let problem = format!("bare consumer: {error:#}");
            result.problem = Some(match result.problem.take() {
                Some(earlier) => format!("{earlier}; {problem}"),
                None => problem,
            });
        }
    }
    result
}

/// A consumer of `kafka`'s topic in a group of its own, fetching as the projector does.
pub fn bare_consumer(
    kafka: &KafkaSettings,
    fetch_wait_max_ms: u32,
    group: &str,
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = messaging::consumer_config(kafka, group)
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .create()?;
    consumer.subscribe(&[&kafka.topic])?;
    Ok(consumer)
}

/// The projector's settings for a catch-up of `topic` into `read_url`.
fn projector_settings(
    infra: &Infra,
    brokers: &str,
    topic: &str,
    read_url: String,
) -> anyhow::Result<projector_svc::Settings> {
    settings(
        "projector-svc",
        &[
            ("health-addr", "127.0.0.1:0".to_owned()),
            ("read-database-url", read_url),
            (
                "group-id",
                format!("ringiflow-bench-catchup-{}", infra.run_id),
            ),
            ("kafka-brokers", brokers.to_owned()),
            ("kafka-topic", topic.to_owned()),
            ("kafka-topic-partitions", infra.partitions.to_string()),
        ],
    )
}

/// W4-limit: how fast this broker hands the backlog to a consumer that does nothing with it —
/// the same consumer settings and fetch wait as the projector, in a fresh group, counting
/// messages. The projector's catch-up divided by this is what applying costs.
async fn drain_bare(
    kafka: &KafkaSettings,
    fetch_wait_max_ms: u32,
    events: u64,
    infra: &Infra,
    cpu: &Targets,
    cores: usize,
) -> anyhow::Result<Measured> {
    let consumer = bare_consumer(
        kafka,
        fetch_wait_max_ms,
        &format!("ringiflow-bench-bare-{}", infra.run_id),
    )?;
    let before = cpu.sample();
    let started = Instant::now();
    let mut first = None;
    let mut received = 0u64;
    let mut last = Instant::now();
    let complete = loop {
        if received >= events {
            break true;
        }
        match tokio::time::timeout(STALL, consumer.recv()).await {
            Ok(Ok(_)) => {
                received += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Ok(Err(error)) => bail!("consuming: {error}"),
            Err(_) => {
                eprintln!("warning: the bare consumer received nothing for {STALL:?} at {received} of {events} events");
                break false;
            }
        }
    };
    let after = cpu.sample();
    let total_s = last.duration_since(started).as_secs_f64();
    // From the first message on, over the messages after it: joining the group is not fetching.
    let steady = first
        .filter(|first| last > *first)
        .map(|first| (last.duration_since(first).as_secs_f64(), received - 1));
    Ok(measured(
        "W4-limit (bare consumer from Kafka, applies nothing)",
        received,
        total_s,
        steady,
        complete,
        CpuUse::between(cpu, &before, &after, cores),
    ))
}

/// Apply only and rebuild: no broker involved.
pub async fn run_offline(
    infra: &Infra,
    events: u64,
    apply_only_events: u64,
    cpu: &Targets,
    cores: usize,
    result: &mut W4Result,
) {
    let workflows = events.div_ceil(EVENTS_PER_WORKFLOW);
    let events = match backlog(workflows) {
        Ok(events) => events,
        Err(error) => {
            result.problems.push(format!("{error:#}"));
            return;
        }
    };
    // Whole workflows, so every apply is the next version of its workflow.
    let apply_workflows = apply_only_events
        .div_ceil(EVENTS_PER_WORKFLOW)
        .min(workflows) as usize;
    let subset: Vec<RecordedEvent<WorkflowEvent>> = {
        let ids: std::collections::HashSet<Uuid> = events
            .iter()
            .filter(|e| e.version == 1)
            .map(|e| e.aggregate_id)
            .take(apply_workflows)
            .collect();
        events
            .iter()
            .filter(|e| ids.contains(&e.aggregate_id))
            .cloned()
            .collect()
    };
    eprintln!(
        "    apply only: {} events through read_model::apply …",
        subset.len()
    );
    match apply_only(infra, &subset, cpu, cores).await {
        Ok(measured) => result.apply_only = Some(measured),
        Err(error) => result.problems.push(format!("apply only: {error:#}")),
    }
    eprintln!(
        "    rebuild: {} events from a fresh event store …",
        events.len()
    );
    match rebuild(infra, &events, cpu, cores).await {
        Ok((first, again)) => {
            result.rebuild = Some(first);
            result.rebuild_again = Some(again);
        }
        Err(error) => result.problems.push(format!("rebuild: {error:#}")),
    }
}
