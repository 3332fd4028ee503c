#![forbid(unsafe_code)]

use clap::Parser;
use query_svc::{Application, Command, Settings};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = platform::telemetry::init(&settings.telemetry);
    if let Some(Command::Migrate) = settings.command {
        return query_svc::migrate(&settings).await;
    }
    let shutdown = CancellationToken::new();
    platform::shutdown::cancel_on_signal(shutdown.clone());
    let served = async {
        Application::build(settings, shutdown)
            .await?
            .run_until_stopped()
            .await
    }
    .await;
    telemetry.shutdown().await;
    served
}
