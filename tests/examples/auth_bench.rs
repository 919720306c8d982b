//! Login benchmark of the auth-service at the production bcrypt cost.
//!
//! Starts the pair in-process on 127.0.0.1 (a fresh test database), with
//! bcrypt cost 12 and the default hashing concurrency unless told otherwise,
//! then measures:
//! 1. login latency, one login at a time (and, for comparison, a wrong
//!    password and an unknown email, which must take about as long);
//! 2. WhoAmI latency of one client on an idle service;
//! 3. logins per second with several clients logging in as fast as they can,
//!    while that one client keeps calling WhoAmI, and its latency then.
//!
//! Every loop is bounded. Not a test: it reports figures.
//!
//! ```text
//! cargo run -p ninaivalaigal-tests --example auth_bench [-- --hashing-concurrency=N --bcrypt-cost=C]
//! ```
//! (Dependencies, bcrypt included, are optimized in the dev profile.)

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ninaivalaigal::auth_v1::{LoginRequest, WhoAmIRequest};
use ninaivalaigal_tests::{PairSettings, TEST_PASSWORD, TestPair, bearer, spawn_pair_with};
use tokio::sync::watch;

const USERS: usize = 8;
const SEQUENTIAL_LOGINS: usize = 20;
const LOGIN_WORKERS: usize = 8;
const LOAD_DURATION: Duration = Duration::from_secs(15);
const BASELINE_DURATION: Duration = Duration::from_secs(5);
const MAX_CALLS: usize = 200_000;

/// Settings of the auth-service under test.
#[derive(Debug, clap::Parser)]
struct Args {
    /// bcrypt cost factor (production default 12).
    #[arg(long, default_value_t = 12)]
    bcrypt_cost: u32,
    /// Concurrent bcrypt computations (default: the service's, half the CPUs).
    #[arg(long)]
    hashing_concurrency: Option<usize>,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    println!("auth-service settings: {args:?}");
    println!(
        "cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pair = spawn_pair_with(PairSettings::default().auth(move |s| {
        // The benchmark logs in from one address, wrong passwords included.
        s.login_failures_per_client = 100_000;
        s.login_failures_per_account = 100_000;
        s.registrations_per_client = 100_000;
        s.bcrypt_cost = args.bcrypt_cost;
        s.hashing_concurrency = args.hashing_concurrency;
    }))
    .await;

    let mut emails = Vec::new();
    for n in 0..USERS {
        emails.push(
            pair.register_user(&format!("bench{n}@example.test"))
                .await
                .email,
        );
    }
    let watcher = pair.register_user("watcher@example.test").await;

    // 1. Sequential logins.
    let mut latencies = Vec::new();
    for n in 0..SEQUENTIAL_LOGINS {
        latencies.push(
            timed_login(&pair, &emails[n % USERS], TEST_PASSWORD)
                .await
                .0,
        );
    }
    report("login, one at a time", &mut latencies);
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..10 {
        wrong.push(timed_login(&pair, &emails[0], "not the password").await.0);
        unknown.push(
            timed_login(&pair, "nobody@example.test", "not the password")
                .await
                .0,
        );
    }
    report("login, wrong password", &mut wrong);
    report("login, unknown email", &mut unknown);

    // 2. WhoAmI on an idle service.
    let (_never, never_stop) = watch::channel(false);
    let mut idle = who_am_i_loop(&pair, &watcher.access_token, BASELINE_DURATION, never_stop).await;
    report("WhoAmI, idle service", &mut idle);

    // 3. Logins flat out, and WhoAmI meanwhile.
    let (stop, stopped) = watch::channel(false);
    let watcher_task = {
        let token = watcher.access_token.clone();
        let channel = pair.auth_channel().await;
        let stopped = stopped.clone();
        tokio::spawn(async move { who_am_i_on(channel, &token, LOAD_DURATION * 2, stopped).await })
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..LOGIN_WORKERS {
        let email = emails[worker % USERS].clone();
        let channel = pair.auth_channel().await;
        workers.push(tokio::spawn(async move {
            let mut client =
                ninaivalaigal::auth_v1::auth_service_client::AuthServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            while started.elapsed() < LOAD_DURATION && latencies.len() < MAX_CALLS {
                let begun = Instant::now();
                match client
                    .login(LoginRequest {
                        email: email.clone(),
                        password: TEST_PASSWORD.into(),
                    })
                    .await
                {
                    Ok(_) => latencies.push(begun.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut under_load = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (latencies, failed) = worker.await.unwrap();
        under_load.extend(latencies);
        failures += failed;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let mut watched = watcher_task.await.unwrap();
    println!(
        "logins under load: {} in {:.1} s = {:.2} logins/s ({} workers, {} failed)",
        under_load.len(),
        elapsed.as_secs_f64(),
        under_load.len() as f64 / elapsed.as_secs_f64(),
        LOGIN_WORKERS,
        failures
    );
    report("login, under load", &mut under_load);
    report("WhoAmI, while logins run", &mut watched);
    pair.shutdown().await;
}

async fn timed_login(pair: &TestPair, email: &str, password: &str) -> (Duration, bool) {
    let mut client = pair.auth_client().await;
    let begun = Instant::now();
    let ok = client
        .login(LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .is_ok();
    (begun.elapsed(), ok)
}

async fn who_am_i_loop(
    pair: &TestPair,
    token: &str,
    duration: Duration,
    stopped: watch::Receiver<bool>,
) -> Vec<Duration> {
    who_am_i_on(pair.auth_channel().await, token, duration, stopped).await
}

/// Calls WhoAmI back to back until `duration` passes or `stopped` is set.
async fn who_am_i_on(
    channel: tonic::transport::Channel,
    token: &str,
    duration: Duration,
    stopped: watch::Receiver<bool>,
) -> Vec<Duration> {
    let mut client = ninaivalaigal::auth_v1::auth_service_client::AuthServiceClient::new(channel);
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < duration && !*stopped.borrow() && latencies.len() < MAX_CALLS {
        let begun = Instant::now();
        client
            .who_am_i(bearer(WhoAmIRequest {}, token))
            .await
            .expect("WhoAmI succeeds");
        latencies.push(begun.elapsed());
    }
    latencies
}

fn report(what: &str, latencies: &mut [Duration]) {
    if latencies.is_empty() {
        println!("{what}: no samples");
        return;
    }
    latencies.sort();
    let percentile = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    println!(
        "{what}: n={} median={:.2} ms p99={:.2} ms max={:.2} ms",
        latencies.len(),
        percentile(0.5).as_secs_f64() * 1e3,
        percentile(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
}
