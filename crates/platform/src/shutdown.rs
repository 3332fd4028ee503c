//! Graceful shutdown: SIGTERM or SIGINT cancels a token every task of a service watches.

use crate::telemetry::Telemetry;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Runs a service from `main`: `serve` gets the token SIGTERM or SIGINT cancel, and once it
/// returns, whatever it returned, the spans still queued are exported (`telemetry`), so the
/// trace of a service's last requests and of a failed start is not lost.
pub async fn serve_until_signal<T, Fut>(
    telemetry: Telemetry,
    serve: impl FnOnce(CancellationToken) -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let served = serve(shutdown).await;
    telemetry.shutdown().await;
    served
}

/// Cancels `token` on SIGTERM or SIGINT.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler cannot fail on unix");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}
