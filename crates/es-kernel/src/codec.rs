//! How a context's events travel between services: the payload bytes of a broker message. The
//! envelope around them (ids, versions, tenant, correlation) is the kernel's and the same for
//! every context; the payload is the context's own contract, in whatever encoding it publishes
//! (protobuf for the contexts of this repository).

use crate::ValidationError;

/// One context's wire format for its events. Implemented on a marker type by the crate that
/// owns the contract, so neither the domain nor the messaging kernel depends on it.
pub trait EventCodec: Send + Sync + 'static {
    type Event: Send + Sync;
    /// The contract's name, sent as CloudEvents `dataschema`.
    const DATA_SCHEMA: &'static str;
    /// The media type of the payload, sent as `content-type`.
    const CONTENT_TYPE: &'static str;
    /// Every event type the context publishes (its `events!` table's `TYPES`).
    const TYPES: &'static [&'static str];

    fn event_type(event: &Self::Event) -> &'static str;

    fn encode(event: &Self::Event) -> Vec<u8>;

    /// The event in `payload`. A payload of the right shape whose values the domain would never
    /// have accepted is `Invalid`, not a silently different event.
    fn decode(payload: &[u8]) -> Result<Self::Event, WireError>;
}

/// Why a payload is not an event of the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("payload is not a {schema}: {problem}")]
    Malformed {
        schema: &'static str,
        problem: String,
    },
    #[error("payload breaks a domain rule: {0}")]
    Invalid(#[from] ValidationError),
}
