//! Task Management: the work the other contexts ask people to do: review a scan, remediate a
//! critical vulnerability.
//!
//! Created by the platform (a reaction) → assigned by an administrator or security staff, and
//! re-assigned as often as needed → completed by its assignee, once, for good.

use crate::values::{is_security_staff, labels};
use crate::{BoardError, CveId, ScanId, SystemId, TaskNote, TaskTitle};
use chrono::{DateTime, Utc};
use es_kernel::{events, Aggregate, Context, CorruptHistory, UserId};
use serde::{Deserialize, Serialize};

labels! {
    /// What a task asks for.
    pub enum TaskKind {
        /// Look through a new scan's findings.
        ScanReview => "SCAN_REVIEW",
        /// Fix a critical vulnerability (the task names its CVE).
        Remediation => "REMEDIATION",
    }
}

labels! {
    /// How urgent a task is. Ordered from LOW to URGENT.
    pub enum TaskPriority {
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
        Urgent => "URGENT",
    }
}

labels! {
    /// Where a task stands; follows from [`Task::assignee`] and [`Task::completed`].
    pub enum TaskStatus {
        Open => "OPEN",
        Assigned => "ASSIGNED",
        Completed => "COMPLETED",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskCommand {
    /// The platform only: tasks come from the reactions.
    Create {
        kind: TaskKind,
        system_id: SystemId,
        scan_id: ScanId,
        /// The vulnerability to remediate; `None` for scan reviews.
        cve: Option<CveId>,
        title: TaskTitle,
        priority: TaskPriority,
        due_at: DateTime<Utc>,
    },
    /// Administrators and security staff; to anyone of the tenant, but not to the assignee it
    /// already has.
    Assign { assignee: UserId },
    /// The assignee only; once.
    Complete { note: Option<TaskNote> },
}

events! {
    /// Facts about a task, stored like the [`SystemEvent`](crate::SystemEvent)s. Timestamps
    /// are RFC 3339 UTC strings; optional fields are absent rather than `null`.
    pub enum TaskEvent {
        /// `{"kind":"REMEDIATION","system_id":"<uuid>","scan_id":"<uuid>",
        ///   "cve":"CVE-2021-44228","title":"Remediate CVE-2021-44228 in log4j-core (CVSS 10.0)",
        ///   "priority":"HIGH","due_at":"2025-04-04T09:00:00Z"}`; `cve` is absent for reviews.
        "TaskCreated" => Created {
            kind: TaskKind,
            system_id: SystemId,
            scan_id: ScanId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cve: Option<CveId>,
            title: TaskTitle,
            priority: TaskPriority,
            due_at: DateTime<Utc>,
        },
        /// `{"assignee":"sam","assigned_by":"mia"}`
        "TaskAssigned" => Assigned {
            assignee: UserId,
            assigned_by: UserId,
        },
        /// `{"completed_by":"sam","note":"patched to 2.17.1"}`; `note` is optional.
        "TaskCompleted" => Completed {
            completed_by: UserId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            note: Option<TaskNote>,
        },
    }
}

/// What the aggregate remembers between commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub kind: TaskKind,
    pub system_id: SystemId,
    pub scan_id: ScanId,
    pub cve: Option<CveId>,
    pub title: TaskTitle,
    pub priority: TaskPriority,
    pub due_at: DateTime<Utc>,
    pub assignee: Option<UserId>,
    pub completed: bool,
}

impl Task {
    pub fn status(&self) -> TaskStatus {
        match (&self.assignee, self.completed) {
            (_, true) => TaskStatus::Completed,
            (Some(_), false) => TaskStatus::Assigned,
            (None, false) => TaskStatus::Open,
        }
    }

    fn require_open(&self, action: &'static str) -> Result<(), BoardError> {
        if self.completed {
            return Err(BoardError::TaskCompleted { action });
        }
        Ok(())
    }
}

impl Aggregate for Task {
    const TYPE: &'static str = "task";
    const STATE_SCHEMA: i32 = 1;

    type Command = TaskCommand;
    type Event = TaskEvent;
    type Error = BoardError;

    fn command_name(command: &TaskCommand) -> &'static str {
        match command {
            TaskCommand::Create { .. } => "CreateTask",
            TaskCommand::Assign { .. } => "AssignTask",
            TaskCommand::Complete { .. } => "CompleteTask",
        }
    }

    fn event_type(event: &TaskEvent) -> &'static str {
        event.event_type()
    }

    fn decide(
        state: Option<&Task>,
        context: &Context,
        command: TaskCommand,
    ) -> Result<Vec<TaskEvent>, BoardError> {
        let actor = &context.actor;
        // Permission first where it depends on the actor alone; completing depends on the
        // task's assignee, so it is checked against the task.
        match &command {
            TaskCommand::Create { .. } if !actor.is_system() => {
                return Err(BoardError::NotSystem {
                    action: "create tasks",
                })
            }
            TaskCommand::Assign { .. } if !is_security_staff(actor) => {
                return Err(BoardError::NotSecurityStaff {
                    action: "assign tasks",
                })
            }
            _ => {}
        }
        let Some(task) = state else {
            return match command {
                TaskCommand::Create {
                    kind,
                    system_id,
                    scan_id,
                    cve,
                    title,
                    priority,
                    due_at,
                } => Ok(vec![TaskEvent::Created {
                    kind,
                    system_id,
                    scan_id,
                    cve,
                    title,
                    priority,
                    due_at,
                }]),
                _ => Err(BoardError::NotFound {
                    aggregate: Self::TYPE,
                }),
            };
        };
        match command {
            TaskCommand::Create { .. } => Err(BoardError::AlreadyExists {
                aggregate: Self::TYPE,
            }),
            TaskCommand::Assign { assignee } => {
                task.require_open("assign")?;
                if task.assignee.as_ref() == Some(&assignee) {
                    return Err(BoardError::AlreadyAssigned { assignee });
                }
                Ok(vec![TaskEvent::Assigned {
                    assignee,
                    assigned_by: actor.user_id.clone(),
                }])
            }
            TaskCommand::Complete { note } => {
                // Without an assignee there is no one to check the actor against.
                let Some(assignee) = &task.assignee else {
                    return Err(BoardError::Unassigned);
                };
                if actor.user_id != *assignee {
                    return Err(BoardError::NotAssignee);
                }
                task.require_open("complete")?;
                Ok(vec![TaskEvent::Completed {
                    completed_by: actor.user_id.clone(),
                    note,
                }])
            }
        }
    }

    fn evolve(state: Option<Task>, event: &TaskEvent) -> Result<Option<Task>, CorruptHistory> {
        let corrupt = |problem| CorruptHistory {
            event_type: event.event_type(),
            problem,
        };
        let Some(mut task) = state else {
            return match event {
                TaskEvent::Created {
                    kind,
                    system_id,
                    scan_id,
                    cve,
                    title,
                    priority,
                    due_at,
                } => Ok(Some(Task {
                    kind: *kind,
                    system_id: *system_id,
                    scan_id: *scan_id,
                    cve: cve.clone(),
                    title: title.clone(),
                    priority: *priority,
                    due_at: *due_at,
                    assignee: None,
                    completed: false,
                })),
                _ => Err(corrupt("task does not exist")),
            };
        };
        match event {
            TaskEvent::Created { .. } => return Err(corrupt("task already exists")),
            TaskEvent::Assigned { .. } if task.completed => {
                return Err(corrupt("a completed task is not assigned"))
            }
            TaskEvent::Assigned { assignee, .. } if task.assignee.as_ref() == Some(assignee) => {
                return Err(corrupt("task is already assigned to this user"))
            }
            TaskEvent::Assigned { assignee, .. } => task.assignee = Some(assignee.clone()),
            TaskEvent::Completed { .. } if task.completed => {
                return Err(corrupt("task is already completed"))
            }
            TaskEvent::Completed { completed_by, .. }
                if task.assignee.as_ref() != Some(completed_by) =>
            {
                return Err(corrupt("only the assignee completes a task"))
            }
            TaskEvent::Completed { .. } => task.completed = true,
        }
        Ok(Some(task))
    }
}
