//! `em-bench`: the load generator of issue 13. It drives the running pair
//! over gRPC, as `eM` and editors do, and reports throughput and latency
//! percentiles (HDR histograms) as text and, with `--json`, as JSON.
//!
//! Load: `--clients` closed-loop clients (each sends its next call when the
//! last is answered) spread over `--connections` HTTP/2 connections and
//! `--users` accounts, each account with a context of its own; or, with
//! `--rate`, calls due at a fixed rate whatever the answers (open loop, the
//! latency counted from when a call was due). Accounts are registered on
//! the first run and logged in to afterwards, and their contexts are filled
//! up to `--memories-per-user`, so runs in a row share their data.
//!
//! ```text
//! cargo build --release --locked --bin em-bench
//! target/release/em-bench --scenario mixed --clients 16 --seconds 10
//! ```
//!
//! `deploy/local/bench.sh` runs it interleaved with pgbench replaying the
//! service's own statements, and prints the ratios.

mod report;
mod scenario;
mod setup;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::{task::JoinSet, time::Instant};

use crate::{
    report::{Recorder, Report},
    scenario::{Load, Scenario},
};

#[derive(Debug, Parser)]
#[command(name = "em-bench", about = "Load generator for the Ninaivalaigal pair")]
struct Args {
    /// What each call does.
    #[arg(long, value_enum, default_value_t = Scenario::Mixed)]
    scenario: Scenario,
    /// The memory-service.
    #[arg(long, default_value = "http://127.0.0.1:13370")]
    memory_url: String,
    /// The auth-service.
    #[arg(long, default_value = "http://127.0.0.1:13371")]
    auth_url: String,
    /// Concurrent closed-loop clients (with --rate: the most calls in flight).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// HTTP/2 connections the clients are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Accounts the clients act as (client i as account i mod users).
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Memories each account's context holds before the load starts.
    #[arg(long, default_value_t = 200)]
    memories_per_user: i64,
    /// Start of the accounts' emails: runs with the same prefix share
    /// accounts and data.
    #[arg(long, default_value = "em-bench")]
    prefix: String,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before the measurement (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Calls per second, due whatever the answers (open loop); without it,
    /// every client calls back to back (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Deadline of each call (`grpc-timeout`).
    #[arg(long, default_value_t = 5.0)]
    deadline_seconds: f64,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Set up the accounts and their data, print them (JSON), and stop.
    #[arg(long)]
    setup_only: bool,
}

/// The services' allocator: decoding Recall's pages allocates a great deal,
/// and every cycle the generator spends is one the pair does not get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: the generator shares the machine with what it measures, and
// one thread drives thousands of calls a second with the least CPU (no
// wake-ups across threads), as pgbench and h2load do with few threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.connections == 0 || args.users == 0 {
        bail!("--clients, --connections and --users must be at least 1");
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(args.seconds) || !(positive(args.warmup_seconds) || args.warmup_seconds == 0.0) {
        bail!("--seconds must be positive and --warmup-seconds not negative");
    }
    if !positive(args.deadline_seconds) || args.rate.is_some_and(|rate| !positive(rate)) {
        bail!("--deadline-seconds and --rate must be positive");
    }
    let accounts = setup::Accounts::new(&args.auth_url, &args.memory_url, &args.prefix).await?;
    let users = accounts.prepare(args.users, args.memories_per_user).await?;
    if args.setup_only {
        println!(
            "{}",
            serde_json::to_string_pretty(&setup::describe(&users))?
        );
        return Ok(());
    }

    let load = Arc::new(
        Load::connect(
            args.scenario,
            &args.memory_url,
            &args.auth_url,
            args.connections,
            users,
            Duration::from_secs_f64(args.deadline_seconds),
        )
        .await?,
    );
    let warmup = Duration::from_secs_f64(args.warmup_seconds);
    let measured = Duration::from_secs_f64(args.seconds);
    let recorder = match args.rate {
        None => closed_loop(&load, args.clients, warmup, measured).await,
        Some(rate) => open_loop(&load, rate, args.clients, warmup, measured).await?,
    };
    let report = Report::new(
        args.scenario,
        args.clients,
        args.connections,
        args.rate,
        measured,
        recorder,
    );
    print!("{}", report.text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.ok() == 0 {
        bail!("no call succeeded");
    }
    Ok(())
}

/// Every client calls back to back until the end; calls that start after
/// the warm-up are recorded.
async fn closed_loop(
    load: &Arc<Load>,
    clients: usize,
    warmup: Duration,
    measured: Duration,
) -> Recorder {
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let load = load.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::new();
            let mut n = 0u64;
            while Instant::now() < end {
                let sent = Instant::now();
                let code = load.call(client, n).await;
                n += 1;
                if sent >= measure_from {
                    recorder.record(code, sent.elapsed());
                }
            }
            recorder
        });
    }
    collect(tasks).await
}

/// Calls due every 1/`rate` s, each on its own task, at most `max_in_flight`
/// at once (a call due while that many wait is counted as refused by the
/// generator, not sent); latency counts from when a call was due.
async fn open_loop(
    load: &Arc<Load>,
    rate: f64,
    max_in_flight: usize,
    warmup: Duration,
    measured: Duration,
) -> Result<Recorder> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let mut skipped = Recorder::new();
    let mut due = start;
    let mut n = 0u64;
    while due < end {
        tokio::time::sleep_until(due).await;
        let measure = due >= measure_from;
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let load = load.clone();
                let client = usize::try_from(n).unwrap_or(usize::MAX);
                tasks.spawn(async move {
                    let mut recorder = Recorder::new();
                    let code = load.call(client, n).await;
                    drop(slot);
                    if measure {
                        recorder.record(code, due.elapsed());
                    }
                    recorder
                });
            }
            Err(_) if measure => skipped.record_unsent(),
            Err(_) => {}
        }
        n += 1;
        due += interval;
        // Reap finished calls as we go, so that memory stays flat.
        while let Some(done) = tasks.try_join_next() {
            skipped.merge(done.context("a load task panicked")?);
        }
    }
    let mut recorder = collect(tasks).await;
    recorder.merge(skipped);
    Ok(recorder)
}

async fn collect(mut tasks: JoinSet<Recorder>) -> Recorder {
    let mut all = Recorder::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(recorder) => all.merge(recorder),
            Err(error) => eprintln!("em-bench: a load task failed: {error}"),
        }
    }
    all
}
