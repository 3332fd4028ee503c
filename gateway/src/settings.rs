//! Command-line and environment settings of the `gateway` binary.

use clap::{Args, Parser, Subcommand};
use platform::auth::Identity;
use platform::resilience::ClientSettings;
use platform::settings::{AuthSettings, MetricsSettings, TelemetrySettings};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "gateway",
    version,
    about = "RingiFlow GraphQL gateway",
    // A call to a backend must end before the edge gives up on the request (`request_timeout_ms`),
    // so a slow backend surfaces as a GraphQL UNAVAILABLE the client can act on rather than a
    // bare 504; the other internal callers keep the design's 10 s.
    mut_arg("grpc_call_timeout_ms", |arg| arg.default_value("2500")),
)]
pub struct Settings {
    /// Address the HTTP server binds; port 0 picks a free port.
    #[arg(long, env = "RINGIFLOW_LISTEN_ADDR", default_value = "0.0.0.0:4000")]
    pub listen_addr: SocketAddr,
    /// Serve GraphiQL, the in-browser GraphQL IDE, on GET /graphql (its assets are built into
    /// the gateway). Off where nobody should explore the API from a browser.
    #[arg(long, env = "RINGIFLOW_GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,
    /// gRPC endpoint of command-svc.
    #[arg(
        long,
        env = "RINGIFLOW_COMMAND_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub command_url: String,
    /// gRPC endpoint of query-svc.
    #[arg(
        long,
        env = "RINGIFLOW_QUERY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub query_url: String,
    /// Whether clients may introspect the schema (GraphiQL and code generators need it). Off
    /// where the schema should not be advertised; queries work the same either way.
    #[arg(
        long,
        env = "RINGIFLOW_GRAPHQL_INTROSPECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub graphql_introspection: bool,
    /// Milliseconds a request may take at the edge before it is answered 504 (SPEC §6: about
    /// 3 s). Must exceed --grpc-call-timeout-ms.
    #[arg(long, env = "RINGIFLOW_REQUEST_TIMEOUT_MS", default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub request_timeout_ms: u64,
    /// How the gateway calls command-svc and query-svc.
    #[command(flatten)]
    pub clients: ClientSettings,
    #[command(flatten)]
    pub rate_limits: RateLimitSettings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
    /// `/metrics` is always on the HTTP port; this adds a listener of its own, where every
    /// service of a deployment is scraped alike (the Helm chart's `metrics.port`).
    #[command(flatten)]
    pub metrics: MetricsSettings,
    /// Without a subcommand the gateway serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Settings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Refuses timeouts that let the edge cut off a call to a backend before it ends.
    pub fn check(&self) -> anyhow::Result<()> {
        let (edge, call) = (self.request_timeout_ms, self.clients.grpc_call_timeout_ms);
        anyhow::ensure!(
            call < edge,
            "--grpc-call-timeout-ms ({call}) must be less than --request-timeout-ms ({edge}): \
             a backend call, retries included, has to end before the edge answers 504"
        );
        Ok(())
    }
}

/// How many requests one caller may send (see `rate_limit`). Requests beyond either limit are
/// answered with HTTP 429 and RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, Args)]
pub struct RateLimitSettings {
    /// Requests per second one user (a token's tenant and `sub`) may send on average. Requests
    /// without a valid token count per client address.
    #[arg(long, env = "RINGIFLOW_RATE_LIMIT_PER_SECOND", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_second: u32,
    /// Requests one user may send at once, after being idle.
    #[arg(long, env = "RINGIFLOW_RATE_LIMIT_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Requests per second all users of one tenant together may send on average: ten users at
    /// their full rate, so one tenant cannot take every other tenant's share of the backends.
    #[arg(long, env = "RINGIFLOW_TENANT_RATE_LIMIT_PER_SECOND", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_rate_limit_per_second: u32,
    /// Requests all users of one tenant together may send at once.
    #[arg(long, env = "RINGIFLOW_TENANT_RATE_LIMIT_BURST", default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_rate_limit_burst: u32,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print an access token signed with the gateway's JWT settings (local stack, demos).
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Tenant the token is valid for.
    #[arg(long)]
    pub tenant: String,
    /// User id (`sub` claim).
    #[arg(long)]
    pub user: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// A role of the user; repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Lifetime of the token. Bounded so the expiry always stays a representable time.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub ttl_hours: u32,
}

impl TokenArgs {
    pub fn issue(&self, auth: &AuthSettings) -> anyhow::Result<String> {
        let identity = Identity {
            tenant_id: self.tenant.clone(),
            user_id: self.user.clone(),
            display_name: self.name.clone(),
            roles: self.roles.clone(),
        };
        Ok(auth.jwt()?.issue(
            &identity,
            chrono::Duration::hours(i64::from(self.ttl_hours)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_local_stack() {
        let settings = Settings::try_parse_from(["gateway"]).unwrap();
        assert_eq!(settings.listen_addr.port(), 4000);
        assert_eq!(settings.command_url, "http://127.0.0.1:50051");
        assert_eq!(settings.query_url, "http://127.0.0.1:50052");
        assert!(settings.graphiql);
        assert!(settings.command.is_none());
        assert!(settings.graphql_introspection);
        assert_eq!(settings.request_timeout(), Duration::from_secs(3));
        let clients = &settings.clients;
        assert_eq!(clients.grpc_call_timeout_ms, 2_500, "under the edge's 3 s");
        assert_eq!(
            (clients.grpc_retries, clients.grpc_retry_backoff_ms),
            (3, 1_000)
        );
        assert_eq!(
            (
                clients.circuit_breaker_failures,
                clients.circuit_breaker_open_ms
            ),
            (5, 30_000)
        );
        settings.check().unwrap();
        let limits = settings.rate_limits;
        assert_eq!(
            (limits.rate_limit_per_second, limits.rate_limit_burst),
            (100, 200)
        );
        assert_eq!(
            (
                limits.tenant_rate_limit_per_second,
                limits.tenant_rate_limit_burst
            ),
            (1_000, 2_000)
        );
    }

    #[test]
    fn a_backend_call_must_end_before_the_edge_times_out() {
        let settings =
            Settings::try_parse_from(["gateway", "--request-timeout-ms", "2500"]).unwrap();
        let error = settings.check().unwrap_err().to_string();
        assert!(error.contains("--grpc-call-timeout-ms (2500)"), "{error}");
        let settings = Settings::try_parse_from([
            "gateway",
            "--request-timeout-ms",
            "12000",
            "--grpc-call-timeout-ms",
            "10000",
        ])
        .unwrap();
        settings.check().unwrap();
        assert!(Settings::try_parse_from(["gateway", "--grpc-max-in-flight", "0"]).is_err());
    }

    #[test]
    fn introspection_can_be_switched_off_and_rates_must_be_positive() {
        let settings =
            Settings::try_parse_from(["gateway", "--graphql-introspection", "false"]).unwrap();
        assert!(!settings.graphql_introspection);
        assert!(Settings::try_parse_from(["gateway", "--rate-limit-per-second", "0"]).is_err());
        assert!(Settings::try_parse_from(["gateway", "--tenant-rate-limit-burst", "0"]).is_err());
    }

    #[test]
    fn issued_tokens_verify_with_the_same_settings() {
        let settings = Settings::try_parse_from([
            "gateway",
            "--allow-dev-jwt-secret",
            "true",
            "token",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--name",
            "Alice",
            "--role",
            "admin",
        ])
        .unwrap();
        let Some(Command::Token(args)) = &settings.command else {
            panic!("token subcommand expected")
        };
        let token = args.issue(&settings.auth).unwrap();
        let identity = settings.auth.jwt().unwrap().verify(&token).unwrap();
        assert_eq!(
            (identity.tenant_id.as_str(), identity.user_id.as_str()),
            ("acme", "alice")
        );
        assert_eq!(identity.roles, ["admin"]);
        let too_long = [
            "gateway",
            "token",
            "--tenant",
            "a",
            "--user",
            "u",
            "--name",
            "n",
            "--ttl-hours",
            "99999999",
        ];
        assert!(Settings::try_parse_from(too_long).is_err());
    }
}
