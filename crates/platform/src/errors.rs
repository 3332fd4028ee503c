//! The single mapping from [`ErrorCode`] to gRPC, HTTP and GraphQL. Services build statuses with
//! [`status`]; the gateway reads them back with [`code_of`]. Nothing else maps codes.

pub use error_code::ErrorCode;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` on every status RingiFlow produces.
pub const ERROR_DOMAIN: &str = "ringiflow";

/// One row per code: gRPC code, HTTP status. The GraphQL `extensions.code` is `code.as_str()`.
const TABLE: [(ErrorCode, Code, u16); 9] = [
    (ErrorCode::InvalidArgument, Code::InvalidArgument, 400),
    (ErrorCode::NotFound, Code::NotFound, 404),
    (ErrorCode::Conflict, Code::Aborted, 409),
    (ErrorCode::FailedPrecondition, Code::FailedPrecondition, 422),
    (ErrorCode::PermissionDenied, Code::PermissionDenied, 403),
    (ErrorCode::Unauthenticated, Code::Unauthenticated, 401),
    (ErrorCode::Unavailable, Code::Unavailable, 503),
    (ErrorCode::ResourceExhausted, Code::ResourceExhausted, 429),
    (ErrorCode::Internal, Code::Internal, 500),
];

fn row(code: ErrorCode) -> (ErrorCode, Code, u16) {
    *TABLE
        .iter()
        .find(|(c, ..)| *c == code)
        .expect("every code has a row")
}

pub fn grpc_code(code: ErrorCode) -> Code {
    row(code).1
}

pub fn http_status(code: ErrorCode) -> http::StatusCode {
    http::StatusCode::from_u16(row(code).2).expect("table holds valid statuses")
}

/// A status carrying `ErrorInfo { reason: code, domain: "ringiflow", metadata }`.
pub fn status(
    code: ErrorCode,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
) -> Status {
    let details = ErrorDetails::with_error_info(code.as_str(), ERROR_DOMAIN, metadata);
    Status::with_error_details(grpc_code(code), message, details)
}

/// INVALID_ARGUMENT naming the offending field (google.rpc.BadRequest) as well as the code.
pub fn invalid_argument(field: &str, message: &str) -> Status {
    let mut details = ErrorDetails::with_bad_request_violation(field, message);
    details.set_error_info(
        ErrorCode::InvalidArgument.as_str(),
        ERROR_DOMAIN,
        HashMap::from([("field".to_owned(), field.to_owned())]),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {message}"),
        details,
    )
}

/// A lost optimistic-concurrency race, telling the caller the version it lost to.
pub fn conflict(message: impl Into<String>, current_version: i64) -> Status {
    status(
        ErrorCode::Conflict,
        message,
        HashMap::from([("current_version".to_owned(), current_version.to_string())]),
    )
}

/// An unexpected failure. The cause is logged here and never sent to the caller.
pub fn internal(error: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %error, "internal error");
    status(ErrorCode::Internal, "internal error", HashMap::new())
}

/// What a status means to RingiFlow clients: our `ErrorInfo.reason` when present (so CONFLICT
/// and FAILED_PRECONDITION stay distinct), otherwise the closest code for the gRPC code.
pub fn code_of(status: &Status) -> ErrorCode {
    if let Some(code) = ringiflow_code(status) {
        return code;
    }
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
        Code::FailedPrecondition => ErrorCode::FailedPrecondition,
        Code::PermissionDenied => ErrorCode::PermissionDenied,
        Code::Unauthenticated => ErrorCode::Unauthenticated,
        // A foreign RESOURCE_EXHAUSTED comes from a transport or proxy limit of a dependency,
        // not from a rate limit of the caller's: to the caller, that dependency is overloaded.
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            ErrorCode::Unavailable
        }
        _ => ErrorCode::Internal,
    }
}

/// Whether a RingiFlow service wrote this status (our `ErrorInfo`), so its message was written
/// for the caller. Any other status comes from a transport or a library, whose message can
/// describe internals (addresses, byte counts) and must not reach a client.
pub fn is_ringiflow(status: &Status) -> bool {
    ringiflow_code(status).is_some()
}

/// The code of a status carrying our `ErrorInfo`.
fn ringiflow_code(status: &Status) -> Option<ErrorCode> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
        .and_then(|info| ErrorCode::parse(&info.reason))
}

/// The error-info metadata of a status (e.g. `current_version`, `field`), empty when absent.
pub fn metadata_of(status: &Status) -> HashMap<String, String> {
    status
        .get_details_error_info()
        .map(|info| info.metadata)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_round_trip_through_grpc() {
        for code in ErrorCode::ALL {
            let status = status(code, "x", HashMap::new());
            assert_eq!(code_of(&status), code);
            assert_eq!(status.code(), grpc_code(code));
        }
    }

    #[test]
    fn conflict_is_aborted_with_the_current_version() {
        let status = conflict("lost the race", 7);
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(code_of(&status), ErrorCode::Conflict);
        assert_eq!(metadata_of(&status)["current_version"], "7");
        assert_eq!(http_status(ErrorCode::Conflict), http::StatusCode::CONFLICT);
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = invalid_argument("title", "must not be empty");
        assert_eq!(code_of(&status), ErrorCode::InvalidArgument);
        assert_eq!(metadata_of(&status)["field"], "title");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "title");
    }

    #[test]
    fn foreign_statuses_map_by_grpc_code() {
        assert_eq!(
            code_of(&Status::unavailable("down")),
            ErrorCode::Unavailable
        );
        assert_eq!(code_of(&Status::unknown("?")), ErrorCode::Internal);
        assert!(!is_ringiflow(&Status::out_of_range(
            "decoded message length too large"
        )));
        assert!(is_ringiflow(&invalid_argument(
            "title",
            "must not be empty"
        )));
    }

    #[test]
    fn rate_limits_are_resource_exhausted_and_http_429() {
        let status = status(ErrorCode::ResourceExhausted, "slow down", HashMap::new());
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(code_of(&status), ErrorCode::ResourceExhausted);
        assert_eq!(
            http_status(ErrorCode::ResourceExhausted),
            http::StatusCode::TOO_MANY_REQUESTS
        );
    }
}
