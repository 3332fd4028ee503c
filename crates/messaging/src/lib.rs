//! Kafka adapters shared by the relay (producer) and the consumers: client settings, the wire
//! format of an event — CloudEvents 1.0 binary content mode headers around the payload of the
//! event's context (an `es_kernel::EventCodec`) — the relay's routes from aggregate types to
//! topics, and dead-letter topics. Names no context.
//!
//! Only broker-agnostic Kafka features are used, so the local Tansu broker and Apache Kafka
//! behave the same.
#![forbid(unsafe_code)]

mod cloudevents;
pub mod dead_letter;
mod routes;
mod settings;
#[cfg(test)]
mod test_codec;
mod topics;

pub use cloudevents::{
    decode, encode, event_time, traceparent, DecodeError, OutgoingMessage, CE_SOURCE_COMMAND_SVC,
};
pub use es_kernel::EventCodec;
pub use routes::Routes;
pub use settings::{consumer_config, ensure_topic, producer_config, KafkaSettings};
pub use topics::ContextTopics;
