//! Command-line and environment settings of the `gateway` binary.

use clap::{Args, Parser, Subcommand};
use platform::auth::Identity;
use platform::settings::{AuthSettings, TelemetrySettings};
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about = "RingiFlow GraphQL gateway")]
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
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
    /// Without a subcommand the gateway serves.
    #[command(subcommand)]
    pub command: Option<Command>,
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
    pub fn issue(&self, auth: &AuthSettings) -> String {
        let identity = Identity {
            tenant_id: self.tenant.clone(),
            user_id: self.user.clone(),
            display_name: self.name.clone(),
            roles: self.roles.clone(),
        };
        auth.jwt().issue(
            &identity,
            chrono::Duration::hours(i64::from(self.ttl_hours)),
        )
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
    }

    #[test]
    fn issued_tokens_verify_with_the_same_settings() {
        let settings = Settings::try_parse_from([
            "gateway", "token", "--tenant", "acme", "--user", "alice", "--name", "Alice", "--role",
            "admin",
        ])
        .unwrap();
        let Some(Command::Token(args)) = &settings.command else {
            panic!("token subcommand expected")
        };
        let token = args.issue(&settings.auth);
        let identity = settings.auth.jwt().verify(&token).unwrap();
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
