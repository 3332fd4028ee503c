//! Given/when/then: given past events, when a command arrives, then these events or this error.

use super::*;

fn user(id: &str) -> Actor {
    Actor {
        tenant_id: TenantId::parse("tenant", "acme").unwrap(),
        user_id: UserId::parse("sub", id).unwrap(),
        display_name: DisplayName::parse("name", &id.to_uppercase()).unwrap(),
    }
}

fn uid(id: &str) -> UserId {
    UserId::parse("user", id).unwrap()
}

fn step(n: u32) -> StepNo {
    StepNo::parse("step", n).unwrap()
}

fn route(approvers: &[&str]) -> Route {
    Route::parse("route", approvers.iter().copied(), |i| {
        format!("route[{i}]")
    })
    .unwrap()
}

fn create_command() -> WorkflowCommand {
    WorkflowCommand::Create {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        route: route(&["bob", "carol"]),
    }
}

fn approve(n: u32) -> WorkflowCommand {
    WorkflowCommand::ApproveStep {
        step: step(n),
        comment: Comment::parse("comment", "ok").unwrap(),
    }
}

fn reject(n: u32) -> WorkflowCommand {
    WorkflowCommand::RejectStep {
        step: step(n),
        reason: Reason::parse("reason", "too expensive").unwrap(),
    }
}

/// Commands that already succeeded, each with the user who issued it.
type Given = Vec<(&'static str, WorkflowCommand)>;
/// The command under test and its user.
type When = (&'static str, WorkflowCommand);

/// Runs the scenario: every `given` command must succeed (by the named actor), then `when`.
fn scenario(
    given: &[(&str, WorkflowCommand)],
    when: (&str, WorkflowCommand),
) -> Result<Vec<WorkflowEvent>, DomainError> {
    let mut state: WorkflowState = None;
    for (actor, command) in given {
        let events = decide(&state, &user(actor), command.clone())
            .unwrap_or_else(|e| panic!("given {command:?} by {actor} failed: {e}"));
        for event in &events {
            state = evolve(state, event).expect("decided events always evolve");
        }
    }
    decide(&state, &user(when.0), when.1)
}

fn event_types(events: &[WorkflowEvent]) -> Vec<&'static str> {
    events.iter().map(WorkflowEvent::event_type).collect()
}

#[test]
fn create_records_the_applicant_from_the_token() {
    let events = scenario(&[], ("alice", create_command())).unwrap();
    assert_eq!(events.len(), 1);
    let WorkflowEvent::Created {
        applicant_id,
        applicant_name,
        route: r,
        ..
    } = &events[0]
    else {
        panic!("expected WorkflowCreated, got {events:?}");
    };
    assert_eq!(applicant_id, &uid("alice"));
    assert_eq!(applicant_name.as_str(), "ALICE");
    assert_eq!(r, &route(&["bob", "carol"]));
}

#[test]
fn legal_transitions_emit_the_expected_events() {
    let created = ("alice", create_command());
    let submitted = ("alice", WorkflowCommand::Submit);
    let cases: Vec<(&str, Given, When, Vec<&str>)> = vec![
        (
            "submit assigns step 1",
            vec![created.clone()],
            submitted.clone(),
            vec!["WorkflowSubmitted", "WorkflowStepAssigned"],
        ),
        (
            "approving a middle step assigns the next",
            vec![created.clone(), submitted.clone()],
            ("bob", approve(1)),
            vec!["WorkflowStepCompleted", "WorkflowStepAssigned"],
        ),
        (
            "approving the last step approves the workflow",
            vec![created.clone(), submitted.clone(), ("bob", approve(1))],
            ("carol", approve(2)),
            vec!["WorkflowStepCompleted", "WorkflowApproved"],
        ),
        (
            "rejecting any step rejects the workflow",
            vec![created.clone(), submitted.clone()],
            ("bob", reject(1)),
            vec!["WorkflowStepCompleted", "WorkflowRejected"],
        ),
    ];
    for (name, given, when, expected) in cases {
        let events = scenario(&given, when).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event_types(&events), expected, "{name}");
    }
}

#[test]
fn every_rule_violation_is_a_typed_error() {
    let created = ("alice", create_command());
    let submitted = ("alice", WorkflowCommand::Submit);
    let approved_all = vec![
        created.clone(),
        submitted.clone(),
        ("bob", approve(1)),
        ("carol", approve(2)),
    ];
    let rejected = vec![created.clone(), submitted.clone(), ("bob", reject(1))];
    let cases: Vec<(&str, Given, When, DomainError)> = vec![
        (
            "command before create",
            vec![],
            submitted.clone(),
            DomainError::NotFound,
        ),
        (
            "create twice",
            vec![created.clone()],
            created.clone(),
            DomainError::AlreadyExists,
        ),
        (
            "submit by someone else",
            vec![created.clone()],
            ("bob", WorkflowCommand::Submit),
            DomainError::NotApplicant { action: "submit" },
        ),
        (
            "submit twice",
            vec![created.clone(), submitted.clone()],
            submitted.clone(),
            DomainError::InvalidState {
                status: Status::InProgress,
                action: "submit",
            },
        ),
        (
            "approve a draft",
            vec![created.clone()],
            ("bob", approve(1)),
            DomainError::InvalidState {
                status: Status::Draft,
                action: "approve",
            },
        ),
        (
            "wrong approver",
            vec![created.clone(), submitted.clone()],
            ("carol", approve(1)),
            DomainError::NotApprover { step: 1 },
        ),
        (
            "applicant approving their own step 1",
            vec![created.clone(), submitted.clone()],
            ("alice", reject(1)),
            DomainError::NotApprover { step: 1 },
        ),
        (
            "deciding a step twice",
            vec![created.clone(), submitted.clone(), ("bob", approve(1))],
            ("bob", approve(1)),
            DomainError::StepAlreadyDecided { step: 1 },
        ),
        (
            "deciding a future step",
            vec![created.clone(), submitted.clone()],
            ("carol", approve(2)),
            DomainError::StepNotCurrent {
                step: 2,
                current: 1,
            },
        ),
        (
            "approve after approval",
            approved_all.clone(),
            ("carol", approve(2)),
            DomainError::InvalidState {
                status: Status::Approved,
                action: "approve",
            },
        ),
        (
            "reject after approval",
            approved_all,
            ("carol", reject(2)),
            DomainError::InvalidState {
                status: Status::Approved,
                action: "reject",
            },
        ),
        (
            "approve after rejection",
            rejected.clone(),
            ("carol", approve(2)),
            DomainError::InvalidState {
                status: Status::Rejected,
                action: "approve",
            },
        ),
        (
            "submit after rejection",
            rejected,
            submitted,
            DomainError::InvalidState {
                status: Status::Rejected,
                action: "submit",
            },
        ),
    ];
    for (name, given, when, expected) in cases {
        assert_eq!(scenario(&given, when), Err(expected), "{name}");
    }
}

#[test]
fn errors_map_to_the_codes_clients_see() {
    assert_eq!(DomainError::NotFound.code(), ErrorCode::NotFound);
    assert_eq!(DomainError::AlreadyExists.code(), ErrorCode::Conflict);
    assert_eq!(
        DomainError::NotApprover { step: 1 }.code(),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        DomainError::StepAlreadyDecided { step: 1 }.code(),
        ErrorCode::FailedPrecondition
    );
    assert_eq!(
        DomainError::Invalid(ValidationError::new("title", "must not be empty")).code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn evolve_refuses_impossible_histories() {
    let submitted = WorkflowEvent::Submitted {};
    assert!(evolve(None, &submitted).is_err());
    let created = scenario(&[], ("alice", create_command())).unwrap();
    let state = replay(&created).unwrap();
    assert!(
        evolve(state.clone(), &WorkflowEvent::Approved {}).is_err(),
        "approval of a draft"
    );
    let wrong_assignee = WorkflowEvent::StepAssigned {
        step: step(1),
        approver_id: uid("mallory"),
    };
    let in_progress = evolve(state, &submitted).unwrap();
    assert!(evolve(in_progress, &wrong_assignee).is_err());
}

#[test]
fn replay_reaches_the_same_state_as_deciding_step_by_step() {
    let mut history = Vec::new();
    let mut state: WorkflowState = None;
    for (actor, command) in [
        ("alice", create_command()),
        ("alice", WorkflowCommand::Submit),
        ("bob", approve(1)),
    ] {
        let events = decide(&state, &user(actor), command).unwrap();
        for event in &events {
            state = evolve(state, event).unwrap();
        }
        history.extend(events);
    }
    assert_eq!(replay(&history).unwrap(), state);
    let wf = state.unwrap();
    assert_eq!(wf.status, Status::InProgress);
    assert_eq!(wf.current_step, Some(step(2)));
}

#[test]
fn events_serialise_with_their_stored_type_names() {
    for event in scenario(&[], ("alice", create_command())).unwrap() {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type());
        assert!(
            json["data"].is_object(),
            "payload must be an object: {json}"
        );
        let back: WorkflowEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
    let json = serde_json::to_value(WorkflowEvent::Submitted {}).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "WorkflowSubmitted", "data": {}})
    );
}

#[test]
fn the_snapshot_shape_of_the_state_is_pinned_to_its_schema_number() {
    let created = scenario(&[], ("alice", create_command())).unwrap();
    let submitted = scenario(
        &[("alice", create_command())],
        ("alice", WorkflowCommand::Submit),
    );
    let workflow = replay(created.iter().chain(&submitted.unwrap()))
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&workflow).unwrap();
    // If this shape has to change, so must the number: snapshots of the old shape are then
    // ignored instead of misread.
    assert_eq!(Workflow::STATE_SCHEMA, 1);
    assert_eq!(
        json,
        serde_json::json!({
            "applicant_id": "alice",
            "route": ["bob", "carol"],
            "status": "InProgress",
            "current_step": 1,
        })
    );
    assert_eq!(serde_json::from_value::<Workflow>(json).unwrap(), workflow);
}

#[test]
fn input_is_parsed_at_the_edge() {
    assert_eq!(
        Title::parse("title", "  出張申請  ").unwrap().as_str(),
        "出張申請"
    );
    assert_eq!(Title::parse("title", "   ").unwrap_err().field, "title");
    assert!(Title::parse("title", &"あ".repeat(201)).is_err());
    assert!(
        Title::parse("title", &"あ".repeat(200)).is_ok(),
        "limits count characters, not bytes"
    );
    assert!(Title::parse("title", "bell\u{7}").is_err());
    assert!(Reason::parse("reason", "").is_err());
    assert!(StepNo::parse("step", 0).is_err());
    assert!(UserId::parse("sub", "has space").is_err());
    let too_long = Route::parse("route", std::iter::repeat_n("bob", 21), |i| {
        format!("route[{i}]")
    });
    assert_eq!(too_long.unwrap_err().field, "route");
    let bad_element = Route::parse("route", ["bob", ""], |i| format!("route[{i}]"));
    assert_eq!(bad_element.unwrap_err().field, "route[1]");
    assert!(Route::parse("route", [], |i| format!("route[{i}]")).is_err());
    assert_eq!(Priority::parse("URGENT"), Some(Priority::Urgent));
    assert_eq!(Priority::parse("urgent"), None);
}
