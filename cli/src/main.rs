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
mod export_format;
mod mcp;
mod output;
mod session;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    args::{Cli, Command},
    client::App,
    config::{Config, cleartext_warning},
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
    warn_about_cleartext(&cli.command, &config, cli.global.json);
    let app = App::new(config)?;
    match cli.command {
        Command::Mcp => mcp::serve(app).await,
        command => commands::run(&app, command, cli.global.json).await,
    }
}

/// Warns once, on stderr, when this command would send a password or a token
/// over plain `http://` to another machine.
fn warn_about_cleartext(command: &Command, config: &Config, json: bool) {
    let saved_auth_url;
    let urls = match command {
        Command::Logout(args) if args.local => return,
        // logout talks only to the auth-service that issued the saved login.
        Command::Logout(_) => {
            saved_auth_url = config
                .credentials
                .load()
                .ok()
                .flatten()
                .map(|saved| saved.auth_url);
            vec![saved_auth_url.as_deref().unwrap_or(&config.auth_url)]
        }
        _ => vec![config.server_url.as_str(), config.auth_url.as_str()],
    };
    if let Some(warning) = cleartext_warning(&urls) {
        output::print_warning(json, &warning);
    }
}
