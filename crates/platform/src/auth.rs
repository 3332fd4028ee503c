//! Identity from bearer JWTs. The gateway verifies the token and forwards it unchanged;
//! command-svc and query-svc verify it again because internal services call them directly.
//!
//! Tokens are HS256 with the shared secret (the local stack, and RingiFlow's own callers such as
//! the deadline watcher) or, when a public key is configured, RS/PS/ES/EdDSA tokens from an
//! identity provider, which the services can verify but never mint. Either way `exp`, `iat`,
//! `iss`, `aud` and `sub` are required, `nbf` is honoured, clocks may differ by [`LEEWAY_SECONDS`]
//! at most, and no token may live longer than the configured maximum.

use crate::errors::{self, ErrorCode};
use crate::settings::Secret;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// Clock skew tolerated between the token's issuer and us, for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 30;

/// The claims RingiFlow reads. `sub` is the user id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iss: String,
    /// A string or an array of strings (RFC 7519); checked by the verifier, not read here.
    pub aud: serde_json::Value,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
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

/// Why the JWT settings cannot be used; a service refuses to start with any of these.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("RINGIFLOW_JWT_SECRET is the public development secret; set your own, or set RINGIFLOW_ALLOW_DEV_JWT_SECRET=true on a development machine")]
    DevSecret,
    #[error("no token key: set RINGIFLOW_JWT_SECRET and/or RINGIFLOW_JWT_PUBLIC_KEY_FILE (or RINGIFLOW_ALLOW_DEV_JWT_SECRET=true on a development machine)")]
    NoKey,
    #[error("RINGIFLOW_JWT_PUBLIC_KEY_FILE {path}: {problem}")]
    PublicKey { path: String, problem: String },
}

/// Why [`Jwt::issue`] cannot mint a token.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("tokens are signed with RINGIFLOW_JWT_SECRET, which is not set")]
    NoSecret,
    #[error("a token may live at most {max_seconds} s")]
    TooLong { max_seconds: i64 },
}

/// What every accepted token must say, besides being signed by a known key.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    pub issuer: String,
    pub audience: String,
    pub max_lifetime: chrono::Duration,
}

/// A key that verifies tokens of one algorithm family, optionally only those naming its `kid`.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

/// The public keys in a PEM file (RSA, EC or Ed25519 `PUBLIC KEY`) or a JWKS document.
pub fn public_keys(file: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let text = std::str::from_utf8(file).map_err(|_| "not UTF-8 text".to_owned())?;
    if text.trim_start().starts_with('{') {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys = set
            .keys
            .iter()
            .map(|jwk| {
                let family = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                    AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                    AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                    // A shared secret in a file of public keys would let anyone who can read
                    // the file mint tokens.
                    AlgorithmParameters::OctetKey(_) => {
                        return Err(
                            "symmetric keys do not belong in a JWKS of public keys".to_owned()
                        )
                    }
                    _ => return Err("a key of a type this build does not know".to_owned()),
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
                Ok(VerifyingKey {
                    kid: jwk.common.key_id.clone(),
                    family,
                    key,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if keys.is_empty() {
            return Err("the JWKS holds no key".to_owned());
        }
        return Ok(keys);
    }
    let pem = file;
    let parsed = [
        (AlgorithmFamily::Rsa, DecodingKey::from_rsa_pem(pem)),
        (AlgorithmFamily::Ed, DecodingKey::from_ed_pem(pem)),
        (AlgorithmFamily::Ec, DecodingKey::from_ec_pem(pem)),
    ];
    parsed
        .into_iter()
        .find_map(|(family, key)| key.ok().map(|key| (family, key)))
        .map(|(family, key)| {
            vec![VerifyingKey {
                kid: None,
                family,
                key,
            }]
        })
        .ok_or_else(|| "not a PEM public key (RSA, EC or Ed25519) nor a JWKS".to_owned())
}

/// Verifies tokens and, with a secret, issues them (tooling, tests, RingiFlow's own callers).
#[derive(Clone)]
pub struct Jwt {
    keys: Arc<[VerifyingKey]>,
    signing: Option<EncodingKey>,
    policy: Arc<JwtPolicy>,
}

impl Jwt {
    pub fn new(policy: JwtPolicy, secret: Option<&Secret>, public_keys: Vec<VerifyingKey>) -> Self {
        let shared = secret.map(|secret| VerifyingKey {
            kid: None,
            family: AlgorithmFamily::Hmac,
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
        });
        Self {
            keys: shared.into_iter().chain(public_keys).collect(),
            signing: secret.map(|secret| EncodingKey::from_secret(secret.expose().as_bytes())),
            policy: Arc::new(policy),
        }
    }

    /// The local stack's verifier and issuer: the public development secret and the default
    /// policy. For tests and local tooling only; services build theirs from `AuthSettings`.
    pub fn local_development() -> Self {
        use crate::settings::{
            DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER, DEFAULT_JWT_MAX_LIFETIME_SECONDS,
        };
        Self::new(
            JwtPolicy {
                issuer: DEFAULT_JWT_ISSUER.to_owned(),
                audience: DEFAULT_JWT_AUDIENCE.to_owned(),
                max_lifetime: chrono::Duration::seconds(DEFAULT_JWT_MAX_LIFETIME_SECONDS.into()),
            },
            Some(&Secret::new(crate::settings::LOCAL_JWT_SECRET.to_owned())),
            Vec::new(),
        )
    }

    /// Whether [`Self::issue`] can sign tokens.
    pub fn can_issue(&self) -> bool {
        self.signing.is_some()
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_expiring(token).map(|(identity, _)| identity)
    }

    /// [`Self::verify`], and when the token expires (its `exp`, seconds since the epoch): what
    /// a long-lived connection authenticated once needs, to end when its token does.
    pub fn verify_expiring(&self, token: &str) -> Result<(Identity, i64), AuthError> {
        let invalid = |problem: &str| AuthError::Invalid(problem.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        // Each key only for its own family: an RSA public key must never serve as an HMAC
        // secret (the classic algorithm-confusion forgery).
        let candidates = self.keys.iter().filter(|key| {
            key.family == header.alg.family()
                && (key.kid.is_none() || header.kid.is_none() || key.kid == header.kid)
        });
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.policy.issuer]);
        validation.set_audience(&[&self.policy.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Usually one candidate; several only for a JWKS whose tokens name no `kid`.
        let mut outcome = Err(invalid(
            "no key verifies tokens of this algorithm or key id",
        ));
        for key in candidates {
            outcome = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
                .map_err(|error| AuthError::Invalid(refusal(&error)));
            if outcome.is_ok() {
                break;
            }
        }
        let claims = outcome?.claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + LEEWAY_SECONDS as i64 {
            return Err(invalid("iat lies in the future"));
        }
        if claims.exp - claims.iat > self.policy.max_lifetime.num_seconds() {
            return Err(AuthError::Invalid(format!(
                "the token lives longer than the {} s allowed",
                self.policy.max_lifetime.num_seconds()
            )));
        }
        for (claim, value) in [
            ("sub", &claims.sub),
            ("tenant_id", &claims.tenant_id),
            ("name", &claims.name),
        ] {
            if value.trim().is_empty() {
                return Err(AuthError::Invalid(format!("claim {claim} is empty")));
            }
        }
        let expires_at = claims.exp;
        let identity = Identity {
            tenant_id: claims.tenant_id,
            user_id: claims.sub,
            display_name: claims.name,
            roles: claims.roles,
        };
        Ok((identity, expires_at))
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

    /// An HS256 token for `identity`, valid from now for `ttl`.
    pub fn issue(&self, identity: &Identity, ttl: chrono::Duration) -> Result<String, IssueError> {
        let signing = self.signing.as_ref().ok_or(IssueError::NoSecret)?;
        if ttl > self.policy.max_lifetime {
            return Err(IssueError::TooLong {
                max_seconds: self.policy.max_lifetime.num_seconds(),
            });
        }
        let now = chrono::Utc::now();
        let claims = Claims {
            sub: identity.user_id.clone(),
            tenant_id: identity.tenant_id.clone(),
            name: identity.display_name.clone(),
            roles: identity.roles.clone(),
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone().into(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            nbf: None,
        };
        Ok(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, signing)
                .expect("HS256 encoding of plain claims cannot fail"),
        )
    }
}

/// Why a token was refused, in words for the client: never the parser's own text, which
/// names Rust types and positions.
fn refusal(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidAudience => "the token is for another audience".to_owned(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        _ => "malformed token".to_owned(),
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
mod tests;
