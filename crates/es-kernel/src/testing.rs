//! Given/when/then for any aggregate: given past commands, when a command arrives, then these
//! events or this error. Every context's rule tests share these fixtures (feature `testing`).

use crate::{Actor, Aggregate, Context, DisplayName, Role, TenantId, UserId};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::fmt::Debug;

/// `"bob"` is user bob without roles; `"mia:manager,admin"` is user mia holding both roles.
pub fn actor(spec: &str) -> Actor {
    let (id, roles) = spec.split_once(':').unwrap_or((spec, ""));
    Actor {
        tenant_id: TenantId::parse("tenant", "acme").unwrap(),
        user_id: uid(id),
        display_name: DisplayName::parse("name", &id.to_uppercase()).unwrap(),
        roles: roles
            .split(',')
            .filter(|role| !role.is_empty())
            .map(|role| Role::parse("roles", role).unwrap())
            .collect(),
    }
}

pub fn uid(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

pub fn role(name: &str) -> Role {
    Role::parse("role", name).unwrap()
}

/// When every scenario starts.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 4, 1, 9, 0, 0).unwrap()
}

pub fn hours_after_t0(hours: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(hours)
}

/// One command of a scenario: who sends it, and how many hours after [`t0`].
#[derive(Debug, Clone)]
pub struct Act<C> {
    pub by: &'static str,
    pub hours: i64,
    pub command: C,
}

pub fn by<C>(who: &'static str, command: C) -> Act<C> {
    Act {
        by: who,
        hours: 0,
        command,
    }
}

impl<C> Act<C> {
    pub fn at(self, hours: i64) -> Self {
        Self { hours, ..self }
    }

    pub fn context(&self) -> Context {
        Context {
            actor: actor(self.by),
            now: hours_after_t0(self.hours),
        }
    }
}

/// A table row: the case, what happened before, the command under test, what must follow.
pub type Case<C, Then> = (&'static str, Vec<Act<C>>, Act<C>, Then);

/// Decides and folds every `given` command (each must succeed): the state and the history.
pub fn record<A>(given: &[Act<A::Command>]) -> (Option<A>, Vec<A::Event>)
where
    A: Aggregate,
    A::Command: Clone + Debug,
{
    let mut state = None;
    let mut history = Vec::new();
    for act in given {
        let events = A::decide(state.as_ref(), &act.context(), act.command.clone())
            .unwrap_or_else(|e| panic!("given {:?} by {} failed: {e}", act.command, act.by));
        for event in &events {
            state = A::evolve(state, event).expect("decided events always evolve");
        }
        history.extend(events);
    }
    (state, history)
}

/// The outcome of `when` after `given`.
pub fn run<A>(given: &[Act<A::Command>], when: Act<A::Command>) -> Result<Vec<A::Event>, A::Error>
where
    A: Aggregate,
    A::Command: Clone + Debug,
{
    let (state, _) = record::<A>(given);
    A::decide(state.as_ref(), &when.context(), when.command)
}

/// `given` followed by `more`.
pub fn with<C>(mut given: Vec<Act<C>>, more: impl IntoIterator<Item = Act<C>>) -> Vec<Act<C>> {
    given.extend(more);
    given
}

/// An event as the store keeps it: serialises it, checks the envelope (`type` is `event_type`,
/// `data` an object), checks that it reads back unchanged, and returns the JSON for the caller
/// to pin.
pub fn stored<E>(event: &E, event_type: &str) -> serde_json::Value
where
    E: serde::Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_value(event).unwrap();
    assert_eq!(json["type"], event_type);
    assert!(
        json["data"].is_object(),
        "payload must be an object: {json}"
    );
    let back: E = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, event);
    json
}
