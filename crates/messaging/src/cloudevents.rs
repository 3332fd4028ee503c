//! CloudEvents 1.0 in Kafka binary content mode: the envelope as `ce_*` headers, the payload as
//! the message value, the aggregate id as the key (so one aggregate stays on one partition).

use chrono::{DateTime, SecondsFormat, Utc};
use es_kernel::{EventCodec, EventMetadata, RecordedEvent, WireError};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::Message;
use std::collections::HashMap;
use uuid::Uuid;

/// `ce_source` of events published by the relay.
pub const CE_SOURCE_COMMAND_SVC: &str = "ringiflow/command-svc";

const SPECVERSION: &str = "ce_specversion";
const ID: &str = "ce_id";
const TYPE: &str = "ce_type";
const SOURCE: &str = "ce_source";
const SUBJECT: &str = "ce_subject";
const TIME: &str = "ce_time";
const DATASCHEMA: &str = "ce_dataschema";
const TENANT: &str = "ce_tenantid";
const USER: &str = "ce_userid";
const AGGREGATE_TYPE: &str = "ce_aggregatetype";
const VERSION: &str = "ce_aggregateversion";
const POSITION: &str = "ce_position";
const CORRELATION: &str = "ce_correlationid";
const CAUSATION: &str = "ce_causationid";
const TRACEPARENT: &str = "traceparent";

/// Everything the producer needs to send one event.
#[derive(Debug)]
pub struct OutgoingMessage {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
}

pub fn encode<C: EventCodec>(event: &RecordedEvent<C::Event>, source: &str) -> OutgoingMessage {
    let version = event.version.to_string();
    let position = event.position.to_string();
    let event_id = event.event_id.to_string();
    let aggregate_id = event.aggregate_id.to_string();
    let time = event
        .occurred_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let correlation = event.metadata.correlation_id.to_string();
    let causation = event.metadata.causation_id.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        (SPECVERSION, "1.0"),
        (ID, &event_id),
        (TYPE, C::event_type(&event.event)),
        (SOURCE, source),
        (SUBJECT, &aggregate_id),
        (TIME, &time),
        ("content-type", C::CONTENT_TYPE),
        (DATASCHEMA, C::DATA_SCHEMA),
        (TENANT, &event.metadata.tenant_id),
        (USER, &event.metadata.user_id),
        (AGGREGATE_TYPE, &event.aggregate_type),
        (VERSION, &version),
        (POSITION, &position),
        (CORRELATION, &correlation),
        (CAUSATION, &causation),
    ];
    if let Some(traceparent) = &event.metadata.traceparent {
        pairs.push((TRACEPARENT, traceparent));
    }
    let headers = pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        });
    OutgoingMessage {
        key: aggregate_id,
        payload: C::encode(&event.event),
        headers,
    }
}

/// Why a message cannot become an event. All of these are permanent: redelivering the same
/// bytes gives the same error.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {header} is invalid: {problem}")]
    InvalidHeader {
        header: &'static str,
        problem: String,
    },
    #[error("message has no payload")]
    MissingPayload,
    #[error(transparent)]
    Payload(#[from] WireError),
    #[error("ce_type {header} does not match the payload ({payload})")]
    TypeMismatch { header: String, payload: String },
}

pub fn decode<C: EventCodec, M: Message>(
    message: &M,
) -> Result<RecordedEvent<C::Event>, DecodeError> {
    let headers: HashMap<&str, &[u8]> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| Some((h.key, h.value?)))
                .collect()
        })
        .unwrap_or_default();
    let text = |name: &'static str| -> Result<&str, DecodeError> {
        let raw = headers.get(name).ok_or(DecodeError::MissingHeader(name))?;
        std::str::from_utf8(raw).map_err(|_| invalid(name, "not UTF-8"))
    };
    let uuid = |name: &'static str| -> Result<Uuid, DecodeError> {
        Uuid::parse_str(text(name)?).map_err(|_| invalid(name, "not a UUID"))
    };
    let int = |name: &'static str| -> Result<i64, DecodeError> {
        text(name)?
            .parse()
            .map_err(|_| invalid(name, "not an integer"))
    };

    let spec = text(SPECVERSION)?;
    if spec != "1.0" {
        return Err(invalid(SPECVERSION, "only CloudEvents 1.0 is understood"));
    }
    let event = C::decode(message.payload().ok_or(DecodeError::MissingPayload)?)?;
    let ce_type = text(TYPE)?;
    if ce_type != C::event_type(&event) {
        return Err(DecodeError::TypeMismatch {
            header: ce_type.to_owned(),
            payload: C::event_type(&event).to_owned(),
        });
    }
    let occurred_at = DateTime::parse_from_rfc3339(text(TIME)?)
        .map_err(|e| invalid(TIME, &e.to_string()))?
        .with_timezone(&Utc);
    let version = int(VERSION)?;
    if version < 1 {
        return Err(invalid(VERSION, "versions start at 1"));
    }
    Ok(RecordedEvent {
        event_id: uuid(ID)?,
        position: int(POSITION)?,
        aggregate_type: text(AGGREGATE_TYPE)?.to_owned(),
        aggregate_id: uuid(SUBJECT)?,
        version,
        occurred_at,
        metadata: EventMetadata {
            tenant_id: text(TENANT)?.to_owned(),
            user_id: text(USER)?.to_owned(),
            correlation_id: uuid(CORRELATION)?,
            causation_id: uuid(CAUSATION)?,
            traceparent: text(TRACEPARENT).ok().map(str::to_owned),
        },
        event,
    })
}

/// The message's `traceparent` header: the trace context of the span that published it.
pub fn traceparent<M: Message>(message: &M) -> Option<&str> {
    header(message, TRACEPARENT)
}

/// The message's `ce_time`: when its event happened (what the projector's lag in seconds is
/// measured from).
pub fn event_time<M: Message>(message: &M) -> Option<DateTime<Utc>> {
    let time = header(message, TIME)?;
    Some(DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc))
}

fn header<'m, M: Message>(message: &'m M, name: &str) -> Option<&'m str> {
    let headers = message.headers()?;
    let value = headers.iter().find(|header| header.key == name)?.value?;
    std::str::from_utf8(value).ok()
}

fn invalid(header: &'static str, problem: &str) -> DecodeError {
    DecodeError::InvalidHeader {
        header,
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_codec::{recorded, Line, Lines};
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;

    fn as_message(out: OutgoingMessage) -> OwnedMessage {
        OwnedMessage::new(
            Some(out.payload),
            Some(out.key.into_bytes()),
            "t".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(out.headers),
        )
    }

    #[test]
    fn every_event_survives_the_wire() {
        for event in [Line::Said("こんにちは".into()), Line::Silence] {
            let event = recorded(event);
            let out = encode::<Lines>(&event, CE_SOURCE_COMMAND_SVC);
            assert_eq!(out.key, event.aggregate_id.to_string());
            assert_eq!(decode::<Lines, _>(&as_message(out)).unwrap(), event);
        }
    }

    #[test]
    fn the_envelope_is_the_kernels_and_the_schema_the_contexts() {
        let out = encode::<Lines>(&recorded(Line::Silence), "me");
        let headers: HashMap<&str, &str> = out
            .headers
            .iter()
            .map(|h| (h.key, std::str::from_utf8(h.value.unwrap()).unwrap()))
            .collect();
        assert_eq!(headers["ce_type"], "Silence");
        assert_eq!(headers["ce_dataschema"], Lines::DATA_SCHEMA);
        assert_eq!(headers["content-type"], Lines::CONTENT_TYPE);
        assert_eq!(headers["ce_source"], "me");
        assert_eq!(headers["ce_tenantid"], "acme");
        assert_eq!(headers["ce_aggregateversion"], "3");
        assert_eq!(headers["ce_time"], "2026-11-23T10:00:00.123456Z");
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let out = encode::<Lines>(&recorded(Line::Silence), CE_SOURCE_COMMAND_SVC);
        let garbage = OwnedMessage::new(
            Some(vec![0xff, 0xff, 0xff]),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(out.headers.clone()),
        );
        assert!(matches!(
            decode::<Lines, _>(&garbage),
            Err(DecodeError::Payload(_))
        ));
        let no_headers = OwnedMessage::new(
            Some(out.payload.clone()),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        assert!(matches!(
            decode::<Lines, _>(&no_headers),
            Err(DecodeError::MissingHeader(_))
        ));
        let mut lying = encode::<Lines>(&recorded(Line::Said("x".into())), CE_SOURCE_COMMAND_SVC);
        lying.payload = out.payload;
        assert!(matches!(
            decode::<Lines, _>(&as_message(lying)),
            Err(DecodeError::TypeMismatch { .. })
        ));
    }
}
