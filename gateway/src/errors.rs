//! The one place a `tonic::Status` becomes a GraphQL error. Backend failures and the gateway's
//! own refusals (missing token, negative step) are all statuses, so clients see a single shape:
//! `extensions.code` from `platform::errors` plus the status's error-info metadata.

use async_graphql::ErrorExtensions as _;
use platform::errors::{code_of, metadata_of, ErrorCode};
use tonic::Status;

pub(crate) fn graphql_error(status: Status) -> async_graphql::Error {
    let code = code_of(&status);
    if matches!(code, ErrorCode::Unavailable | ErrorCode::Internal) {
        tracing::warn!(
            code = code.as_str(),
            error = status.message(),
            "request failed"
        );
    }
    let metadata = metadata_of(&status);
    async_graphql::Error::new(status.message()).extend_with(|_, extensions| {
        for (key, value) in metadata {
            extensions.set(camel_case(&key), value);
        }
        // Last, so no metadata entry can overwrite the code.
        extensions.set("code", code.as_str());
    })
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
    fn snake_case_keys_become_camel_case() {
        assert_eq!(camel_case("current_version"), "currentVersion");
        assert_eq!(camel_case("field"), "field");
        assert_eq!(camel_case("a__b_"), "aB");
        assert_eq!(camel_case(""), "");
    }
}
