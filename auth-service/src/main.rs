use std::process::ExitCode;

use auth_service::{
    admins,
    config::{self, Cli, Command},
    startup::Application,
};
use clap::Parser;

/// mimalloc: per-request allocations are this service's most frequent
/// work after the socket calls, and glibc's malloc was slower at them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    ninaivalaigal::telemetry::init(cli.settings.log.log_format);
    match cli.command {
        Some(Command::Admin(command)) => {
            match admins::command::run(&command, &cli.settings.database).await {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("auth-service admin: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => serve(cli.settings).await,
    }
}

async fn serve(settings: config::Settings) -> ExitCode {
    if let Err(error) = config::refuse_retired_variables(|name| std::env::var_os(name)) {
        eprintln!("auth-service: {error:#}");
        return ExitCode::FAILURE;
    }
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            eprintln!("auth-service: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match application
        .run_until(ninaivalaigal::shutdown::signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("auth-service: {error:#}");
            ExitCode::FAILURE
        }
    }
}
