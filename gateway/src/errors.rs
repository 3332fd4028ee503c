//! Every error a client sees carries `extensions.code`, from one mapping (`platform::errors`):
//!
//! * A `tonic::Status` (a backend's answer, or one of the gateway's own refusals such as a
//!   missing token) becomes a GraphQL error here, in [`graphql_error`].
//! * Any other error comes from async-graphql rejecting the request itself: a parse error, a
//!   validation error (an unknown field, a variable of the wrong type, a limit of
//!   [`crate::schema`]) or an argument it cannot coerce (a malformed `dueDate`).
//!   [`code_request_errors`] marks those INVALID_ARGUMENT.
//! * A request refused before GraphQL runs (a body that is no GraphQL request, a rate limit) is
//!   answered by [`http_error`] in the same shape, with the HTTP status of its code.

use async_graphql::{ErrorExtensionValues, ErrorExtensions as _, ServerError};
use axum::response::{IntoResponse, Response};
use platform::errors::{code_of, http_status, is_ringiflow, metadata_of, ErrorCode};
use tonic::Status;

pub(crate) fn graphql_error(status: Status) -> async_graphql::Error {
    let code = code_of(&status);
    // Only RingiFlow's services write messages for clients; a transport's or library's message
    // (an address, a byte count) is logged and replaced.
    let ours = is_ringiflow(&status);
    if !ours || matches!(code, ErrorCode::Unavailable | ErrorCode::Internal) {
        tracing::warn!(
            code = code.as_str(),
            grpc_code = ?status.code(),
            error = status.message(),
            "request failed"
        );
    }
    let message = if ours {
        status.message()
    } else {
        generic_message(code)
    };
    let metadata = metadata_of(&status);
    async_graphql::Error::new(message).extend_with(|_, extensions| {
        for (key, value) in metadata {
            extensions.set(camel_case(&key), value);
        }
        // Last, so no metadata entry can overwrite the code.
        extensions.set("code", code.as_str());
    })
}

/// What a client is told about a failure whose own message is not for it.
fn generic_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "the request or its answer is out of range",
        ErrorCode::NotFound => "not found",
        ErrorCode::Conflict => "conflict; reload and retry",
        ErrorCode::FailedPrecondition => "not possible in the current state",
        ErrorCode::PermissionDenied => "permission denied",
        ErrorCode::Unauthenticated => "not authenticated",
        ErrorCode::Unavailable => "a service is unavailable; retry later",
        ErrorCode::ResourceExhausted => "too many requests; retry later",
        ErrorCode::Internal => "internal error",
    }
}

/// Marks an error of the request itself as INVALID_ARGUMENT.
pub(crate) fn request_error(mut error: ServerError) -> ServerError {
    mark_request_error(&mut error);
    error
}

fn mark_request_error(error: &mut ServerError) {
    error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", ErrorCode::InvalidArgument.as_str());
}

/// Gives the errors async-graphql raised itself their code; see the module documentation for
/// why every error without one is the request's.
pub(crate) fn code_request_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|extensions| extensions.get("code").is_some());
        if !coded {
            mark_request_error(error);
        }
    }
}

/// A GraphQL response holding one error, `message` with `code`, under the HTTP status of
/// `code`: for requests refused before GraphQL runs.
pub(crate) fn http_error(code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    (http_status(code), axum::Json(body)).into_response()
}

/// GraphQL clients expect camelCase keys; error-info metadata uses snake_case.
fn camel_case(snake: &str) -> String {
    let mut words = snake.split('_').filter(|word| !word.is_empty());
    let mut camel = words.next().unwrap_or_default().to_owned();
    for word in words {
        let mut chars = word.chars();
        camel.extend(chars.next().map(|first| first.to_ascii_uppercase()));
        camel.push_str(chars.as_str());
    }
    camel
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extensions(status: Status) -> serde_json::Value {
        let error = graphql_error(status).into_server_error(async_graphql::Pos::default());
        serde_json::to_value(error.extensions.unwrap()).unwrap()
    }

    #[test]
    fn conflicts_carry_the_code_and_the_current_version() {
        let status = platform::errors::conflict("lost the race", 7);
        let error = graphql_error(status.clone());
        assert_eq!(error.message, "lost the race");
        assert_eq!(
            extensions(status),
            serde_json::json!({ "code": "CONFLICT", "currentVersion": "7" })
        );
    }

    #[test]
    fn invalid_arguments_name_the_field() {
        let status = platform::errors::invalid_argument("title", "must not be empty");
        assert_eq!(
            extensions(status),
            serde_json::json!({ "code": "INVALID_ARGUMENT", "field": "title" })
        );
    }

    #[test]
    fn every_code_reaches_extensions_and_metadata_never_overrides_it() {
        for code in ErrorCode::ALL {
            let metadata = HashMap::from([("code".to_owned(), "TEAPOT".to_owned())]);
            let status = platform::errors::status(code, "x", metadata);
            assert_eq!(extensions(status)["code"], code.as_str());
        }
    }

    #[test]
    fn foreign_statuses_and_connection_failures_map_by_grpc_code() {
        assert_eq!(
            extensions(Status::unavailable("connection refused")),
            serde_json::json!({ "code": "UNAVAILABLE" })
        );
        assert_eq!(extensions(Status::not_found("gone"))["code"], "NOT_FOUND");
        assert_eq!(extensions(Status::unknown("?"))["code"], "INTERNAL");
    }

    #[test]
    fn messages_of_foreign_statuses_never_reach_the_client() {
        let too_large = Status::out_of_range(
            "decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes",
        );
        let refused = Status::unavailable(
            "tcp connect error: 10.0.3.7:50052: Connection refused (os error 111)",
        );
        for status in [
            too_large,
            refused,
            Status::unknown("src/service.rs:42: oops"),
        ] {
            let message = graphql_error(status).message;
            assert!(
                !message.chars().any(|c| c.is_ascii_digit()) && !message.contains(".rs"),
                "{message}"
            );
        }
        let ours = platform::errors::invalid_argument("title", "must not be empty");
        assert_eq!(graphql_error(ours).message, "title: must not be empty");
    }

    #[tokio::test]
    async fn refusals_before_graphql_are_graphql_errors_with_the_status_of_their_code() {
        let response = http_error(ErrorCode::ResourceExhausted, "slow down");
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "errors": [{ "message": "slow down",
                "extensions": { "code": "RESOURCE_EXHAUSTED" } }] })
        );
    }

    #[test]
    fn snake_case_keys_become_camel_case() {
        assert_eq!(camel_case("current_version"), "currentVersion");
        assert_eq!(camel_case("field"), "field");
        assert_eq!(camel_case("a__b_"), "aB");
        assert_eq!(camel_case(""), "");
    }
}
