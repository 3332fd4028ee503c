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

/// The local stack's signing secret. Only for development: deployments set their own.
pub const LOCAL_JWT_SECRET: &str = "ringiflow-local-development-secret-0123456789";

#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// HS256 secret that signs access tokens (at least 32 bytes).
    #[arg(long, env = "RINGIFLOW_JWT_SECRET", default_value = LOCAL_JWT_SECRET, hide_default_value = true, hide_env_values = true)]
    pub jwt_secret: Secret,
    /// Required `iss` claim of access tokens.
    #[arg(long, env = "RINGIFLOW_JWT_ISSUER", default_value = "ringiflow")]
    pub jwt_issuer: String,
}

impl AuthSettings {
    pub fn jwt(&self) -> crate::auth::Jwt {
        if self.jwt_secret.expose() == LOCAL_JWT_SECRET {
            tracing::warn!("using the local development jwt secret; set RINGIFLOW_JWT_SECRET in any shared environment");
        }
        crate::auth::Jwt::new(&self.jwt_secret, &self.jwt_issuer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret: Secret = LOCAL_JWT_SECRET.parse().unwrap();
        assert!(!format!("{secret:?} {secret}").contains("ringiflow"));
        assert!("short".parse::<Secret>().is_err());
    }
}
