//! The dead-letter topic's commands: list it, and replay it into the read model.

use anyhow::Context;
use messaging::dead_letter::{self, DeadLetter, Envelope};
use messaging::KafkaSettings;
use projection::{ApplyOutcome, ProjectionError, Unpark};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;
use uuid::Uuid;

/// Bounds each broker request; the local broker answers in milliseconds.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the next message before calling the read stuck: every message waited
/// for is known to exist (it is below the watermark read at the start).
const STALL: Duration = Duration::from_secs(30);

/// Reads the dead-letter topic once from its beginning up to where it ended when opened.
struct DeadLetterReader {
    consumer: StreamConsumer,
    topic: String,
    /// The partitions still to read, each with its high watermark at the start.
    ends: HashMap<i32, i64>,
}

impl DeadLetterReader {
    /// Assigns every partition from its beginning under a throwaway group that never commits:
    /// reading the topic changes nothing for anyone, the projector included.
    fn open(kafka: &KafkaSettings) -> anyhow::Result<Self> {
        let topic = dead_letter::topic_for(&kafka.topic);
        let group = format!("ringiflow-dlq-reader-{}", Uuid::new_v4().simple());
        let consumer: StreamConsumer = messaging::consumer_config(kafka, &group)
            .set("enable.partition.eof", "true")
            .create()
            .context("cannot create the dead-letter consumer")?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), BROKER_TIMEOUT)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        // A topic that does not exist yet has no partitions here, and no dead letters.
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, BROKER_TIMEOUT)
                .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
            if high > low {
                ends.insert(partition, high);
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
        }
        if !ends.is_empty() {
            consumer.assign(&assignment)?;
        }
        Ok(Self {
            consumer,
            topic,
            ends,
        })
    }

    /// The next dead letter, partition by partition in offset order, or `None` at the end.
    async fn next(&mut self) -> anyhow::Result<Option<OwnedMessage>> {
        while !self.ends.is_empty() {
            let received = tokio::time::timeout(STALL, self.consumer.recv())
                .await
                .with_context(|| format!("reading {} stalled", self.topic))?;
            match received {
                Ok(message) => {
                    let partition = message.partition();
                    // Messages produced after the start belong to the next run.
                    let Some(&end) = self.ends.get(&partition) else {
                        continue;
                    };
                    if message.offset() + 1 >= end {
                        self.ends.remove(&partition);
                    }
                    if message.offset() < end {
                        return Ok(Some(message.detach()));
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.ends.remove(&partition);
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot read {}", self.topic))
                }
            }
        }
        Ok(None)
    }
}

/// One line describing a dead letter; `-` for what it does not say.
fn describe(message: &OwnedMessage) -> String {
    let dead = DeadLetter::read(message);
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    format!(
        "{}/{} from {}/{}/{} key={} ce_type={} ce_id={} kind={} error={:?}",
        message.partition(),
        message.offset(),
        or_dash(dead.original_topic),
        or_dash(dead.original_partition.map(|p| p.to_string())),
        or_dash(dead.original_offset.map(|o| o.to_string())),
        or_dash(dead.envelope.key),
        or_dash(dead.envelope.ce_type),
        or_dash(dead.envelope.ce_id),
        or_dash(dead.kind),
        dead.error.unwrap_or_default(),
    )
}

/// `projector-svc dlq list`: every dead letter, oldest first per partition.
pub(crate) async fn list(kafka: &KafkaSettings, limit: Option<usize>) -> anyhow::Result<ExitCode> {
    let mut reader = DeadLetterReader::open(kafka)?;
    let mut listed = 0;
    while limit.is_none_or(|limit| listed < limit) {
        let Some(message) = reader.next().await? else {
            break;
        };
        println!("{}", describe(&message));
        listed += 1;
    }
    eprintln!("{listed} dead letter(s) in {}", reader.topic);
    Ok(ExitCode::SUCCESS)
}

/// What replaying one dead letter came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Replayed {
    Applied,
    AlreadyApplied,
    /// Applied later, right after its predecessor.
    Buffered,
    /// It does not decode, but the read model already holds its version: the event it carried
    /// arrived another way (e.g. republished from the event store).
    Superseded,
    Failed(String),
}

impl Replayed {
    /// The `dlq_replayed.outcome` value.
    fn as_str(&self) -> &'static str {
        match self {
            Replayed::Applied => "applied",
            Replayed::AlreadyApplied => "already_applied",
            Replayed::Buffered => "buffered",
            Replayed::Superseded => "superseded",
            Replayed::Failed(_) => "failed",
        }
    }
}

/// Decodes and applies one dead letter as the projector would, except that its workflow being
/// parked does not stop it.
async fn replay_one(pool: &PgPool, message: &OwnedMessage) -> Result<Replayed, ProjectionError> {
    let error = match messaging::decode::<proto::WorkflowCodec, _>(message) {
        Ok(event) => {
            return match projection::replay::<read_model::Workflows>(pool, &event).await {
                Ok(ApplyOutcome::Applied) => Ok(Replayed::Applied),
                Ok(ApplyOutcome::AlreadyApplied) => Ok(Replayed::AlreadyApplied),
                Ok(ApplyOutcome::Buffered { .. }) => Ok(Replayed::Buffered),
                Ok(ApplyOutcome::Parked) => Ok(Replayed::Failed("workflow is parked".into())),
                Err(error) if error.is_transient() => Err(error),
                Err(error) => Ok(Replayed::Failed(error.to_string())),
            }
        }
        Err(error) => error,
    };
    let envelope = Envelope::of(message);
    if let (Some(id), Some(version)) = (envelope.aggregate_id(), envelope.aggregate_version) {
        let stored = read_model::stored_version(pool, id).await?;
        if stored.is_some_and(|stored| stored >= version) {
            return Ok(Replayed::Superseded);
        }
    }
    Ok(Replayed::Failed(error.to_string()))
}

async fn record(
    pool: &PgPool,
    topic: &str,
    message: &OwnedMessage,
    replayed: &Replayed,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dlq_replayed (dlq_topic, dlq_partition, dlq_offset, outcome)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (dlq_topic, dlq_partition, dlq_offset)
         DO UPDATE SET outcome = EXCLUDED.outcome, replayed_at = now()",
    )
    .bind(topic)
    .bind(message.partition())
    .bind(message.offset())
    .bind(replayed.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// What a replay did, for its summary line.
#[derive(Debug, Default)]
struct Summary {
    outcomes: HashMap<&'static str, u64>,
    skipped: u64,
    still_failing: u64,
    unparked: u64,
    /// Workflows whose dead letters all settled but that stay parked: a buffered event still
    /// fails, or a dead letter was produced while the replay ran.
    still_parked: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |outcome| self.outcomes.get(outcome).copied().unwrap_or(0);
        let replayed: u64 = ["applied", "already_applied", "buffered", "superseded"]
            .into_iter()
            .map(count)
            .sum();
        write!(
            f,
            "replayed {replayed} (applied {}, already applied {}, buffered {}, superseded {}); \
             skipped {} replayed earlier; still failing {}; unparked {} workflow(s), \
             still parked {}",
            count("applied"),
            count("already_applied"),
            count("buffered"),
            count("superseded"),
            self.skipped,
            self.still_failing,
            self.unparked,
            self.still_parked,
        )
    }
}

/// `projector-svc dlq replay`: applies dead letters again in dead-letter order, records what
/// is settled so the next replay skips it, and unparks the workflows none of whose dead letters
/// still fail. Exit status 1 while anything still fails.
pub(crate) async fn replay(
    pool: &PgPool,
    kafka: &KafkaSettings,
    only: Option<Uuid>,
) -> anyhow::Result<ExitCode> {
    let mut reader = DeadLetterReader::open(kafka)?;
    let settled: HashSet<(i32, i64)> = sqlx::query_as(
        "SELECT dlq_partition, dlq_offset FROM dlq_replayed
         WHERE dlq_topic = $1 AND outcome <> 'failed'",
    )
    .bind(&reader.topic)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut summary = Summary::default();
    // Dead letters per workflow, settled or not: unparking compares it with the count the
    // projector recorded.
    let mut seen: HashMap<Uuid, i64> = HashMap::new();
    let mut failed = Vec::new();
    while let Some(message) = reader.next().await? {
        let owner = Envelope::of(&message).aggregate_id();
        if only.is_some() && owner != only {
            continue;
        }
        if let Some(owner) = owner {
            *seen.entry(owner).or_default() += 1;
        }
        if settled.contains(&(message.partition(), message.offset())) {
            summary.skipped += 1;
            continue;
        }
        match replay_one(pool, &message).await? {
            Replayed::Failed(_) => failed.push(message),
            replayed => {
                record(pool, &reader.topic, &message, &replayed).await?;
                *summary.outcomes.entry(replayed.as_str()).or_default() += 1;
            }
        }
    }
    // Once more for the failures: what was replayed after one may have settled it (its fixed
    // copy, say, came later in the topic).
    let mut failing_owners = HashSet::new();
    for message in failed {
        let replayed = replay_one(pool, &message).await?;
        record(pool, &reader.topic, &message, &replayed).await?;
        if let Replayed::Failed(error) = &replayed {
            println!(
                "still failing: {} replay_error={error:?}",
                describe(&message)
            );
            summary.still_failing += 1;
            failing_owners.insert(Envelope::of(&message).aggregate_id());
        } else {
            *summary.outcomes.entry(replayed.as_str()).or_default() += 1;
        }
    }
    for (owner, dead_letters) in seen {
        if failing_owners.contains(&Some(owner)) {
            continue;
        }
        match projection::unpark::<read_model::Workflows>(pool, owner, dead_letters).await? {
            Unpark::Unparked => summary.unparked += 1,
            Unpark::NotParked => {}
            Unpark::Stuck | Unpark::UnseenDeadLetters => summary.still_parked += 1,
        }
    }
    println!("{summary}");
    Ok(if summary.still_failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
