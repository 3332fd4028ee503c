//! The approval workflow ("ringi"): a request that passes through the steps of its route.
//!
//! Draft → submit → InProgress (step 1 assigned) → each step is approved (the next step, or
//! Approved after the last), rejected (Rejected), sent back (ChangesRequested, until the
//! applicant edits and resubmits, which restarts the route at step 1) or delegated (the same
//! step, now assigned to another user, with the same deadline). The applicant may cancel any
//! workflow that has not ended. An overdue step is escalated: that notifies, it never decides.

use crate::{
    Actor, Approver, Attachment, Comment, CommentBody, DefinitionRef, Description, DisplayName,
    DomainError, Priority, Reason, Route, StepNo, Title, UserId,
};
use chrono::{DateTime, NaiveDate, Utc};
use es_kernel::{events, Aggregate, Context, CorruptHistory};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowCommand {
    /// `route` is the pinned definition's route when `definition` is given (see
    /// [`Definition::pin`](crate::Definition::pin)), otherwise an ad-hoc one.
    Create {
        title: Title,
        description: Description,
        priority: Priority,
        route: Route,
        definition: Option<DefinitionRef>,
        due_date: Option<NaiveDate>,
    },
    UpdateDraft(DraftChanges),
    Submit,
    ApproveStep {
        step: StepNo,
        comment: Comment,
    },
    RejectStep {
        step: StepNo,
        reason: Reason,
    },
    RequestChanges {
        step: StepNo,
        reason: Reason,
    },
    DelegateStep {
        step: StepNo,
        to_user: UserId,
        comment: Comment,
    },
    Cancel {
        reason: Option<Reason>,
    },
    AddComment {
        body: CommentBody,
    },
    AttachDocument {
        attachment: Attachment,
    },
    /// Sent by the deadline watcher (an actor holding the `system` role).
    EscalateStep {
        step: StepNo,
    },
}

/// New values for a draft's editable fields; `None` leaves a field as it is.
/// JSON (as the `WorkflowDraftUpdated` payload, which holds only the fields that changed):
/// `{"title":"…","description":"…","priority":"High","due_date":"2025-04-30"}`, each key
/// optional; `"due_date":null` clears the due date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// `Some(None)` clears the due date.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub due_date: Option<Option<NaiveDate>>,
}

/// Reads a field that is present (even as `null`) as `Some`, so "clear the due date" survives
/// a round trip; plain serde would read `null` as "leave it".
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl DraftChanges {
    /// Only the changes that differ from `draft`.
    fn against(self, draft: &Draft) -> DraftChanges {
        fn changed<T: PartialEq>(new: Option<T>, old: &T) -> Option<T> {
            new.filter(|new| new != old)
        }
        DraftChanges {
            title: changed(self.title, &draft.title),
            description: changed(self.description, &draft.description),
            priority: changed(self.priority, &draft.priority),
            due_date: changed(self.due_date, &draft.due_date),
        }
    }

    fn is_empty(&self) -> bool {
        *self == DraftChanges::default()
    }
}

/// How a step was decided. JSON: `"Approved"`, `"Rejected"`, `"RequestedChanges"` or
/// `{"Delegated":{"to_user":"dave"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Approved,
    Rejected,
    RequestedChanges,
    Delegated { to_user: UserId },
}

events! {
    /// Facts about a workflow. The serde tag is the stored `event_type`; `data` is the payload,
    /// always a JSON object. Optional fields are absent rather than `null` unless noted.
    /// Timestamps are RFC 3339 UTC strings, dates `YYYY-MM-DD`.
    pub enum WorkflowEvent {
        /// `{"title":"出張申請","description":"…","priority":"High","applicant_id":"alice",
        ///   "applicant_name":"Alice","route":[{"approver":{"user":"bob"},"sla_hours":24},
        ///   {"approver":{"role":"manager"}}],
        ///   "definition":{"id":"<uuid>","version":3,"name":"出張申請"},"due_date":"2025-04-30"}`
        "WorkflowCreated" => Created {
            title: Title,
            description: Description,
            priority: Priority,
            applicant_id: UserId,
            applicant_name: DisplayName,
            route: Route,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            definition: Option<DefinitionRef>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            due_date: Option<NaiveDate>,
        },
        /// A [`DraftChanges`] object holding only the changed fields.
        "WorkflowDraftUpdated" => DraftUpdated(DraftChanges),
        /// `{}`
        "WorkflowSubmitted" => Submitted {},
        /// `{"step":1,"assignee":{"user":"bob"},"due_at":"2025-04-02T09:00:00Z"}`; `due_at` is
        /// absent when the step has no SLA. A delegation re-assigns the same step and deadline.
        "WorkflowStepAssigned" => StepAssigned {
            step: StepNo,
            assignee: Approver,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            due_at: Option<DateTime<Utc>>,
        },
        /// `{"step":1,"decision":"Approved","decided_by":"bob","comment":"ok"}`; `decision` is
        /// a [`Decision`], `comment` the remark, or the reason of a refusal.
        "WorkflowStepCompleted" => StepCompleted {
            step: StepNo,
            decision: Decision,
            decided_by: UserId,
            comment: String,
        },
        /// `{}`
        "WorkflowApproved" => Approved {},
        /// `{"reason":"too expensive"}`
        "WorkflowRejected" => Rejected { reason: Reason },
        /// `{"reason":"no longer needed","cancelled_by":"alice"}`; `reason` is optional.
        "WorkflowCancelled" => Cancelled {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<Reason>,
            cancelled_by: UserId,
        },
        /// `{"step":1,"assignee":{"role":"manager"},"due_at":"2025-04-02T09:00:00Z"}`
        "WorkflowEscalated" => Escalated {
            step: StepNo,
            assignee: Approver,
            due_at: DateTime<Utc>,
        },
        /// `{"author_id":"bob","author_name":"Bob","body":"…"}`
        "CommentAdded" => CommentAdded {
            author_id: UserId,
            author_name: DisplayName,
            body: CommentBody,
        },
        /// `{"attachment":{…see Attachment…},"attached_by":"alice"}`
        "DocumentAttached" => DocumentAttached {
            attachment: Attachment,
            attached_by: UserId,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Draft,
    InProgress,
    ChangesRequested,
    Approved,
    Rejected,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Draft,
        Status::InProgress,
        Status::ChangesRequested,
        Status::Approved,
        Status::Rejected,
        Status::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Approved | Status::Rejected | Status::Cancelled
        )
    }

    /// Whether the applicant may edit and (re)submit.
    pub fn is_editable(self) -> bool {
        matches!(self, Status::Draft | Status::ChangesRequested)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::InProgress => "IN_PROGRESS",
            Status::ChangesRequested => "CHANGES_REQUESTED",
            Status::Approved => "APPROVED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The fields the applicant may still edit, kept so an update that changes nothing is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub title: Title,
    pub description: Description,
    pub priority: Priority,
    pub due_date: Option<NaiveDate>,
}

impl Draft {
    fn apply(&mut self, changes: &DraftChanges) {
        if let Some(title) = &changes.title {
            self.title = title.clone();
        }
        if let Some(description) = &changes.description {
            self.description = description.clone();
        }
        if let Some(priority) = changes.priority {
            self.priority = priority;
        }
        if let Some(due_date) = changes.due_date {
            self.due_date = due_date;
        }
    }
}

/// A step waiting for its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub step: StepNo,
    pub assignee: Approver,
    pub due_at: Option<DateTime<Utc>>,
    /// Escalation happens once per assignment; a delegation starts a new one.
    pub escalated: bool,
}

/// Where a workflow in progress stands on its route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    Waiting(Assignment),
    /// `step` was just decided; the next event (the next assignment or the outcome) must follow
    /// from `decision`. Only ever seen between the events of one command.
    Decided {
        step: StepNo,
        decision: Decision,
        due_at: Option<DateTime<Utc>>,
    },
}

/// What the aggregate remembers between commands: only what its rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub applicant_id: UserId,
    pub route: Route,
    pub status: Status,
    pub draft: Draft,
    /// `None` unless in progress (and, in progress, before the first assignment).
    pub progress: Option<Progress>,
    /// Everyone a step was ever delegated to: they remain participants.
    pub delegates: BTreeSet<UserId>,
}

/// `None` until the workflow is created.
pub type WorkflowState = Option<Workflow>;

impl Workflow {
    /// The step waiting for a decision, if any.
    pub fn current(&self) -> Option<&Assignment> {
        match &self.progress {
            Some(Progress::Waiting(assignment)) => Some(assignment),
            _ => None,
        }
    }

    /// The applicant, anyone the route names (directly or through a role they hold), every
    /// delegate so far, and administrators.
    pub fn is_participant(&self, actor: &Actor) -> bool {
        actor.user_id == self.applicant_id
            || actor.is_admin()
            || self.delegates.contains(&actor.user_id)
            || self
                .route
                .steps()
                .any(|(_, spec)| spec.approver.includes(actor))
    }

    fn require_applicant(&self, actor: &Actor, action: &'static str) -> Result<(), DomainError> {
        if actor.user_id != self.applicant_id {
            return Err(DomainError::NotApplicant { action });
        }
        Ok(())
    }

    fn require_participant(&self, actor: &Actor, action: &'static str) -> Result<(), DomainError> {
        if !self.is_participant(actor) {
            return Err(DomainError::NotParticipant { action });
        }
        Ok(())
    }

    fn require_status(
        &self,
        allowed: fn(Status) -> bool,
        action: &'static str,
    ) -> Result<(), DomainError> {
        if !allowed(self.status) {
            return Err(DomainError::InvalidState {
                status: self.status,
                action,
            });
        }
        Ok(())
    }

    /// The assignment of `step`, checked in the order a user would want it explained: is
    /// anything waiting at all, is it this step.
    fn waiting_at(&self, step: StepNo, action: &'static str) -> Result<&Assignment, DomainError> {
        let current = match (self.status, self.current()) {
            (Status::InProgress, Some(current)) => current,
            (status, _) => return Err(DomainError::InvalidState { status, action }),
        };
        if step < current.step {
            return Err(DomainError::StepAlreadyDecided { step: step.get() });
        }
        if step > current.step {
            return Err(DomainError::StepNotCurrent {
                step: step.get(),
                current: current.step.get(),
            });
        }
        Ok(current)
    }

    /// [`waiting_at`](Self::waiting_at), then: is it the actor's to decide.
    fn decidable(
        &self,
        actor: &Actor,
        step: StepNo,
        action: &'static str,
    ) -> Result<&Assignment, DomainError> {
        let current = self.waiting_at(step, action)?;
        match &current.assignee {
            Approver::User(user) if *user == actor.user_id => {
                if actor.user_id == self.applicant_id {
                    return Err(DomainError::ApplicantIsApprover { step: step.get() });
                }
                Ok(current)
            }
            Approver::Role(role) if actor.holds(role) => {
                if actor.user_id == self.applicant_id {
                    return Err(DomainError::ApplicantHoldsRole { step: step.get() });
                }
                Ok(current)
            }
            _ => Err(DomainError::NotApprover { step: step.get() }),
        }
    }

    /// Assigns `step` as the route says, or approves the workflow when the route has no such
    /// step. (Submitting assigns step 1, which exists: `evolve` refuses empty routes.)
    fn advance_to(&self, step: StepNo, now: DateTime<Utc>) -> WorkflowEvent {
        match self.route.spec(step) {
            Some(spec) => WorkflowEvent::StepAssigned {
                step,
                assignee: spec.approver.clone(),
                due_at: spec.sla_hours.and_then(|sla| sla.deadline(now)),
            },
            None => WorkflowEvent::Approved {},
        }
    }

    /// Whether the route assigns `step` to `assignee`.
    fn route_assigns(&self, step: StepNo, assignee: &Approver) -> bool {
        self.route
            .spec(step)
            .is_some_and(|spec| spec.approver == *assignee)
    }
}

fn completed(step: StepNo, decision: Decision, actor: &Actor, comment: &str) -> WorkflowEvent {
    WorkflowEvent::StepCompleted {
        step,
        decision,
        decided_by: actor.user_id.clone(),
        comment: comment.to_owned(),
    }
}

impl Aggregate for Workflow {
    const TYPE: &'static str = "workflow";
    const STATE_SCHEMA: i32 = 2;

    type Command = WorkflowCommand;
    type Event = WorkflowEvent;
    type Error = DomainError;

    fn command_name(command: &WorkflowCommand) -> &'static str {
        match command {
            WorkflowCommand::Create { .. } => "CreateWorkflow",
            WorkflowCommand::UpdateDraft(_) => "UpdateDraft",
            WorkflowCommand::Submit => "SubmitWorkflow",
            WorkflowCommand::ApproveStep { .. } => "ApproveStep",
            WorkflowCommand::RejectStep { .. } => "RejectStep",
            WorkflowCommand::RequestChanges { .. } => "RequestChanges",
            WorkflowCommand::DelegateStep { .. } => "DelegateStep",
            WorkflowCommand::Cancel { .. } => "CancelWorkflow",
            WorkflowCommand::AddComment { .. } => "AddComment",
            WorkflowCommand::AttachDocument { .. } => "AttachDocument",
            WorkflowCommand::EscalateStep { .. } => "EscalateStep",
        }
    }

    fn event_type(event: &WorkflowEvent) -> &'static str {
        event.event_type()
    }

    fn decide(
        state: Option<&Workflow>,
        context: &Context,
        command: WorkflowCommand,
    ) -> Result<Vec<WorkflowEvent>, DomainError> {
        let actor = &context.actor;
        let Some(wf) = state else {
            return match command {
                WorkflowCommand::Create {
                    title,
                    description,
                    priority,
                    route,
                    definition,
                    due_date,
                } => {
                    route.refuse_approver(&actor.user_id)?;
                    Ok(vec![WorkflowEvent::Created {
                        title,
                        description,
                        priority,
                        applicant_id: actor.user_id.clone(),
                        applicant_name: actor.display_name.clone(),
                        route,
                        definition,
                        due_date,
                    }])
                }
                _ => Err(DomainError::NotFound {
                    aggregate: Self::TYPE,
                }),
            };
        };
        match command {
            WorkflowCommand::Create { .. } => Err(DomainError::AlreadyExists {
                aggregate: Self::TYPE,
            }),
            WorkflowCommand::UpdateDraft(changes) => {
                wf.require_applicant(actor, "update the draft")?;
                wf.require_status(Status::is_editable, "update the draft")?;
                let changes = changes.against(&wf.draft);
                if changes.is_empty() {
                    return Err(DomainError::NothingToUpdate);
                }
                Ok(vec![WorkflowEvent::DraftUpdated(changes)])
            }
            WorkflowCommand::Submit => {
                wf.require_applicant(actor, "submit")?;
                wf.require_status(Status::is_editable, "submit")?;
                Ok(vec![
                    WorkflowEvent::Submitted {},
                    wf.advance_to(StepNo::FIRST, context.now),
                ])
            }
            WorkflowCommand::ApproveStep { step, comment } => {
                wf.decidable(actor, step, "approve")?;
                Ok(vec![
                    completed(step, Decision::Approved, actor, comment.as_str()),
                    wf.advance_to(step.next(), context.now),
                ])
            }
            WorkflowCommand::RejectStep { step, reason } => {
                wf.decidable(actor, step, "reject")?;
                Ok(vec![
                    completed(step, Decision::Rejected, actor, reason.as_str()),
                    WorkflowEvent::Rejected { reason },
                ])
            }
            WorkflowCommand::RequestChanges { step, reason } => {
                wf.decidable(actor, step, "request changes")?;
                Ok(vec![completed(
                    step,
                    Decision::RequestedChanges,
                    actor,
                    reason.as_str(),
                )])
            }
            WorkflowCommand::DelegateStep {
                step,
                to_user,
                comment,
            } => {
                let current = wf.decidable(actor, step, "delegate")?;
                // "Not to the current assignee" needs no rule of its own: a user step is decided
                // by its user only, whom this rule catches, and a role is never a user.
                if to_user == actor.user_id {
                    return Err(DomainError::InvalidDelegate {
                        reason: "the step is already yours",
                    });
                }
                if to_user == wf.applicant_id {
                    return Err(DomainError::InvalidDelegate {
                        reason: "the applicant may not decide their own workflow",
                    });
                }
                Ok(vec![
                    completed(
                        step,
                        Decision::Delegated {
                            to_user: to_user.clone(),
                        },
                        actor,
                        comment.as_str(),
                    ),
                    WorkflowEvent::StepAssigned {
                        step,
                        assignee: Approver::User(to_user),
                        due_at: current.due_at,
                    },
                ])
            }
            WorkflowCommand::Cancel { reason } => {
                wf.require_applicant(actor, "cancel")?;
                wf.require_status(|status| !status.is_terminal(), "cancel")?;
                Ok(vec![WorkflowEvent::Cancelled {
                    reason,
                    cancelled_by: actor.user_id.clone(),
                }])
            }
            WorkflowCommand::AddComment { body } => {
                wf.require_participant(actor, "comment")?;
                Ok(vec![WorkflowEvent::CommentAdded {
                    author_id: actor.user_id.clone(),
                    author_name: actor.display_name.clone(),
                    body,
                }])
            }
            WorkflowCommand::AttachDocument { attachment } => {
                wf.require_participant(actor, "attach documents")?;
                wf.require_status(|status| !status.is_terminal(), "attach documents")?;
                Ok(vec![WorkflowEvent::DocumentAttached {
                    attachment,
                    attached_by: actor.user_id.clone(),
                }])
            }
            WorkflowCommand::EscalateStep { step } => {
                if !actor.is_system() {
                    return Err(DomainError::NotSystem);
                }
                let current = wf.waiting_at(step, "escalate")?;
                let due_at = match current.due_at {
                    Some(due_at) if context.now >= due_at => due_at,
                    _ => return Err(DomainError::NotOverdue { step: step.get() }),
                };
                if current.escalated {
                    return Err(DomainError::AlreadyEscalated { step: step.get() });
                }
                Ok(vec![WorkflowEvent::Escalated {
                    step,
                    assignee: current.assignee.clone(),
                    due_at,
                }])
            }
        }
    }

    fn evolve(
        state: Option<Workflow>,
        event: &WorkflowEvent,
    ) -> Result<Option<Workflow>, CorruptHistory> {
        let corrupt = |problem| CorruptHistory {
            event_type: event.event_type(),
            problem,
        };
        let Some(mut wf) = state else {
            return match event {
                WorkflowEvent::Created { route, .. } if route.is_empty() => {
                    Err(corrupt("route has no steps"))
                }
                WorkflowEvent::Created {
                    title,
                    description,
                    priority,
                    applicant_id,
                    route,
                    due_date,
                    ..
                } => Ok(Some(Workflow {
                    applicant_id: applicant_id.clone(),
                    route: route.clone(),
                    status: Status::Draft,
                    draft: Draft {
                        title: title.clone(),
                        description: description.clone(),
                        priority: *priority,
                        due_date: *due_date,
                    },
                    progress: None,
                    delegates: BTreeSet::new(),
                })),
                _ => Err(corrupt("workflow does not exist")),
            };
        };
        match event {
            WorkflowEvent::Created { .. } => return Err(corrupt("workflow already exists")),
            WorkflowEvent::DraftUpdated(changes) => {
                if !wf.status.is_editable() {
                    return Err(corrupt("only a draft can be updated"));
                }
                wf.draft.apply(changes);
            }
            WorkflowEvent::Submitted {} => {
                if !wf.status.is_editable() {
                    return Err(corrupt("only a draft can be submitted"));
                }
                wf.status = Status::InProgress;
                wf.progress = None;
            }
            WorkflowEvent::StepAssigned {
                step,
                assignee,
                due_at,
            } => {
                let follows = match (&wf.status, &wf.progress) {
                    (Status::InProgress, None) => {
                        *step == StepNo::FIRST && wf.route_assigns(*step, assignee)
                    }
                    (
                        Status::InProgress,
                        Some(Progress::Decided {
                            step: decided,
                            decision,
                            due_at: deadline,
                        }),
                    ) => match decision {
                        Decision::Approved => {
                            *step == decided.next() && wf.route_assigns(*step, assignee)
                        }
                        Decision::Delegated { to_user } => {
                            step == decided
                                && matches!(assignee, Approver::User(user) if user == to_user)
                                && due_at == deadline
                        }
                        Decision::Rejected | Decision::RequestedChanges => false,
                    },
                    _ => false,
                };
                if !follows {
                    return Err(corrupt(
                        "assignment follows neither from the route nor from a delegation",
                    ));
                }
                wf.progress = Some(Progress::Waiting(Assignment {
                    step: *step,
                    assignee: assignee.clone(),
                    due_at: *due_at,
                    escalated: false,
                }));
            }
            WorkflowEvent::StepCompleted { step, decision, .. } => {
                let Some(current) = wf.current().filter(|current| current.step == *step) else {
                    return Err(corrupt(
                        "completed step is not the step waiting for a decision",
                    ));
                };
                let due_at = current.due_at;
                if let Decision::Delegated { to_user } = decision {
                    wf.delegates.insert(to_user.clone());
                }
                wf.progress = if *decision == Decision::RequestedChanges {
                    wf.status = Status::ChangesRequested;
                    None
                } else {
                    Some(Progress::Decided {
                        step: *step,
                        decision: decision.clone(),
                        due_at,
                    })
                };
            }
            WorkflowEvent::Approved {} => match &wf.progress {
                Some(Progress::Decided {
                    step,
                    decision: Decision::Approved,
                    ..
                }) if wf.route.spec(step.next()).is_none() => {
                    wf.status = Status::Approved;
                    wf.progress = None;
                }
                _ => {
                    return Err(corrupt(
                        "only approving the last step approves the workflow",
                    ))
                }
            },
            WorkflowEvent::Rejected { .. } => match &wf.progress {
                Some(Progress::Decided {
                    decision: Decision::Rejected,
                    ..
                }) => {
                    wf.status = Status::Rejected;
                    wf.progress = None;
                }
                _ => return Err(corrupt("only rejecting a step rejects the workflow")),
            },
            WorkflowEvent::Cancelled { .. } => {
                if wf.status.is_terminal() {
                    return Err(corrupt("a finished workflow cannot be cancelled"));
                }
                wf.status = Status::Cancelled;
                wf.progress = None;
            }
            WorkflowEvent::Escalated {
                step,
                assignee,
                due_at,
            } => match &mut wf.progress {
                Some(Progress::Waiting(current))
                    if current.step == *step
                        && current.assignee == *assignee
                        && current.due_at == Some(*due_at)
                        && !current.escalated =>
                {
                    current.escalated = true;
                }
                _ => return Err(corrupt("escalation does not match the waiting assignment")),
            },
            WorkflowEvent::CommentAdded { .. } => {}
            WorkflowEvent::DocumentAttached { .. } => {
                if wf.status.is_terminal() {
                    return Err(corrupt("a finished workflow takes no attachments"));
                }
            }
        }
        Ok(Some(wf))
    }
}
