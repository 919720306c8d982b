//! Applies the schema migrations. Run it as the role that owns the tables,
//! before starting the services (the services never run DDL).

use std::process::ExitCode;

use clap::Parser;
use ninaivalaigal::db::{DatabaseUrl, run_migrations};

/// Apply Ninaivalaigal's database migrations.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Postgres URL of the role that owns the tables.
    #[arg(
        long,
        env = "NINAIVALAIGAL_MIGRATION_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: DatabaseUrl,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run_migrations(&args.database_url).await {
        Ok(applied) if applied.is_empty() => {
            println!("schema is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            for version in applied {
                println!("applied {version}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ninaivalaigal-migrate: NINAIVALAIGAL_MIGRATION_DATABASE_URL: {error:#}");
            ExitCode::FAILURE
        }
    }
}
