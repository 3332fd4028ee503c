//! Event schema evolution. Events are append-only, so a stored payload keeps the shape it was
//! written in forever; every read lifts it to the shape this build understands, one version at
//! a time, before it is parsed into a `WorkflowEvent`.
//!
//! A chain is a table of steps, each taking one event type's payload from `from_version` to
//! `from_version + 1`. An event type's current version is one past its last step (1 without
//! steps), and that is the version every append records. Changing a payload's shape is
//! therefore one entry in [`UPCASTERS`] plus the new shape in the domain.

use serde_json::Value;

/// The chain this build reads with.
pub const UPCASTERS: &[Upcaster] = &[
    // v2: route steps name a user or a role and may carry an SLA.
    Upcaster {
        event_type: "WorkflowCreated",
        from_version: 1,
        upcast: route_of_users_to_step_specs,
    },
    // v2: a step is assigned to a user or a role, with an optional deadline.
    Upcaster {
        event_type: "WorkflowStepAssigned",
        from_version: 1,
        upcast: approver_id_to_assignee,
    },
];

fn object(payload: &mut Value) -> Result<&mut serde_json::Map<String, Value>, UpcastError> {
    payload
        .as_object_mut()
        .ok_or_else(|| UpcastError("payload is not an object".into()))
}

/// `{"route": ["bob", …]}` → `{"route": [{"approver": {"user": "bob"}}, …]}`.
fn route_of_users_to_step_specs(mut payload: Value) -> Result<Value, UpcastError> {
    let route = object(&mut payload)?
        .get_mut("route")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| UpcastError("no route array".into()))?;
    for step in route.iter_mut() {
        let user = step
            .as_str()
            .ok_or_else(|| UpcastError("a route step is not a user id".into()))?;
        *step = serde_json::json!({ "approver": { "user": user } });
    }
    Ok(payload)
}

/// `{"step": 1, "approver_id": "bob"}` → `{"step": 1, "assignee": {"user": "bob"}}`.
fn approver_id_to_assignee(mut payload: Value) -> Result<Value, UpcastError> {
    let fields = object(&mut payload)?;
    let user = fields
        .remove("approver_id")
        .filter(Value::is_string)
        .ok_or_else(|| UpcastError("no approver_id string".into()))?;
    fields.insert("assignee".into(), serde_json::json!({ "user": user }));
    Ok(payload)
}

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
pub(crate) enum Unreadable {
    /// No step leads on from the stored version: written by a newer build, or the chain has
    /// a gap.
    UnknownVersion,
    Step {
        from_version: i32,
        error: UpcastError,
    },
}

/// The version appends record for `event_type`.
pub(crate) fn current_version(chain: &[Upcaster], event_type: &str) -> i32 {
    chain
        .iter()
        .filter(|step| step.event_type == event_type)
        .map(|step| step.from_version + 1)
        .max()
        .unwrap_or(1)
}

/// `payload`, stored as `version` of `event_type`, in the current version's shape.
pub(crate) fn upcast(
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

    /// Guards future entries: each event type's steps run 1, 2, … without gaps or duplicates,
    /// and name an event type the domain has.
    #[test]
    fn the_production_chain_is_contiguous() {
        for step in UPCASTERS {
            assert!(
                workflow_domain::WorkflowEvent::TYPES.contains(&step.event_type),
                "{step:?}"
            );
            let mut versions: Vec<i32> = UPCASTERS
                .iter()
                .filter(|s| s.event_type == step.event_type)
                .map(|s| s.from_version)
                .collect();
            versions.sort_unstable();
            let expected: Vec<i32> = (1..=versions.len() as i32).collect();
            assert_eq!(versions, expected, "steps of {}", step.event_type);
        }
    }

    /// The shapes the walking skeleton stored, lifted and parsed by this build's domain.
    #[test]
    fn skeleton_payloads_read_as_current_events() {
        let created = upcast(
            UPCASTERS,
            "WorkflowCreated",
            1,
            json!({"title": "出張申請", "description": "", "priority": "High",
                   "applicant_id": "alice", "applicant_name": "Alice",
                   "route": ["bob", "carol"]}),
        )
        .unwrap();
        let event: workflow_domain::WorkflowEvent =
            serde_json::from_value(json!({"type": "WorkflowCreated", "data": created})).unwrap();
        let workflow_domain::WorkflowEvent::Created { route, .. } = event else {
            panic!("{event:?}");
        };
        assert_eq!(route.len(), 2);

        let assigned = upcast(
            UPCASTERS,
            "WorkflowStepAssigned",
            1,
            json!({"step": 2, "approver_id": "carol"}),
        )
        .unwrap();
        assert_eq!(assigned, json!({"step": 2, "assignee": {"user": "carol"}}));
        let event: workflow_domain::WorkflowEvent =
            serde_json::from_value(json!({"type": "WorkflowStepAssigned", "data": assigned}))
                .unwrap();
        assert_eq!(event.event_type(), "WorkflowStepAssigned");

        for (event_type, bad) in [
            (
                "WorkflowCreated",
                json!({"route": [{"approver": {"user": "bob"}}]}),
            ),
            ("WorkflowCreated", json!(["not", "an", "object"])),
            ("WorkflowStepAssigned", json!({"step": 1})),
        ] {
            assert!(
                upcast(UPCASTERS, event_type, 1, bad.clone()).is_err(),
                "{event_type} {bad}"
            );
        }
    }
}
