//! Identity from HS256 bearer tokens. The gateway verifies the token and forwards it unchanged;
//! command-svc and query-svc verify it again because internal services call them directly.

use crate::errors::{self, ErrorCode};
use crate::settings::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// The claims RingiFlow reads. `sub` is the user id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
}

/// The verified caller, available to every handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant_id: String,
    pub user_id: String,
    pub display_name: String,
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token: {0}")]
    Invalid(String),
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        errors::status(
            ErrorCode::Unauthenticated,
            error.to_string(),
            HashMap::new(),
        )
    }
}

/// Verifies and (for tooling and tests) issues tokens with one shared secret.
#[derive(Clone)]
pub struct Jwt {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: String,
}

impl Jwt {
    pub fn new(secret: &Secret, issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        Self {
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            issuer: issuer.to_owned(),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        for (claim, value) in [
            ("sub", &claims.sub),
            ("tenant_id", &claims.tenant_id),
            ("name", &claims.name),
        ] {
            if value.trim().is_empty() {
                return Err(AuthError::Invalid(format!("claim {claim} is empty")));
            }
        }
        Ok(Identity {
            tenant_id: claims.tenant_id,
            user_id: claims.sub,
            display_name: claims.name,
            roles: claims.roles,
        })
    }

    /// Verifies an `authorization` header value of the form `Bearer <token>`.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Invalid("authorization is not a bearer token".into()))?;
        self.verify(token.trim())
    }

    pub fn issue(&self, identity: &Identity, ttl: chrono::Duration) -> String {
        let now = chrono::Utc::now();
        let claims = Claims {
            sub: identity.user_id.clone(),
            tenant_id: identity.tenant_id.clone(),
            name: identity.display_name.clone(),
            roles: identity.roles.clone(),
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }
}

/// tonic interceptor: rejects calls without a valid token, else puts the [`Identity`] into the
/// request extensions for the handler.
#[derive(Clone)]
pub struct GrpcAuth(pub Arc<Jwt>);

impl tonic::service::Interceptor for GrpcAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let identity = self.0.verify_header(header)?;
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// The identity [`GrpcAuth`] stored; a missing one means the service was wired without it.
pub fn identity<T>(request: &Request<T>) -> Result<Identity, Status> {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Status::from(AuthError::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(secret: &str) -> Jwt {
        Jwt::new(&Secret::new(secret.to_owned()), "ringiflow")
    }

    fn alice() -> Identity {
        Identity {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            display_name: "アリス".into(),
            roles: vec!["admin".into()],
        }
    }

    #[test]
    fn issued_tokens_verify_to_the_same_identity() {
        let jwt = jwt("a-test-secret-that-is-long-enough");
        let token = jwt.issue(&alice(), chrono::Duration::hours(1));
        assert_eq!(
            jwt.verify_header(Some(&format!("Bearer {token}"))).unwrap(),
            alice()
        );
    }

    #[test]
    fn bad_tokens_are_rejected() {
        let jwt_a = jwt("a-test-secret-that-is-long-enough");
        let other = jwt("another-secret-that-is-long-enough");
        let token = other.issue(&alice(), chrono::Duration::hours(1));
        assert!(
            matches!(jwt_a.verify(&token), Err(AuthError::Invalid(_))),
            "wrong secret"
        );
        let expired = jwt_a.issue(&alice(), chrono::Duration::hours(-2));
        assert!(
            matches!(jwt_a.verify(&expired), Err(AuthError::Invalid(_))),
            "expired"
        );
        assert!(matches!(jwt_a.verify_header(None), Err(AuthError::Missing)));
        assert!(matches!(
            jwt_a.verify_header(Some("Basic abc")),
            Err(AuthError::Invalid(_))
        ));
        let status = Status::from(AuthError::Missing);
        assert_eq!(errors::code_of(&status), ErrorCode::Unauthenticated);
    }
}
