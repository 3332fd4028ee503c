#![forbid(unsafe_code)]

use clap::Parser;
use query_svc::{Application, Command, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = platform::telemetry::init(&settings.telemetry);
    if let Some(Command::Migrate) = settings.command {
        return query_svc::migrate(&settings).await;
    }
    platform::shutdown::serve_until_signal(telemetry, |shutdown| async move {
        Application::build(settings, shutdown)
            .await?
            .run_until_stopped()
            .await
    })
    .await
}
