//! The deadline watcher: escalates steps whose SLA deadline has passed.
//!
//! A process manager that reacts to the read model: every round it reads the overdue, not yet
//! escalated workflows from the read database and sends command-svc an `EscalateStep` for each,
//! as the tenant's `system` actor. It lives in projector-svc because that process already holds
//! the read-database connection and runs for as long as the read model is kept, so watching
//! deadlines needs no deployment of its own; it never reads the event store, and command-svc,
//! deciding on the event store, stays the only judge of whether a step really is overdue.
//!
//! It is a reaction like the process managers' (`process_manager`), triggered by time instead of
//! by a message: its cause is the workflow's last event as the read model shows it, the command
//! goes out through a [`process_manager::Dispatch`], and its id is derived from that event
//! (`es_kernel::derived_id`), so replicas that saw the same state send the same command and
//! command-svc appends it once; replicas that saw different states are refused by the domain
//! (a step is escalated once per assignment) or lose the optimistic-concurrency race. The same
//! makes a round that repeats a command — because the read model has not caught up yet — a
//! no-op. The escalation's events record that last event as their causation and share a
//! correlation id derived from it.

use chrono::{DateTime, Utc};
use platform::auth::{Identity, Jwt};
use platform::backoff::Backoff;
use platform::errors::{self, ErrorCode};
use platform::resilience::{Client, ClientSettings};
use platform::settings::AuthSettings;
use process_manager::{Cause, Dispatch, DispatchError};
use proto::workflow::v1 as pb;
use proto::workflow::v1::workflow_command_service_client::WorkflowCommandServiceClient;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use uuid::Uuid;
use workflow_domain::Role;

#[derive(Debug, Clone, clap::Args)]
pub struct DeadlineSettings {
    /// Run the deadline watcher, which escalates overdue steps through command-svc.
    #[arg(long, env = "RINGIFLOW_DEADLINE_WATCHER_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub deadline_watcher_enabled: bool,
    /// gRPC endpoint of command-svc, where the watcher sends its escalations.
    #[arg(
        long,
        env = "RINGIFLOW_COMMAND_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub command_url: String,
    /// Milliseconds between two scans of the read model for overdue steps.
    #[arg(long, env = "RINGIFLOW_DEADLINE_SCAN_INTERVAL_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline_scan_interval_ms: u64,
    /// Overdue steps escalated per scan, oldest deadline first.
    #[arg(long, env = "RINGIFLOW_DEADLINE_BATCH", default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub deadline_batch: i64,
    /// Signs the watcher's own tokens; must match command-svc's.
    #[command(flatten)]
    pub auth: AuthSettings,
    /// How the watcher calls command-svc. Its escalations carry derived command ids, so they
    /// are retried within the call's deadline.
    #[command(flatten)]
    pub client: ClientSettings,
}

/// What the watcher's ids are derived for, from the workflow's last event.
const ESCALATE_STEP: &str = "escalate-step";
const ESCALATION_CHAIN: &str = "escalation";

/// The identity the watcher acts as, in each tenant.
const WATCHER_USER_ID: &str = "deadline-watcher";
const WATCHER_NAME: &str = "Deadline watcher";

/// Lifetime of a watcher token, and how long before its expiry a new one replaces it, so a
/// token never expires between signing and command-svc's check.
const TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(15);
const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The watcher's view of one overdue step: a row of the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Overdue {
    workflow_id: Uuid,
    tenant_id: String,
    step: u32,
    due_at: DateTime<Utc>,
    /// The read model's version of the workflow when the watcher saw it.
    version: i64,
    /// The event that brought the workflow to that version: the escalation's cause.
    last_event_id: Uuid,
}

impl Overdue {
    /// Who and what the escalation is caused by: the tenant's workflow at the state seen.
    fn cause(&self) -> Cause {
        Cause {
            tenant_id: self.tenant_id.clone(),
            correlation_id: es_kernel::derived_id(self.last_event_id, ESCALATION_CHAIN),
            event_id: self.last_event_id,
            traceparent: None,
        }
    }
}

/// What one round did; a step counts once, under how its escalation ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// command-svc accepted the escalation (or had accepted this very command before).
    pub escalated: usize,
    /// command-svc refused it for good: already escalated, no longer current, not overdue yet
    /// (the read model was behind), or not found.
    pub settled: usize,
    /// Worth another try next round: command-svc unreachable, a lost race, any other error.
    pub failed: usize,
}

pub struct DeadlineWatcher {
    pool: PgPool,
    escalations: Escalations,
    interval: Duration,
    batch: i64,
    shutdown: CancellationToken,
}

impl DeadlineWatcher {
    /// Connects to command-svc lazily: the watcher starts while command-svc is down and keeps
    /// trying each round.
    pub fn new(
        settings: &DeadlineSettings,
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let command =
            platform::resilience::client("command-svc", &settings.command_url, &settings.client)
                .map_err(|e| {
                    anyhow::anyhow!("invalid command-svc url {:?}: {e}", settings.command_url)
                })?;
        Ok(Self {
            pool,
            escalations: Escalations {
                client: WorkflowCommandServiceClient::new(command),
                tokens: Mutex::new(Tokens::new(settings.auth.jwt()?)?),
            },
            interval: Duration::from_millis(settings.deadline_scan_interval_ms),
            batch: settings.deadline_batch,
            shutdown,
        })
    }

    /// Scans and escalates every interval until shutdown. A round with failures delays the
    /// next one by a growing backoff on top of the interval, so an unreachable command-svc is
    /// neither hammered nor flooding the log at the scan rate.
    pub async fn run(mut self) {
        tracing::info!(
            interval_ms = self.interval.as_millis() as u64,
            batch = self.batch,
            "deadline watcher started"
        );
        let mut backoff = Backoff::default();
        let shutdown = self.shutdown.clone();
        loop {
            // A round is abandoned on shutdown, even in the middle of a call that command-svc
            // may be answering or that waits to be retried: an escalation's command id is derived
            // from what was seen, so the next start sends the same command and, if it landed,
            // appends nothing.
            let round = tokio::select! {
                _ = shutdown.cancelled() => break,
                round = self.round() => round,
            };
            let delay = match round {
                Ok(round) if round.failed == 0 => {
                    backoff.reset();
                    self.interval
                }
                Ok(_) => self.interval + backoff.next_delay(),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot read overdue workflows; retrying");
                    self.interval + backoff.next_delay()
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        tracing::info!("deadline watcher stopped");
    }

    /// Escalates the overdue steps the read model shows, oldest deadline first, up to the
    /// batch size. Stops early on shutdown (before the next call) and when command-svc is
    /// unavailable, since every further call would fail alike. `Err` only if the read database
    /// could not be read.
    pub async fn round(&mut self) -> Result<Round, sqlx::Error> {
        let mut round = Round::default();
        for overdue in self.overdue().await? {
            if self.shutdown.is_cancelled() {
                break;
            }
            let Overdue {
                workflow_id,
                ref tenant_id,
                step,
                due_at,
                version,
                ..
            } = overdue;
            let cause = overdue.cause();
            metrics::counter!("ringiflow_deadline_overdue_steps_total").increment(1);
            let ended = |outcome: &'static str| {
                metrics::counter!("ringiflow_deadline_escalations_total", "outcome" => outcome)
                    .increment(1);
            };
            // Retried in place only while command-svc is unavailable, within the call's deadline
            // (`platform::resilience`); otherwise a failed escalation is tried again next round,
            // from what the read model shows then.
            match self.escalations.dispatch(overdue.clone(), &cause).await {
                Ok(()) => {
                    ended("escalated");
                    round.escalated += 1;
                    tracing::info!(%workflow_id, %tenant_id, step, %due_at, seen_version = version, "overdue step escalated");
                }
                Err(DispatchError::Permanent(error)) => {
                    ended("settled");
                    round.settled += 1;
                    tracing::debug!(%workflow_id, %tenant_id, step, %due_at, seen_version = version, %error, "no escalation needed");
                }
                Err(DispatchError::Transient(error)) => {
                    ended("failed");
                    round.failed += 1;
                    tracing::warn!(%workflow_id, %tenant_id, step, %due_at, %error, "escalation failed; retrying next round");
                }
                Err(DispatchError::Unavailable(error)) => {
                    ended("unavailable");
                    round.failed += 1;
                    tracing::warn!(%workflow_id, %tenant_id, step, %due_at, %error, "command-svc unavailable; retrying next round");
                    break;
                }
            }
        }
        Ok(round)
    }

    /// The overdue steps the read model shows. Parked workflows are left out: their rows stop
    /// at a dead letter, so what they show is known to be stale, and a step command-svc keeps
    /// refusing would hold a place at the head of every batch; once `dlq replay` or `rebuild`
    /// unparks a workflow, its overdue step is picked up again.
    async fn overdue(&self) -> Result<Vec<Overdue>, sqlx::Error> {
        // The status is a literal rather than a parameter so that a partial index with this
        // predicate can serve the query.
        sqlx::query(
            "SELECT w.id, w.tenant_id, w.current_step, w.current_due_at, w.version, w.last_event_id
             FROM workflows w
             WHERE w.status = 'IN_PROGRESS'
               AND w.current_due_at <= now()
               AND w.current_escalated_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM parked_aggregates p WHERE p.aggregate_id = w.id)
             ORDER BY w.current_due_at, w.id
             LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let step: i32 = row.try_get("current_step")?;
            Ok(Overdue {
                workflow_id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                step: u32::try_from(step).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "current_step".into(),
                    source: Box::new(e),
                })?,
                due_at: row.try_get("current_due_at")?,
                version: row.try_get("version")?,
                last_event_id: row.try_get("last_event_id")?,
            })
        })
        .collect()
    }
}

/// Sends `EscalateStep` to command-svc as the tenant's `system` actor.
struct Escalations {
    client: WorkflowCommandServiceClient<Client>,
    tokens: Mutex<Tokens>,
}

impl Dispatch<Overdue> for Escalations {
    /// The command id is derived from the state seen (the workflow's last event), the same for
    /// every round and replica that saw it: a delegation hands the step on with the same
    /// deadline, and being a new event, gets the new assignment escalated again rather than
    /// answered with the result of the first escalation.
    async fn dispatch(&self, overdue: Overdue, cause: &Cause) -> Result<(), DispatchError> {
        let mut request = tonic::Request::new(pb::EscalateStepRequest {
            command_id: es_kernel::derived_id(cause.event_id, ESCALATE_STEP).to_string(),
            workflow_id: overdue.workflow_id.to_string(),
            // The command id already pins the state seen; the domain checks the rest.
            expected_version: None,
            step: overdue.step,
        });
        let bearer = self
            .tokens
            .lock()
            .expect("never poisoned: no panics while held")
            .bearer(&cause.tenant_id);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", bearer);
        for (name, id) in [
            ("x-correlation-id", cause.correlation_id),
            ("x-causation-id", cause.event_id),
        ] {
            metadata.insert(
                name,
                id.to_string()
                    .parse()
                    .expect("a UUID is a valid header value"),
            );
        }
        match self.client.clone().escalate_step(request).await {
            Ok(_) => Ok(()),
            Err(status) => {
                let code = errors::code_of(&status);
                let error = format!("{code}: {}", status.message());
                Err(match code {
                    // Already escalated, no longer current, not overdue yet (the read model was
                    // behind), or gone: nothing to do, now or later.
                    ErrorCode::FailedPrecondition | ErrorCode::NotFound => {
                        DispatchError::Permanent(error)
                    }
                    ErrorCode::Unavailable => DispatchError::Unavailable(error),
                    _ => DispatchError::Transient(error),
                })
            }
        }
    }
}

/// The watcher's bearer tokens, one per tenant (the tenant is a claim), each reused until
/// shortly before it expires. At most one entry per tenant with overdue steps.
struct Tokens {
    jwt: Jwt,
    by_tenant: HashMap<String, (MetadataValue<Ascii>, Instant)>,
}

impl Tokens {
    /// Fails at start rather than at the first overdue step when the settings cannot sign
    /// (a deployment that verifies with a public key only) or sign this long.
    fn new(jwt: Jwt) -> anyhow::Result<Self> {
        let probe = Identity {
            tenant_id: "probe".to_owned(),
            user_id: WATCHER_USER_ID.to_owned(),
            display_name: WATCHER_NAME.to_owned(),
            roles: vec![],
        };
        jwt.issue(&probe, TOKEN_TTL)
            .map_err(|e| anyhow::anyhow!("the deadline watcher cannot sign its tokens: {e}"))?;
        Ok(Self {
            jwt,
            by_tenant: HashMap::new(),
        })
    }

    fn bearer(&mut self, tenant_id: &str) -> MetadataValue<Ascii> {
        let now = Instant::now();
        if let Some((header, renew_at)) = self.by_tenant.get(tenant_id) {
            if now < *renew_at {
                return header.clone();
            }
        }
        let identity = Identity {
            tenant_id: tenant_id.to_owned(),
            user_id: WATCHER_USER_ID.to_owned(),
            display_name: WATCHER_NAME.to_owned(),
            roles: vec![Role::SYSTEM.to_owned()],
        };
        let token = self
            .jwt
            .issue(&identity, TOKEN_TTL)
            .expect("checked at start: the settings sign tokens of this lifetime");
        let header: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .expect("a jwt is base64url and dots, always a valid header value");
        let renew_at = now + TOKEN_TTL.to_std().expect("positive ttl") - TOKEN_RENEW_BEFORE;
        self.by_tenant
            .insert(tenant_id.to_owned(), (header.clone(), renew_at));
        header
    }
}
