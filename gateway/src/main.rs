#![forbid(unsafe_code)]

use clap::Parser;
use gateway::{Application, Command, Settings};

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
    platform::shutdown::serve_until_signal(telemetry, |shutdown| async move {
        Application::build(settings, shutdown)
            .await?
            .run_until_stopped()
            .await
    })
    .await
}
