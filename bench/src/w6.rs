//! W6: live updates. `connections` WebSocket clients hold a `workflowUpdated` subscription
//! each (graphql-transport-ws, `tests::ws`), spread over the tenant's users and over
//! `connections / SUBSCRIBERS_PER_WORKFLOW` workflows; commands change those workflows
//! open-loop at `rate` per second (a comment each, by gRPC, one workflow after another), and
//! every subscriber of a workflow should be pushed every change. Push latency is acknowledgement
//! of the command → the push received by a subscriber (the first push at that version or later).
//!
//! Where it goes: a bare `WatchWorkflowChanges` stream straight from query-svc (as a gateway's
//! own upstream, the `change-feed` role) splits it into acknowledgement → query-svc's change
//! feed (relay, broker, projector, its commit, NOTIFY and the row read: the read side's
//! freshness, W2's territory) and change feed → push (the gateway's hub, fan-out, GraphQL and
//! WebSocket: the push path).
//!
//! The gateway runs as a process of its own (the `gateway` binary next to `bench`), so its
//! memory per connection is its RSS (`/proc/<pid>/status`) after the connections subscribed,
//! less before, divided by their number.

use crate::client::{Grpc, Step, TENANT};
use crate::stack::Stack;
use crate::stats::{round1, Latency, LatencySummary};
use anyhow::{anyhow, bail, Context};
use futures::StreamExt as _;
use platform::auth::{Identity, Jwt};
use proto::workflow::v1 as pb;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::ws::{Event, Protocol, Socket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Subscribers of each workflow.
const SUBSCRIBERS_PER_WORKFLOW: usize = 5;
/// The tenant's users the connections belong to, round robin.
const USERS: usize = 50;
/// Connections opened at once while the subscribers gather.
const CONNECTING: usize = 100;
/// After the last command, how long the pushes still on their way are waited for.
const DRAIN: Duration = Duration::from_secs(3);
/// Bounds the wait for one thing to happen (a connection, a first push): a hang guard.
const BOUND: Duration = Duration::from_secs(60);

const WORKFLOW_UPDATED: &str =
    "subscription($id: ID!) { workflowUpdated(id: $id, afterVersion: 0) { version } }";

#[derive(Debug, Clone, Serialize)]
pub struct W6Result {
    pub connections: usize,
    pub workflows: usize,
    pub offered_per_s: f64,
    pub duration_s: f64,
    pub acknowledged: u64,
    pub achieved_per_s: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Command acknowledged → pushed to a subscriber, one per (command, subscriber).
    pub ack_to_push: LatencySummary,
    /// Command acknowledged → on query-svc's change feed (the read side's part).
    pub ack_to_feed: LatencySummary,
    /// On the change feed → pushed to a subscriber (the gateway's push path).
    pub feed_to_push: LatencySummary,
    /// (command, subscriber) pairs that were never pushed.
    pub missing: u64,
    /// Connections the gateway closed during the run, by close code.
    pub closed: HashMap<u16, u64>,
    /// Seconds to open, authenticate and subscribe every connection.
    pub connect_s: f64,
    pub gateway_rss_before_kib: u64,
    pub gateway_rss_connected_kib: u64,
    pub gateway_rss_after_kib: u64,
    /// (connected − before) / connections.
    pub gateway_kib_per_connection: f64,
    pub warmup_s: f64,
}

/// The offered load of one W6 run.
pub struct Load {
    pub connections: usize,
    /// Commands per second.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
}

/// The gateway binary, run as a process of its own against the stack's services.
struct GatewayProcess {
    child: tokio::process::Child,
    url: String,
}

impl GatewayProcess {
    async fn start(binary: &Path, stack: &Stack) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let unlimited = "1000000";
        let child = tokio::process::Command::new(binary)
            .env("RINGIFLOW_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RINGIFLOW_COMMAND_URL", &stack.command_url)
            .env("RINGIFLOW_QUERY_URL", &stack.query_url)
            .env("RINGIFLOW_RATE_LIMIT_PER_SECOND", unlimited)
            .env("RINGIFLOW_RATE_LIMIT_BURST", unlimited)
            .env("RINGIFLOW_TENANT_RATE_LIMIT_PER_SECOND", unlimited)
            .env("RINGIFLOW_TENANT_RATE_LIMIT_BURST", unlimited)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/readyz");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while !http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if started.elapsed() > BOUND {
                bail!("the gateway process did not get ready within {BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, url })
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the gateway process exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
    }
}

/// One subscriber's pushes: (version, received) in order, and how its connection ended.
struct Pushes {
    workflow: usize,
    received: Vec<(i64, Instant)>,
    closed: Option<u16>,
}

/// Opens connection `i`: user `i % USERS`, subscribed to `workflows[i % len]`, and returns it
/// once its subscription delivered its first push (the workflow's state now), so it is
/// registered with the gateway's hub. Refused while the gateway's hub is not yet following
/// query-svc: then it tries again.
async fn subscriber(
    url: &str,
    tokens: &[String],
    workflows: &[String],
    i: usize,
) -> anyhow::Result<Socket> {
    let started = Instant::now();
    loop {
        let mut socket = Socket::connect(url, Protocol::TransportWs).await?;
        socket
            .init(&tokens[i % tokens.len()])
            .await
            .map_err(|refused| anyhow!("connection_init refused: {refused:?}"))?;
        let id = &workflows[i % workflows.len()];
        socket
            .subscribe("w", WORKFLOW_UPDATED, json!({ "id": id }))
            .await;
        match socket.next_of("w", BOUND).await {
            Some(Event::Next { payload, .. }) if payload.get("errors").is_none() => {
                return Ok(socket)
            }
            Some(Event::Next { payload, .. })
                if payload["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
                    && started.elapsed() < BOUND =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => bail!("subscription {i} got {other:?}"),
        }
    }
}

/// Follows a subscriber's pushes until `stop`.
async fn follow(mut socket: Socket, workflow: usize, stop: CancellationToken) -> Pushes {
    let mut pushes = Pushes {
        workflow,
        received: Vec::new(),
        closed: None,
    };
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = socket.next() => event,
        };
        match event {
            Event::Next { payload, .. } => {
                if let Some(version) = payload["data"]["workflowUpdated"]["version"].as_i64() {
                    pushes.received.push((version, Instant::now()));
                }
            }
            Event::Closed { code, .. } => {
                pushes.closed = Some(code);
                break;
            }
            Event::Complete { .. } | Event::Error(_) => {}
        }
    }
    socket.close().await;
    pushes
}

/// When each version of each workflow arrived: workflow id → (version, received), in order.
type Arrivals = HashMap<String, Vec<(i64, Instant)>>;

/// query-svc's change feed as the gateway's hub gets it.
fn tap(
    query_url: &str,
    jwt: &Jwt,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<Arrivals>> {
    let token = jwt.issue(
        &Identity {
            tenant_id: TENANT.into(),
            user_id: "bench-tap".into(),
            display_name: "bench tap".into(),
            roles: vec![workflow_domain::Role::CHANGE_FEED.into()],
        },
        chrono::Duration::hours(1),
    )?;
    let channel = tonic::transport::Endpoint::from_shared(query_url.to_owned())?.connect_lazy();
    let mut client = pb::workflow_query_service_client::WorkflowQueryServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::WatchWorkflowChangesRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(tokio::spawn(async move {
        let mut seen = Arrivals::new();
        let Ok(response) = client.watch_workflow_changes(request).await else {
            return seen;
        };
        let mut stream = response.into_inner();
        loop {
            let change = tokio::select! {
                _ = stop.cancelled() => return seen,
                change = stream.next() => change,
            };
            match change {
                Some(Ok(change)) => {
                    if let Some(workflow) = change.workflow {
                        seen.entry(workflow.id)
                            .or_default()
                            .push((workflow.version, Instant::now()));
                    }
                }
                _ => return seen,
            }
        }
    }))
}

/// The first of `arrivals` (in version order) at `version` or later.
fn first_at(arrivals: &[(i64, Instant)], version: i64) -> Option<Instant> {
    let index = arrivals.partition_point(|(v, _)| *v < version);
    arrivals.get(index).map(|(_, at)| *at)
}

pub async fn run(
    stack: &Stack,
    gateway_binary: &Path,
    grpc: Grpc,
    jwt: &Jwt,
    load: Load,
) -> anyhow::Result<W6Result> {
    let Load {
        connections,
        rate,
        warmup,
        duration,
    } = load;
    let gateway = GatewayProcess::start(gateway_binary, stack).await?;
    let workflow_count = connections.div_ceil(SUBSCRIBERS_PER_WORKFLOW).max(1);
    let mut workflows = Vec::with_capacity(workflow_count);
    for i in 0..workflow_count {
        let ack = grpc
            .clone()
            .command(Step::Create, "", &format!("bench w6 {i}"))
            .await?;
        workflows.push(ack.workflow_id);
    }
    let tokens: Vec<String> = (0..USERS)
        .map(|u| {
            jwt.issue(
                &Identity {
                    tenant_id: TENANT.into(),
                    user_id: format!("watcher-{u}"),
                    display_name: format!("watcher {u}"),
                    roles: vec![],
                },
                chrono::Duration::hours(12),
            )
        })
        .collect::<Result<_, _>>()?;
    let stop = CancellationToken::new();
    let feed = tap(&stack.query_url, jwt, stop.clone())?;
    // Every workflow projected before anyone subscribes: a subscription's first push is then
    // its replay.
    for id in &workflows {
        let started = Instant::now();
        while grpc.clone().get_version(id, Some(1)).await?.is_none() {
            if started.elapsed() > BOUND {
                bail!("workflow {id} was not projected within {BOUND:?}");
            }
        }
    }
    let rss_before = gateway.rss_kib()?;

    let connecting = Instant::now();
    let workflows = Arc::new(workflows);
    let tokens = Arc::new(tokens);
    let mut followers = JoinSet::new();
    let mut opening = JoinSet::new();
    for i in 0..connections {
        while opening.len() >= CONNECTING {
            let (i, socket) = opening.join_next().await.expect("not empty")?;
            followers.spawn(follow(socket?, i % workflow_count, stop.clone()));
        }
        let (url, tokens, workflows) = (gateway.url.clone(), tokens.clone(), workflows.clone());
        opening.spawn(async move { (i, subscriber(&url, &tokens, &workflows, i).await) });
    }
    while let Some(opened) = opening.join_next().await {
        let (i, socket) = opened?;
        followers.spawn(follow(socket?, i % workflow_count, stop.clone()));
    }
    let connect_s = connecting.elapsed().as_secs_f64();
    // Let the allocator settle after the burst of handshakes before reading the RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = gateway.rss_kib()?;

    let acks: Arc<Mutex<Vec<(usize, i64, Instant)>>> = Arc::default();
    let errors: Arc<Mutex<(u64, Option<String>)>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let warmup_ticks = (rate * warmup.as_secs_f64()).round() as u64;
    let total_ticks = warmup_ticks + (rate * duration.as_secs_f64()).round() as u64;
    let mut commands = JoinSet::new();
    let start = Instant::now();
    let mut window_start = start;
    for tick in 0..total_ticks {
        let scheduled = start + interval.mul_f64(tick as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        if tick == warmup_ticks {
            window_start = Instant::now();
        }
        while commands.try_join_next().is_some() {}
        let recorded = tick >= warmup_ticks;
        let workflow = tick as usize % workflow_count;
        let id = workflows[workflow].clone();
        let (mut grpc, acks, errors) = (grpc.clone(), acks.clone(), errors.clone());
        commands.spawn(async move {
            match grpc.comment(&id, "w6").await {
                Ok(ack) if recorded => {
                    acks.lock()
                        .unwrap()
                        .push((workflow, ack.version, Instant::now()));
                }
                Ok(_) => {}
                Err(error) => {
                    let mut errors = errors.lock().unwrap();
                    errors.0 += 1;
                    errors
                        .1
                        .get_or_insert_with(|| format!("AddComment: {error:#}"));
                }
            }
        });
    }
    let window = window_start.elapsed();
    while commands.join_next().await.is_some() {}
    tokio::time::sleep(DRAIN).await;
    let rss_after = gateway.rss_kib()?;
    stop.cancel();
    let mut subscribers = Vec::with_capacity(connections);
    while let Some(pushes) = followers.join_next().await {
        subscribers.push(pushes?);
    }
    let feed = feed.await?;

    let mut by_workflow: HashMap<usize, Vec<&Pushes>> = HashMap::new();
    let mut closed: HashMap<u16, u64> = HashMap::new();
    for pushes in &subscribers {
        by_workflow.entry(pushes.workflow).or_default().push(pushes);
        if let Some(code) = pushes.closed {
            *closed.entry(code).or_default() += 1;
        }
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let (mut ack_to_push, mut ack_to_feed, mut feed_to_push) =
        (Latency::default(), Latency::default(), Latency::default());
    let mut missing = 0;
    for (workflow, version, acked) in &acks {
        let fed = feed.get(&workflows[*workflow]).map(Vec::as_slice);
        if let Some(at) = fed.and_then(|fed| first_at(fed, *version)) {
            ack_to_feed.record(at.saturating_duration_since(*acked));
        }
        for pushes in by_workflow.get(workflow).into_iter().flatten() {
            match first_at(&pushes.received, *version) {
                Some(at) => ack_to_push.record(at.saturating_duration_since(*acked)),
                None => missing += 1,
            }
        }
    }
    for pushes in &subscribers {
        let Some(fed) = feed.get(&workflows[pushes.workflow]) else {
            continue;
        };
        for (version, at) in pushes.received.iter().filter(|(_, at)| *at >= window_start) {
            if let Some((_, fed_at)) = fed.iter().find(|(v, _)| v == version) {
                feed_to_push.record(at.saturating_duration_since(*fed_at));
            }
        }
    }
    let (error_count, first_error) = errors.lock().unwrap().clone();
    let acknowledged = acks.len() as u64;
    Ok(W6Result {
        connections,
        workflows: workflow_count,
        offered_per_s: rate,
        duration_s: round1(window.as_secs_f64()),
        acknowledged,
        achieved_per_s: round1(acknowledged as f64 / window.as_secs_f64()),
        errors: error_count,
        first_error,
        ack_to_push: ack_to_push.summary(),
        ack_to_feed: ack_to_feed.summary(),
        feed_to_push: feed_to_push.summary(),
        missing,
        closed,
        connect_s: round1(connect_s),
        gateway_rss_before_kib: rss_before,
        gateway_rss_connected_kib: rss_connected,
        gateway_rss_after_kib: rss_after,
        gateway_kib_per_connection: crate::stats::round3(
            rss_connected.saturating_sub(rss_before) as f64 / connections as f64,
        ),
        warmup_s: warmup.as_secs_f64(),
    })
}
