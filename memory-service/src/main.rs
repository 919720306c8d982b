use std::process::ExitCode;

use clap::Parser;
use memory_service::{config::Settings, startup::Application};

/// mimalloc: per-request allocations are this service's most frequent
/// work after the socket calls, and glibc's malloc was slower at them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    ninaivalaigal::telemetry::init(settings.log.log_format);
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            eprintln!("memory-service: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match application
        .run_until(ninaivalaigal::shutdown::signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("memory-service: {error:#}");
            ExitCode::FAILURE
        }
    }
}
