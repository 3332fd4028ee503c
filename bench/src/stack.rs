//! The system under test, started in-process like `tests/src/lib.rs` does: the four real
//! services as libraries on port 0, against fresh databases on the given PostgreSQL server and
//! a fresh topic on the given broker. Nothing of the local stack's own databases or topic is
//! touched, and every run starts from the same empty state.

use anyhow::Context;
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where the run's databases and topics live, and what to clean up afterwards.
pub struct Infra {
    /// Maintenance URL of the server (any database; its name is replaced).
    pub server_url: String,
    /// An existing broker to use; `None`: a private broker per segment (see `broker`).
    pub external_brokers: Option<String>,
    pub tansu: Option<std::path::PathBuf>,
    pub partitions: i32,
    pub db_max_connections: u32,
    /// Unique per run, part of every database and topic name.
    pub run_id: String,
    databases: Mutex<Vec<String>>,
    topics: Mutex<Vec<String>>,
    names: std::sync::atomic::AtomicU32,
}

/// The broker of one segment: an external one, or a private one stopped with the segment.
pub struct BrokerLease {
    pub addr: String,
    pub own: Option<crate::broker::OwnBroker>,
}

impl BrokerLease {
    /// Stops a private broker; returns its panic, if it had one (its log is then kept).
    pub fn release(mut self, keep: bool) -> Option<String> {
        let own = self.own.as_mut()?;
        let panic = own.panic();
        own.stop(keep, panic.is_some());
        panic
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

impl Infra {
    pub fn new(
        server_url: String,
        external_brokers: Option<String>,
        tansu: Option<std::path::PathBuf>,
        partitions: i32,
        db_max_connections: u32,
    ) -> Self {
        let run_id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            server_url,
            external_brokers,
            tansu,
            names: std::sync::atomic::AtomicU32::new(0),
            partitions,
            db_max_connections,
            run_id,
            databases: Mutex::new(Vec::new()),
            topics: Mutex::new(Vec::new()),
        }
    }

    fn next_name(&self) -> u32 {
        self.names
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The broker for one segment of the run.
    pub async fn broker(&self, segment: &str) -> anyhow::Result<BrokerLease> {
        if let Some(addr) = &self.external_brokers {
            return Ok(BrokerLease {
                addr: addr.clone(),
                own: None,
            });
        }
        let binary = self.tansu.as_ref().context(
            "no Tansu binary to start a private broker (run `scripts/dev up` once, set RINGIFLOW_TANSU_BIN, \
             or pass --kafka-brokers)",
        )?;
        let dir = std::env::temp_dir()
            .join(format!("ringiflow-bench-{}", self.run_id))
            .join(format!("broker-{segment}"));
        let own = crate::broker::OwnBroker::start(binary, dir).await?;
        Ok(BrokerLease {
            addr: own.addr.clone(),
            own: Some(own),
        })
    }

    /// A new empty database `bench_<kind>_<run>_<n>`: its URL and a pool of `max_connections`.
    pub async fn fresh_database(
        &self,
        kind: &str,
        max_connections: u32,
    ) -> anyhow::Result<(String, PgPool)> {
        let name = format!("bench_{kind}_{}_{}", self.run_id, self.next_name());
        let mut admin = PgConnection::connect(&self.server_url)
            .await
            .with_context(|| {
                format!(
                    "cannot reach PostgreSQL at {} (is `scripts/dev up` running?)",
                    self.server_url
                )
            })?;
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut admin)
            .await?;
        self.databases.lock().unwrap().push(name.clone());
        let url = with_database(&self.server_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&url)
            .await?;
        Ok((url, pool))
    }

    /// A new topic name; on an external broker it is deleted at the end.
    pub fn topic(&self, kind: &str) -> String {
        let topic = format!(
            "ringiflow.bench.{kind}.{}.{}",
            self.run_id,
            self.next_name()
        );
        if self.external_brokers.is_some() {
            self.topics.lock().unwrap().push(topic.clone());
        }
        topic
    }

    /// Drops every database and (best effort) topic this run created.
    pub async fn cleanup(&self) {
        let databases = std::mem::take(&mut *self.databases.lock().unwrap());
        if let Ok(mut admin) = PgConnection::connect(&self.server_url).await {
            for name in databases {
                if let Err(error) =
                    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                        .execute(&mut admin)
                        .await
                {
                    eprintln!("warning: cannot drop database {name}: {error}");
                }
            }
        }
        let topics = std::mem::take(&mut *self.topics.lock().unwrap());
        let Some(brokers) = self
            .external_brokers
            .as_ref()
            .filter(|_| !topics.is_empty())
        else {
            return;
        };
        let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create();
        if let Ok(admin) = admin {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let options = AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)))
                .request_timeout(Some(Duration::from_secs(10)));
            match tokio::time::timeout(
                Duration::from_secs(15),
                admin.delete_topics(&names, &options),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    eprintln!("warning: cannot delete bench topics {names:?}: {error}")
                }
                Err(_) => eprintln!("warning: deleting bench topics {names:?} timed out"),
            }
        }
    }
}

pub fn settings<S: Parser>(name: &str, args: &[(&str, String)]) -> anyhow::Result<S> {
    let argv = std::iter::once(name.to_owned()).chain(
        args.iter()
            .flat_map(|(flag, value)| [format!("--{flag}"), value.clone()]),
    );
    S::try_parse_from(argv).with_context(|| format!("{name} settings"))
}

/// How waiting for the read side to catch up went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drain {
    pub seconds: f64,
    pub complete: bool,
    pub stuck: Option<String>,
}

/// The services' own tokio runtime, apart from the load generator's (as separate processes would
/// be). A service whose shutdown blocks a worker thread — a Kafka consumer closing against an
/// unresponsive broker blocks inside librdkafka — is abandoned with its runtime instead of
/// starving the benchmark.
pub struct Services {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Services {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(name)
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime until dropped")
            .handle()
    }

    /// Runs `future` on the services' runtime and waits for it.
    pub async fn run<F>(&self, future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.handle().spawn(future).await {
            Ok(output) => output,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

pub struct Stack {
    pub command_url: String,
    pub query_url: String,
    pub gateway_url: String,
    pub event_store: PgPool,
    pub read_db: PgPool,
    /// The topic the relay publishes to and the projector consumes.
    pub kafka: messaging::KafkaSettings,
    /// The projector's `fetch.wait.max.ms`, for consumers that should fetch as it does.
    pub fetch_wait_max_ms: u32,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    /// Held for its `Drop`: shuts the services' runtime down.
    _services: Services,
}

impl Stack {
    /// command-svc (with its relay), projector-svc, query-svc and gateway, in this process.
    pub async fn start(infra: &Infra, brokers: &str) -> anyhow::Result<Self> {
        let pool_size = infra.db_max_connections.to_string();
        let (events_url, event_store) = infra.fresh_database("events", 4).await?;
        let (read_url, read_db) = infra.fresh_database("read", 4).await?;
        let topic = infra.topic("events");
        let group = format!("ringiflow-bench-projector-{}", infra.run_id);
        let kafka = vec![
            ("kafka-brokers", brokers.to_owned()),
            ("kafka-topic", topic.clone()),
            ("kafka-topic-partitions", infra.partitions.to_string()),
        ];
        let any_port = "127.0.0.1:0".to_owned();
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let services = Services::new("services")?;

        let mut args = vec![
            ("listen-addr", any_port.clone()),
            ("event-store-url", events_url.clone()),
            ("database-max-connections", pool_size.clone()),
        ];
        args.extend(kafka.clone());
        let command = services
            .run(command_svc::Application::build(
                settings("command-svc", &args)?,
                shutdown.clone(),
            ))
            .await
            .context("command-svc did not start")?;
        let command_url = format!("http://127.0.0.1:{}", command.port());
        tasks.push(("command-svc", services.spawn(command.run_until_stopped())));

        let mut args = vec![
            ("health-addr", any_port.clone()),
            ("read-database-url", read_url.clone()),
            ("group-id", group),
        ];
        args.extend(kafka);
        let projector_settings: projector_svc::Settings = settings("projector-svc", &args)?;
        let (consumed, fetch_wait_max_ms) = (
            projector_settings.kafka.clone(),
            projector_settings.kafka_fetch_wait_max_ms,
        );
        let projector = services
            .run(projector_svc::Application::build(
                projector_settings,
                shutdown.clone(),
            ))
            .await
            .context("projector-svc did not start")?;
        tasks.push((
            "projector-svc",
            services.spawn(projector.run_until_stopped()),
        ));

        let args = vec![
            ("listen-addr", any_port.clone()),
            ("read-database-url", read_url),
            ("event-store-url", events_url.clone()),
            ("database-max-connections", pool_size),
        ];
        let query = services
            .run(query_svc::Application::build(
                settings("query-svc", &args)?,
                shutdown.clone(),
            ))
            .await
            .context("query-svc did not start")?;
        let query_url = format!("http://127.0.0.1:{}", query.port());
        tasks.push(("query-svc", services.spawn(query.run_until_stopped())));

        // The benchmark's two users send far more than a person could: the rate limits stay in
        // the stack (their cost is measured) but never refuse.
        let unlimited = || "1000000".to_owned();
        let args = vec![
            ("listen-addr", any_port),
            ("command-url", command_url.clone()),
            ("query-url", query_url.clone()),
            ("rate-limit-per-second", unlimited()),
            ("rate-limit-burst", unlimited()),
            ("tenant-rate-limit-per-second", unlimited()),
            ("tenant-rate-limit-burst", unlimited()),
        ];
        let gateway = services
            .run(gateway::Application::build(
                settings("gateway", &args)?,
                shutdown.clone(),
            ))
            .await
            .context("gateway did not start")?;
        let gateway_url = format!("http://127.0.0.1:{}/graphql", gateway.port());
        tasks.push(("gateway", services.spawn(gateway.run_until_stopped())));

        Ok(Self {
            command_url,
            query_url,
            gateway_url,
            event_store,
            read_db,
            kafka: consumed,
            fetch_wait_max_ms,
            shutdown,
            tasks,
            _services: services,
        })
    }

    /// Waits until the read model holds every appended event (sum of workflow versions equals
    /// the number of events), so the next measurement starts on a quiet system. Returns how long
    /// that took and whether it happened: after `STALL` without any progress (a broken relay,
    /// broker or projector, not slowness) it gives up waiting — a hang guard, not a
    /// performance assertion.
    pub async fn quiesce(&self) -> anyhow::Result<Drain> {
        const STALL: Duration = Duration::from_secs(60);
        let started = Instant::now();
        let mut last = (-1i64, Instant::now());
        loop {
            let appended: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&self.event_store)
                .await?;
            let projected: i64 =
                sqlx::query_scalar("SELECT COALESCE(SUM(version), 0)::bigint FROM workflows")
                    .fetch_one(&self.read_db)
                    .await?;
            if projected >= appended {
                return Ok(Drain {
                    seconds: crate::stats::round3(started.elapsed().as_secs_f64()),
                    complete: true,
                    stuck: None,
                });
            }
            if projected != last.0 {
                last = (projected, Instant::now());
            } else if last.1.elapsed() > STALL {
                let unpublished: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        .fetch_one(&self.event_store)
                        .await?;
                let stuck = format!(
                    "read model stuck at {projected} of {appended} events for {STALL:?}, {unpublished} outbox rows unpublished"
                );
                eprintln!("warning: {stuck}; going on");
                return Ok(Drain {
                    seconds: crate::stats::round3(started.elapsed().as_secs_f64()),
                    complete: false,
                    stuck: Some(stuck),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for (name, task) in std::mem::take(&mut self.tasks) {
            match tokio::time::timeout(Duration::from_secs(15), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => eprintln!("warning: {name} stopped with an error: {error:#}"),
                Ok(Err(error)) => eprintln!("warning: {name} task failed: {error}"),
                Err(_) => eprintln!("warning: {name} did not stop within 15 s; abandoned"),
            }
        }
        self.event_store.close().await;
        self.read_db.close().await;
        // Dropping `self` shuts the services' runtime down without waiting for what is stuck.
    }
}

/// A stack dropped on an error path stops too, before its databases are dropped.
impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}
