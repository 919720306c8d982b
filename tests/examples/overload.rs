//! Load shedding of the running pair, measured: the load generator of
//! `deploy/local/overload.sh`, which starts the services as release processes
//! (`deploy/local/up.sh`) and then runs this. Not a test: it reports figures.
//!
//! It registers its own users through the auth-service (emails start with
//! `--email-prefix`), gives each a context with ~200 memories, then:
//! 1. ramps closed-loop clients on a mixed load (90% Recall of the newest
//!    20, 10% Remember) until throughput stops growing: the capacity;
//! 2. overloads the memory-service with 3x the concurrency that reached
//!    capacity (at least 1.5x its in-flight limit) for `--overload-seconds`,
//!    counting statuses and watching health and memory;
//! 3. measures latency at half of capacity (open loop) right after, second
//!    by second, until p99 is back within 1.5x the p99 measured before;
//! 4. floods the auth-service with logins (right and wrong passwords, many
//!    client addresses) while the half-capacity load and WhoAmI/GetJwks
//!    probes run, and compares their p99 with a run just before without it.
//!
//! Throughout, both services' health is checked every 200 ms and their
//! resident memory read from `/proc` (pids from `--run-dir`). A plain-text
//! summary goes to stdout and everything to `--json`.
//!
//! ```text
//! cargo run --release -p ninaivalaigal-tests --example overload -- --help
//! ```

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use ninaivalaigal::{
    auth_v1::{
        GetJwksRequest, LoginRequest, RegisterRequest, WhoAmIRequest,
        auth_service_client::AuthServiceClient,
    },
    memory_v1::{
        CreateContextRequest, RecallRequest, RememberRequest,
        memory_service_client::MemoryServiceClient,
    },
};
use ninaivalaigal_tests::{TEST_PASSWORD, bearer};
use rand::Rng;
use serde_json::{Value, json};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
    time::Instant,
};
use tonic::{
    Code, Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// Deadline of every load call (`grpc-timeout`).
const CALL_DEADLINE: Duration = Duration::from_secs(2);
/// Deadline of a login of the flood (bcrypt waits in a queue).
const LOGIN_DEADLINE: Duration = Duration::from_secs(15);
/// Memories each load user starts with.
const MEMORIES_PER_USER: usize = 200;
/// Concurrency levels of the ramp, tried in order.
const RAMP_LEVELS: &[usize] = &[1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];
/// A level counts as growth when it beats the best so far by this factor.
const GROWTH: f64 = 1.05;
/// Recovery: p99 back within this factor of the p99 before the overload.
const RECOVERED_FACTOR: f64 = 1.5;
/// Recovery: windows in a row within the bound that count as recovered.
const RECOVERED_WINDOWS: usize = 3;

#[derive(Debug, clap::Parser)]
struct Args {
    /// The memory-service.
    #[arg(long, default_value = "http://127.0.0.1:13370")]
    memory_url: String,
    /// The auth-service.
    #[arg(long, default_value = "http://127.0.0.1:13371")]
    auth_url: String,
    /// Directory of the services' pid files (`deploy/local/up.sh` writes them).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Start of the emails of the users this run registers (unique per run).
    #[arg(long)]
    email_prefix: Option<String>,
    /// The memory-service's NINAIVALAIGAL_MAX_IN_FLIGHT_REQUESTS: the ramp
    /// stays at or below it and the overload goes well past it.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Users whose memories are loaded (each has its own context).
    #[arg(long, default_value_t = 4)]
    users: usize,
    /// HTTP/2 connections to the memory-service the load is spread over
    /// (the server allows 32 streams on each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per level of the ramp.
    #[arg(long, default_value_t = 4)]
    ramp_seconds: u64,
    /// Seconds of overload.
    #[arg(long, default_value_t = 15)]
    overload_seconds: u64,
    /// Seconds of the half-capacity run before the overload.
    #[arg(long, default_value_t = 8)]
    baseline_seconds: u64,
    /// Seconds of half-capacity load right after the overload.
    #[arg(long, default_value_t = 12)]
    recovery_seconds: u64,
    /// Seconds of the login flood, and of the same load without it just before.
    #[arg(long, default_value_t = 15)]
    flood_seconds: u64,
    /// Concurrent clients of the login flood.
    #[arg(long, default_value_t = 64)]
    flood_clients: usize,
    /// Each login of the flood names its own client address in
    /// `x-forwarded-for`; the auth-service must trust 127.0.0.1 as a proxy
    /// (NINAIVALAIGAL_TRUSTED_PROXIES), or the flood is throttled per address.
    #[arg(long)]
    forwarded_for: bool,
    /// Rate of each auth-service probe (WhoAmI, GetJwks), per second.
    #[arg(long, default_value_t = 50.0)]
    probe_rate: f64,
    /// Milliseconds a closed-loop client waits after being refused
    /// (UNAVAILABLE, RESOURCE_EXHAUSTED), plus as much jitter: the
    /// "retry with backoff" the server asks for.
    #[arg(long, default_value_t = 10)]
    backoff_ms: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/overload.json")]
    json: PathBuf,
    /// Stop after the ramp (step 1): throughput and latency of Recall and
    /// Remember, each on its own, at every level, then the capacity; for
    /// comparing deployments (deploy/citus/figures.sh), not shedding.
    #[arg(long)]
    ramp_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rpc {
    Recall,
    Remember,
    WhoAmI,
    GetJwks,
    Login,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Recall => "Recall",
            Rpc::Remember => "Remember",
            Rpc::WhoAmI => "WhoAmI",
            Rpc::GetJwks => "GetJwks",
            Rpc::Login => "Login",
        }
    }
}

/// One answered call.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When it was due (open loop) or sent (closed loop), since the run began.
    at: Duration,
    rpc: Rpc,
    code: Code,
    latency: Duration,
}

/// The status classes the report counts.
fn class(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Unavailable => "UNAVAILABLE",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        _ => "other",
    }
}

const CLASSES: [&str; 5] = [
    "OK",
    "UNAVAILABLE",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
    "other",
];

/// A user of the load, with its token and context.
#[derive(Clone)]
struct LoadUser {
    email: String,
    token: String,
    context: String,
}

/// What every load task shares.
struct Load {
    memory: Vec<Channel>,
    users: Vec<LoadUser>,
    /// Statuses of class "other", with their messages, for the report.
    others: mpsc::UnboundedSender<String>,
    t0: Instant,
    remembered: AtomicU64,
}

impl Load {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// One call of the mixed load (90% Recall newest 20, 10% Remember) on
    /// connection `slot`; returns its RPC and status.
    async fn mixed_call(&self, slot: usize) -> (Rpc, Code) {
        let (user, recall) = {
            let mut rng = rand::rng();
            (
                &self.users[rng.random_range(0..self.users.len())],
                rng.random_bool(0.9),
            )
        };
        let mut client = MemoryServiceClient::new(self.memory[slot % self.memory.len()].clone());
        let result = if recall {
            let mut request = bearer(
                RecallRequest {
                    context: user.context.clone(),
                    page_size: 20,
                    ..Default::default()
                },
                &user.token,
            );
            request.set_timeout(CALL_DEADLINE);
            client.recall(request).await.map(drop)
        } else {
            let n = self.remembered.fetch_add(1, Ordering::Relaxed);
            let mut request = bearer(memory_request(&user.context, n), &user.token);
            request.set_timeout(CALL_DEADLINE);
            client.remember(request).await.map(drop)
        };
        let rpc = if recall { Rpc::Recall } else { Rpc::Remember };
        match result {
            Ok(()) => (rpc, Code::Ok),
            Err(status) => {
                if class(status.code()) == "other" {
                    let _ = self.others.send(format!(
                        "{}: {:?} {}",
                        rpc.name(),
                        status.code(),
                        status.message()
                    ));
                }
                (rpc, status.code())
            }
        }
    }
}

fn memory_request(context: &str, n: u64) -> RememberRequest {
    let data = json!({
        "text": format!("overload memory {n}: what the service remembered under load"),
        "n": n,
        "tags": ["overload", "load-test"],
    });
    RememberRequest {
        context: context.to_owned(),
        r#type: "note".into(),
        data: Some(ninaivalaigal::json::json_to_struct(data).expect("a JSON object")),
        request_id: String::new(),
    }
}

async fn connect(url: &str) -> Result<Channel> {
    Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// Closed loop: `clients` tasks each call back to back for `seconds`.
async fn closed_loop(
    load: &Arc<Load>,
    clients: usize,
    length: Duration,
    backoff: Duration,
) -> Vec<Sample> {
    let end = Instant::now() + length;
    let mut tasks = JoinSet::new();
    for slot in 0..clients {
        let load = load.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < end {
                let at = load.now();
                let start = Instant::now();
                let (rpc, code) = load.mixed_call(slot).await;
                samples.push(Sample {
                    at,
                    rpc,
                    code,
                    latency: start.elapsed(),
                });
                if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
                    let jitter = rand::rng().random_range(0..=backoff.as_micros() as u64);
                    tokio::time::sleep(backoff + Duration::from_micros(jitter)).await;
                }
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(samples) = tasks.join_next().await {
        all.extend(samples.expect("a load task panicked"));
    }
    all
}

/// Open loop: calls due at a fixed `rate` for `length`, whether or not the
/// earlier ones were answered; latency counts from when a call was due, so a
/// stall is not hidden (no coordinated omission). `call` makes one call.
async fn open_loop<F, Fut>(t0: Instant, rate: f64, length: Duration, call: F) -> Vec<Sample>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Rpc, Code)> + Send + 'static,
{
    let call = Arc::new(call);
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Bounds what the generator itself holds when the service stalls.
    let outstanding = Arc::new(Semaphore::new(2048));
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= length {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        while sent < due {
            let due_at = start + Duration::from_secs_f64(sent as f64 / rate);
            let permit = outstanding
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            let call = call.clone();
            let tx = tx.clone();
            let n = sent;
            tokio::spawn(async move {
                let (rpc, code) = call(n).await;
                let _ = tx.send(Sample {
                    at: due_at - t0,
                    rpc,
                    code,
                    latency: due_at.elapsed(),
                });
                drop(permit);
            });
            sent += 1;
        }
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Some(sample) = rx.recv().await {
        samples.push(sample);
    }
    samples
}

/// The mixed memory load at `rate` per second, open loop.
async fn mixed_open_loop(load: &Arc<Load>, rate: f64, length: Duration) -> Vec<Sample> {
    let l = load.clone();
    let connections = load.memory.len();
    open_loop(load.t0, rate, length, move |n| {
        let l = l.clone();
        async move { l.mixed_call(n as usize % connections).await }
    })
    .await
}

/// WhoAmI and GetJwks, each at `rate` per second, open loop.
async fn auth_probes(
    t0: Instant,
    channel: Channel,
    token: String,
    rate: f64,
    length: Duration,
) -> Vec<Sample> {
    open_loop(t0, rate * 2.0, length, move |n| {
        let mut client = AuthServiceClient::new(channel.clone());
        let token = token.clone();
        async move {
            if n % 2 == 0 {
                let mut request = bearer(WhoAmIRequest {}, &token);
                request.set_timeout(CALL_DEADLINE);
                let code = client
                    .who_am_i(request)
                    .await
                    .map_or_else(|s| s.code(), |_| Code::Ok);
                (Rpc::WhoAmI, code)
            } else {
                let mut request = Request::new(GetJwksRequest {});
                request.set_timeout(CALL_DEADLINE);
                let code = client
                    .get_jwks(request)
                    .await
                    .map_or_else(|s| s.code(), |_| Code::Ok);
                (Rpc::GetJwks, code)
            }
        }
    })
    .await
}

/// Flood of logins: `clients` tasks back to back; half with the right
/// password of `accounts` (registered for the flood alone), a quarter with
/// a wrong one for `victim` (throttled per account after a few: the
/// refusal is cheap), a quarter for unknown emails (a bcrypt all the same).
struct Flood {
    channels: Vec<Channel>,
    accounts: Vec<String>,
    victim: String,
    prefix: String,
    clients: usize,
    length: Duration,
    forwarded_for: bool,
}

async fn login_flood(t0: Instant, flood: Flood) -> Vec<Sample> {
    let Flood {
        channels,
        accounts,
        victim,
        prefix,
        clients,
        length,
        forwarded_for,
    } = flood;
    let end = Instant::now() + length;
    let attempt = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for slot in 0..clients {
        let channel = channels[slot % channels.len()].clone();
        let accounts = accounts.clone();
        let victim = victim.clone();
        let prefix = prefix.clone();
        let attempt = attempt.clone();
        tasks.spawn(async move {
            let mut client = AuthServiceClient::new(channel);
            let mut samples = Vec::new();
            while Instant::now() < end {
                let n = attempt.fetch_add(1, Ordering::Relaxed);
                let (email, password) = match n % 4 {
                    0 | 2 => (
                        accounts[(n / 4) as usize % accounts.len()].clone(),
                        TEST_PASSWORD.to_owned(),
                    ),
                    1 => (victim.clone(), "not the password at all".to_owned()),
                    _ => (
                        format!("{prefix}-nobody-{n}@overload.example"),
                        "not the password at all".to_owned(),
                    ),
                };
                let mut request = Request::new(LoginRequest { email, password });
                request.set_timeout(LOGIN_DEADLINE);
                if forwarded_for {
                    // 10.0.0.0/8, one address per attempt.
                    let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                    request.metadata_mut().insert(
                        "x-forwarded-for",
                        MetadataValue::try_from(address).expect("ASCII"),
                    );
                }
                let at = t0.elapsed();
                let start = Instant::now();
                let code = client
                    .login(request)
                    .await
                    .map_or_else(|s| s.code(), |_| Code::Ok);
                samples.push(Sample {
                    at,
                    rpc: Rpc::Login,
                    code,
                    latency: start.elapsed(),
                });
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(samples) = tasks.join_next().await {
        all.extend(samples.expect("a flood task panicked"));
    }
    all
}

/// Latency percentiles of the OK calls among `samples` of `rpcs`.
struct Percentiles {
    count: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentiles(samples: &[Sample], rpcs: &[Rpc]) -> Option<Percentiles> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
    for sample in samples
        .iter()
        .filter(|s| s.code == Code::Ok && rpcs.contains(&s.rpc))
    {
        histogram.saturating_record((sample.latency.as_micros() as u64).max(1));
    }
    if histogram.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Percentiles {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p90_ms: ms(histogram.value_at_quantile(0.90)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
    })
}

fn percentiles_json(p: &Option<Percentiles>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => json!({
            "count": p.count, "p50_ms": round(p.p50_ms), "p90_ms": round(p.p90_ms),
            "p99_ms": round(p.p99_ms), "max_ms": round(p.max_ms),
        }),
    }
}

fn percentiles_text(p: &Option<Percentiles>) -> String {
    match p {
        None => "no OK calls".into(),
        Some(p) => format!(
            "n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
            p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
        ),
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Calls per status class.
fn statuses(samples: &[Sample], rpcs: &[Rpc]) -> BTreeMap<&'static str, u64> {
    let mut counts: BTreeMap<&'static str, u64> = CLASSES.iter().map(|c| (*c, 0)).collect();
    for sample in samples.iter().filter(|s| rpcs.contains(&s.rpc)) {
        *counts.entry(class(sample.code)).or_default() += 1;
    }
    counts
}

/// Login statuses, by their own names (UNAUTHENTICATED is expected there).
fn login_statuses(samples: &[Sample]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.rpc == Rpc::Login) {
        *counts.entry(format!("{:?}", sample.code)).or_default() += 1;
    }
    counts
}

fn ok_per_second(samples: &[Sample], length: Duration) -> f64 {
    samples.iter().filter(|s| s.code == Code::Ok).count() as f64 / length.as_secs_f64()
}

const MEMORY_RPCS: &[Rpc] = &[Rpc::Recall, Rpc::Remember];

/// One health check of each service, every 200 ms, on connections of its
/// own; each not-SERVING answer or failed check is kept.
struct HealthLog {
    checks: u64,
    failures: Vec<(Duration, &'static str, String)>,
}

async fn watch_health(
    t0: Instant,
    targets: Vec<(&'static str, Channel)>,
    mut stop: watch::Receiver<bool>,
) -> HealthLog {
    let mut log = HealthLog {
        checks: 0,
        failures: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return log,
        }
        for (name, channel) in &targets {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let mut request = Request::new(HealthCheckRequest {
                service: String::new(),
            });
            request.set_timeout(Duration::from_secs(1));
            log.checks += 1;
            match client.check(request).await {
                Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => {}
                Ok(response) => log.failures.push((
                    t0.elapsed(),
                    name,
                    format!("status {}", response.get_ref().status),
                )),
                Err(status) => log.failures.push((t0.elapsed(), name, format!("{status}"))),
            }
        }
    }
}

/// A service's resident memory, read from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
struct Rss {
    rss_kib: u64,
    hwm_kib: u64,
}

fn read_rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Samples every 250 ms: (since t0, service, rss).
async fn watch_memory(
    t0: Instant,
    pids: Vec<(&'static str, u32)>,
    mut stop: watch::Receiver<bool>,
) -> Vec<(Duration, &'static str, Rss)> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        for (name, pid) in &pids {
            if let Some(rss) = read_rss(*pid) {
                samples.push((t0.elapsed(), *name, rss));
            }
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return samples,
        }
    }
}

/// A phase of the run and its time span.
struct Phase {
    name: &'static str,
    from: Duration,
    to: Duration,
}

fn pid_of(run_dir: &std::path::Path, name: &str) -> Result<u32> {
    let file = run_dir.join(format!("{name}.pid"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {} (is the pair up?)", file.display()))?;
    let pid = text.trim().parse().context("a pid")?;
    if read_rss(pid).is_none() {
        bail!("{name} (pid {pid} from {}) is not running", file.display());
    }
    Ok(pid)
}

/// Registers `email`; `from` names the client address in `x-forwarded-for`
/// (registrations are throttled per address, 10 in a burst by default).
async fn register(auth: &Channel, email: &str, from: Option<String>) -> Result<(String, String)> {
    let mut request = Request::new(RegisterRequest {
        email: email.to_owned(),
        password: TEST_PASSWORD.to_owned(),
        name: "Overload test".into(),
    });
    if let Some(from) = from {
        request
            .metadata_mut()
            .insert("x-forwarded-for", MetadataValue::try_from(from)?);
    }
    let response = AuthServiceClient::new(auth.clone())
        .register(request)
        .await
        .with_context(|| format!("register {email}"))?
        .into_inner();
    let user = response.user.context("Register returns the user")?;
    let session = response.session.context("Register returns a session")?;
    Ok((user.email, session.access_token))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        let state = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
            });
        state.join("ninaivalaigal/run")
    });
    let pids = vec![
        ("memory-service", pid_of(&run_dir, "memory-service")?),
        ("auth-service", pid_of(&run_dir, "auth-service")?),
    ];
    let prefix = args.email_prefix.clone().unwrap_or_else(|| {
        format!(
            "overload-{}-{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            std::process::id()
        )
    });
    println!("load generator: {cpus} CPUs seen, users {prefix}-*@overload.example");

    // Set-up: users, contexts, memories.
    let auth = connect(&args.auth_url).await?;
    let mut memory = Vec::new();
    for _ in 0..args.connections.max(1) {
        memory.push(connect(&args.memory_url).await?);
    }
    let mut users = Vec::new();
    for i in 0..args.users.max(1) {
        let (email, token) =
            register(&auth, &format!("{prefix}-{i}@overload.example"), None).await?;
        let context = format!("overload-{i}");
        MemoryServiceClient::new(memory[0].clone())
            .create_context(bearer(
                CreateContextRequest {
                    name: context.clone(),
                    description: "written by tests/examples/overload.rs".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .with_context(|| format!("create context {context}"))?;
        users.push(LoadUser {
            email,
            token,
            context,
        });
    }
    let mut seeding = JoinSet::new();
    for (i, user) in users.iter().enumerate() {
        let channel = memory[i % memory.len()].clone();
        let user = user.clone();
        seeding.spawn(async move {
            let mut client = MemoryServiceClient::new(channel);
            for n in 0..MEMORIES_PER_USER {
                client
                    .remember(bearer(memory_request(&user.context, n as u64), &user.token))
                    .await
                    .with_context(|| format!("seed memory {n} of {}", user.email))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(seeded) = seeding.join_next().await {
        seeded??;
    }
    // Concurrent logins of one account hold its throttle cells while they
    // wait for bcrypt (5 by default), so the right passwords are spread
    // over enough accounts that each has at most 2 in flight.
    let login_accounts = if args.forwarded_for {
        args.flood_clients.div_ceil(4).max(1)
    } else {
        2
    };
    let mut flood_accounts = Vec::new();
    for i in 0..login_accounts {
        let email = format!("{prefix}-login-{i}@overload.example");
        let from = args
            .forwarded_for
            .then(|| format!("10.255.{}.{}", i / 256, i % 256));
        flood_accounts.push(register(&auth, &email, from).await?.0);
    }
    let victim = register(&auth, &format!("{prefix}-victim@overload.example"), None)
        .await?
        .0;
    println!(
        "set up {} users, each with a context of {MEMORIES_PER_USER} memories, and {} accounts for the login flood",
        users.len(),
        flood_accounts.len() + 1
    );

    let t0 = Instant::now();
    let (others, mut others_rx) = mpsc::unbounded_channel();
    let load = Arc::new(Load {
        memory,
        users: users.clone(),
        others,
        t0,
        remembered: AtomicU64::new(1_000_000),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let health = tokio::spawn(watch_health(
        t0,
        vec![
            ("memory-service", connect(&args.memory_url).await?),
            ("auth-service", connect(&args.auth_url).await?),
        ],
        stop_rx.clone(),
    ));
    let rss = tokio::spawn(watch_memory(t0, pids.clone(), stop_rx));
    let mut phases = Vec::new();
    let backoff = Duration::from_millis(args.backoff_ms);

    // Warm-up (connections, caches, the services' pools).
    closed_loop(&load, 4, Duration::from_secs(2), backoff).await;

    // 1. The ramp.
    let from = t0.elapsed();
    let ramp_length = Duration::from_secs(args.ramp_seconds);
    let mut ramp = Vec::new();
    let mut ramp_by_rpc = Vec::new();
    let mut best = 0.0f64;
    let mut flat = 0;
    for &clients in RAMP_LEVELS.iter().filter(|&&c| c <= args.max_in_flight) {
        let samples = closed_loop(&load, clients, ramp_length, backoff).await;
        let throughput = ok_per_second(&samples, ramp_length);
        let p = percentiles(&samples, MEMORY_RPCS);
        let counts = statuses(&samples, MEMORY_RPCS);
        println!(
            "ramp {clients:>4} clients: {throughput:>7.0} OK/s  {}  {counts:?}",
            percentiles_text(&p)
        );
        let by_rpc: Vec<_> = MEMORY_RPCS
            .iter()
            .map(|&rpc| {
                let of_rpc: Vec<Sample> =
                    samples.iter().filter(|s| s.rpc == rpc).copied().collect();
                (
                    rpc,
                    ok_per_second(&of_rpc, ramp_length),
                    percentiles(&of_rpc, &[rpc]),
                )
            })
            .collect();
        if args.ramp_only {
            for (rpc, throughput, p) in &by_rpc {
                println!(
                    "     {:>8}: {throughput:>7.0} OK/s  {}",
                    rpc.name(),
                    percentiles_text(p)
                );
            }
        }
        ramp_by_rpc.push(by_rpc);
        ramp.push((clients, throughput, p, counts));
        if throughput > best * GROWTH {
            flat = 0;
        } else {
            flat += 1;
        }
        best = best.max(throughput);
        if flat == 2 {
            break;
        }
    }
    phases.push(Phase {
        name: "ramp",
        from,
        to: t0.elapsed(),
    });
    // Capacity: the best throughput; the concurrency that reached it is the
    // smallest level within 5% of it (a larger one only queues).
    let capacity = best;
    let capacity_clients = ramp
        .iter()
        .find(|(_, throughput, _, _)| *throughput >= capacity / GROWTH)
        .map_or(1, |(clients, _, _, _)| *clients);
    let half_rate = capacity / 2.0;
    println!(
        "capacity: {capacity:.0} req/s, reached at {capacity_clients} clients; normal load: {half_rate:.0} req/s open loop"
    );
    if args.ramp_only {
        let _ = stop_tx.send(true);
        let report = json!({
            "memory_url": args.memory_url,
            "ramp": ramp.iter().zip(&ramp_by_rpc).map(|((c, t, p, s), by_rpc)| json!({
                "clients": c, "ok_per_second": round(*t), "latency": percentiles_json(p), "statuses": s,
                "by_rpc": by_rpc.iter().map(|(rpc, t, p)| json!({
                    "rpc": rpc.name(), "ok_per_second": round(*t), "latency": percentiles_json(p),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "capacity": { "requests_per_second": round(capacity), "clients": capacity_clients },
        });
        if let Some(parent) = args.json.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
        println!("JSON report: {}", args.json.display());
        return Ok(());
    }

    // Baseline: half of capacity, open loop, with the auth probes.
    let from = t0.elapsed();
    let baseline_length = Duration::from_secs(args.baseline_seconds);
    let probe_channel = connect(&args.auth_url).await?;
    let (baseline, baseline_probes) = tokio::join!(
        mixed_open_loop(&load, half_rate, baseline_length),
        auth_probes(
            t0,
            probe_channel.clone(),
            users[0].token.clone(),
            args.probe_rate,
            baseline_length
        )
    );
    phases.push(Phase {
        name: "baseline",
        from,
        to: t0.elapsed(),
    });
    let baseline_p = percentiles(&baseline, MEMORY_RPCS);
    println!(
        "baseline at {half_rate:.0} req/s: {}",
        percentiles_text(&baseline_p)
    );

    // 2. Overload.
    let overload_clients = (3 * capacity_clients).max(args.max_in_flight * 3 / 2);
    let overload_length = Duration::from_secs(args.overload_seconds);
    let from = t0.elapsed();
    let overload = closed_loop(&load, overload_clients, overload_length, backoff).await;
    phases.push(Phase {
        name: "overload",
        from,
        to: t0.elapsed(),
    });
    let overload_counts = statuses(&overload, MEMORY_RPCS);
    let overload_p = percentiles(&overload, MEMORY_RPCS);
    let refused_p = {
        let refused: Vec<Sample> = overload
            .iter()
            .filter(|s| s.code == Code::Unavailable)
            .map(|s| Sample {
                code: Code::Ok,
                ..*s
            })
            .collect();
        percentiles(&refused, MEMORY_RPCS)
    };
    println!(
        "overload {overload_clients} clients for {}s: {:.0} OK/s {overload_counts:?}\n  OK latency {}\n  UNAVAILABLE latency {}",
        args.overload_seconds,
        ok_per_second(&overload, overload_length),
        percentiles_text(&overload_p),
        percentiles_text(&refused_p)
    );

    // 3. Recovery: half of capacity again, one-second windows.
    let from = t0.elapsed();
    let recovery_length = Duration::from_secs(args.recovery_seconds);
    let recovery = mixed_open_loop(&load, half_rate, recovery_length).await;
    phases.push(Phase {
        name: "recovery",
        from,
        to: t0.elapsed(),
    });
    let baseline_p99 = baseline_p.as_ref().map_or(f64::NAN, |p| p.p99_ms);
    let bound = baseline_p99 * RECOVERED_FACTOR;
    let windows: Vec<Option<f64>> = (0..args.recovery_seconds)
        .map(|s| {
            let lo = from + Duration::from_secs(s);
            let hi = lo + Duration::from_secs(1);
            let window: Vec<Sample> = recovery
                .iter()
                .filter(|x| x.at >= lo && x.at < hi)
                .copied()
                .collect();
            percentiles(&window, MEMORY_RPCS).map(|p| p.p99_ms)
        })
        .collect();
    let recovered_after = (0..windows.len()).find(|&i| {
        windows.len() >= i + RECOVERED_WINDOWS
            && windows[i..i + RECOVERED_WINDOWS]
                .iter()
                .all(|p| p.is_some_and(|p| p <= bound))
    });
    let recovery_counts = statuses(&recovery, MEMORY_RPCS);
    println!(
        "recovery: p99 per second {:?} (bound {bound:.1} ms); back within bound after {}  {recovery_counts:?}",
        windows
            .iter()
            .map(|p| p.map_or("-".into(), |p| format!("{p:.1}")))
            .collect::<Vec<_>>(),
        recovered_after.map_or("never (within the run)".into(), |s| format!("{s} s"))
    );

    // 4. Login flood against half-capacity load, and the same without it.
    let from = t0.elapsed();
    let flood_length = Duration::from_secs(args.flood_seconds);
    let (no_flood, no_flood_probes) = tokio::join!(
        mixed_open_loop(&load, half_rate, flood_length),
        auth_probes(
            t0,
            probe_channel.clone(),
            users[0].token.clone(),
            args.probe_rate,
            flood_length
        )
    );
    phases.push(Phase {
        name: "no_flood",
        from,
        to: t0.elapsed(),
    });
    let mut flood_channels = Vec::new();
    for _ in 0..4 {
        flood_channels.push(connect(&args.auth_url).await?);
    }
    let from = t0.elapsed();
    let (flood_load, flood_probes, flood) = tokio::join!(
        mixed_open_loop(&load, half_rate, flood_length),
        auth_probes(
            t0,
            probe_channel.clone(),
            users[0].token.clone(),
            args.probe_rate,
            flood_length
        ),
        login_flood(
            t0,
            Flood {
                channels: flood_channels,
                accounts: flood_accounts,
                victim,
                prefix: prefix.clone(),
                clients: args.flood_clients,
                length: flood_length,
                forwarded_for: args.forwarded_for,
            }
        )
    );
    phases.push(Phase {
        name: "login_flood",
        from,
        to: t0.elapsed(),
    });

    let _ = stop_tx.send(true);
    let health = health.await?;
    let rss = rss.await?;
    let hwm: Vec<(&str, Option<Rss>)> = pids.iter().map(|(n, p)| (*n, read_rss(*p))).collect();
    let mut others = Vec::new();
    while let Ok(what) = others_rx.try_recv() {
        others.push(what);
    }

    // Report.
    let compare = |rpc: Rpc, before: &[Sample], during: &[Sample]| {
        let b = percentiles(before, &[rpc]);
        let d = percentiles(during, &[rpc]);
        let rise = match (&b, &d) {
            (Some(b), Some(d)) => Some((d.p99_ms / b.p99_ms - 1.0) * 100.0),
            _ => None,
        };
        (rpc, b, d, rise)
    };
    let comparisons = [
        compare(Rpc::Recall, &no_flood, &flood_load),
        compare(Rpc::Remember, &no_flood, &flood_load),
        compare(Rpc::WhoAmI, &no_flood_probes, &flood_probes),
        compare(Rpc::GetJwks, &no_flood_probes, &flood_probes),
    ];
    let flood_logins = login_statuses(&flood);
    let login_p = percentiles(&flood, &[Rpc::Login]);

    println!("\n==== summary ====");
    println!("machine: {cpus} CPUs (services, PostgreSQL and this generator share them)");
    println!(
        "1. capacity: {capacity:.0} req/s (90% Recall newest 20, 10% Remember), reached at {capacity_clients} concurrent clients"
    );
    println!(
        "2. overload: {overload_clients} clients for {} s (memory-service in-flight limit {}): {overload_counts:?}",
        args.overload_seconds, args.max_in_flight
    );
    println!(
        "   OK latency {}; UNAVAILABLE answered in {}",
        percentiles_text(&overload_p),
        percentiles_text(&refused_p)
    );
    for phase in &phases {
        let failures = health
            .failures
            .iter()
            .filter(|(at, _, _)| *at >= phase.from && *at < phase.to)
            .count();
        let peaks: Vec<String> = pids
            .iter()
            .map(|(name, _)| {
                let peak = rss
                    .iter()
                    .filter(|(at, n, _)| n == name && *at >= phase.from && *at < phase.to)
                    .map(|(_, _, r)| r.rss_kib)
                    .max()
                    .unwrap_or(0);
                format!("{name} {:.1} MiB", peak as f64 / 1024.0)
            })
            .collect();
        println!(
            "   {:<12} health failures {failures}, peak RSS: {}",
            phase.name,
            peaks.join(", ")
        );
    }
    for (name, r) in &hwm {
        if let Some(r) = r {
            println!(
                "   {name}: VmHWM {:.1} MiB (peak since start), VmRSS now {:.1} MiB",
                r.hwm_kib as f64 / 1024.0,
                r.rss_kib as f64 / 1024.0
            );
        }
    }
    println!(
        "   health: {} checks, {} not SERVING",
        health.checks,
        health.failures.len()
    );
    for (at, name, what) in health.failures.iter().take(5) {
        println!("     {:.1}s {name}: {what}", at.as_secs_f64());
    }
    println!(
        "3. recovery: p99 before the overload {baseline_p99:.1} ms; back within {RECOVERED_FACTOR}x ({bound:.1} ms) after {}",
        recovered_after.map_or("more than the run".into(), |s| format!("{s} s"))
    );
    println!(
        "4. login flood: {} clients, {} logins ({:.1}/s OK), statuses {flood_logins:?}; login {}",
        args.flood_clients,
        flood.len(),
        ok_per_second(&flood, flood_length),
        percentiles_text(&login_p)
    );
    for (rpc, b, d, rise) in &comparisons {
        println!(
            "   {:<8} p99 without flood {:>7.1} ms, with flood {:>7.1} ms: {}",
            rpc.name(),
            b.as_ref().map_or(f64::NAN, |p| p.p99_ms),
            d.as_ref().map_or(f64::NAN, |p| p.p99_ms),
            rise.map_or("n/a".into(), |r| format!(
                "{r:+.0}% ({})",
                if r <= 20.0 {
                    "within 20%"
                } else {
                    "MORE than 20%"
                }
            ))
        );
    }
    let other_total: u64 = [&overload, &recovery, &baseline, &no_flood, &flood_load]
        .iter()
        .map(|s| statuses(s, MEMORY_RPCS)["other"])
        .sum::<u64>()
        + [&baseline_probes, &no_flood_probes, &flood_probes]
            .iter()
            .map(|s| statuses(s, &[Rpc::WhoAmI, Rpc::GetJwks])["other"])
            .sum::<u64>();
    println!("statuses of class \"other\" in the whole run: {other_total}");
    for what in others.iter().take(10) {
        println!("   {what}");
    }

    let report = json!({
        "machine": { "cpus": cpus },
        "settings": {
            "memory_max_in_flight": args.max_in_flight,
            "connections": args.connections,
            "users": args.users,
            "memories_per_user": MEMORIES_PER_USER,
            "call_deadline_ms": CALL_DEADLINE.as_millis() as u64,
            "backoff_ms": args.backoff_ms,
            "forwarded_for": args.forwarded_for,
        },
        "ramp": ramp.iter().map(|(c, t, p, s)| json!({
            "clients": c, "ok_per_second": round(*t), "latency": percentiles_json(p), "statuses": s,
        })).collect::<Vec<_>>(),
        "capacity": { "requests_per_second": round(capacity), "clients": capacity_clients },
        "baseline": {
            "rate": round(half_rate),
            "memory": percentiles_json(&baseline_p),
            "statuses": statuses(&baseline, MEMORY_RPCS),
        },
        "overload": {
            "clients": overload_clients,
            "seconds": args.overload_seconds,
            "ok_per_second": round(ok_per_second(&overload, overload_length)),
            "statuses": overload_counts,
            "ok_latency": percentiles_json(&overload_p),
            "unavailable_latency": percentiles_json(&refused_p),
        },
        "recovery": {
            "baseline_p99_ms": round(baseline_p99),
            "bound_ms": round(bound),
            "window_p99_ms": windows.iter().map(|p| p.map(round)).collect::<Vec<_>>(),
            "recovered_after_seconds": recovered_after,
            "statuses": recovery_counts,
        },
        "login_flood": {
            "clients": args.flood_clients,
            "logins": flood.len(),
            "ok_logins_per_second": round(ok_per_second(&flood, flood_length)),
            "login_statuses": flood_logins,
            "login_latency": percentiles_json(&login_p),
            "p99": comparisons.iter().map(|(rpc, b, d, rise)| json!({
                "rpc": rpc.name(),
                "without_flood": percentiles_json(b),
                "with_flood": percentiles_json(d),
                "rise_percent": rise.map(round),
            })).collect::<Vec<_>>(),
            "load_statuses": statuses(&flood_load, MEMORY_RPCS),
        },
        "health": {
            "checks": health.checks,
            "not_serving": health.failures.iter().map(|(at, n, w)| json!({
                "at_s": round(at.as_secs_f64()), "service": n, "what": w,
            })).collect::<Vec<_>>(),
        },
        "memory": phases.iter().map(|phase| {
            let per: serde_json::Map<String, Value> = pids.iter().map(|(name, _)| {
                let peak = rss.iter()
                    .filter(|(at, n, _)| n == name && *at >= phase.from && *at < phase.to)
                    .map(|(_, _, r)| r.rss_kib).max().unwrap_or(0);
                ((*name).to_owned(), json!(round(peak as f64 / 1024.0)))
            }).collect();
            json!({ "phase": phase.name, "peak_rss_mib": per })
        }).collect::<Vec<_>>(),
        "vm_hwm_mib": hwm.iter().map(|(n, r)| ((*n).to_owned(), json!(r.map(|r| round(r.hwm_kib as f64 / 1024.0))))).collect::<serde_json::Map<_, _>>(),
        "other_statuses": { "count": other_total, "examples": others.iter().take(10).collect::<Vec<_>>() },
    });
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("JSON report: {}", args.json.display());
    Ok(())
}
