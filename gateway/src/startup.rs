//! Wiring: settings in, a bound server out.

use crate::backends::Backends;
use crate::rate_limit::{RateLimitLayer, RateLimiter};
use crate::settings::Settings;
use crate::{http_stack, schema};
use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use axum::Router;
use platform::metrics::MetricsListener;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    metrics: Option<MetricsListener>,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds the listener; backends are connected lazily, so this succeeds while they are down.
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        settings.check()?;
        let backends = Backends::connect_lazy(
            &settings.command_url,
            &settings.query_url,
            &settings.clients,
        )?;
        let jwt = settings.auth.jwt()?;
        let api = schema::build(
            backends.clone(),
            jwt.clone(),
            settings.graphql_introspection,
        );
        api.hub()
            .follow(&settings.query_url, jwt.clone(), shutdown.clone())
            .context("the change feed's query-svc url")?;
        let rate_limit = RateLimitLayer::new(RateLimiter::new(&settings.rate_limits), jwt.clone());
        let router = http_stack::router(
            api,
            backends,
            jwt,
            rate_limit,
            settings.graphiql,
            settings.request_timeout(),
        );
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("binding {}", settings.listen_addr))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let metrics = settings.metrics.listener().await?;
        Ok(Self {
            listener,
            address,
            router,
            metrics,
            shutdown,
        })
    }

    /// The port actually bound, which differs from the setting when that was 0.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Where the metrics listener of its own serves `/metrics`, when `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsListener::address)
    }

    /// Serves until the shutdown token is cancelled, then stops accepting and lets in-flight
    /// requests finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "gateway listening");
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.shutdown.clone()));
        }
        // The peer address keys the rate limit of requests without a valid token.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Without TCP_NODELAY a response written in parts waits for the client's delayed ACK.
        let listener = self.listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, service)
            .with_graceful_shutdown(self.shutdown.cancelled_owned())
            .await
            .context("serving http")?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}
