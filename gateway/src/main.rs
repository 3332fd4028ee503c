#![forbid(unsafe_code)]

use clap::Parser;
use gateway::{Application, Command, Settings};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    if let Some(Command::Token(token)) = &settings.command {
        // Telemetry stays off so stdout carries nothing but the token for scripts to capture.
        println!("{}", token.issue(&settings.auth)?);
        return Ok(());
    }
    let telemetry = platform::telemetry::init(&settings.telemetry);
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
