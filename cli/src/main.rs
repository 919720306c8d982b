//! eM: the Ninaivalaigal command line.

use clap::Parser;

/// eM: remember and recall what you work on.
#[derive(Parser)]
#[command(name = "eM", version)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
