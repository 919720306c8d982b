//! eM: the Ninaivalaigal command line and MCP server. `main` parses the
//! command line, runs the command and turns its failure into a message and
//! a stable exit code (`eM --help` lists them).

#![warn(missing_docs)]

mod args;
mod client;
mod commands;
mod config;
mod credentials;
mod exit;
mod mcp;
mod output;
mod session;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    args::{Cli, Command},
    client::App,
    config::Config,
    exit::{Failure, Kind},
};

fn main() -> ExitCode {
    // clap exits with 2 on a usage error, 0 for --help and --version.
    let cli = Cli::parse();
    let json = cli.global.json;
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::new(Kind::Other, format!("cannot start: {error}")))
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            output::print_failure(json, &failure);
            ExitCode::from(failure.kind.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = Config::resolve(&cli.global)?;
    let app = App::new(config)?;
    match cli.command {
        Command::Mcp => mcp::serve(app).await,
        command => commands::run(&app, command, cli.global.json).await,
    }
}
