//! Task Management's rules.

use super::*;

#[test]
fn each_command_records_exactly_these_facts() {
    let review = TaskCommand::Create {
        kind: TaskKind::ScanReview,
        system_id: system_id(),
        scan_id: scan_id(),
        cve: None,
        title: TaskTitle::parse("title", "Review the scan").unwrap(),
        priority: TaskPriority::Medium,
        due_at: days_after_t0(7),
    };
    assert_facts::<Task>(vec![
        (
            "the platform creates a remediation task",
            vec![],
            by(PLATFORM, create_remediation()),
            vec![TaskEvent::Created {
                kind: TaskKind::Remediation,
                system_id: system_id(),
                scan_id: scan_id(),
                cve: Some(log4shell()),
                title: remediation_title(),
                priority: TaskPriority::High,
                due_at: hours_after_t0(72),
            }],
        ),
        (
            "the platform creates a review task, which names no CVE",
            vec![],
            by(PLATFORM, review),
            vec![TaskEvent::Created {
                kind: TaskKind::ScanReview,
                system_id: system_id(),
                scan_id: scan_id(),
                cve: None,
                title: TaskTitle::parse("title", "Review the scan").unwrap(),
                priority: TaskPriority::Medium,
                due_at: days_after_t0(7),
            }],
        ),
        (
            "an administrator assigns",
            created(),
            by(ADMIN, assign("sam")),
            vec![TaskEvent::Assigned {
                assignee: uid("sam"),
                assigned_by: uid("mia"),
            }],
        ),
        (
            "security staff assign, to themselves too",
            created(),
            by(SECURITY, assign("sam")),
            vec![TaskEvent::Assigned {
                assignee: uid("sam"),
                assigned_by: uid("sam"),
            }],
        ),
        (
            "re-assigning to someone else",
            assigned(),
            by(SECURITY, assign("olga")),
            vec![TaskEvent::Assigned {
                assignee: uid("olga"),
                assigned_by: uid("sam"),
            }],
        ),
        (
            "the assignee completes, with a note",
            assigned(),
            by(SECURITY, complete(Some("patched to 2.17.1"))),
            vec![TaskEvent::Completed {
                completed_by: uid("sam"),
                note: Some(TaskNote::parse("note", "patched to 2.17.1").unwrap()),
            }],
        ),
        (
            "the assignee needs no role to complete, nor a note",
            with(assigned(), [by(ADMIN, assign("olga"))]),
            by(OWNER, complete(None)),
            vec![TaskEvent::Completed {
                completed_by: uid(OWNER),
                note: None,
            }],
        ),
        (
            "a task past its due date can still be completed",
            assigned(),
            by(SECURITY, complete(None)).at(24 * 30),
            vec![TaskEvent::Completed {
                completed_by: uid("sam"),
                note: None,
            }],
        ),
    ]);
}

#[test]
fn every_refusal_with_its_code_and_field() {
    use ErrorCode::*;
    let not_system = || BoardError::NotSystem {
        action: "create tasks",
    };
    let not_staff = || BoardError::NotSecurityStaff {
        action: "assign tasks",
    };
    assert_refusals::<Task>(vec![
        (
            "an administrator creates a task",
            vec![],
            by(ADMIN, create_remediation()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "security staff create a task",
            vec![],
            by(SECURITY, create_remediation()),
            not_system(),
            PermissionDenied,
            None,
        ),
        (
            "a task id is new",
            created(),
            by(PLATFORM, create_remediation()),
            BoardError::AlreadyExists { aggregate: "task" },
            Conflict,
            None,
        ),
        (
            "assigning an unknown task",
            vec![],
            by(ADMIN, assign("sam")),
            BoardError::NotFound { aggregate: "task" },
            NotFound,
            None,
        ),
        (
            "completing an unknown task",
            vec![],
            by(SECURITY, complete(None)),
            BoardError::NotFound { aggregate: "task" },
            NotFound,
            None,
        ),
        (
            "a stranger assigns",
            created(),
            by(STRANGER, assign("eve")),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "the platform does not assign",
            created(),
            by(PLATFORM, assign("sam")),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "the assignee without a role does not re-assign",
            with(assigned(), [by(ADMIN, assign("olga"))]),
            by(OWNER, assign("ray")),
            not_staff(),
            PermissionDenied,
            None,
        ),
        (
            "assigning to the current assignee changes nothing",
            assigned(),
            by(ADMIN, assign("sam")),
            BoardError::AlreadyAssigned {
                assignee: uid("sam"),
            },
            InvalidArgument,
            Some("assignee"),
        ),
        (
            "assigning a completed task",
            completed_task(),
            by(ADMIN, assign("olga")),
            BoardError::TaskCompleted { action: "assign" },
            FailedPrecondition,
            None,
        ),
        (
            "completion is checked before the assignee",
            completed_task(),
            by(ADMIN, assign("sam")),
            BoardError::TaskCompleted { action: "assign" },
            FailedPrecondition,
            None,
        ),
        (
            "completing an unassigned task",
            created(),
            by(SECURITY, complete(None)),
            BoardError::Unassigned,
            FailedPrecondition,
            None,
        ),
        (
            "an administrator completes someone else's task",
            assigned(),
            by(ADMIN, complete(None)),
            BoardError::NotAssignee,
            PermissionDenied,
            None,
        ),
        (
            "the platform completes someone else's task",
            assigned(),
            by(PLATFORM, complete(None)),
            BoardError::NotAssignee,
            PermissionDenied,
            None,
        ),
        (
            "the previous assignee completes",
            with(assigned(), [by(ADMIN, assign("olga"))]),
            by(SECURITY, complete(None)),
            BoardError::NotAssignee,
            PermissionDenied,
            None,
        ),
        (
            "permission before state: someone else on a completed task",
            completed_task(),
            by(ADMIN, complete(None)),
            BoardError::NotAssignee,
            PermissionDenied,
            None,
        ),
        (
            "completing twice",
            completed_task(),
            by(SECURITY, complete(None)),
            BoardError::TaskCompleted { action: "complete" },
            FailedPrecondition,
            None,
        ),
    ]);
}

#[test]
fn status_follows_the_assignee_and_completion() {
    let cases = [
        (created(), TaskStatus::Open, None),
        (assigned(), TaskStatus::Assigned, Some(uid("sam"))),
        (
            with(assigned(), [by(SECURITY, assign("olga"))]),
            TaskStatus::Assigned,
            Some(uid("olga")),
        ),
        (completed_task(), TaskStatus::Completed, Some(uid("sam"))),
    ];
    for (given, status, assignee) in cases {
        let task = task_after(&given);
        assert_eq!(task.status(), status);
        assert_eq!(task.assignee, assignee);
        assert_eq!(task.due_at, hours_after_t0(72));
        assert_replays::<Task>(&given);
    }
}

#[test]
fn command_names_are_the_contracts_names() {
    let names: Vec<_> = [create_remediation(), assign("sam"), complete(None)]
        .iter()
        .map(Task::command_name)
        .collect();
    assert_eq!(names, ["CreateTask", "AssignTask", "CompleteTask"]);
}

#[test]
fn evolve_refuses_impossible_histories() {
    let (_, history) = record::<Task>(&completed_task());
    let [created, assigned, completed] = [0, 1, 2].map(|i| history[i].clone());
    let completed_by_other = TaskEvent::Completed {
        completed_by: uid("eve"),
        note: None,
    };
    let cases: Vec<(&str, Vec<TaskEvent>)> = vec![
        ("an assignment before creation", vec![assigned.clone()]),
        ("creating twice", vec![created.clone(), created.clone()]),
        (
            "a completion without an assignee",
            vec![created.clone(), completed.clone()],
        ),
        (
            "a completion by someone else",
            vec![created.clone(), assigned.clone(), completed_by_other],
        ),
        (
            "completing twice",
            vec![
                created.clone(),
                assigned.clone(),
                completed.clone(),
                completed.clone(),
            ],
        ),
        (
            "an assignment after completion",
            vec![
                created.clone(),
                assigned.clone(),
                completed.clone(),
                TaskEvent::Assigned {
                    assignee: uid("olga"),
                    assigned_by: uid("mia"),
                },
            ],
        ),
        (
            "assigning the assignee again",
            vec![created.clone(), assigned.clone(), assigned.clone()],
        ),
    ];
    for (case, history) in cases {
        assert!(replay::<Task>(&history).is_err(), "{case}");
    }
    assert!(replay::<Task>(&history).is_ok());
}
