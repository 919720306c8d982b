//! Applies the schema migrations. Run it as the role that owns the tables,
//! before starting the services (the services never run DDL).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use ninaivalaigal::db::{DatabaseTls, DatabaseUrl, run_migrations_with};

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
    /// PEM file of the CA that signed the database server's certificate
    /// (with `sslmode=verify-ca` or `verify-full` in the URL).
    #[arg(long, env = "NINAIVALAIGAL_DATABASE_CA")]
    database_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let tls = match DatabaseTls::new(&args.database_url, args.database_ca.as_deref()) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("ninaivalaigal-migrate: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match run_migrations_with(&args.database_url, &tls).await {
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
