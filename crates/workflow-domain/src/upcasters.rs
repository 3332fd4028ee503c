//! How this context's stored payloads of older shapes become today's (see `es_kernel::upcast`):
//! the binaries hand [`UPCASTERS`] to the event store, which lifts every payload it reads.

use es_kernel::upcast::{UpcastError, Upcaster};
use serde_json::Value;

/// The workflow context's chain.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkflowEvent;
    use es_kernel::upcast::{check_chain, upcast};
    use serde_json::json;

    /// Guards future entries: each event type's steps run 1, 2, … without gaps or duplicates,
    /// and name an event type the domain has.
    #[test]
    fn the_chain_is_contiguous() {
        assert_eq!(check_chain(UPCASTERS, WorkflowEvent::TYPES), Ok(()));
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
        let event: WorkflowEvent =
            serde_json::from_value(json!({"type": "WorkflowCreated", "data": created})).unwrap();
        let WorkflowEvent::Created { route, .. } = event else {
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
        let event: WorkflowEvent =
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
