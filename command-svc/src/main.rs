use clap::Parser;
use command_svc::{Command, Settings};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = platform::telemetry::init(&settings.telemetry);
    if let Some(Command::Migrate) = settings.command {
        return command_svc::migrate(&settings).await;
    }
    let shutdown = CancellationToken::new();
    platform::shutdown::cancel_on_signal(shutdown.clone());
    let served = async {
        command_svc::Application::build(settings, shutdown)
            .await?
            .run_until_stopped()
            .await
    }
    .await;
    telemetry.shutdown().await;
    served
}
