//! The dead-letter topic `<topic>.dlq`: where a consumer puts a message it can never process,
//! so the partition keeps moving and nothing is lost.
//!
//! A dead letter is the original message unchanged — key, headers, payload — with `ringiflow_*`
//! headers appended that say why and where it came from. Keeping the original bytes means a
//! replay decodes it exactly as the consumer first did, and keeping the key keeps one
//! aggregate's dead letters on one partition, in order.

use crate::settings::KafkaSettings;
use chrono::{DateTime, SecondsFormat, Utc};
use es_kernel::EventCodec;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Timestamp};
use std::time::Duration;
use uuid::Uuid;

pub const ERROR: &str = "ringiflow_error";
pub const ERROR_KIND: &str = "ringiflow_error_kind";
pub const ORIGINAL_TOPIC: &str = "ringiflow_original_topic";
pub const ORIGINAL_PARTITION: &str = "ringiflow_original_partition";
pub const ORIGINAL_OFFSET: &str = "ringiflow_original_offset";
pub const DEAD_LETTERED_AT: &str = "ringiflow_dead_lettered_at";

// The CloudEvents headers a dead letter is listed, parked and replayed by. They are the names
// `cloudevents` writes; read here one by one because the message may be one that does not
// decode as a whole.
const CE_ID: &str = "ce_id";
const CE_TYPE: &str = "ce_type";
const CE_TENANT: &str = "ce_tenantid";
const CE_VERSION: &str = "ce_aggregateversion";

/// How long a send may wait for room in the producer's local queue; the broker's
/// acknowledgement is bounded separately by `message.timeout.ms`.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The dead-letter topic of `topic`.
pub fn topic_for(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Creates the dead-letter topic of `settings.topic` if it does not exist yet, with the same
/// partition count and replication as the topic itself.
pub async fn ensure_topic(settings: &KafkaSettings) -> Result<(), KafkaError> {
    crate::settings::ensure_topic(&settings.with_topic(topic_for(&settings.topic))).await
}

/// Why a message was dead-lettered: the `ringiflow_error_kind` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// Not a CloudEvents message carrying an event this consumer can read.
    Undecodable,
    /// A `ce_type` this consumer does not know (e.g. from a newer producer).
    UnknownEventType,
    /// Decodes, but contradicts what the consumer has already applied.
    Contradiction,
    /// Decodes, but the consumer's database refuses to store one of its values.
    Refused,
    /// Its aggregate was parked by an earlier dead letter; applying it would build on a hole.
    Parked,
    /// The relay could not read it from the event store (see [`unpublishable`]): it never
    /// reached the event topic. A build that can read it, then `rebuild`, resolves it.
    Unpublishable,
    /// Decodes, but a command a process manager sent in reaction to it was refused by its
    /// context: the reaction is not possible as the other context stands.
    Rejected,
}

impl DeadLetterKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Undecodable => "undecodable",
            DeadLetterKind::UnknownEventType => "unknown_event_type",
            DeadLetterKind::Contradiction => "contradiction",
            DeadLetterKind::Refused => "refused",
            DeadLetterKind::Parked => "parked",
            DeadLetterKind::Unpublishable => "unpublishable",
            DeadLetterKind::Rejected => "rejected",
        }
    }

    /// The kind of a message that did not decode: an unknown `ce_type` is told apart because
    /// it is fixed by deploying a consumer that knows the type, not by repairing the message.
    pub fn of_undecodable<C: EventCodec, M: Message>(message: &M) -> Self {
        match header(message, CE_TYPE) {
            Some(ce_type) if !C::TYPES.contains(&ce_type) => DeadLetterKind::UnknownEventType,
            _ => DeadLetterKind::Undecodable,
        }
    }
}

/// What the event store says of an event outside its payload.
#[derive(Debug, Clone, Copy)]
pub struct StoredEnvelope<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub aggregate_type: &'a str,
    pub aggregate_id: Uuid,
    pub tenant_id: &'a str,
    pub version: i64,
    pub position: i64,
}

/// The message a stored event the relay cannot read stands for on `topic`: its envelope as the
/// usual CloudEvents headers and the stored JSON payload, so that it is dead-lettered, listed
/// and parked like any other message. It never had a partition or an offset: the offset it
/// reports is its event-store position.
pub fn unpublishable(topic: &str, stored: StoredEnvelope<'_>, payload: Vec<u8>) -> OwnedMessage {
    let event_id = stored.event_id.to_string();
    let aggregate_id = stored.aggregate_id.to_string();
    let version = stored.version.to_string();
    let position = stored.position.to_string();
    let headers = [
        (CE_ID, event_id.as_str()),
        (CE_TYPE, stored.event_type),
        ("ce_subject", &aggregate_id),
        (CE_TENANT, stored.tenant_id),
        ("ce_aggregatetype", stored.aggregate_type),
        (CE_VERSION, &version),
        ("ce_position", &position),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value),
        })
    });
    OwnedMessage::new(
        Some(payload),
        Some(aggregate_id.into_bytes()),
        topic.to_owned(),
        Timestamp::NotAvailable,
        -1,
        stored.position,
        Some(headers),
    )
}

/// Produces dead letters with the durable producer settings of the event topic itself.
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterProducer {
    /// Dead letters of `settings.topic`, through a producer made with
    /// [`crate::producer_config`] that the process shares: one per process, as each producer
    /// has a polling thread and broker connections of its own.
    pub fn with_producer(producer: FutureProducer, settings: &KafkaSettings) -> Self {
        Self {
            producer,
            topic: topic_for(&settings.topic),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces `original` as a dead letter and waits for the broker's acknowledgement; returns
    /// the dead letter's partition and offset. Only after this returns may the consumer commit
    /// the original's offset.
    pub async fn send<M: Message>(
        &self,
        original: &M,
        kind: DeadLetterKind,
        error: &str,
    ) -> Result<(i32, i64), KafkaError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(dead_letter_headers(
            original,
            kind,
            error,
            Utc::now(),
        ));
        if let Some(key) = original.key() {
            record = record.key(key);
        }
        if let Some(payload) = original.payload() {
            record = record.payload(payload);
        }
        let delivery = self
            .producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map_err(|(error, _)| error)?;
        Ok((delivery.partition, delivery.offset))
    }
}

/// The original headers, in order, followed by the dead-letter headers.
fn dead_letter_headers<M: Message>(
    original: &M,
    kind: DeadLetterKind,
    error: &str,
    at: DateTime<Utc>,
) -> OwnedHeaders {
    let copied = original
        .headers()
        .map_or_else(OwnedHeaders::new, |headers| {
            headers
                .iter()
                .fold(OwnedHeaders::new(), |copy, header| copy.insert(header))
        });
    let partition = original.partition().to_string();
    let offset = original.offset().to_string();
    let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    [
        (ERROR, error),
        (ERROR_KIND, kind.as_str()),
        (ORIGINAL_TOPIC, original.topic()),
        (ORIGINAL_PARTITION, &partition),
        (ORIGINAL_OFFSET, &offset),
        (DEAD_LETTERED_AT, &at),
    ]
    .into_iter()
    .fold(copied, |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// The last value of header `name` as text. The last, because a dead letter's own headers come
/// after whatever the original carried.
fn header<'m, M: Message>(message: &'m M, name: &str) -> Option<&'m str> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|header| header.key == name)
        .last()
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}

/// What a message says about itself outside its payload: enough to list it, park its
/// aggregate and judge whether it is still needed, even when it does not decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The message key: the aggregate id, as text, for messages from the relay.
    pub key: Option<String>,
    pub ce_id: Option<String>,
    pub ce_type: Option<String>,
    pub tenant_id: Option<String>,
    pub aggregate_version: Option<i64>,
}

impl Envelope {
    pub fn of<M: Message>(message: &M) -> Self {
        let text = |name| header(message, name).map(str::to_owned);
        Self {
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            ce_id: text(CE_ID),
            ce_type: text(CE_TYPE),
            tenant_id: text(CE_TENANT),
            aggregate_version: header(message, CE_VERSION).and_then(|raw| raw.parse().ok()),
        }
    }

    /// The aggregate the message belongs to: its key, which also decides its partition.
    pub fn aggregate_id(&self) -> Option<Uuid> {
        self.key
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok())
    }

    pub fn event_id(&self) -> Option<Uuid> {
        self.ce_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
    }
}

/// A message read back from a dead-letter topic: the original's envelope and the dead-letter
/// headers. Every field is optional, since anyone can produce to the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetter {
    pub envelope: Envelope,
    pub kind: Option<String>,
    pub error: Option<String>,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub dead_lettered_at: Option<String>,
}

impl DeadLetter {
    pub fn read<M: Message>(message: &M) -> Self {
        let text = |name| header(message, name).map(str::to_owned);
        Self {
            envelope: Envelope::of(message),
            kind: text(ERROR_KIND),
            error: text(ERROR),
            original_topic: text(ORIGINAL_TOPIC),
            original_partition: header(message, ORIGINAL_PARTITION).and_then(|p| p.parse().ok()),
            original_offset: header(message, ORIGINAL_OFFSET).and_then(|o| o.parse().ok()),
            dead_lettered_at: text(DEAD_LETTERED_AT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_codec::{recorded, Line, Lines};
    use crate::{encode, CE_SOURCE_COMMAND_SVC};
    use es_kernel::RecordedEvent;

    fn original() -> (RecordedEvent<Line>, OwnedMessage) {
        let event = RecordedEvent {
            position: 7,
            version: 2,
            metadata: es_kernel::EventMetadata {
                traceparent: None,
                ..recorded(Line::Silence).metadata
            },
            ..recorded(Line::Silence)
        };
        let out = encode::<Lines>(&event, CE_SOURCE_COMMAND_SVC);
        let message = OwnedMessage::new(
            Some(out.payload),
            Some(out.key.into_bytes()),
            "events".into(),
            Timestamp::NotAvailable,
            3,
            41,
            Some(out.headers),
        );
        (event, message)
    }

    /// The dead letter as a consumer of the dead-letter topic would see it.
    fn as_dead_letter(original: &OwnedMessage, headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            original.payload().map(<[u8]>::to_vec),
            original.key().map(<[u8]>::to_vec),
            topic_for(original.topic()),
            Timestamp::NotAvailable,
            0,
            5,
            Some(headers),
        )
    }

    #[test]
    fn a_dead_letter_keeps_the_original_and_says_why_and_where_from() {
        let (event, message) = original();
        let at = DateTime::parse_from_rfc3339("2026-11-24T09:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let headers = dead_letter_headers(&message, DeadLetterKind::Contradiction, "boom", at);
        let dead = as_dead_letter(&message, headers);

        // Still the same event: a replay decodes it exactly like the first attempt.
        assert_eq!(crate::decode::<Lines, _>(&dead).unwrap(), event);
        let read = DeadLetter::read(&dead);
        assert_eq!(read.envelope.aggregate_id(), Some(event.aggregate_id));
        assert_eq!(read.envelope.event_id(), Some(event.event_id));
        assert_eq!(read.envelope.ce_type.as_deref(), Some("Silence"));
        assert_eq!(read.envelope.tenant_id.as_deref(), Some("acme"));
        assert_eq!(read.envelope.aggregate_version, Some(2));
        assert_eq!(read.kind.as_deref(), Some("contradiction"));
        assert_eq!(read.error.as_deref(), Some("boom"));
        assert_eq!(read.original_topic.as_deref(), Some("events"));
        assert_eq!(
            (read.original_partition, read.original_offset),
            (Some(3), Some(41))
        );
        assert_eq!(
            read.dead_lettered_at.as_deref(),
            Some("2026-11-24T09:00:00.500000Z")
        );
    }

    #[test]
    fn a_message_without_headers_or_key_still_becomes_a_dead_letter() {
        let message = OwnedMessage::new(
            Some(b"junk".to_vec()),
            None,
            "events".into(),
            Timestamp::NotAvailable,
            0,
            9,
            None,
        );
        assert_eq!(
            DeadLetterKind::of_undecodable::<Lines, _>(&message),
            DeadLetterKind::Undecodable
        );
        let headers = dead_letter_headers(&message, DeadLetterKind::Undecodable, "bad", Utc::now());
        let read = DeadLetter::read(&as_dead_letter(&message, headers));
        assert_eq!(read.envelope, Envelope::default());
        assert_eq!(read.kind.as_deref(), Some("undecodable"));
        assert_eq!(read.original_offset, Some(9));
    }

    #[test]
    fn an_event_the_relay_cannot_read_is_listed_like_any_dead_letter() {
        let (aggregate_id, event_id) = (Uuid::new_v4(), Uuid::new_v4());
        let stored = StoredEnvelope {
            event_id,
            event_type: "Shouted",
            aggregate_type: "conversation",
            aggregate_id,
            tenant_id: "acme",
            version: 4,
            position: 1234,
        };
        let message = unpublishable("events", stored, br#"{"why":"?"}"#.to_vec());
        let headers = dead_letter_headers(
            &message,
            DeadLetterKind::Unpublishable,
            "unknown variant",
            Utc::now(),
        );
        let read = DeadLetter::read(&as_dead_letter(&message, headers));
        assert_eq!(read.envelope.aggregate_id(), Some(aggregate_id));
        assert_eq!(read.envelope.event_id(), Some(event_id));
        assert_eq!(read.envelope.tenant_id.as_deref(), Some("acme"));
        assert_eq!(read.envelope.aggregate_version, Some(4));
        assert_eq!(read.kind.as_deref(), Some("unpublishable"));
        assert_eq!(read.original_topic.as_deref(), Some("events"));
        assert_eq!(read.original_offset, Some(1234), "the event-store position");
        assert!(
            crate::decode::<Lines, _>(&message).is_err(),
            "not an event message"
        );
    }

    #[test]
    fn an_unknown_ce_type_is_its_own_kind() {
        let (_, message) = original();
        let headers = message
            .headers()
            .unwrap()
            .iter()
            .filter(|header| header.key != CE_TYPE)
            .fold(OwnedHeaders::new(), |copy, header| copy.insert(header))
            // A type only a newer producer could write: no such event exists yet.
            .insert(Header {
                key: CE_TYPE,
                value: Some("Shouted"),
            });
        let message = message.replace_headers(Some(headers));
        assert_eq!(
            DeadLetterKind::of_undecodable::<Lines, _>(&message),
            DeadLetterKind::UnknownEventType
        );
    }
}
