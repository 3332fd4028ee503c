//! Kafka adapters shared by the relay (producer) and the projector (consumer): client settings,
//! and the wire format of an event — CloudEvents 1.0 binary content mode headers around a
//! protobuf `ringiflow.workflow.v1.WorkflowEvent`.
//!
//! Only broker-agnostic Kafka features are used, so the local Tansu broker and Apache Kafka
//! behave the same.
#![forbid(unsafe_code)]

mod cloudevents;
pub mod dead_letter;
mod payload;
mod settings;

pub use cloudevents::{decode, encode, DecodeError, OutgoingMessage, CE_SOURCE_COMMAND_SVC};
pub use settings::{consumer_config, ensure_topic, producer_config, KafkaSettings};
