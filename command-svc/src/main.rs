use clap::Parser;
use command_svc::{Command, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = platform::telemetry::init(&settings.telemetry);
    if let Some(Command::Migrate) = settings.command {
        return command_svc::migrate(&settings).await;
    }
    platform::shutdown::serve_until_signal(telemetry, |shutdown| async move {
        command_svc::Application::build(settings, shutdown)
            .await?
            .run_until_stopped()
            .await
    })
    .await
}
