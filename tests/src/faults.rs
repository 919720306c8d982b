//! Tools of the fault tests: a steady stream of Remember calls from several
//! clients, each memory carrying a unique marker, and the checks that follow
//! a fault (which answers came back, how long they took, which memories are
//! in the database afterwards).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Nullable, Text},
};
use diesel_async::AsyncPgConnection;
use ninaivalaigal::memory_v1::{self as pb, memory_service_client::MemoryServiceClient};
use tokio::{task::JoinHandle, time::Instant};
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{bearer, memory::to_struct};

/// One Remember call of the traffic.
#[derive(Clone, Debug)]
pub struct Call {
    /// The unique marker in the memory's data (`{"marker": ...}`).
    pub marker: String,
    /// When the call was sent.
    pub started: Instant,
    /// How long until its answer (or until the client gave up).
    pub elapsed: Duration,
    /// The memory's id, or the status of the refusal.
    pub outcome: Result<i64, Code>,
    /// The refusal's message ("no answer within the deadline" when the
    /// client gave up waiting).
    pub message: String,
}

impl Call {
    /// True when the call failed in the client's transport (tonic reports
    /// a connection that broke under an unanswered call as UNKNOWN
    /// "transport error"): no answer came from the server at all.
    pub fn is_transport_error(&self) -> bool {
        self.outcome == Err(Code::Unknown) && self.message == "transport error"
    }
}

/// Remember calls from several clients, each on its own HTTP/2 connection,
/// one after the other until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Call>>>,
}

/// How long the client waits beyond the call's deadline before it calls the
/// call hung.
pub const HANG_MARGIN: Duration = Duration::from_millis(500);

/// A channel that connects lazily and reconnects after the server went away
/// (as a long-lived client would hold it).
pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

impl Traffic {
    /// Starts `clients` clients sending Remember calls into `context` of the
    /// user with `token` at `addr`, each call with `deadline` as its
    /// `grpc-timeout`. After a refusal a client pauses 20 ms.
    pub fn start(
        addr: SocketAddr,
        token: &str,
        context: &str,
        clients: usize,
        deadline: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let run = uuid::Uuid::new_v4().simple().to_string();
        let tasks = (0..clients)
            .map(|client| {
                let stop = stop.clone();
                let token = token.to_owned();
                let context = context.to_owned();
                let run = run[..8].to_owned();
                tokio::spawn(async move {
                    let mut memory = MemoryServiceClient::new(lazy_channel(addr));
                    let mut calls = Vec::new();
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let marker = format!("{run}-c{client}-{seq}");
                        let mut request = bearer(
                            pb::RememberRequest {
                                context: context.clone(),
                                r#type: "probe".into(),
                                data: Some(to_struct(serde_json::json!({ "marker": marker }))),
                                request_id: String::new(),
                            },
                            &token,
                        );
                        request.set_timeout(deadline);
                        let started = Instant::now();
                        let answer =
                            tokio::time::timeout(deadline + HANG_MARGIN, memory.remember(request))
                                .await;
                        let elapsed = started.elapsed();
                        let mut message = String::new();
                        let outcome = match answer {
                            Ok(Ok(response)) => Ok(response
                                .into_inner()
                                .memory
                                .expect("Remember returns the memory")
                                .id),
                            Ok(Err(status)) => {
                                let status = client_deadline_as_deadline_exceeded(status);
                                if !matches!(
                                    status.code(),
                                    Code::Unavailable | Code::DeadlineExceeded
                                ) {
                                    eprintln!("unexpected refusal: {status:?}");
                                }
                                message = status.message().to_owned();
                                Err(status.code())
                            }
                            // No answer at all, past the deadline: a hang.
                            Err(_) => {
                                message = "no answer within the deadline".into();
                                Err(Code::Unknown)
                            }
                        };
                        let failed = outcome.is_err();
                        calls.push(Call {
                            message,
                            marker,
                            started,
                            elapsed,
                            outcome,
                        });
                        if failed {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    calls
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops every client after its current call and returns all calls.
    pub async fn stop(self) -> Calls {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls = Vec::new();
        for task in self.tasks {
            calls.extend(task.await.expect("traffic client"));
        }
        calls.sort_by_key(|call| call.started);
        Calls(calls)
    }
}

/// tonic enforces a call's `grpc-timeout` on the client side too, and
/// reports it as CANCELLED "Timeout expired" when it fires before the
/// server's DEADLINE_EXCEEDED arrives; both mean the deadline passed.
pub fn client_deadline_as_deadline_exceeded(status: Status) -> Status {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        Status::deadline_exceeded("the client's deadline passed")
    } else {
        status
    }
}

/// Every call of a [`Traffic`], in the order they were sent.
#[derive(Debug)]
pub struct Calls(pub Vec<Call>);

impl Calls {
    /// Calls answered with success.
    pub fn acknowledged(&self) -> impl Iterator<Item = &Call> {
        self.0.iter().filter(|call| call.outcome.is_ok())
    }

    /// How many calls ended with each status (`OK` for success).
    pub fn by_code(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in &self.0 {
            let name = match call.outcome {
                Ok(_) => "OK".to_owned(),
                Err(code) => format!("{code:?}"),
            };
            *counts.entry(name).or_default() += 1;
        }
        counts
    }

    /// Takes out the calls that failed in the client's transport
    /// ([`Call::is_transport_error`]), for the caller to check they were in
    /// flight when a server process died.
    pub fn take_transport_errors(&mut self) -> Vec<Call> {
        let (errors, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(Call::is_transport_error);
        self.0 = rest;
        errors
    }

    /// The longest time any call took.
    pub fn slowest(&self) -> Duration {
        self.0
            .iter()
            .map(|call| call.elapsed)
            .max()
            .unwrap_or_default()
    }

    /// Panics unless every refusal is UNAVAILABLE or DEADLINE_EXCEEDED and
    /// every call was answered within `deadline` plus [`HANG_MARGIN`]
    /// (a call the client gave up on counts as UNKNOWN).
    pub fn assert_refusals_are_retryable(&self, deadline: Duration) {
        let bad: Vec<_> = self
            .0
            .iter()
            .filter(|call| {
                matches!(call.outcome, Err(code) if !matches!(code, Code::Unavailable | Code::DeadlineExceeded))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{} calls were refused with something other than UNAVAILABLE or DEADLINE_EXCEEDED (UNKNOWN = no answer in time): {:?}; all: {:?}",
            bad.len(),
            bad.iter().take(5).collect::<Vec<_>>(),
            self.by_code()
        );
        assert!(
            self.slowest() <= deadline + HANG_MARGIN,
            "a call took {:?}, past its deadline of {deadline:?}",
            self.slowest()
        );
    }
}

impl fmt::Display for Calls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {:?}, slowest {} ms",
            self.0.len(),
            self.by_code(),
            self.slowest().as_millis()
        )
    }
}

/// A memory row as the superuser sees it.
#[derive(Debug, QueryableByName)]
pub struct StoredMemory {
    /// Its id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its context.
    #[diesel(sql_type = BigInt)]
    pub context_id: i64,
    /// The marker in its data.
    #[diesel(sql_type = Nullable<Text>)]
    pub marker: Option<String>,
    /// The id of its context row, when that row exists (it must).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub context_row: Option<i64>,
}

/// Every memory in the database, read past row-level security (connect as
/// a superuser), with whether its context row exists.
pub async fn stored_memories(conn: &mut AsyncPgConnection) -> Vec<StoredMemory> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "SELECT m.id, m.context_id, m.data->>'marker' AS marker, c.id AS context_row
           FROM memories m
           LEFT JOIN recording_contexts c ON c.owner_id = m.owner_id AND c.id = m.context_id
          ORDER BY m.id",
    )
    .load(conn)
    .await
    .expect("read the memories")
}

/// What the database holds compared with what the clients were told.
#[derive(Debug)]
pub struct Reconciliation {
    /// Calls acknowledged.
    pub acknowledged: usize,
    /// Calls refused (or unanswered).
    pub refused: usize,
    /// Memories stored whose call was refused or unanswered: committed while
    /// the answer was lost on the way (a client must treat a refusal of
    /// Remember as "maybe stored").
    pub stored_but_refused: usize,
    /// Those calls.
    pub stored_but_refused_calls: Vec<usize>,
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acknowledged, {} refused, {} of the refused stored anyway",
            self.acknowledged, self.refused, self.stored_but_refused
        )
    }
}

/// Checks the database against the calls: every acknowledged memory is
/// stored exactly once under the id the client was told, no marker is
/// stored twice, every stored marker is one of the calls, and every memory's
/// context exists. Returns the figures.
pub fn reconcile(calls: &Calls, stored: &[StoredMemory]) -> Reconciliation {
    let mut by_marker: HashMap<&str, Vec<&StoredMemory>> = HashMap::new();
    for memory in stored {
        assert!(
            memory.context_row.is_some(),
            "memory {} references context {}, which does not exist",
            memory.id,
            memory.context_id
        );
        let marker = memory.marker.as_deref().expect("every probe has a marker");
        by_marker.entry(marker).or_default().push(memory);
    }
    let duplicated: Vec<_> = by_marker
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    let sent: HashSet<&str> = calls.0.iter().map(|call| call.marker.as_str()).collect();
    let unknown: Vec<_> = by_marker
        .keys()
        .filter(|marker| !sent.contains(*marker))
        .collect();
    assert!(unknown.is_empty(), "stored but never sent: {unknown:?}");
    let mut figures = Reconciliation {
        acknowledged: 0,
        refused: 0,
        stored_but_refused: 0,
        stored_but_refused_calls: Vec::new(),
    };
    for (index, call) in calls.0.iter().enumerate() {
        let rows = by_marker.get(call.marker.as_str());
        match call.outcome {
            Ok(id) => {
                figures.acknowledged += 1;
                let rows = rows.unwrap_or_else(|| {
                    panic!("acknowledged memory {id} ({}) is missing", call.marker)
                });
                assert_eq!(
                    rows[0].id, id,
                    "memory {} stored under another id",
                    call.marker
                );
            }
            Err(_) => {
                figures.refused += 1;
                if rows.is_some() {
                    figures.stored_but_refused += 1;
                    figures.stored_but_refused_calls.push(index);
                }
            }
        }
    }
    figures
}

/// Watches the health status of a service in the background, recording
/// each change.
pub struct HealthWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<(Instant, ServingStatus)>>,
}

impl HealthWatch {
    /// Starts asking `addr` for the server's status every 50 ms (a check
    /// that fails or takes over a second counts as UNKNOWN).
    pub fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut client = HealthClient::new(lazy_channel(addr));
                let mut changes: Vec<(Instant, ServingStatus)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let status = tokio::time::timeout(
                        Duration::from_secs(1),
                        client.check(HealthCheckRequest::default()),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map_or(ServingStatus::Unknown, |response| {
                        response.into_inner().status()
                    });
                    if changes.last().map(|(_, last)| *last) != Some(status) {
                        changes.push((Instant::now(), status));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                changes
            }
        });
        Self { stop, task }
    }

    /// Stops watching; returns the statuses seen, in order, with when each began.
    pub async fn stop(self) -> Vec<(Instant, ServingStatus)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("health watch")
    }
}

/// Waits (at most `within`) until the health service at `addr` reports
/// `wanted` for the whole server; returns how long that took.
pub async fn wait_for_health(
    addr: SocketAddr,
    wanted: ServingStatus,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    let mut client = HealthClient::new(lazy_channel(addr));
    crate::eventually(
        format_args!("{addr} to report {wanted:?}"),
        within,
        async || {
            let status = tokio::time::timeout(
                Duration::from_secs(1),
                client.check(HealthCheckRequest::default()),
            )
            .await
            .map(|answer| answer.map(|response| response.into_inner().status()));
            match status {
                Ok(Ok(status)) if status == wanted => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    start.elapsed()
}
