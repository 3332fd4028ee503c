//! The GraphQL edge of RingiFlow: async-graphql on axum, with no database of its own. Queries go
//! to query-svc and mutations to command-svc over gRPC, carrying the caller's bearer token
//! unchanged and one correlation id per HTTP request. Subscriptions (GraphQL over WebSocket)
//! are fed by one stream of committed changes from query-svc per replica (`push`).
#![forbid(unsafe_code)]

mod backends;
mod caller;
mod errors;
mod graphiql;
mod http_stack;
mod push;
mod rate_limit;
mod schema;
mod settings;
mod startup;
mod ws;

pub use settings::{Command, RateLimitSettings, Settings, TokenArgs};
pub use startup::Application;
