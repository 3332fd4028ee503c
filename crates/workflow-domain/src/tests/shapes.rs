//! The stored shapes: event payloads and snapshots are read back for years, so they are pinned.

use super::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn every_workflow_event_round_trips_under_its_stored_type() {
    let histories = [
        with(
            changes_requested(),
            [
                by("alice", retitle("出張申請：京都")),
                by("alice", attach()),
                by("alice", WorkflowCommand::Submit),
                by("bob", delegate(1, "dave")),
                by(WATCHER, escalate(1)).at(30),
                by("dave", comment()),
            ],
        ),
        approved(),
        rejected(),
        cancelled(),
    ];
    let mut seen = BTreeSet::new();
    for given in &histories {
        for event in record::<Workflow>(given).1 {
            stored(&event, event.event_type());
            assert_eq!(
                <Workflow as Aggregate>::event_type(&event),
                event.event_type()
            );
            seen.insert(event.event_type());
        }
    }
    assert_eq!(seen, WorkflowEvent::TYPES.iter().copied().collect());
    assert_eq!(
        WorkflowEvent::TYPES.len(),
        11,
        "the stored names are unique"
    );
}

#[test]
fn workflow_payloads_are_pinned() {
    let bob_24 = json!({"approver": {"user": "bob"}, "sla_hours": 24});
    let cases: Vec<(WorkflowEvent, Value)> = vec![
        (
            run::<Workflow>(&[], by("alice", create()))
                .unwrap()
                .remove(0),
            json!({"type": "WorkflowCreated", "data": {
                "title": "出張申請：大阪",
                "description": "二泊三日",
                "priority": "High",
                "applicant_id": "alice",
                "applicant_name": "ALICE",
                "route": [
                    bob_24,
                    {"approver": {"role": "manager"}, "sla_hours": 48},
                    {"approver": {"user": "carol"}},
                ],
            }}),
        ),
        (
            WorkflowEvent::Created {
                title: Title::parse("title", "t").unwrap(),
                description: Description::parse("description", "").unwrap(),
                priority: Priority::Low,
                applicant_id: uid("alice"),
                applicant_name: DisplayName::parse("name", "Alice").unwrap(),
                route: route(&["bob/24"]),
                definition: Some(definition_ref()),
                due_date: Some(date(2025, 4, 30)),
            },
            json!({"type": "WorkflowCreated", "data": {
                "title": "t",
                "description": "",
                "priority": "Low",
                "applicant_id": "alice",
                "applicant_name": "Alice",
                "route": [bob_24],
                "definition": {
                    "id": "00000000-0000-0000-0000-000000000007",
                    "version": 3,
                    "name": "出張申請",
                },
                "due_date": "2025-04-30",
            }}),
        ),
        (
            WorkflowEvent::DraftUpdated(DraftChanges {
                priority: Some(Priority::Urgent),
                due_date: Some(None),
                ..DraftChanges::default()
            }),
            json!({"type": "WorkflowDraftUpdated", "data": {"priority": "Urgent", "due_date": null}}),
        ),
        (
            WorkflowEvent::Submitted {},
            json!({"type": "WorkflowSubmitted", "data": {}}),
        ),
        (
            WorkflowEvent::StepAssigned {
                step: step(2),
                assignee: Approver::Role(role("manager")),
                due_at: Some(hours_after_t0(48)),
            },
            json!({"type": "WorkflowStepAssigned", "data": {
                "step": 2,
                "assignee": {"role": "manager"},
                "due_at": "2025-04-03T09:00:00Z",
            }}),
        ),
        (
            WorkflowEvent::StepAssigned {
                step: step(3),
                assignee: Approver::User(uid("carol")),
                due_at: None,
            },
            json!({"type": "WorkflowStepAssigned", "data": {"step": 3, "assignee": {"user": "carol"}}}),
        ),
        (
            WorkflowEvent::StepCompleted {
                step: step(1),
                decision: Decision::Delegated {
                    to_user: uid("dave"),
                },
                decided_by: uid("bob"),
                comment: "on leave".into(),
            },
            json!({"type": "WorkflowStepCompleted", "data": {
                "step": 1,
                "decision": {"Delegated": {"to_user": "dave"}},
                "decided_by": "bob",
                "comment": "on leave",
            }}),
        ),
        (
            WorkflowEvent::Rejected {
                reason: Reason::parse("reason", "too expensive").unwrap(),
            },
            json!({"type": "WorkflowRejected", "data": {"reason": "too expensive"}}),
        ),
        (
            WorkflowEvent::Approved {},
            json!({"type": "WorkflowApproved", "data": {}}),
        ),
        (
            WorkflowEvent::Cancelled {
                reason: None,
                cancelled_by: uid("alice"),
            },
            json!({"type": "WorkflowCancelled", "data": {"cancelled_by": "alice"}}),
        ),
        (
            WorkflowEvent::Escalated {
                step: step(1),
                assignee: Approver::User(uid("bob")),
                due_at: hours_after_t0(24),
            },
            json!({"type": "WorkflowEscalated", "data": {
                "step": 1,
                "assignee": {"user": "bob"},
                "due_at": "2025-04-02T09:00:00Z",
            }}),
        ),
        (
            WorkflowEvent::CommentAdded {
                author_id: uid("bob"),
                author_name: DisplayName::parse("name", "Bob").unwrap(),
                body: CommentBody::parse("body", "了解です").unwrap(),
            },
            json!({"type": "CommentAdded", "data": {
                "author_id": "bob",
                "author_name": "Bob",
                "body": "了解です",
            }}),
        ),
        (
            WorkflowEvent::DocumentAttached {
                attachment: attachment(),
                attached_by: uid("alice"),
            },
            json!({"type": "DocumentAttached", "data": {
                "attachment": {
                    "file_name": "見積書.pdf",
                    "media_type": "application/pdf",
                    "size_bytes": 52431,
                    "sha256": "ab".repeat(32),
                    "storage_uri": "s3://ringiflow/acme/abab",
                },
                "attached_by": "alice",
            }}),
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(stored(&event, event.event_type()), expected);
    }
}

#[test]
fn decisions_without_data_stay_plain_strings() {
    for (decision, expected) in [
        (Decision::Approved, json!("Approved")),
        (Decision::Rejected, json!("Rejected")),
        (Decision::RequestedChanges, json!("RequestedChanges")),
        (
            Decision::Delegated {
                to_user: uid("dave"),
            },
            json!({"Delegated": {"to_user": "dave"}}),
        ),
    ] {
        assert_eq!(serde_json::to_value(&decision).unwrap(), expected);
        assert_eq!(
            serde_json::from_value::<Decision>(expected).unwrap(),
            decision
        );
    }
}

#[test]
fn an_absent_draft_field_is_left_alone_and_null_clears_it() {
    let read = |data: Value| {
        serde_json::from_value::<WorkflowEvent>(
            json!({"type": "WorkflowDraftUpdated", "data": data}),
        )
        .unwrap()
    };
    assert_eq!(
        read(json!({})),
        WorkflowEvent::DraftUpdated(DraftChanges::default())
    );
    assert_eq!(
        read(json!({"due_date": null})),
        WorkflowEvent::DraftUpdated(DraftChanges {
            due_date: Some(None),
            ..DraftChanges::default()
        })
    );
    assert_eq!(
        read(json!({"due_date": "2025-05-01"})),
        WorkflowEvent::DraftUpdated(DraftChanges {
            due_date: Some(Some(date(2025, 5, 1))),
            ..DraftChanges::default()
        })
    );
}

#[test]
fn definition_payloads_are_pinned() {
    let manager = json!([{"approver": {"role": "manager"}}]);
    let cases: Vec<(DefinitionEvent, Value)> = vec![
        (
            DefinitionEvent::Created {
                name: DefinitionName::parse("name", "出張申請").unwrap(),
                route: route(&["@manager"]),
            },
            json!({"type": "DefinitionCreated", "data": {"name": "出張申請", "route": manager}}),
        ),
        (
            DefinitionEvent::VersionPublished {
                version: 2,
                name: DefinitionName::parse("name", "出張申請").unwrap(),
                route: route(&["@manager"]),
            },
            json!({"type": "DefinitionVersionPublished", "data": {
                "version": 2,
                "name": "出張申請",
                "route": manager,
            }}),
        ),
        (
            DefinitionEvent::Archived {},
            json!({"type": "DefinitionArchived", "data": {}}),
        ),
    ];
    for (event, expected) in &cases {
        assert_eq!(&stored(event, event.event_type()), expected);
    }
    assert_eq!(
        DefinitionEvent::TYPES,
        [
            "DefinitionCreated",
            "DefinitionVersionPublished",
            "DefinitionArchived"
        ]
    );
}

#[test]
fn snapshot_shapes_are_pinned_to_their_schema_numbers() {
    let workflow = workflow_after(&with(at_step_1(), [by("bob", delegate(1, "dave"))]));
    // If a shape has to change, so must its number: snapshots of the old shape are then
    // ignored instead of misread.
    assert_eq!(Workflow::STATE_SCHEMA, 2);
    let json = serde_json::to_value(&workflow).unwrap();
    assert_eq!(
        json,
        json!({
            "applicant_id": "alice",
            "route": [
                {"approver": {"user": "bob"}, "sla_hours": 24},
                {"approver": {"role": "manager"}, "sla_hours": 48},
                {"approver": {"user": "carol"}},
            ],
            "status": "InProgress",
            "draft": {
                "title": "出張申請：大阪",
                "description": "二泊三日",
                "priority": "High",
                "due_date": null,
            },
            "progress": {"Waiting": {
                "step": 1,
                "assignee": {"user": "dave"},
                "due_at": "2025-04-02T09:00:00Z",
                "escalated": false,
            }},
            "delegates": ["dave"],
        })
    );
    assert_eq!(serde_json::from_value::<Workflow>(json).unwrap(), workflow);

    assert_eq!(Definition::STATE_SCHEMA, 1);
    let definition = Definition {
        name: DefinitionName::parse("name", "出張申請").unwrap(),
        version: 2,
        route: route(&["@manager"]),
        archived: true,
    };
    let json = serde_json::to_value(&definition).unwrap();
    assert_eq!(
        json,
        json!({
            "name": "出張申請",
            "version": 2,
            "route": [{"approver": {"role": "manager"}}],
            "archived": true,
        })
    );
    assert_eq!(
        serde_json::from_value::<Definition>(json).unwrap(),
        definition
    );
}

#[test]
fn names_the_store_records() {
    assert_eq!(Workflow::TYPE, "workflow");
    assert_eq!(Definition::TYPE, "definition");
    for status in Status::ALL {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::ChangesRequested.as_str(), "CHANGES_REQUESTED");
    assert_eq!(Status::Cancelled.as_str(), "CANCELLED");
    assert_eq!(Status::parse("cancelled"), None);

    let workflow_commands = [
        create(),
        retitle("x"),
        WorkflowCommand::Submit,
        approve(1),
        reject(1),
        request_changes(1),
        delegate(1, "dave"),
        cancel(),
        comment(),
        attach(),
        escalate(1),
    ];
    let names: BTreeSet<_> = workflow_commands
        .iter()
        .map(Workflow::command_name)
        .collect();
    assert_eq!(
        names.len(),
        workflow_commands.len(),
        "command names are unique"
    );
    assert!(names.contains("CreateWorkflow") && names.contains("SubmitWorkflow"));
    let definition_commands = [
        DefinitionCommand::Archive,
        DefinitionCommand::Create {
            name: DefinitionName::parse("name", "x").unwrap(),
            route: route(&["bob"]),
        },
        DefinitionCommand::PublishVersion {
            route: route(&["bob"]),
            name: None,
        },
    ];
    let names: BTreeSet<_> = definition_commands
        .iter()
        .map(Definition::command_name)
        .collect();
    assert_eq!(names.len(), definition_commands.len());
}

#[test]
fn a_recorded_event_defaults_to_the_workflow_and_carries_any_aggregate() {
    fn recorded<E>(aggregate_type: &str, event: E) -> RecordedEvent<E> {
        RecordedEvent {
            event_id: uuid::Uuid::nil(),
            position: 1,
            aggregate_type: aggregate_type.into(),
            aggregate_id: uuid::Uuid::nil(),
            version: 1,
            occurred_at: t0(),
            metadata: EventMetadata {
                tenant_id: "acme".into(),
                user_id: "root".into(),
                correlation_id: uuid::Uuid::nil(),
                causation_id: uuid::Uuid::nil(),
                traceparent: None,
            },
            event,
        }
    }
    let definition: RecordedEvent<DefinitionEvent> =
        recorded(Definition::TYPE, DefinitionEvent::Archived {});
    let workflow: RecordedEvent<WorkflowEvent> =
        recorded(Workflow::TYPE, WorkflowEvent::Submitted {});
    assert_eq!(definition.event.event_type(), "DefinitionArchived");
    assert_eq!(workflow.event.event_type(), "WorkflowSubmitted");
}

#[test]
fn the_services_default_topic_is_the_registrations() {
    assert_eq!(crate::TOPIC, crate::REGISTRATION.default_topic());
}
