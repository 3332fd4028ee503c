//! The workflow's rules, one table per concern.

use super::*;
use error_code::ErrorCode;
use Status::{Approved, Cancelled, ChangesRequested, Draft, InProgress, Rejected};

fn wf(given: &[WorkflowAct], when: WorkflowAct) -> Result<Vec<WorkflowEvent>, DomainError> {
    run::<Workflow>(given, when)
}

fn completed(n: u32, decision: Decision, by: &str, comment: &str) -> WorkflowEvent {
    WorkflowEvent::StepCompleted {
        step: step(n),
        decision,
        decided_by: uid(by),
        comment: comment.to_owned(),
    }
}

fn assigned(n: u32, assignee: Approver, due_hours: Option<i64>) -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: step(n),
        assignee,
        due_at: due_hours.map(hours_after_t0),
    }
}

fn user(id: &str) -> Approver {
    Approver::User(uid(id))
}

fn manager() -> Approver {
    Approver::Role(role("manager"))
}

/// The four ways to decide a step share every rule about who and when.
const DECISIONS: [fn(u32) -> WorkflowCommand; 4] =
    [approve, reject, request_changes, |n| delegate(n, "zoe")];

#[test]
fn every_command_in_every_status() {
    let histories = [
        (Draft, draft()),
        (InProgress, at_step_1()),
        (ChangesRequested, changes_requested()),
        (Approved, approved()),
        (Rejected, rejected()),
        (Cancelled, cancelled()),
    ];
    // Each command from its rightful sender: the statuses it is allowed in, and what it records
    // there. In any other status it fails with InvalidState naming the action.
    let editable: &[Status] = &[Draft, ChangesRequested];
    let open: &[Status] = &[Draft, InProgress, ChangesRequested];
    let rows: Vec<(WorkflowAct, &str, &[Status], &[&str])> = vec![
        (
            by("alice", retitle("出張申請：京都")),
            "update the draft",
            editable,
            &["WorkflowDraftUpdated"],
        ),
        (
            by("alice", WorkflowCommand::Submit),
            "submit",
            editable,
            &["WorkflowSubmitted", "WorkflowStepAssigned"],
        ),
        (
            by("bob", approve(1)),
            "approve",
            &[InProgress],
            &["WorkflowStepCompleted", "WorkflowStepAssigned"],
        ),
        (
            by("bob", reject(1)),
            "reject",
            &[InProgress],
            &["WorkflowStepCompleted", "WorkflowRejected"],
        ),
        (
            by("bob", request_changes(1)),
            "request changes",
            &[InProgress],
            &["WorkflowStepCompleted"],
        ),
        (
            by("bob", delegate(1, "dave")),
            "delegate",
            &[InProgress],
            &["WorkflowStepCompleted", "WorkflowStepAssigned"],
        ),
        (
            by("alice", cancel()),
            "cancel",
            open,
            &["WorkflowCancelled"],
        ),
        (
            by("bob", comment()),
            "comment",
            &Status::ALL,
            &["CommentAdded"],
        ),
        (
            by("alice", attach()),
            "attach documents",
            open,
            &["DocumentAttached"],
        ),
        (
            by(WATCHER, escalate(1)).at(25),
            "escalate",
            &[InProgress],
            &["WorkflowEscalated"],
        ),
    ];
    for (status, given) in &histories {
        assert_eq!(workflow_after(given).status, *status);
        assert_eq!(
            wf(given, by("alice", create())),
            Err(DomainError::AlreadyExists {
                aggregate: "workflow"
            }),
            "create in {status:?}"
        );
        for (when, action, allowed, events) in &rows {
            let expected = if allowed.contains(status) {
                Ok(events.to_vec())
            } else {
                Err(DomainError::InvalidState {
                    status: *status,
                    action,
                })
            };
            let outcome = wf(given, when.clone()).map(|events| event_types(&events));
            assert_eq!(outcome, expected, "{:?} in {status:?}", when.command);
        }
    }
    for (when, ..) in rows {
        assert_eq!(
            wf(&[], when.clone()),
            Err(DomainError::NotFound {
                aggregate: "workflow"
            }),
            "{:?} before create",
            when.command
        );
    }
}

#[test]
fn each_command_records_exactly_these_facts() {
    let created = WorkflowEvent::Created {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        applicant_id: uid("alice"),
        applicant_name: DisplayName::parse("name", "ALICE").unwrap(),
        route: standard_route(),
        definition: Some(definition_ref()),
        due_date: Some(date(2025, 4, 30)),
    };
    let from_definition = WorkflowCommand::Create {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "二泊三日").unwrap(),
        priority: Priority::High,
        route: standard_route(),
        definition: Some(definition_ref()),
        due_date: Some(date(2025, 4, 30)),
    };
    let cases: Vec<Case<WorkflowCommand, Vec<WorkflowEvent>>> = vec![
        (
            "create records the applicant from the token",
            vec![],
            by("alice", from_definition),
            vec![created],
        ),
        (
            "submit assigns step 1, due when its SLA runs out",
            draft(),
            by("alice", WorkflowCommand::Submit).at(2),
            vec![
                WorkflowEvent::Submitted {},
                assigned(1, user("bob"), Some(2 + 24)),
            ],
        ),
        (
            "approving step 1 assigns the role step",
            at_step_1(),
            by("bob", approve(1)).at(5),
            vec![
                completed(1, Decision::Approved, "bob", "ok"),
                assigned(2, manager(), Some(5 + 48)),
            ],
        ),
        (
            "a step without an SLA has no deadline",
            at_step_2(),
            by("mia:manager", approve(2)),
            vec![
                completed(2, Decision::Approved, "mia", "ok"),
                assigned(3, user("carol"), None),
            ],
        ),
        (
            "approving the last step approves the workflow",
            at_step_3(),
            by("carol", approve(3)),
            vec![
                completed(3, Decision::Approved, "carol", "ok"),
                WorkflowEvent::Approved {},
            ],
        ),
        (
            "rejecting any step rejects the workflow",
            at_step_2(),
            by("mia:manager", reject(2)),
            vec![
                completed(2, Decision::Rejected, "mia", "too expensive"),
                WorkflowEvent::Rejected {
                    reason: Reason::parse("reason", "too expensive").unwrap(),
                },
            ],
        ),
        (
            "requesting changes completes the step and assigns nothing",
            at_step_2(),
            by("mia:manager", request_changes(2)),
            vec![completed(
                2,
                Decision::RequestedChanges,
                "mia",
                "add the hotel quote",
            )],
        ),
        (
            "delegating re-assigns the same step with the same deadline",
            at_step_1(),
            by("bob", delegate(1, "dave")).at(5),
            vec![
                completed(
                    1,
                    Decision::Delegated {
                        to_user: uid("dave"),
                    },
                    "bob",
                    "on leave",
                ),
                assigned(1, user("dave"), Some(24)),
            ],
        ),
        (
            "cancelling records who and why",
            at_step_1(),
            by("alice", cancel()),
            vec![WorkflowEvent::Cancelled {
                reason: Some(Reason::parse("reason", "no longer needed").unwrap()),
                cancelled_by: uid("alice"),
            }],
        ),
        (
            "a reason for cancelling is optional",
            draft(),
            by("alice", WorkflowCommand::Cancel { reason: None }),
            vec![WorkflowEvent::Cancelled {
                reason: None,
                cancelled_by: uid("alice"),
            }],
        ),
        (
            "a comment records its author from the token",
            at_step_1(),
            by("bob", comment()),
            vec![WorkflowEvent::CommentAdded {
                author_id: uid("bob"),
                author_name: DisplayName::parse("name", "BOB").unwrap(),
                body: CommentBody::parse("body", "ホテルは駅の近くで").unwrap(),
            }],
        ),
        (
            "an attachment records who attached it",
            draft(),
            by("alice", attach()),
            vec![WorkflowEvent::DocumentAttached {
                attachment: attachment(),
                attached_by: uid("alice"),
            }],
        ),
        (
            "escalation names the assignee and the missed deadline",
            at_step_1(),
            by(WATCHER, escalate(1)).at(24),
            vec![WorkflowEvent::Escalated {
                step: step(1),
                assignee: user("bob"),
                due_at: hours_after_t0(24),
            }],
        ),
    ];
    for (name, given, when, expected) in cases {
        assert_eq!(wf(&given, when), Ok(expected), "{name}");
    }
}

#[test]
fn walking_the_whole_route_approves_the_workflow() {
    let wf = workflow_after(&approved());
    assert_eq!(wf.status, Approved);
    assert_eq!(wf.progress, None);
    let wf = workflow_after(&at_step_2());
    assert_eq!(
        wf.current(),
        Some(&Assignment {
            step: step(2),
            assignee: manager(),
            due_at: Some(hours_after_t0(48)),
            escalated: false,
        })
    );
}

#[test]
fn who_may_decide_a_step() {
    let delegated = with(at_step_1(), [by("bob", delegate(1, "dave"))]);
    let delegated_twice = with(delegated.clone(), [by("dave", delegate(1, "erin"))]);
    let role_delegated = with(at_step_2(), [by("mia:manager", delegate(2, "dave"))]);
    let not_approver = |n| Some(DomainError::NotApprover { step: n });
    /// (case, given, actor, step, the error every decision fails with, or None if allowed)
    type Row = (
        &'static str,
        Vec<WorkflowAct>,
        &'static str,
        u32,
        Option<DomainError>,
    );
    let cases: Vec<Row> = vec![
        ("the assigned user", at_step_1(), "bob", 1, None),
        (
            "the assigned user holding roles",
            at_step_1(),
            "bob:manager",
            1,
            None,
        ),
        (
            "another approver of the route",
            at_step_1(),
            "carol",
            1,
            not_approver(1),
        ),
        ("the applicant", at_step_1(), "alice", 1, not_approver(1)),
        (
            "a role holder on a user step",
            at_step_1(),
            "mia:manager",
            1,
            not_approver(1),
        ),
        (
            "an administrator",
            at_step_1(),
            "root:admin",
            1,
            not_approver(1),
        ),
        (
            "the deadline watcher",
            at_step_1(),
            WATCHER,
            1,
            not_approver(1),
        ),
        ("a stranger", at_step_1(), "eve", 1, not_approver(1)),
        ("a holder of the role", at_step_2(), "mia:manager", 2, None),
        (
            "another holder of the role",
            at_step_2(),
            "max:admin,manager",
            2,
            None,
        ),
        (
            "the user of another step",
            at_step_2(),
            "bob",
            2,
            not_approver(2),
        ),
        (
            "an administrator on a role step",
            at_step_2(),
            "root:admin",
            2,
            not_approver(2),
        ),
        (
            "the applicant holding the role",
            at_step_2(),
            "alice:manager",
            2,
            Some(DomainError::ApplicantHoldsRole { step: 2 }),
        ),
        (
            "the applicant without the role",
            at_step_2(),
            "alice",
            2,
            not_approver(2),
        ),
        ("the delegate", delegated.clone(), "dave", 1, None),
        (
            "the assignee who delegated",
            delegated,
            "bob",
            1,
            not_approver(1),
        ),
        (
            "the last delegate of a chain",
            delegated_twice.clone(),
            "erin",
            1,
            None,
        ),
        (
            "an earlier delegate",
            delegated_twice.clone(),
            "dave",
            1,
            not_approver(1),
        ),
        (
            "the original assignee",
            delegated_twice,
            "bob",
            1,
            not_approver(1),
        ),
        (
            "the user a role step went to",
            role_delegated.clone(),
            "dave",
            2,
            None,
        ),
        (
            "the holder who delegated",
            role_delegated.clone(),
            "mia:manager",
            2,
            not_approver(2),
        ),
        (
            "other role holders",
            role_delegated,
            "max:manager",
            2,
            not_approver(2),
        ),
    ];
    for (name, given, who, n, expected) in cases {
        for decision in DECISIONS {
            let when = by(who, decision(n));
            let command = format!("{:?}", when.command);
            let outcome = wf(&given, when);
            match &expected {
                None => assert!(outcome.is_ok(), "{name}: {command}: {outcome:?}"),
                Some(error) => assert_eq!(outcome.as_ref(), Err(error), "{name}: {command}"),
            }
        }
    }
}

#[test]
fn the_applicant_is_never_a_steps_approver() {
    let own_route = |steps: &[&str]| WorkflowCommand::Create {
        title: Title::parse("title", "備品購入").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Low,
        route: route(steps),
        definition: None,
        due_date: None,
    };
    // At create (an ad-hoc route, or a definition's pinned one: both arrive as `route`).
    let error = wf(&[], by("alice", own_route(&["@manager", "alice"]))).unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    assert_eq!(error.field(), Some("route[1].approver"));
    // Someone else may create the same route: alice is then an ordinary approver.
    assert!(wf(&[], by("bob", own_route(&["@manager", "alice"]))).is_ok());

    // A route pinned before the rule existed: recorded history, never decided again.
    let old_history = [
        WorkflowEvent::Created {
            title: Title::parse("title", "備品購入").unwrap(),
            description: Description::parse("description", "").unwrap(),
            priority: Priority::Low,
            applicant_id: uid("alice"),
            applicant_name: DisplayName::parse("name", "ALICE").unwrap(),
            route: route(&["alice", "@manager"]),
            definition: None,
            due_date: None,
        },
        WorkflowEvent::Submitted {},
        assigned(1, user("alice"), None),
    ];
    let state = old_history.iter().try_fold(None, Workflow::evolve).unwrap();
    for decide in DECISIONS {
        let error =
            Workflow::decide(state.as_ref(), &by("alice", ()).context(), decide(1)).unwrap_err();
        assert_eq!(error, DomainError::ApplicantIsApprover { step: 1 });
        assert_eq!(error.code(), ErrorCode::PermissionDenied);
    }
}

#[test]
fn a_decision_is_checked_for_state_then_step_then_permission() {
    let cases: Vec<(&str, Vec<WorkflowAct>, &str, u32, DomainError)> = vec![
        (
            "nothing waits in a draft, whoever asks",
            draft(),
            "eve",
            1,
            DomainError::InvalidState {
                status: Draft,
                action: "",
            },
        ),
        (
            "a decided step, even for a stranger",
            at_step_2(),
            "eve",
            1,
            DomainError::StepAlreadyDecided { step: 1 },
        ),
        (
            "deciding a step twice",
            at_step_2(),
            "bob",
            1,
            DomainError::StepAlreadyDecided { step: 1 },
        ),
        (
            "a future step",
            at_step_2(),
            "carol",
            3,
            DomainError::StepNotCurrent {
                step: 3,
                current: 2,
            },
        ),
        (
            "a step beyond the route",
            at_step_2(),
            "carol",
            21,
            DomainError::StepNotCurrent {
                step: 21,
                current: 2,
            },
        ),
    ];
    for (name, given, who, n, expected) in cases {
        for decision in DECISIONS {
            let when = by(who, decision(n));
            let command = format!("{:?}", when.command);
            let outcome = wf(&given, when).map_err(|error| match error {
                // The action differs per command; the table checks the status only.
                DomainError::InvalidState { status, .. } => {
                    DomainError::InvalidState { status, action: "" }
                }
                other => other,
            });
            assert_eq!(outcome, Err(expected.clone()), "{name}: {command}");
        }
    }
}

#[test]
fn delegation_rules() {
    let delegated = with(at_step_1(), [by("bob", delegate(1, "dave"))]);
    let yours = DomainError::InvalidDelegate {
        reason: "the step is already yours",
    };
    let cases: Vec<Case<WorkflowCommand, Result<(), DomainError>>> = vec![
        (
            "to oneself (the assigned user)",
            at_step_1(),
            by("bob", delegate(1, "bob")),
            Err(yours.clone()),
        ),
        (
            "to oneself (a role holder)",
            at_step_2(),
            by("mia:manager", delegate(2, "mia")),
            Err(yours.clone()),
        ),
        (
            "to oneself (a delegate)",
            delegated.clone(),
            by("dave", delegate(1, "dave")),
            Err(yours),
        ),
        (
            "to the applicant",
            at_step_1(),
            by("bob", delegate(1, "alice")),
            Err(DomainError::InvalidDelegate {
                reason: "the applicant may not decide their own workflow",
            }),
        ),
        (
            "by someone who may not decide the step",
            at_step_1(),
            by("eve", delegate(1, "dave")),
            Err(DomainError::NotApprover { step: 1 }),
        ),
        (
            "back to the original assignee",
            delegated.clone(),
            by("dave", delegate(1, "bob")),
            Ok(()),
        ),
        (
            "to another holder of the role",
            at_step_2(),
            by("mia:manager", delegate(2, "max")),
            Ok(()),
        ),
        (
            "to an approver of a later step",
            at_step_1(),
            by("bob", delegate(1, "carol")),
            Ok(()),
        ),
    ];
    for (name, given, when, expected) in cases {
        assert_eq!(wf(&given, when).map(|_| ()), expected, "{name}");
    }
}

#[test]
fn a_delegation_chain_keeps_the_deadline_and_remembers_every_delegate() {
    let chain = with(
        at_step_1(),
        [
            by("bob", delegate(1, "dave")).at(5),
            by("dave", delegate(1, "erin")).at(30),
        ],
    );
    let wf_state = workflow_after(&chain);
    assert_eq!(
        wf_state.current(),
        Some(&Assignment {
            step: step(1),
            assignee: user("erin"),
            due_at: Some(hours_after_t0(24)),
            escalated: false,
        })
    );
    assert_eq!(
        wf_state
            .delegates
            .iter()
            .map(UserId::as_str)
            .collect::<Vec<_>>(),
        ["dave", "erin"]
    );
    assert_eq!(
        wf(&chain, by("erin", approve(1)).at(31)),
        Ok(vec![
            completed(1, Decision::Approved, "erin", "ok"),
            assigned(2, manager(), Some(31 + 48)),
        ])
    );
}

#[test]
fn requested_changes_go_back_to_the_applicant_and_the_route_restarts() {
    let sent_back = with(at_step_2(), [by("mia:manager", request_changes(2))]);
    let state = workflow_after(&sent_back);
    assert_eq!(state.status, ChangesRequested);
    assert_eq!(state.progress, None);
    assert_eq!(
        wf(&sent_back, by("mia:manager", approve(2))),
        Err(DomainError::InvalidState {
            status: ChangesRequested,
            action: "approve",
        })
    );

    let edited = with(
        sent_back.clone(),
        [by("alice", retitle("出張申請：京都")).at(3)],
    );
    assert_eq!(
        workflow_after(&edited).draft.title.as_str(),
        "出張申請：京都"
    );
    assert_eq!(
        wf(&edited, by("alice", WorkflowCommand::Submit).at(4)),
        Ok(vec![
            WorkflowEvent::Submitted {},
            assigned(1, user("bob"), Some(4 + 24)),
        ])
    );

    let resubmitted = with(edited, [by("alice", WorkflowCommand::Submit).at(4)]);
    assert_eq!(
        wf(&resubmitted, by("mia:manager", approve(2))),
        Err(DomainError::StepNotCurrent {
            step: 2,
            current: 1,
        }),
        "earlier approvals do not count after a resubmission"
    );
    assert!(wf(&resubmitted, by("bob", approve(1))).is_ok());
    assert!(
        wf(&sent_back, by("alice", WorkflowCommand::Submit)).is_ok(),
        "resubmitting without edits is allowed"
    );
}

#[test]
fn a_draft_update_records_only_what_changes() {
    let with_due_date = with(
        draft(),
        [by(
            "alice",
            WorkflowCommand::UpdateDraft(DraftChanges {
                due_date: Some(Some(date(2025, 4, 30))),
                ..DraftChanges::default()
            }),
        )],
    );
    let changes = |changes: DraftChanges| WorkflowCommand::UpdateDraft(changes);
    let same_title = || Some(Title::parse("title", "出張申請：大阪").unwrap());
    let cases: Vec<Case<WorkflowCommand, Result<DraftChanges, DomainError>>> = vec![
        (
            "by an approver",
            draft(),
            by("bob", retitle("x")),
            Err(DomainError::NotApplicant {
                action: "update the draft",
            }),
        ),
        (
            "by an administrator",
            draft(),
            by("root:admin", retitle("x")),
            Err(DomainError::NotApplicant {
                action: "update the draft",
            }),
        ),
        (
            "with no fields",
            draft(),
            by("alice", changes(DraftChanges::default())),
            Err(DomainError::NothingToUpdate),
        ),
        (
            "with the current title",
            draft(),
            by("alice", retitle("出張申請：大阪")),
            Err(DomainError::NothingToUpdate),
        ),
        (
            "clearing a due date there is none of",
            draft(),
            by(
                "alice",
                changes(DraftChanges {
                    due_date: Some(None),
                    ..DraftChanges::default()
                }),
            ),
            Err(DomainError::NothingToUpdate),
        ),
        (
            "the current title and a new priority",
            draft(),
            by(
                "alice",
                changes(DraftChanges {
                    title: same_title(),
                    priority: Some(Priority::Urgent),
                    ..DraftChanges::default()
                }),
            ),
            Ok(DraftChanges {
                priority: Some(Priority::Urgent),
                ..DraftChanges::default()
            }),
        ),
        (
            "every field",
            draft(),
            by(
                "alice",
                changes(DraftChanges {
                    title: Some(Title::parse("title", "出張申請：京都").unwrap()),
                    description: Some(Description::parse("description", "日帰り").unwrap()),
                    priority: Some(Priority::Low),
                    due_date: Some(Some(date(2025, 5, 1))),
                }),
            ),
            Ok(DraftChanges {
                title: Some(Title::parse("title", "出張申請：京都").unwrap()),
                description: Some(Description::parse("description", "日帰り").unwrap()),
                priority: Some(Priority::Low),
                due_date: Some(Some(date(2025, 5, 1))),
            }),
        ),
        (
            "clearing the due date",
            with_due_date.clone(),
            by(
                "alice",
                changes(DraftChanges {
                    due_date: Some(None),
                    ..DraftChanges::default()
                }),
            ),
            Ok(DraftChanges {
                due_date: Some(None),
                ..DraftChanges::default()
            }),
        ),
        (
            "the current due date",
            with_due_date.clone(),
            by(
                "alice",
                changes(DraftChanges {
                    due_date: Some(Some(date(2025, 4, 30))),
                    ..DraftChanges::default()
                }),
            ),
            Err(DomainError::NothingToUpdate),
        ),
    ];
    for (name, given, when, expected) in cases {
        let expected = expected.map(|changes| vec![WorkflowEvent::DraftUpdated(changes)]);
        assert_eq!(wf(&given, when), expected, "{name}");
    }
    assert_eq!(
        workflow_after(&with_due_date).draft.due_date,
        Some(date(2025, 4, 30))
    );
}

#[test]
fn only_the_applicant_cancels_and_a_cancelled_workflow_takes_no_decisions() {
    for who in ["bob", "root:admin", WATCHER, "eve"] {
        assert_eq!(
            wf(&at_step_1(), by(who, cancel())),
            Err(DomainError::NotApplicant { action: "cancel" }),
            "{who}"
        );
    }
    for given in [draft(), at_step_2(), changes_requested()] {
        let cancelled = with(given, [by("alice", cancel())]);
        let state = workflow_after(&cancelled);
        assert_eq!(state.status, Cancelled);
        assert_eq!(state.progress, None);
        assert_eq!(
            wf(&cancelled, by("alice", WorkflowCommand::Submit)),
            Err(DomainError::InvalidState {
                status: Cancelled,
                action: "submit",
            })
        );
    }
}

#[test]
fn escalation_rules() {
    let escalated = with(at_step_1(), [by(WATCHER, escalate(1)).at(25)]);
    let cases: Vec<Case<WorkflowCommand, Result<Vec<WorkflowEvent>, DomainError>>> = vec![
        (
            "before the deadline",
            at_step_1(),
            by(WATCHER, escalate(1)).at(23),
            Err(DomainError::NotOverdue { step: 1 }),
        ),
        (
            "at the deadline",
            at_step_1(),
            by(WATCHER, escalate(1)).at(24),
            Ok(vec![WorkflowEvent::Escalated {
                step: step(1),
                assignee: user("bob"),
                due_at: hours_after_t0(24),
            }]),
        ),
        (
            "a role step",
            at_step_2(),
            by(WATCHER, escalate(2)).at(100),
            Ok(vec![WorkflowEvent::Escalated {
                step: step(2),
                assignee: manager(),
                due_at: hours_after_t0(48),
            }]),
        ),
        (
            "by the assignee",
            at_step_1(),
            by("bob", escalate(1)).at(25),
            Err(DomainError::NotSystem),
        ),
        (
            "by an administrator",
            at_step_1(),
            by("root:admin", escalate(1)).at(25),
            Err(DomainError::NotSystem),
        ),
        (
            "twice",
            escalated.clone(),
            by(WATCHER, escalate(1)).at(30),
            Err(DomainError::AlreadyEscalated { step: 1 }),
        ),
        (
            "a step without an SLA",
            at_step_3(),
            by(WATCHER, escalate(3)).at(10_000),
            Err(DomainError::NotOverdue { step: 3 }),
        ),
        (
            "a future step",
            at_step_1(),
            by(WATCHER, escalate(2)).at(100),
            Err(DomainError::StepNotCurrent {
                step: 2,
                current: 1,
            }),
        ),
        (
            "a decided step",
            at_step_2(),
            by(WATCHER, escalate(1)).at(100),
            Err(DomainError::StepAlreadyDecided { step: 1 }),
        ),
        (
            "after an escalated step was delegated",
            with(escalated.clone(), [by("bob", delegate(1, "dave")).at(26)]),
            by(WATCHER, escalate(1)).at(27),
            Ok(vec![WorkflowEvent::Escalated {
                step: step(1),
                assignee: user("dave"),
                due_at: hours_after_t0(24),
            }]),
        ),
        (
            "after a delegation before the deadline",
            with(at_step_1(), [by("bob", delegate(1, "dave")).at(1)]),
            by(WATCHER, escalate(1)).at(10),
            Err(DomainError::NotOverdue { step: 1 }),
        ),
    ];
    for (name, given, when, expected) in cases {
        assert_eq!(wf(&given, when), expected, "{name}");
    }

    let state = workflow_after(&escalated);
    assert_eq!(state.status, InProgress);
    assert!(state.current().is_some_and(|current| current.escalated));
    assert!(
        wf(&escalated, by("bob", approve(1)).at(26)).is_ok(),
        "escalation notifies, it never decides"
    );
}

#[test]
fn only_participants_comment_and_attach() {
    let delegated = with(at_step_1(), [by("bob", delegate(1, "dave"))]);
    let finished_by_delegate = with(
        delegated.clone(),
        [
            by("dave", approve(1)),
            by("mia:manager", approve(2)),
            by("carol", approve(3)),
        ],
    );
    let refused = |action| Err(DomainError::NotParticipant { action });
    // (who, given, may they take part)
    let cases: Vec<(&str, Vec<WorkflowAct>, bool)> = vec![
        ("alice", at_step_1(), true),
        ("bob", at_step_1(), true),
        ("carol", at_step_1(), true),
        ("mia:manager", at_step_1(), true),
        ("root:admin", at_step_1(), true),
        ("alice:manager", at_step_1(), true),
        ("eve", at_step_1(), false),
        ("eve:auditor", at_step_1(), false),
        (WATCHER, at_step_1(), false),
        ("dave", at_step_1(), false),
        ("dave", delegated, true),
    ];
    for (who, given, participates) in cases {
        for (command, action) in [(comment(), "comment"), (attach(), "attach documents")] {
            let outcome = wf(&given, by(who, command)).map(|_| ());
            let expected = if participates {
                Ok(())
            } else {
                refused(action)
            };
            assert_eq!(outcome, expected, "{who} may {action}: {participates}");
        }
    }
    assert!(
        wf(&finished_by_delegate, by("dave", comment())).is_ok(),
        "a delegate stays a participant after the workflow ends"
    );
    assert_eq!(
        wf(&finished_by_delegate, by("dave", attach())),
        Err(DomainError::InvalidState {
            status: Approved,
            action: "attach documents",
        }),
        "a finished workflow takes no attachments, even from participants"
    );
    assert_eq!(
        wf(&finished_by_delegate, by("eve", attach())),
        Err(DomainError::NotParticipant {
            action: "attach documents"
        }),
        "participation is checked before the status"
    );
}

#[test]
fn errors_map_to_the_codes_clients_see_and_name_their_field() {
    let invalid = ValidationError::new("route[1].approver", "must not be empty");
    let cases: Vec<(DomainError, ErrorCode, Option<&str>)> = vec![
        (
            DomainError::NotFound {
                aggregate: "workflow",
            },
            ErrorCode::NotFound,
            None,
        ),
        (
            DomainError::AlreadyExists {
                aggregate: "definition",
            },
            ErrorCode::Conflict,
            None,
        ),
        (
            DomainError::NotApplicant { action: "submit" },
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            DomainError::NotApprover { step: 1 },
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            DomainError::ApplicantHoldsRole { step: 1 },
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            DomainError::ApplicantIsApprover { step: 1 },
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            DomainError::NotParticipant { action: "comment" },
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            DomainError::NotAdmin { action: "archive" },
            ErrorCode::PermissionDenied,
            None,
        ),
        (DomainError::NotSystem, ErrorCode::PermissionDenied, None),
        (
            DomainError::InvalidState {
                status: Draft,
                action: "approve",
            },
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::StepAlreadyDecided { step: 1 },
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::StepNotCurrent {
                step: 2,
                current: 1,
            },
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::NotOverdue { step: 1 },
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::AlreadyEscalated { step: 1 },
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::DefinitionArchived,
            ErrorCode::FailedPrecondition,
            None,
        ),
        (
            DomainError::InvalidDelegate { reason: "x" },
            ErrorCode::InvalidArgument,
            Some("to_user_id"),
        ),
        (
            DomainError::NothingToUpdate,
            ErrorCode::InvalidArgument,
            Some("draft"),
        ),
        (
            DomainError::Invalid(invalid),
            ErrorCode::InvalidArgument,
            Some("route[1].approver"),
        ),
    ];
    for (error, code, field) in cases {
        assert_eq!(error.code(), code, "{error}");
        assert_eq!(error.field(), field, "{error}");
        assert_eq!(
            error.field().is_some(),
            code == ErrorCode::InvalidArgument,
            "exactly the invalid arguments name a field: {error}"
        );
    }
    assert_eq!(
        DomainError::InvalidState {
            status: ChangesRequested,
            action: "approve"
        }
        .to_string(),
        "workflow is ChangesRequested, cannot approve"
    );
}

#[test]
fn evolve_refuses_impossible_histories() {
    let (_, created) = record::<Workflow>(&draft());
    let (_, step_1) = record::<Workflow>(&at_step_1());
    let (_, step_2) = record::<Workflow>(&at_step_2());
    let (_, escalated) = record::<Workflow>(&with(at_step_1(), [by(WATCHER, escalate(1)).at(25)]));
    let (_, finished) = record::<Workflow>(&approved());
    let (_, cancelled_history) = record::<Workflow>(&cancelled());
    let delegated_to_dave = completed(
        1,
        Decision::Delegated {
            to_user: uid("dave"),
        },
        "bob",
        "",
    );
    let mut empty_route = created[0].clone();
    if let WorkflowEvent::Created { route, .. } = &mut empty_route {
        *route = serde_json::from_str("[]").unwrap();
    }
    let cases: Vec<(&str, Vec<WorkflowEvent>, WorkflowEvent)> = vec![
        (
            "an event before creation",
            vec![],
            WorkflowEvent::Submitted {},
        ),
        ("an empty route", vec![], empty_route),
        ("creation twice", created.clone(), created[0].clone()),
        (
            "approval of a draft",
            created.clone(),
            WorkflowEvent::Approved {},
        ),
        (
            "an assignment in a draft",
            created.clone(),
            assigned(1, user("bob"), None),
        ),
        (
            "an update in progress",
            step_1.clone(),
            WorkflowEvent::DraftUpdated(DraftChanges::default()),
        ),
        (
            "submission in progress",
            step_1.clone(),
            WorkflowEvent::Submitted {},
        ),
        (
            "an assignee the route does not name",
            vec![created[0].clone(), WorkflowEvent::Submitted {}],
            assigned(1, user("mallory"), None),
        ),
        (
            "a first assignment that skips step 1",
            vec![created[0].clone(), WorkflowEvent::Submitted {}],
            assigned(2, manager(), None),
        ),
        (
            "a second assignment while one waits",
            step_1.clone(),
            assigned(1, user("bob"), None),
        ),
        (
            "completion of a step that is not waiting",
            step_1.clone(),
            completed(2, Decision::Approved, "mia", ""),
        ),
        (
            "completion in a draft",
            created.clone(),
            completed(1, Decision::Approved, "bob", ""),
        ),
        (
            "an assignment that skips a step",
            with_events(&step_1, [completed(1, Decision::Approved, "bob", "")]),
            assigned(3, user("carol"), None),
        ),
        (
            "an assignment after a rejection",
            with_events(&step_1, [completed(1, Decision::Rejected, "bob", "")]),
            assigned(2, manager(), None),
        ),
        (
            "a delegation to someone else than recorded",
            with_events(&step_1, [delegated_to_dave.clone()]),
            assigned(1, user("erin"), Some(24)),
        ),
        (
            "a delegation that moves the deadline",
            with_events(&step_1, [delegated_to_dave]),
            assigned(1, user("dave"), Some(48)),
        ),
        (
            "approval before the last step",
            with_events(&step_1, [completed(1, Decision::Approved, "bob", "")]),
            WorkflowEvent::Approved {},
        ),
        (
            "rejection without a rejected step",
            step_2.clone(),
            WorkflowEvent::Rejected {
                reason: Reason::parse("reason", "x").unwrap(),
            },
        ),
        (
            "escalation of a step that is not waiting",
            step_2.clone(),
            WorkflowEvent::Escalated {
                step: step(1),
                assignee: user("bob"),
                due_at: hours_after_t0(24),
            },
        ),
        (
            "escalation with another deadline",
            step_1.clone(),
            WorkflowEvent::Escalated {
                step: step(1),
                assignee: user("bob"),
                due_at: hours_after_t0(25),
            },
        ),
        (
            "escalation twice",
            escalated.clone(),
            escalated.last().unwrap().clone(),
        ),
        (
            "cancellation of a finished workflow",
            finished.clone(),
            WorkflowEvent::Cancelled {
                reason: None,
                cancelled_by: uid("alice"),
            },
        ),
        (
            "an attachment to a cancelled workflow",
            cancelled_history,
            WorkflowEvent::DocumentAttached {
                attachment: attachment(),
                attached_by: uid("alice"),
            },
        ),
    ];
    for (name, history, event) in cases {
        let state = replay::<Workflow>(&history).unwrap_or_else(|e| panic!("{name}: {e}"));
        let error = Workflow::evolve(state, &event).expect_err(name);
        assert_eq!(error.event_type, event.event_type(), "{name}");
    }
}

fn with_events(
    history: &[WorkflowEvent],
    more: impl IntoIterator<Item = WorkflowEvent>,
) -> Vec<WorkflowEvent> {
    history.iter().cloned().chain(more).collect()
}

#[test]
fn replay_reaches_the_same_state_as_deciding_step_by_step() {
    let given = with(
        changes_requested(),
        [
            by("alice", retitle("出張申請：京都")),
            by("alice", WorkflowCommand::Submit),
            by("bob", delegate(1, "dave")),
            by(WATCHER, escalate(1)).at(30),
            by("dave", approve(1)).at(31),
            by("eve:manager", comment()),
        ],
    );
    let (state, history) = record::<Workflow>(&given);
    assert_eq!(replay::<Workflow>(&history).unwrap(), state);
    let state = state.unwrap();
    assert_eq!(state.status, InProgress);
    assert_eq!(state.current().map(|current| current.step), Some(step(2)));
}
