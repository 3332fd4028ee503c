//! What every RingiFlow service shares and no domain should know about: identity from JWTs,
//! the one error-code mapping (gRPC, HTTP, GraphQL), telemetry, settings and shutdown.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backoff;
pub mod errors;
pub mod grpc;
pub mod metrics;
pub mod resilience;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
