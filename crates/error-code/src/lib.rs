//! RingiFlow's error codes. Pure (no dependencies) so the domain can name them; the mapping to
//! gRPC, HTTP and GraphQL lives once in `platform::errors`.
#![forbid(unsafe_code)]

use std::fmt;

/// What went wrong, from the caller's point of view. The string form is the wire form: the
/// GraphQL `extensions.code` and the gRPC `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input is malformed or out of range; the details name the field.
    InvalidArgument,
    /// The resource does not exist, or exists in another tenant.
    NotFound,
    /// Another writer got there first (optimistic concurrency); retry after reloading.
    Conflict,
    /// The request is well formed but not allowed in the resource's current state.
    FailedPrecondition,
    /// The caller is authenticated but may not do this.
    PermissionDenied,
    /// No valid credentials.
    Unauthenticated,
    /// A dependency is down or overloaded; safe to retry with backoff.
    Unavailable,
    /// The caller sent more requests than its share (a rate limit); retry after the delay the
    /// answer names.
    ResourceExhausted,
    /// A bug or an unexpected infrastructure failure.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::FailedPrecondition,
        ErrorCode::PermissionDenied,
        ErrorCode::Unauthenticated,
        ErrorCode::Unavailable,
        ErrorCode::ResourceExhausted,
        ErrorCode::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_form() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("TEAPOT"), None);
    }
}
