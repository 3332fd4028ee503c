//! Where the relay sends each stored event. A deployment lists, per published aggregate type,
//! its context's topic and codec; the relay itself knows no context.

use crate::cloudevents::{encode, OutgoingMessage};
use es_kernel::{EventCodec, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::Value;
use std::collections::HashMap;

/// Turns a stored event (its payload as the store keeps it, lifted to the current shape) into
/// the context's message, or says why it cannot.
type Encoder = fn(&RecordedEvent<Value>, &str) -> Result<OutgoingMessage, String>;

#[derive(Clone)]
struct Route {
    topic: String,
    encode: Encoder,
}

/// Aggregate type → (topic, codec).
#[derive(Clone, Default)]
pub struct Routes {
    by_type: HashMap<&'static str, Route>,
}

impl Routes {
    /// Events of `aggregate_type` go to `topic`, encoded by `C`.
    pub fn publish<C>(mut self, aggregate_type: &'static str, topic: impl Into<String>) -> Self
    where
        C: EventCodec,
        C::Event: DeserializeOwned,
    {
        self.by_type.insert(
            aggregate_type,
            Route {
                topic: topic.into(),
                encode: encode_stored::<C>,
            },
        );
        self
    }

    /// Every topic some aggregate type is routed to, each once.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.by_type.values().map(|r| r.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The topic and message of `event`, sent with `ce_source = source`. An aggregate type
    /// without a route, or a payload that is not an event of its context, is an error the relay
    /// dead-letters: retrying cannot change it.
    pub fn message(
        &self,
        event: &RecordedEvent<Value>,
        source: &str,
    ) -> Result<(&str, OutgoingMessage), String> {
        let route = self
            .by_type
            .get(event.aggregate_type.as_str())
            .ok_or_else(|| format!("no topic for aggregate type {}", event.aggregate_type))?;
        Ok((&route.topic, (route.encode)(event, source)?))
    }
}

fn encode_stored<C>(event: &RecordedEvent<Value>, source: &str) -> Result<OutgoingMessage, String>
where
    C: EventCodec,
    C::Event: DeserializeOwned,
{
    // From the JSON in place: the payload is not copied before it becomes the typed event.
    let typed = C::Event::deserialize(&event.event).map_err(|error| format!("payload: {error}"))?;
    Ok(encode::<C>(&event.with_event(typed), source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;
    use crate::test_codec::{recorded, Line, Lines};
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;
    use serde_json::json;

    fn stored(event: Value) -> RecordedEvent<Value> {
        recorded(event)
    }

    #[test]
    fn a_routed_type_goes_to_its_topic_in_its_contexts_encoding() {
        let routes = Routes::default().publish::<Lines>("conversation", "talk");
        let event = stored(json!({"Said": "hello"}));
        let (topic, out) = routes.message(&event, "me").unwrap();
        assert_eq!(topic, "talk");
        assert_eq!(routes.topics(), ["talk"]);
        let message = OwnedMessage::new(
            Some(out.payload),
            Some(out.key.into_bytes()),
            "talk".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(out.headers),
        );
        let decoded = decode::<Lines, _>(&message).unwrap();
        assert_eq!(decoded.event, Line::Said("hello".into()));
        assert_eq!(decoded.event_id, event.event_id);
    }

    #[test]
    fn an_unrouted_type_or_a_foreign_payload_is_refused_with_a_reason() {
        let routes = Routes::default().publish::<Lines>("conversation", "talk");
        let unknown = RecordedEvent {
            aggregate_type: "invoice".into(),
            ..stored(json!("Silence"))
        };
        assert!(routes
            .message(&unknown, "me")
            .unwrap_err()
            .contains("invoice"));
        let foreign = stored(json!({"Shouted": "HI"}));
        assert!(routes
            .message(&foreign, "me")
            .unwrap_err()
            .starts_with("payload"));
    }
}
