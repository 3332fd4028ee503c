//! The HTTP side: routes, their handlers, and the middleware stack around them.

use crate::backends::Backends;
use crate::caller::{Incoming, CORRELATION_ID};
use crate::schema::{self, GatewaySchema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use http::{HeaderMap, StatusCode};
use platform::auth::Jwt;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

/// SPEC §6: about 3 s at the edge.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// GraphQL documents and their variables are small; this leaves room for long descriptions.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct AppState {
    schema: GatewaySchema,
    backends: Backends,
    jwt: Jwt,
}

/// `graphiql`: also serve GraphiQL (GET /graphql and its assets).
pub(crate) fn router(
    schema: GatewaySchema,
    backends: Backends,
    jwt: Jwt,
    graphiql: bool,
) -> Router {
    let (endpoint, ide): (MethodRouter<AppState>, Router<AppState>) = if graphiql {
        (
            get(crate::graphiql::page).post(graphql),
            crate::graphiql::assets(),
        )
    } else {
        (post(graphql), Router::new())
    };
    let routes = Router::new()
        .route("/graphql", endpoint)
        .merge(ide)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            schema,
            backends,
            jwt,
        });
    with_middleware(routes)
}

/// The whole tower stack, outermost layer first.
fn with_middleware(routes: Router) -> Router {
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
                REQUEST_TIMEOUT,
            )),
    )
}

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> impl IntoResponse {
    let incoming = Incoming::from_headers(&headers);
    let correlation_id = incoming.correlation_id();
    let span = tracing::info_span!("graphql", %correlation_id);
    let response = state
        .schema
        .execute(schema::prepare(
            request.into_inner(),
            incoming,
            &state.backends,
            &state.jwt,
        ))
        .instrument(span)
        .await;
    // Echoed so a client can quote the id that appears in every service's logs.
    (
        [(CORRELATION_ID, correlation_id.to_string())],
        GraphQLResponse::from(response),
    )
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
