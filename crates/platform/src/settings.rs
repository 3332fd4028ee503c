//! Settings shared by every binary. Each binary's clap `Parser` flattens these; every flag also
//! reads a `RINGIFLOW_*` environment variable, and the defaults match the local stack.

use std::fmt;

/// A value that must never reach a log: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // HS256 with a short key is guessable offline; refuse it rather than run insecurely.
        if s.len() < 32 {
            return Err("must be at least 32 bytes".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// The local stack's signing secret. It is published in this file, so a service accepts it
/// only when told it runs for development ([`AuthSettings::allow_dev_jwt_secret`]).
pub const LOCAL_JWT_SECRET: &str = "ringiflow-local-development-secret-0123456789";

pub const DEFAULT_JWT_ISSUER: &str = "ringiflow";
pub const DEFAULT_JWT_AUDIENCE: &str = "ringiflow";
pub const DEFAULT_JWT_MAX_LIFETIME_SECONDS: u32 = 12 * 3600;

#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// HS256 secret that signs and verifies access tokens (at least 32 bytes). Required unless
    /// a public key verifies the tokens instead (or the development secret is allowed).
    #[arg(long, env = "RINGIFLOW_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Accept the built-in development secret, which is public: only for the local stack and
    /// tests. Without it a service refuses to start with that secret.
    #[arg(long, env = "RINGIFLOW_ALLOW_DEV_JWT_SECRET", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_dev_jwt_secret: bool,
    /// Public key(s) that verify RS256/PS256/ES256/EdDSA tokens from an identity provider: a PEM
    /// public key (RSA, EC P-256/P-384 or Ed25519) or a JWKS file (`{"keys": [...]}`, matched on
    /// `kid`). Read at start.
    #[arg(long, env = "RINGIFLOW_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// Required `iss` claim of access tokens.
    #[arg(long, env = "RINGIFLOW_JWT_ISSUER", default_value = DEFAULT_JWT_ISSUER)]
    pub jwt_issuer: String,
    /// Required `aud` claim of access tokens.
    #[arg(long, env = "RINGIFLOW_JWT_AUDIENCE", default_value = DEFAULT_JWT_AUDIENCE)]
    pub jwt_audience: String,
    /// Longest lifetime (`exp` - `iat`) of an accepted token, in seconds.
    #[arg(long, env = "RINGIFLOW_JWT_MAX_LIFETIME_SECONDS", default_value_t = DEFAULT_JWT_MAX_LIFETIME_SECONDS,
          value_parser = clap::value_parser!(u32).range(60..=7 * 24 * 3600))]
    pub jwt_max_lifetime_seconds: u32,
}

impl AuthSettings {
    /// The verifier (and, with a secret, issuer) these settings describe, or why they are
    /// unsafe or unusable.
    pub fn jwt(&self) -> Result<crate::auth::Jwt, crate::auth::JwtConfigError> {
        use crate::auth::JwtConfigError;
        let secret = match (&self.jwt_secret, self.allow_dev_jwt_secret) {
            (Some(secret), false) if secret.expose() == LOCAL_JWT_SECRET => {
                return Err(JwtConfigError::DevSecret)
            }
            (Some(secret), _) => Some(secret.clone()),
            (None, true) => {
                tracing::warn!(
                    "using the public development jwt secret (RINGIFLOW_ALLOW_DEV_JWT_SECRET)"
                );
                Some(Secret::new(LOCAL_JWT_SECRET.to_owned()))
            }
            (None, false) if self.jwt_public_key_file.is_none() => {
                return Err(JwtConfigError::NoKey)
            }
            (None, false) => None,
        };
        let public_keys = match &self.jwt_public_key_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|error| JwtConfigError::PublicKey {
                    path: path.display().to_string(),
                    problem: error.to_string(),
                })?;
                crate::auth::public_keys(&bytes).map_err(|problem| JwtConfigError::PublicKey {
                    path: path.display().to_string(),
                    problem,
                })?
            }
            None => Vec::new(),
        };
        Ok(crate::auth::Jwt::new(
            crate::auth::JwtPolicy {
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                max_lifetime: chrono::Duration::seconds(self.jwt_max_lifetime_seconds.into()),
            },
            secret.as_ref(),
            public_keys,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// How a gRPC server treats the calls it serves.
#[derive(Debug, Clone, clap::Args)]
pub struct GrpcServerSettings {
    /// Milliseconds a call may run before the server answers DEADLINE_EXCEEDED (SPEC §6: about
    /// 10 s for internal calls). A caller's shorter `grpc-timeout` wins; a stream's answer is
    /// bounded only until it starts.
    #[arg(long, env = "RINGIFLOW_GRPC_SERVER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub grpc_server_timeout_ms: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TelemetrySettings {
    /// Log line format. Verbosity comes from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "RINGIFLOW_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

/// Where a service without an HTTP port of its own answers Prometheus scrapes. Traces are
/// configured by the standard `OTEL_*` variables instead (see `telemetry`).
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsSettings {
    /// Listen address of `GET /metrics` (Prometheus text), e.g. `0.0.0.0:9464`; port 0 picks
    /// a free one (logged). Unset: no listener, as several services on one host (the local
    /// stack, tests) would otherwise fight over one port.
    #[arg(long, env = "RINGIFLOW_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl MetricsSettings {
    /// The bound listener, if one is configured.
    pub async fn listener(&self) -> anyhow::Result<Option<crate::metrics::MetricsListener>> {
        match self.metrics_addr {
            Some(address) => Ok(Some(crate::metrics::MetricsListener::bind(address).await?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: Option<&str>, allow_dev: bool) -> AuthSettings {
        AuthSettings {
            jwt_secret: secret.map(|s| Secret::new(s.to_owned())),
            allow_dev_jwt_secret: allow_dev,
            jwt_public_key_file: None,
            jwt_issuer: "ringiflow".into(),
            jwt_audience: "ringiflow".into(),
            jwt_max_lifetime_seconds: 3600,
        }
    }

    #[test]
    fn the_public_development_secret_needs_the_dev_flag() {
        use crate::auth::JwtConfigError;
        assert!(matches!(
            auth(Some(LOCAL_JWT_SECRET), false).jwt(),
            Err(JwtConfigError::DevSecret)
        ));
        assert!(matches!(
            auth(None, false).jwt(),
            Err(JwtConfigError::NoKey)
        ));
        let dev = auth(None, true).jwt().unwrap();
        let explicit_dev = auth(Some(LOCAL_JWT_SECRET), true).jwt().unwrap();
        let own = auth(Some("an-operator-chosen-secret-of-32-bytes"), false)
            .jwt()
            .unwrap();
        let alice = crate::auth::Identity {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            display_name: "Alice".into(),
            roles: vec![],
        };
        let dev_token = dev.issue(&alice, chrono::Duration::minutes(5)).unwrap();
        assert!(explicit_dev.verify(&dev_token).is_ok());
        assert!(own.verify(&dev_token).is_err(), "the dev secret's tokens");
        let mut with_missing_key = auth(None, false);
        with_missing_key.jwt_public_key_file = Some("/nonexistent/key.pem".into());
        assert!(matches!(
            with_missing_key.jwt(),
            Err(JwtConfigError::PublicKey { .. })
        ));
    }

    #[test]
    fn secrets_never_print() {
        let secret: Secret = LOCAL_JWT_SECRET.parse().unwrap();
        assert!(!format!("{secret:?} {secret}").contains("ringiflow"));
        assert!("short".parse::<Secret>().is_err());
    }
}
