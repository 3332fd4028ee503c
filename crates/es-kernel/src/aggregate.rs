//! What every aggregate offers, so the event store, the command handler and the projector can
//! be written once for all of them.

use crate::Actor;
use chrono::{DateTime, Utc};
use error_code::ErrorCode;
use serde::{de::DeserializeOwned, Serialize};

/// What a decision may depend on besides the state and the command. The caller supplies the
/// time, so the domain never reads a clock and every rule can be tested at any instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

/// Why a context refused a command, as every edge reports it: one [`ErrorCode`] (which the
/// platform maps to gRPC, HTTP and GraphQL alike) and, for invalid input, the field at fault.
pub trait Rejection: std::error::Error + Send + Sync + 'static {
    fn code(&self) -> ErrorCode;

    /// The input field at fault, spelled as the command contract spells it; `Some` exactly
    /// for invalid arguments.
    fn field(&self) -> Option<&str>;
}

/// An event-sourced aggregate. `Self` is the state once it exists; before its first event an
/// aggregate is `None`. `Self` is serialisable so the store can keep snapshots of it.
pub trait Aggregate: Sized + Clone + std::fmt::Debug + Serialize + DeserializeOwned {
    /// Recorded as `aggregate_type` with every event.
    const TYPE: &'static str;
    /// The shape (and meaning) of a serialised state, stored with every snapshot. Bump it
    /// whenever a field or what `evolve` puts in it changes: snapshots of another schema are
    /// ignored and the state is folded from the events instead.
    const STATE_SCHEMA: i32;

    type Command;
    type Event: Clone + Serialize + DeserializeOwned;
    /// The context's reasons to refuse a command.
    type Error: Rejection;

    /// Stable name, recorded with the command id for idempotency.
    fn command_name(command: &Self::Command) -> &'static str;

    /// The stored `event_type`, equal to the event's serde tag.
    fn event_type(event: &Self::Event) -> &'static str;

    /// Checks every rule and returns the facts to record: at least one, since a command that
    /// would change nothing is refused.
    fn decide(
        state: Option<&Self>,
        context: &Context,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one recorded fact into the state.
    fn evolve(state: Option<Self>, event: &Self::Event) -> Result<Option<Self>, CorruptHistory>;
}

/// Folds a whole history, oldest first: `replay::<MyAggregate>(&events)`.
pub fn replay<'a, A: Aggregate>(
    events: impl IntoIterator<Item = &'a A::Event>,
) -> Result<Option<A>, CorruptHistory>
where
    A::Event: 'a,
{
    events.into_iter().try_fold(None, A::evolve)
}

/// History that no sequence of valid decisions can produce: a bug or tampering, never user error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_type} cannot follow the current state: {problem}")]
pub struct CorruptHistory {
    pub event_type: &'static str,
    pub problem: &'static str,
}

/// Declares an event enum from one table of variants and their stored `event_type`s, which
/// become the serde tag, `TYPES` and `event_type()` alike, so the three cannot drift apart.
/// The declaring crate depends on `serde`.
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $stored:literal => $variant:ident $body:tt ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $stored)] $variant $body, )*
        }

        impl $name {
            /// Every stored `event_type` of this aggregate.
            pub const TYPES: &'static [&'static str] = &[$($stored),*];

            pub fn event_type(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $stored, )*
                }
            }
        }
    };
}
