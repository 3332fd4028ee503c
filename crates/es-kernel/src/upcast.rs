//! Event schema evolution. Events are append-only, so a stored payload keeps the shape it was
//! written in forever; every read lifts it to the shape this build understands, one version at
//! a time, before it is parsed into the context's event type.
//!
//! A chain is a table of steps, each taking one event type's payload from `from_version` to
//! `from_version + 1`. An event type's current version is one past its last step (1 without
//! steps), and that is the version every append records. Each context owns its chain (changing
//! a payload's shape is one entry there plus the new shape in its domain) and the binaries hand
//! every context's chain to the event store.

use serde_json::Value;

/// One step of one event type's payload, from `from_version` to `from_version + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: i32,
    pub upcast: fn(Value) -> Result<Value, UpcastError>,
}

/// A stored payload that does not have the shape its version promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UpcastError(pub String);

/// Why a stored payload could not be brought to the current version.
#[derive(Debug)]
pub enum Unreadable {
    /// No step leads on from the stored version: written by a newer build, or the chain has
    /// a gap.
    UnknownVersion,
    Step {
        from_version: i32,
        error: UpcastError,
    },
}

/// The version appends record for `event_type`.
pub fn current_version(chain: &[Upcaster], event_type: &str) -> i32 {
    chain
        .iter()
        .filter(|step| step.event_type == event_type)
        .map(|step| step.from_version + 1)
        .max()
        .unwrap_or(1)
}

/// `payload`, stored as `version` of `event_type`, in the current version's shape.
pub fn upcast(
    chain: &[Upcaster],
    event_type: &str,
    mut version: i32,
    mut payload: Value,
) -> Result<Value, Unreadable> {
    let current = current_version(chain, event_type);
    if !(1..=current).contains(&version) {
        return Err(Unreadable::UnknownVersion);
    }
    while version < current {
        let step = chain
            .iter()
            .find(|step| step.event_type == event_type && step.from_version == version)
            .ok_or(Unreadable::UnknownVersion)?;
        payload = (step.upcast)(payload).map_err(|error| Unreadable::Step {
            from_version: version,
            error,
        })?;
        version += 1;
    }
    Ok(payload)
}

/// Checks a context's chain: each event type's steps run 1, 2, … without gaps or duplicates, and
/// name one of the context's event `types`. A context's tests call it on its chain.
pub fn check_chain(chain: &[Upcaster], types: &[&str]) -> Result<(), String> {
    for step in chain {
        if !types.contains(&step.event_type) {
            return Err(format!("{step:?} names no event type of the context"));
        }
        let mut versions: Vec<i32> = chain
            .iter()
            .filter(|s| s.event_type == step.event_type)
            .map(|s| s.from_version)
            .collect();
        versions.sort_unstable();
        if !versions.iter().copied().eq(1..=versions.len() as i32) {
            return Err(format!("steps of {} are {versions:?}", step.event_type));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_name_to_title(mut payload: Value) -> Result<Value, UpcastError> {
        let object = payload
            .as_object_mut()
            .ok_or_else(|| UpcastError("not an object".into()))?;
        let name = object
            .remove("name")
            .ok_or_else(|| UpcastError("no name".into()))?;
        object.insert("title".into(), name);
        Ok(payload)
    }

    fn add_priority(mut payload: Value) -> Result<Value, UpcastError> {
        payload["priority"] = json!("Low");
        Ok(payload)
    }

    const CHAIN: &[Upcaster] = &[
        // Out of order on purpose: steps are found by version, not by position in the table.
        Upcaster {
            event_type: "Thing",
            from_version: 2,
            upcast: add_priority,
        },
        Upcaster {
            event_type: "Thing",
            from_version: 1,
            upcast: rename_name_to_title,
        },
    ];

    #[test]
    fn payloads_are_lifted_one_version_at_a_time_to_the_current_one() {
        assert_eq!(current_version(CHAIN, "Thing"), 3);
        assert_eq!(current_version(CHAIN, "Other"), 1);
        let lifted = upcast(CHAIN, "Thing", 1, json!({"name": "x"})).unwrap();
        assert_eq!(lifted, json!({"title": "x", "priority": "Low"}));
        assert_eq!(
            upcast(CHAIN, "Thing", 2, json!({"title": "x"})).unwrap(),
            lifted
        );
        assert_eq!(
            upcast(CHAIN, "Thing", 3, lifted.clone()).unwrap(),
            lifted,
            "current is left alone"
        );
        assert_eq!(upcast(CHAIN, "Other", 1, json!({})).unwrap(), json!({}));
    }

    #[test]
    fn a_chain_with_a_gap_or_a_foreign_type_is_refused() {
        assert_eq!(check_chain(CHAIN, &["Thing"]), Ok(()));
        assert!(check_chain(CHAIN, &["Other"]).is_err());
        let gap = [CHAIN[0]];
        assert!(check_chain(&gap, &["Thing"]).is_err());
    }

    #[test]
    fn unknown_versions_and_bad_payloads_are_errors() {
        assert!(matches!(
            upcast(CHAIN, "Thing", 4, json!({})),
            Err(Unreadable::UnknownVersion)
        ));
        assert!(matches!(
            upcast(CHAIN, "Thing", 0, json!({})),
            Err(Unreadable::UnknownVersion)
        ));
        assert!(matches!(
            upcast(CHAIN, "Other", 2, json!({})),
            Err(Unreadable::UnknownVersion)
        ));
        let gap = [Upcaster {
            event_type: "Thing",
            from_version: 2,
            upcast: add_priority,
        }];
        assert!(matches!(
            upcast(&gap, "Thing", 1, json!({})),
            Err(Unreadable::UnknownVersion)
        ));
        assert!(matches!(
            upcast(CHAIN, "Thing", 1, json!({"title": "x"})),
            Err(Unreadable::Step {
                from_version: 1,
                ..
            })
        ));
    }
}
