//! Routes: the ordered steps a workflow passes through, each decided by a user or by anyone
//! holding a role, optionally within an SLA.

use crate::values::StepNo;
use chrono::{DateTime, TimeDelta, Utc};
use es_kernel::{Actor, Role, UserId, ValidationError};
use serde::{Deserialize, Serialize};

/// Who decides a step. JSON: `{"user":"bob"}` or `{"role":"manager"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approver {
    User(UserId),
    Role(Role),
}

impl Approver {
    /// Whether `actor` is this approver or holds this role. Deciding additionally excludes the
    /// applicant acting through a role; see the workflow's rules.
    pub fn includes(&self, actor: &Actor) -> bool {
        match self {
            Approver::User(user) => *user == actor.user_id,
            Approver::Role(role) => actor.holds(role),
        }
    }
}

/// How long a step may wait for its decision before it is escalated: 1..=8760 hours (a year).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SlaHours(u32);

impl SlaHours {
    pub const MAX: u32 = 8_760;

    pub fn parse(field: &str, raw: u32) -> Result<Self, ValidationError> {
        if !(1..=Self::MAX).contains(&raw) {
            return Err(ValidationError::new(
                field,
                format!("must be between 1 and {} hours", Self::MAX),
            ));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The deadline of a step assigned at `assigned_at`. `None` only if the clock sits at the
    /// very end of chrono's range, where no later instant exists to be a deadline.
    pub fn deadline(self, assigned_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        assigned_at.checked_add_signed(TimeDelta::hours(self.0.into()))
    }
}

/// One step of a route. JSON: `{"approver":{"user":"bob"},"sla_hours":24}`; `sla_hours` is
/// absent when the step has no SLA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    pub approver: Approver,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_hours: Option<SlaHours>,
}

/// A route step as the client sent it, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStep<'a> {
    /// `None` when the client named neither a user nor a role.
    pub approver: Option<RawApprover<'a>>,
    pub sla_hours: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawApprover<'a> {
    User(&'a str),
    Role(&'a str),
}

/// The parts of a route step an error can point at. Displays as the snake_case field name the
/// gRPC contract uses, so `|i, f| format!("route[{i}].{f}")` names e.g. `route[2].sla_hours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepField {
    Approver,
    SlaHours,
}

impl std::fmt::Display for StepField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepField::Approver => "approver",
            StepField::SlaHours => "sla_hours",
        })
    }
}

impl StepSpec {
    fn parse(
        raw: RawStep<'_>,
        field: impl Fn(StepField) -> String,
    ) -> Result<Self, ValidationError> {
        let approver = match raw.approver {
            Some(RawApprover::User(id)) => {
                Approver::User(UserId::parse(&field(StepField::Approver), id)?)
            }
            Some(RawApprover::Role(role)) => {
                Approver::Role(Role::parse(&field(StepField::Approver), role)?)
            }
            None => {
                return Err(ValidationError::new(
                    field(StepField::Approver),
                    "must name a user or a role",
                ))
            }
        };
        let sla_hours = raw
            .sla_hours
            .map(|hours| SlaHours::parse(&field(StepField::SlaHours), hours))
            .transpose()?;
        Ok(Self {
            approver,
            sla_hours,
        })
    }
}

/// The ordered steps of a workflow: 1..=20. JSON: an array of [`StepSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Route(Vec<StepSpec>);

impl Route {
    pub const MAX_STEPS: usize = 20;

    /// `field` names the list (e.g. `route`); `step_field(i, part)` names a part of the
    /// (0-based) `i`th step, e.g. `|i, f| format!("route[{i}].{f}")`.
    pub fn parse<'a>(
        field: &str,
        steps: impl IntoIterator<Item = RawStep<'a>>,
        step_field: impl Fn(usize, StepField) -> String,
    ) -> Result<Self, ValidationError> {
        // One past the limit is enough to refuse the list without parsing an endless one.
        let steps = steps
            .into_iter()
            .take(Self::MAX_STEPS + 1)
            .enumerate()
            .map(|(i, raw)| StepSpec::parse(raw, |part| step_field(i, part)))
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err(ValidationError::new(field, "needs at least one step"));
        }
        if steps.len() > Self::MAX_STEPS {
            return Err(ValidationError::new(
                field,
                format!("has at most {} steps", Self::MAX_STEPS),
            ));
        }
        Ok(Self(steps))
    }

    /// A route of named users without SLAs: the skeleton's inline route, still the simplest
    /// thing to write by hand. Errors name `<field>[i].approver`.
    pub fn of_users<'a>(
        field: &str,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ValidationError> {
        Self::parse(
            field,
            users.into_iter().map(|user| RawStep {
                approver: Some(RawApprover::User(user)),
                sla_hours: None,
            }),
            |i, part| format!("{field}[{i}].{part}"),
        )
    }

    /// Separation of duties: refuses a route naming `user` as a step's approver, pointing at
    /// the first such step as `route[i].approver` (0-based, like the contracts' lists).
    pub fn refuse_approver(&self, user: &UserId) -> Result<(), ValidationError> {
        match self
            .0
            .iter()
            .position(|spec| spec.approver == Approver::User(user.clone()))
        {
            Some(i) => Err(ValidationError::new(
                format!("route[{i}].approver"),
                "must not be the applicant (separation of duties)",
            )),
            None => Ok(()),
        }
    }

    pub fn spec(&self, step: StepNo) -> Option<&StepSpec> {
        self.0.get(step.index()?)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Only a route read back from corrupt history can be empty; parsing refuses it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn steps(&self) -> impl Iterator<Item = (StepNo, &StepSpec)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, spec)| (StepNo::from_index(i), spec))
    }
}
