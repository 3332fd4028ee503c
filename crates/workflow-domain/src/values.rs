//! Domain newtypes. Wire input becomes these through `parse` at the edge, so the aggregate only
//! ever sees valid values ("parse, don't validate").

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Invalid input, naming the offending field as the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn bounded_text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, ValidationError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars < min {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if chars > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    // Line breaks are fine in prose; other control characters are never intended.
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
                bounded_text(field, raw, $min, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A workflow title, e.g. 「出張申請：大阪」. Trimmed, 1..=200 characters.
    Title, min = 1, max = 200
);
text_newtype!(
    /// Free text describing the request. Trimmed, up to 10,000 characters.
    Description, min = 0, max = 10_000
);
text_newtype!(
    /// Why a step was rejected. Required: a rejection without a reason helps nobody.
    Reason, min = 1, max = 2_000
);
text_newtype!(
    /// An optional remark attached to an approval.
    Comment, min = 0, max = 2_000
);
text_newtype!(
    /// A person's display name as the identity provider reports it.
    DisplayName, min = 1, max = 200
);

fn identifier(field: &str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.len() > 128 {
        return Err(ValidationError::new(field, "must be at most 128 bytes"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(raw.to_owned())
}

/// A user id as issued by the identity provider (the token's `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        identifier(field, raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant every event, row and query is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        identifier(field, raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The aggregate id of a workflow instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(Uuid);

impl WorkflowId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ValidationError::new(field, "must be a UUID"))
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

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
    pub fn next(self) -> StepNo {
        StepNo(self.0 + 1)
    }
}

/// The ordered approvers of a workflow: 1..=20 steps, each naming the user who decides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Route(Vec<UserId>);

impl Route {
    pub const MAX_STEPS: usize = 20;

    /// `field` names the list (e.g. `route`); element errors name `route[i].approverUserId`-style
    /// paths through `element_field`.
    pub fn parse<'a>(
        field: &str,
        approvers: impl IntoIterator<Item = &'a str>,
        element_field: impl Fn(usize) -> String,
    ) -> Result<Self, ValidationError> {
        let approvers = approvers
            .into_iter()
            .enumerate()
            .map(|(i, raw)| UserId::parse(&element_field(i), raw))
            .collect::<Result<Vec<_>, _>>()?;
        if approvers.is_empty() {
            return Err(ValidationError::new(
                field,
                "needs at least one approver step",
            ));
        }
        if approvers.len() > Self::MAX_STEPS {
            return Err(ValidationError::new(
                field,
                format!("has at most {} steps", Self::MAX_STEPS),
            ));
        }
        Ok(Self(approvers))
    }

    pub fn approver(&self, step: StepNo) -> Option<&UserId> {
        // A step number read back from history is not re-validated, so 0 must not underflow.
        let index = step.0.checked_sub(1)? as usize;
        self.0.get(index)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn steps(&self) -> impl Iterator<Item = (StepNo, &UserId)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, user)| (StepNo(i as u32 + 1), user))
    }
}

/// Who issues a command: taken from the verified access token, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub display_name: DisplayName,
}
