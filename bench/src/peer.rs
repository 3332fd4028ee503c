//! W1's peer: the same create → submit → approve workload through `cqrs-es` + `postgres-es`
//! (the most used Rust CQRS/ES framework), in-process, on a fresh database of the same
//! PostgreSQL server. W1's workers drive it as one more [`Runner`], so both run the very same
//! loop, concurrency, warm-up and window.
//!
//! The aggregate is a minimal approval request with the rules W1's commands meet in RingiFlow's
//! workflow (status checks, applicant and approver checks, the current step) and emits the same
//! events of about the same payloads per command: 1 (created), 2 (submitted, step assigned),
//! 2 (step completed, approved); cqrs-es serialises them as JSON. The metadata carries what
//! RingiFlow's envelope does (tenant, user, correlation and causation ids). What the peer does
//! not do, and RingiFlow does: authenticate a token, deduplicate command ids, write an outbox
//! and notify the relay, cross a network.

use crate::client::{Runner, Step, APPLICANT, APPROVER, TENANT};
use anyhow::Context;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresCqrs;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The tables postgres-es reads and writes, from its documented schema (`db/init.sql` of
/// postgres-es 0.5: `events`, and `snapshots`, unused without snapshots but part of the setup).
const SCHEMA: [&str; 2] = [
    "CREATE TABLE events (
        aggregate_type text                         NOT NULL,
        aggregate_id   text                         NOT NULL,
        sequence       bigint CHECK (sequence >= 0) NOT NULL,
        event_type     text                         NOT NULL,
        event_version  text                         NOT NULL,
        payload        json                         NOT NULL,
        metadata       json                         NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    )",
    "CREATE TABLE snapshots (
        aggregate_type   text                                 NOT NULL,
        aggregate_id     text                                 NOT NULL,
        last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload          json                                 NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
    )",
];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    /// Not created yet.
    #[default]
    None,
    Draft,
    InProgress,
    Approved,
}

/// `{"user":"approver"}`, as RingiFlow's `Approver` of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    user: String,
}

/// `{"approver":{"user":"approver"}}`, as RingiFlow's route step without an SLA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    approver: Assignee,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ApprovalRequest {
    status: Status,
    applicant_id: String,
    route: Vec<String>,
    /// The step waiting for a decision (1-based; 0 when none is).
    current_step: u32,
}

pub enum ApprovalCommand {
    Create {
        title: String,
        applicant_id: String,
        applicant_name: String,
        route: Vec<String>,
    },
    Submit {
        actor: String,
    },
    Approve {
        actor: String,
        step: u32,
        comment: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApprovalEvent {
    Created {
        title: String,
        description: String,
        priority: String,
        applicant_id: String,
        applicant_name: String,
        route: Vec<StepSpec>,
    },
    Submitted {},
    StepAssigned {
        step: u32,
        assignee: Assignee,
    },
    StepCompleted {
        step: u32,
        decision: String,
        decided_by: String,
        comment: String,
    },
    Approved {},
}

impl DomainEvent for ApprovalEvent {
    fn event_type(&self) -> String {
        match self {
            ApprovalEvent::Created { .. } => "WorkflowCreated",
            ApprovalEvent::Submitted {} => "WorkflowSubmitted",
            ApprovalEvent::StepAssigned { .. } => "WorkflowStepAssigned",
            ApprovalEvent::StepCompleted { .. } => "WorkflowStepCompleted",
            ApprovalEvent::Approved {} => "WorkflowApproved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// A refused command.
#[derive(Debug)]
pub struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

fn require(condition: bool, refusal: &'static str) -> Result<(), Refused> {
    if condition {
        Ok(())
    } else {
        Err(Refused(refusal))
    }
}

impl Aggregate for ApprovalRequest {
    const TYPE: &'static str = "workflow";
    type Command = ApprovalCommand;
    type Event = ApprovalEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(
        &mut self,
        command: ApprovalCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Refused> {
        match command {
            ApprovalCommand::Create {
                title,
                applicant_id,
                applicant_name,
                route,
            } => {
                require(self.status == Status::None, "the workflow already exists")?;
                require(!title.trim().is_empty(), "a title is required")?;
                require(!route.is_empty(), "a route needs a step")?;
                let route = route
                    .into_iter()
                    .map(|user| StepSpec {
                        approver: Assignee { user },
                    })
                    .collect();
                let created = ApprovalEvent::Created {
                    title,
                    description: String::new(),
                    priority: "Medium".to_owned(),
                    applicant_id,
                    applicant_name,
                    route,
                };
                sink.write(created, self).await;
            }
            ApprovalCommand::Submit { actor } => {
                require(self.status != Status::None, "no such workflow")?;
                require(actor == self.applicant_id, "only the applicant may submit")?;
                require(
                    self.status == Status::Draft,
                    "only a draft can be submitted",
                )?;
                let assignee = Assignee {
                    user: self.route[0].clone(),
                };
                sink.write(ApprovalEvent::Submitted {}, self).await;
                sink.write(ApprovalEvent::StepAssigned { step: 1, assignee }, self)
                    .await;
            }
            ApprovalCommand::Approve {
                actor,
                step,
                comment,
            } => {
                require(self.status != Status::None, "no such workflow")?;
                require(
                    self.status == Status::InProgress,
                    "the workflow is not in progress",
                )?;
                require(step == self.current_step, "not the current step")?;
                require(
                    self.route.get(step as usize - 1) == Some(&actor),
                    "not the approver of this step",
                )?;
                require(actor != self.applicant_id, "the applicant cannot approve")?;
                let last = step as usize == self.route.len();
                sink.write(
                    ApprovalEvent::StepCompleted {
                        step,
                        decision: "Approved".to_owned(),
                        decided_by: actor,
                        comment,
                    },
                    self,
                )
                .await;
                if last {
                    sink.write(ApprovalEvent::Approved {}, self).await;
                } else {
                    let assignee = Assignee {
                        user: self.route[step as usize].clone(),
                    };
                    let next = ApprovalEvent::StepAssigned {
                        step: step + 1,
                        assignee,
                    };
                    sink.write(next, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: ApprovalEvent) {
        match event {
            ApprovalEvent::Created {
                applicant_id,
                route,
                ..
            } => {
                self.status = Status::Draft;
                self.applicant_id = applicant_id;
                self.route = route.into_iter().map(|s| s.approver.user).collect();
            }
            ApprovalEvent::Submitted {} => self.status = Status::InProgress,
            ApprovalEvent::StepAssigned { step, .. } => self.current_step = step,
            ApprovalEvent::StepCompleted { .. } => self.current_step = 0,
            ApprovalEvent::Approved {} => self.status = Status::Approved,
        }
    }
}

/// The peer as W1 drives it: one framework shared by every worker, as one service would be.
#[derive(Clone)]
pub struct Peer {
    cqrs: Arc<PostgresCqrs<ApprovalRequest>>,
}

impl Peer {
    /// Creates postgres-es's tables in `pool`'s (fresh) database and the framework on `pool`:
    /// an event store without snapshots (aggregates of at most 5 events) and no queries.
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .context("create postgres-es's tables")?;
        }
        Ok(Self {
            cqrs: Arc::new(postgres_es::postgres_cqrs(pool, Vec::new(), ())),
        })
    }
}

impl Runner for Peer {
    fn name(&self) -> &'static str {
        "peer"
    }

    async fn command(
        &mut self,
        step: Step,
        workflow_id: &str,
        title: &str,
    ) -> anyhow::Result<String> {
        let (id, user, command) = match step {
            Step::Create => (
                Uuid::new_v4().to_string(),
                APPLICANT,
                ApprovalCommand::Create {
                    title: title.to_owned(),
                    applicant_id: APPLICANT.to_owned(),
                    applicant_name: format!("{APPLICANT} san"),
                    route: vec![APPROVER.to_owned()],
                },
            ),
            Step::Submit => (
                workflow_id.to_owned(),
                APPLICANT,
                ApprovalCommand::Submit {
                    actor: APPLICANT.to_owned(),
                },
            ),
            Step::Approve => (
                workflow_id.to_owned(),
                APPROVER,
                ApprovalCommand::Approve {
                    actor: APPROVER.to_owned(),
                    step: 1,
                    comment: String::new(),
                },
            ),
        };
        let metadata = HashMap::from([
            ("tenant_id".to_owned(), TENANT.to_owned()),
            ("user_id".to_owned(), user.to_owned()),
            ("correlation_id".to_owned(), Uuid::new_v4().to_string()),
            ("causation_id".to_owned(), Uuid::new_v4().to_string()),
        ]);
        self.cqrs
            .execute_with_metadata(&id, command, metadata)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(id)
    }
}
