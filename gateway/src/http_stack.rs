//! The HTTP side: routes, their handlers, and the middleware stack around them.

use crate::backends::Backends;
use crate::caller::{Incoming, CORRELATION_ID};
use crate::errors::http_error;
use crate::rate_limit::RateLimitLayer;
use crate::schema::Api;
use async_graphql::ParseRequestError;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use http::{HeaderMap, StatusCode};
use platform::auth::Jwt;
use platform::errors::ErrorCode;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

/// GraphQL documents and their variables are small; this leaves room for long descriptions.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct AppState {
    api: Api,
    backends: Backends,
    jwt: Jwt,
}

/// `graphiql`: also serve GraphiQL (GET /graphql and its assets). `request_timeout`: the edge's
/// bound on one request (`Settings::request_timeout_ms`).
pub(crate) fn router(
    api: Api,
    backends: Backends,
    jwt: Jwt,
    rate_limit: RateLimitLayer,
    graphiql: bool,
    request_timeout: Duration,
) -> Router {
    let (endpoint, ide): (MethodRouter<AppState>, Router<AppState>) = if graphiql {
        (
            get(subscribe_or_graphiql).post(graphql),
            crate::graphiql::assets(),
        )
    } else {
        (get(subscribe).post(graphql), Router::new())
    };
    let routes = Router::new()
        // Only the API is rate limited: the orchestrator's probes must never be refused.
        .route("/graphql", endpoint.layer(rate_limit))
        .merge(ide)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(platform::metrics::route())
        .with_state(AppState { api, backends, jwt });
    with_middleware(routes, request_timeout)
}

/// The whole tower stack, outermost layer first.
fn with_middleware(routes: Router, request_timeout: Duration) -> Router {
    routes.layer(
        ServiceBuilder::new()
            // Outermost, so every request gets a span and a logged outcome, including the 500s,
            // 504s and 413s produced by the layers below.
            .layer(TraceLayer::new_for_http())
            // A panicking handler becomes a 500 instead of a dropped connection.
            .layer(CatchPanicLayer::new())
            // Refuses oversized bodies with 413 before they are buffered for parsing.
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            // Bounds the time a request holds a connection and the backends' attention. 504
            // because what ran out is the gateway's wait on its upstreams. Innermost because
            // its empty timeout response needs the router's body type.
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                request_timeout,
            )),
    )
}

/// Why a body is not one GraphQL request, said without the parser's internals (its Rust
/// types), as a GraphQL error like every other.
struct BadRequest(ParseRequestError);

impl From<ParseRequestError> for BadRequest {
    fn from(error: ParseRequestError) -> Self {
        Self(error)
    }
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        let message = match self.0 {
            // One operation per request: the cost limits and the rate limit are per request,
            // and a batch would multiply both. HTTP keep-alive makes separate requests cheap.
            ParseRequestError::UnsupportedBatch => {
                "batch requests are not supported; send one operation per request".to_owned()
            }
            ParseRequestError::InvalidRequest(error) => {
                format!("the body is not a GraphQL request: {error}")
            }
            ParseRequestError::PayloadTooLarge => "the request body is too large".to_owned(),
            _ => "the body is not a GraphQL request".to_owned(),
        };
        http_error(ErrorCode::InvalidArgument, &message)
    }
}

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest<BadRequest>,
) -> impl IntoResponse {
    let incoming = Incoming::from_headers(&headers);
    let correlation_id = incoming.correlation_id();
    let span = tracing::info_span!("graphql", %correlation_id);
    // A caller's `traceparent` makes this operation part of its trace.
    platform::telemetry::set_parent_from_headers(&span, &headers);
    let response = state
        .api
        .execute(request.into_inner(), incoming, &state.backends, &state.jwt)
        .instrument(span)
        .await;
    // Echoed so a client can quote the id that appears in every service's logs.
    (
        [(CORRELATION_ID, correlation_id.to_string())],
        GraphQLResponse::from(response),
    )
}

/// GET /graphql with a WebSocket upgrade: subscriptions (`ws`). The connection is served by a
/// task of its own once upgraded, so the stack's request timeout bounds only the upgrade, never
/// the connection's life; the rate limit counts connection attempts.
async fn subscribe(
    State(state): State<AppState>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    upgrade: WebSocketUpgrade,
) -> Response {
    match protocol {
        Ok(protocol) => crate::ws::accept(upgrade, protocol, state.api, state.jwt),
        Err(_) => http_error(
            ErrorCode::InvalidArgument,
            "a GraphQL WebSocket needs the subprotocol graphql-transport-ws or graphql-ws",
        ),
    }
}

/// GET /graphql: a subscription's WebSocket upgrade, or else GraphiQL.
async fn subscribe_or_graphiql(
    state: State<AppState>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => subscribe(state, protocol, upgrade).await,
        Err(_) => crate::graphiql::page().await,
    }
}

/// Liveness: the process answers HTTP. Backends are deliberately not consulted, so an outage
/// downstream does not get the gateway restarted.
async fn healthz() -> StatusCode {
    StatusCode::OK
}

/// Readiness: only worth traffic when both backends are serving.
async fn readyz(State(state): State<AppState>) -> StatusCode {
    if state.backends.ready().await {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rate_limit::RateLimiter;
    use crate::settings::RateLimitSettings;
    use axum::body::Body;
    use platform::auth::Identity;
    use serde_json::Value;
    use tower::ServiceExt as _;

    fn jwt() -> Jwt {
        Jwt::local_development()
    }

    /// The gateway's routes, with backends that are never reached, a user limit of `burst`
    /// requests then one per second, and GraphiQL as `graphiql` says.
    pub(crate) fn app_with(burst: u32, graphiql: bool) -> Router {
        let backends = Backends::unreachable();
        let limiter = RateLimiter::new(&RateLimitSettings {
            rate_limit_per_second: 1,
            rate_limit_burst: burst,
            tenant_rate_limit_per_second: 1_000,
            tenant_rate_limit_burst: 1_000,
        });
        router(
            crate::schema::build(backends.clone(), jwt(), true),
            backends,
            jwt(),
            RateLimitLayer::new(limiter, jwt()),
            graphiql,
            Duration::from_secs(3),
        )
    }

    fn app(burst: u32) -> Router {
        app_with(burst, true)
    }

    fn bearer(tenant: &str, user: &str) -> String {
        let identity = Identity {
            tenant_id: tenant.into(),
            user_id: user.into(),
            display_name: user.into(),
            roles: vec![],
        };
        format!(
            "Bearer {}",
            jwt().issue(&identity, chrono::Duration::hours(1)).unwrap()
        )
    }

    async fn post(
        app: &Router,
        authorization: Option<&str>,
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request =
            http::Request::post("/graphql").header("content-type", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (parts.status, parts.headers, body)
    }

    #[tokio::test]
    async fn batches_and_bodies_that_are_no_graphql_request_are_invalid_arguments() {
        let app = app(100);
        let typename = r#"{"query":"{ __typename }"}"#;
        let cases = [
            (
                format!("[{typename},{typename}]"),
                "batch requests are not supported",
            ),
            ("{not json".to_owned(), "the body is not a GraphQL request"),
            (
                r#"{"query": 5}"#.to_owned(),
                "the body is not a GraphQL request",
            ),
        ];
        for (body, expected) in cases {
            let (status, _, response) = post(&app, None, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let error = &response["errors"][0];
            assert_eq!(error["extensions"]["code"], "INVALID_ARGUMENT", "{body}");
            let message = error["message"].as_str().unwrap();
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("Error("), "no Rust internals: {message}");
        }
    }

    #[tokio::test]
    async fn a_user_past_the_limit_gets_429_with_retry_after_and_others_carry_on() {
        let app = app(2);
        let alice = bearer("acme", "alice");
        let query = r#"{"query":"{ __typename }"}"#;
        for _ in 0..2 {
            let (status, _, response) = post(&app, Some(&alice), query).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(response["data"]["__typename"], "QueryRoot");
        }
        let (status, headers, response) = post(&app, Some(&alice), query).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[http::header::RETRY_AFTER], "1");
        assert_eq!(
            response["errors"][0]["extensions"]["code"],
            "RESOURCE_EXHAUSTED"
        );

        let (status, _, _) = post(&app, Some(&bearer("acme", "bob")), query).await;
        assert_eq!(status, StatusCode::OK, "another user of the tenant");
        let (status, _, _) = post(&app, Some(&bearer("globex", "alice")), query).await;
        assert_eq!(status, StatusCode::OK, "another tenant");
        let probe = http::Request::get("/healthz").body(Body::empty()).unwrap();
        let status = app.clone().oneshot(probe).await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "probes are never limited");
    }

    #[tokio::test]
    async fn requests_without_a_valid_token_share_their_clients_limit() {
        let app = app(2);
        let query = r#"{"query":"{ __typename }"}"#;
        let forged = Some("Bearer forged");
        assert_eq!(post(&app, None, query).await.0, StatusCode::OK);
        assert_eq!(post(&app, forged, query).await.0, StatusCode::OK);
        assert_eq!(
            post(&app, forged, query).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
        let alice = bearer("acme", "alice");
        assert_eq!(post(&app, Some(&alice), query).await.0, StatusCode::OK);
    }
}
