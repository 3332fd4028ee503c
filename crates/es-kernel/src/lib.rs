//! The event-sourcing kernel: what every bounded context needs and none owns.
//!
//! A context implements [`Aggregate`] (`decide` checks the rules and returns facts, `evolve`
//! folds them into state), declares its events with [`events!`], parses wire input into
//! newtypes built with [`text_newtype!`], [`identifier_newtype!`] and [`uuid_newtype!`], and
//! refuses commands with its own error type implementing [`Rejection`]. The event store, the
//! command handler, the relay and the projection pipeline are written once against these.
//!
//! Nothing here does IO, reads a clock or names a context: that is the invariant that lets
//! every context share the kernel (checked by `scripts/check-kernel`).
#![forbid(unsafe_code)]

mod aggregate;
mod codec;
mod envelope;
mod ids;
mod registration;
pub mod upcast;
mod values;

#[cfg(feature = "testing")]
pub mod testing;

pub use aggregate::{replay, Aggregate, Context, CorruptHistory, Rejection};
pub use codec::{EventCodec, WireError};
pub use envelope::{EventMetadata, RecordedEvent};
pub use ids::derived_id;
pub use registration::ContextRegistration;
pub use values::{
    hidden_character, parse_date, Actor, DisplayName, Role, TenantId, UserId, ValidationError,
    DATES,
};

/// What the exported macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::values::{bounded_text, identifier};
    pub use uuid::Uuid;
}
