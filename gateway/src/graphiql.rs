//! GraphiQL, the in-browser GraphQL IDE, served by the gateway itself: the page, a small
//! start-up script, and GraphiQL's and React's browser builds vendored in `gateway/graphiql/`
//! (pinned, checksummed; `gateway/graphiql/update` regenerates them). Nothing is loaded from a
//! CDN, so it works in clusters without internet access. `RINGIFLOW_GRAPHIQL=false` removes it.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// GraphiQL's version, part of the vendored files' URLs so that browsers may cache them forever.
const VERSION: &str = "4.1.2";

/// Only the gateway's own scripts, no inline script, requests only to the gateway. Inline
/// styles and `data:` fonts and images are how GraphiQL's CSS and editor work.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../graphiql/index.html");

/// `(file name, content type, bytes)` of each vendored file; see `gateway/graphiql/SHA256SUMS`.
const VENDORED: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../graphiql/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/vendor/react-dom.production.min.js"),
    ),
];

/// Changes with the gateway, not with GraphiQL, so it is revalidated rather than cached.
const INIT_SCRIPT: &[u8] = include_bytes!("../graphiql/init.js");

/// The page, for `GET /graphql` (the same URL GraphiQL then POSTs its queries to).
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

/// The routes of the page's scripts and styles, relative to the page: `/graphiql/...`.
pub(crate) fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(
        "/graphiql/init.js",
        get(|| async { asset("text/javascript; charset=utf-8", INIT_SCRIPT, "no-cache") }),
    );
    for &(name, content_type, body) in VENDORED {
        router = router.route(
            &format!("/graphiql/{VERSION}/{name}"),
            get(move || async move {
                // Versioned URL: a new GraphiQL gets a new URL, so this one never changes.
                asset(content_type, body, "public, max-age=31536000, immutable")
            }),
        );
    }
    router
}

fn asset(content_type: &'static str, body: &'static [u8], cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, StatusCode};
    use tower::ServiceExt as _;

    fn router(graphiql: bool) -> Router {
        crate::http_stack::tests::app_with(1_000, graphiql)
    }

    async fn get(router: &Router, uri: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, body.to_vec())
    }

    /// Every script and stylesheet the page names, resolved against `/graphql`.
    fn referenced_assets() -> Vec<String> {
        PAGE.split(['"', '\''])
            .filter(|part| part.starts_with("graphiql/"))
            .map(|part| format!("/{part}"))
            .collect()
    }

    #[tokio::test]
    async fn the_page_and_everything_it_loads_come_from_the_gateway() {
        let router = router(true);
        let (status, headers, body) = get(&router, "/graphql").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let page = String::from_utf8(body).unwrap();
        assert!(
            !page.contains("//"),
            "the page must not load anything from another origin"
        );

        let assets = referenced_assets();
        assert_eq!(assets.len(), 5, "{assets:?}");
        for asset in assets {
            let (status, headers, body) = get(&router, &asset).await;
            assert_eq!(status, StatusCode::OK, "{asset}");
            assert!(!body.is_empty(), "{asset}");
            let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
            let expected = if asset.ends_with(".css") {
                "text/css"
            } else {
                "text/javascript"
            };
            assert!(
                content_type.starts_with(expected),
                "{asset}: {content_type}"
            );
        }
    }

    #[tokio::test]
    async fn switched_off_it_serves_nothing() {
        let router = router(false);
        // GET /graphql is then only a subscription's WebSocket upgrade, which this is not.
        let (status, _, _) = get(&router, "/graphql").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        for asset in referenced_assets() {
            let (status, _, _) = get(&router, &asset).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{asset}");
        }
    }
}
