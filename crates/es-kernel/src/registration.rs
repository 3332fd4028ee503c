//! What a context tells the shared infrastructure about itself.

use crate::upcast::Upcaster;

/// A context's entry in a deployment: the event store reads with every registered context's
/// upcasters and writes outbox rows for the aggregate types some context publishes; the relay
/// routes those rows to the topic the deployment configured for the context.
#[derive(Debug, Clone, Copy)]
pub struct ContextRegistration {
    /// Short and stable, e.g. `orders`: the `<context>` in `ringiflow.<context>.events`.
    pub name: &'static str,
    pub upcasters: &'static [Upcaster],
    /// The aggregate types whose events leave the store for the broker; other aggregates of the
    /// context live in the store alone.
    pub published: &'static [&'static str],
}

impl ContextRegistration {
    /// The context's topic unless a deployment configures another one.
    pub fn default_topic(&self) -> String {
        format!("ringiflow.{}.events", self.name)
    }
}
