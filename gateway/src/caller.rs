//! Who is calling, as the HTTP request tells it, and how that identity travels downstream.

use http::{HeaderMap, HeaderValue};
use platform::auth::{AuthError, Jwt};
use platform::errors::ErrorCode;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::Status;
use uuid::Uuid;
use workflow_domain::Role;

/// The header (HTTP) and metadata key (gRPC) that carries the correlation id.
pub(crate) const CORRELATION_ID: &str = "x-correlation-id";

/// What one HTTP request says about its caller, before anything has been verified.
#[derive(Clone)]
pub(crate) struct Incoming {
    authorization: Option<HeaderValue>,
    correlation_id: Uuid,
}

impl Incoming {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            authorization: headers.get(http::header::AUTHORIZATION).cloned(),
            correlation_id: correlation_id(headers),
        }
    }

    pub(crate) fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// Verifies the bearer token. Only a verified caller can build downstream requests, so no
    /// backend is ever called on behalf of an unauthenticated request.
    ///
    /// A token carrying the `system` role is refused (PERMISSION_DENIED: it is genuine, but not
    /// for this door). Only internal callers act as `system`, such as the deadline watcher,
    /// which calls command-svc directly with its own credential; through the public edge the
    /// role would let whoever holds such a token escalate any tenant's steps.
    pub(crate) fn authenticate(&self, jwt: &Jwt) -> Result<Caller, Status> {
        let header = self.authorization.as_ref().ok_or(AuthError::Missing)?;
        let not_ascii = || AuthError::Invalid("authorization is not visible ascii".into());
        let header = header.to_str().map_err(|_| not_ascii())?;
        let identity = jwt.verify_header(Some(header))?;
        if identity.roles.iter().any(|role| role == Role::SYSTEM) {
            return Err(platform::errors::status(
                ErrorCode::PermissionDenied,
                "tokens with the system role are not accepted at the gateway",
                Default::default(),
            ));
        }
        Ok(Caller {
            authorization: MetadataValue::try_from(header).map_err(|_| not_ascii())?,
            correlation_id: self.correlation_id,
        })
    }
}

/// The caller's id when it is a UUID, so one id follows a request chain through every service;
/// anything else would be unbounded, caller-controlled text in every log line, so it is replaced.
fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get(CORRELATION_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Uuid::parse_str(value.trim()).ok())
        .filter(|id| !id.is_nil())
        .unwrap_or_else(Uuid::new_v4)
}

/// A caller whose token the gateway has verified.
pub(crate) struct Caller {
    authorization: MetadataValue<Ascii>,
    correlation_id: Uuid,
}

impl Caller {
    /// A downstream request carrying the caller's `authorization` unchanged (the backends verify
    /// it again, because internal services call them directly), the correlation id and the
    /// trace context.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.authorization.clone());
        let correlation_id = MetadataValue::try_from(self.correlation_id.to_string())
            .expect("a hyphenated uuid is ascii");
        metadata.insert(CORRELATION_ID, correlation_id);
        // The current span (the resolver's) continues in the backend when traces are exported.
        if let Some(traceparent) = platform::telemetry::traceparent(&tracing::Span::current()) {
            let traceparent = MetadataValue::try_from(traceparent).expect("a traceparent is ascii");
            metadata.insert("traceparent", traceparent);
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::auth::Identity;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_uuid_correlation_id_is_kept() {
        let id = Uuid::new_v4();
        assert_eq!(
            correlation_id(&headers(&[(CORRELATION_ID, &id.to_string())])),
            id
        );
        assert_eq!(
            correlation_id(&headers(&[(CORRELATION_ID, &id.simple().to_string())])),
            id
        );
    }

    #[test]
    fn anything_else_gets_a_fresh_v4_correlation_id() {
        for value in [
            None,
            Some("not-a-uuid"),
            Some("00000000-0000-0000-0000-000000000000"),
            Some(""),
        ] {
            let headers = headers(value.map(|v| (CORRELATION_ID, v)).as_slice());
            let id = correlation_id(&headers);
            assert_eq!(id.get_version_num(), 4, "{value:?}");
            assert_ne!(correlation_id(&headers), id, "fresh per request");
        }
    }

    #[test]
    fn verified_callers_forward_the_header_unchanged_with_the_correlation_id() {
        let jwt = Jwt::local_development();
        let identity = Identity {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            display_name: "Alice".into(),
            roles: vec![],
        };
        let authorization = format!(
            "Bearer {}",
            jwt.issue(&identity, chrono::Duration::hours(1)).unwrap()
        );
        let id = Uuid::new_v4();
        let incoming = Incoming::from_headers(&headers(&[
            ("authorization", &authorization),
            (CORRELATION_ID, &id.to_string()),
        ]));
        let request = incoming.authenticate(&jwt).unwrap().request(());
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            authorization.as_str()
        );
        assert_eq!(
            request.metadata().get(CORRELATION_ID).unwrap(),
            id.to_string().as_str()
        );
    }

    #[test]
    fn tokens_with_the_system_role_are_refused() {
        let jwt = Jwt::local_development();
        for roles in [vec!["system"], vec!["admin", "system"]] {
            let identity = Identity {
                tenant_id: "acme".into(),
                user_id: "deadline-watcher".into(),
                display_name: "Deadline watcher".into(),
                roles: roles.iter().map(|role| role.to_string()).collect(),
            };
            let authorization = format!(
                "Bearer {}",
                jwt.issue(&identity, chrono::Duration::hours(1)).unwrap()
            );
            let status = Incoming::from_headers(&headers(&[("authorization", &authorization)]))
                .authenticate(&jwt)
                .err()
                .unwrap();
            assert_eq!(
                platform::errors::code_of(&status),
                ErrorCode::PermissionDenied,
                "{roles:?}"
            );
        }
    }

    #[test]
    fn missing_or_bad_tokens_are_unauthenticated() {
        let jwt = Jwt::local_development();
        for pairs in [
            &[][..],
            &[("authorization", "Bearer nope")][..],
            &[("authorization", "Basic x")][..],
        ] {
            let status = Incoming::from_headers(&headers(pairs))
                .authenticate(&jwt)
                .err()
                .unwrap();
            assert_eq!(
                platform::errors::code_of(&status),
                platform::errors::ErrorCode::Unauthenticated
            );
        }
    }
}
