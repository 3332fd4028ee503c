use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = command_svc::Settings::parse();
    platform::telemetry::init(&settings.telemetry);
    let shutdown = CancellationToken::new();
    platform::shutdown::cancel_on_signal(shutdown.clone());
    command_svc::Application::build(settings, shutdown)
        .await?
        .run_until_stopped()
        .await
}
