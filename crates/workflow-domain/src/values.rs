//! The workflow context's newtypes, built with the kernel's newtype macros (which also hold the
//! values every context shares: users, tenants, roles, display names, dates). Wire input becomes
//! these through `parse` at the edge, so the aggregates only ever see valid values.

use es_kernel::{text_newtype, uuid_newtype, ValidationError};
use serde::{Deserialize, Serialize};

text_newtype!(
    /// A workflow title, e.g. 「出張申請：大阪」. Trimmed, 1..=200 characters.
    Title, min = 1, max = 200
);
text_newtype!(
    /// Free text describing the request. Trimmed, up to 10,000 characters.
    Description, min = 0, max = 10_000
);
text_newtype!(
    /// Why a step was rejected or sent back. Required: a refusal without a reason helps nobody.
    Reason, min = 1, max = 2_000
);
text_newtype!(
    /// An optional remark attached to an approval or a delegation.
    Comment, min = 0, max = 2_000
);
text_newtype!(
    /// The name of a workflow definition, e.g. 「出張申請」. Trimmed, 1..=200 characters.
    DefinitionName, min = 1, max = 200
);
text_newtype!(
    /// A remark in a workflow's discussion. Trimmed, 1..=4,000 characters.
    CommentBody, min = 1, max = 4_000
);

uuid_newtype!(
    /// The aggregate id of a workflow instance.
    WorkflowId
);
uuid_newtype!(
    /// The aggregate id of a workflow definition.
    DefinitionId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "LOW",
            Priority::Medium => "MEDIUM",
            Priority::High => "HIGH",
            Priority::Urgent => "URGENT",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| p.as_str() == raw)
    }
}

/// 1-based position of a step in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepNo(u32);

impl StepNo {
    pub const FIRST: StepNo = StepNo(1);

    pub fn parse(field: &str, raw: u32) -> Result<Self, ValidationError> {
        if raw == 0 {
            return Err(ValidationError::new(field, "steps are numbered from 1"));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Saturates: a step number read back from history is not re-validated, and no route is
    /// anywhere near `u32::MAX` steps long, so the saturated number simply names no step.
    pub fn next(self) -> StepNo {
        StepNo(self.0.saturating_add(1))
    }

    /// Index into a route's steps; `None` for 0, which history could still contain.
    pub(crate) fn index(self) -> Option<usize> {
        self.0.checked_sub(1).map(|i| i as usize)
    }

    pub(crate) fn from_index(index: usize) -> StepNo {
        // Routes hold at most `Route::MAX_STEPS` steps, far below `u32::MAX`.
        StepNo(u32::try_from(index + 1).unwrap_or(u32::MAX))
    }
}
