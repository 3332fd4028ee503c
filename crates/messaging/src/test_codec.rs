//! A context of the tests' own, so the kernel's wire format is tested without naming any of the
//! real contexts.

use crate::EventCodec;
use chrono::{DateTime, Utc};
use es_kernel::{EventMetadata, RecordedEvent, WireError};
use uuid::Uuid;

/// Serialised as serde's externally tagged default, as a store would keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub enum Line {
    Said(String),
    Silence,
}

/// `Said` is `S` and the text, `Silence` is `-`.
pub struct Lines;

impl EventCodec for Lines {
    type Event = Line;
    const DATA_SCHEMA: &'static str = "test.Line";
    const CONTENT_TYPE: &'static str = "text/plain";
    const TYPES: &'static [&'static str] = &["Said", "Silence"];

    fn event_type(event: &Line) -> &'static str {
        match event {
            Line::Said(_) => "Said",
            Line::Silence => "Silence",
        }
    }

    fn encode(event: &Line) -> Vec<u8> {
        match event {
            Line::Said(text) => format!("S{text}").into_bytes(),
            Line::Silence => b"-".to_vec(),
        }
    }

    fn decode(payload: &[u8]) -> Result<Line, WireError> {
        let malformed = |problem: &str| WireError::Malformed {
            schema: Self::DATA_SCHEMA,
            problem: problem.to_owned(),
        };
        let text = std::str::from_utf8(payload).map_err(|_| malformed("not UTF-8"))?;
        match text.split_at_checked(1) {
            Some(("S", said)) => Ok(Line::Said(said.to_owned())),
            Some(("-", "")) => Ok(Line::Silence),
            _ => Err(malformed("unknown case")),
        }
    }
}

pub fn recorded<E>(event: E) -> RecordedEvent<E> {
    RecordedEvent {
        event_id: Uuid::new_v4(),
        position: 42,
        aggregate_type: "conversation".into(),
        aggregate_id: Uuid::new_v4(),
        version: 3,
        occurred_at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc),
        metadata: EventMetadata {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        },
        event,
    }
}
