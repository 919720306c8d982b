//! The accounts a run acts as, and their data: registered on the first run
//! with a prefix (logged in to on later ones), each with one context filled
//! up to the wanted number of memories.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ninaivalaigal::{
    auth_v1::{
        LoginRequest, RegisterRequest, RegisterResponse, auth_service_client::AuthServiceClient,
    },
    memory_v1::{
        CreateContextRequest, GetContextRequest, RememberManyRequest, RememberRequest,
        memory_service_client::MemoryServiceClient,
    },
};
use ninaivalaigal_tests::bearer;
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};

use crate::scenario::connect;

/// The password of every benchmark account (they hold nothing of value).
pub const PASSWORD: &str = "em-bench password, not a secret";

/// The name of each account's context.
const CONTEXT: &str = "bench";

/// Memories per RememberMany while filling (the service's default limit).
const FILL_BATCH: i64 = 100;

/// How long set-up waits out the auth-service's registration throttle.
const THROTTLE_PATIENCE: Duration = Duration::from_secs(120);

/// Words the memories are made of; a text query asks for one of them.
const WORDS: [&str; 16] = [
    "postgres", "tokio", "index", "latency", "deploy", "schema", "token", "cache", "replica",
    "vacuum", "rollback", "cursor", "shard", "backup", "metric", "trace",
];

/// An account of the load.
#[derive(Clone)]
pub struct BenchUser {
    pub id: i64,
    pub email: String,
    pub access_token: String,
    pub context: String,
}

/// Tag of the memories set-up stores.
const SEED_TAG: &str = "em-bench-seed";
/// Tag of the memories the load stores, which `deploy/local/bench.sh`
/// deletes after each run, so that repeated runs stay within the quota.
pub const LOAD_TAG: &str = "em-bench-load";

/// The `n`th memory of a run: small JSON with three of [`WORDS`], tagged.
pub fn memory(context: &str, n: u64, tag: &str) -> RememberRequest {
    let word = |k: u64| WORDS[usize::try_from(k % WORDS.len() as u64).unwrap_or(0)];
    let data = json!({
        "text": format!("note {n}: {} {} and {}", word(n), word(n / 3 + 1), word(n / 7 + 2)),
        "n": n,
        "tags": [tag],
    });
    RememberRequest {
        context: context.to_owned(),
        r#type: "note".into(),
        data: Some(ninaivalaigal::json::json_to_struct(data).expect("a JSON object")),
        request_id: String::new(),
    }
}

/// The text query of call `n` of the recall-text scenario.
pub fn query_word(n: u64) -> &'static str {
    WORDS[usize::try_from(n % WORDS.len() as u64).unwrap_or(0)]
}

/// Where accounts are made.
pub struct Accounts {
    auth: Channel,
    memory: Channel,
    prefix: String,
}

impl Accounts {
    pub async fn new(auth_url: &str, memory_url: &str, prefix: &str) -> Result<Self> {
        Ok(Self {
            auth: connect(auth_url).await?,
            memory: connect(memory_url).await?,
            prefix: prefix.to_owned(),
        })
    }

    /// `count` accounts, each with its context holding at least
    /// `memories` memories.
    pub async fn prepare(&self, count: usize, memories: i64) -> Result<Vec<BenchUser>> {
        let mut users = Vec::with_capacity(count);
        for i in 0..count {
            let email = format!("{}-{i}@bench.example", self.prefix);
            let (id, access_token) = self.sign_in(&email).await?;
            let user = BenchUser {
                id,
                email,
                access_token,
                context: CONTEXT.to_owned(),
            };
            self.fill(&user, memories).await?;
            users.push(user);
        }
        Ok(users)
    }

    /// Logs in as `email`, registering it first when it does not exist
    /// (a login first: registrations are throttled per client address, and
    /// runs after the first need none); returns its id and an access token.
    async fn sign_in(&self, email: &str) -> Result<(i64, String)> {
        let mut auth = AuthServiceClient::new(self.auth.clone());
        let login = LoginRequest {
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
        };
        let (user, session) = match auth.login(login).await {
            Ok(response) => {
                let response = response.into_inner();
                (response.user, response.session)
            }
            Err(status) if status.code() == Code::Unauthenticated => {
                let response = self.register(&mut auth, email).await?;
                (response.user, response.session)
            }
            Err(status) => bail!("log in as {email}: {status}"),
        };
        let user = user.context("the auth-service returns the user")?;
        let session = session.context("the auth-service returns a session")?;
        Ok((user.id, session.access_token))
    }

    async fn register(
        &self,
        auth: &mut AuthServiceClient<Channel>,
        email: &str,
    ) -> Result<RegisterResponse> {
        let waited_since = tokio::time::Instant::now();
        loop {
            let registered = auth
                .register(RegisterRequest {
                    email: email.to_owned(),
                    password: PASSWORD.to_owned(),
                    name: "em-bench".into(),
                })
                .await;
            match registered {
                Ok(response) => return Ok(response.into_inner()),
                // Registrations are throttled per client address.
                Err(status)
                    if status.code() == Code::ResourceExhausted
                        && waited_since.elapsed() < THROTTLE_PATIENCE =>
                {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(status) => bail!("register {email}: {status}"),
            }
        }
    }

    /// Creates the user's context if needed and tops it up to `memories`.
    async fn fill(&self, user: &BenchUser, memories: i64) -> Result<()> {
        let mut client = MemoryServiceClient::new(self.memory.clone());
        let created = client
            .create_context(bearer(
                CreateContextRequest {
                    name: user.context.clone(),
                    description: "em-bench load".into(),
                    ..Default::default()
                },
                &user.access_token,
            ))
            .await;
        match created {
            Ok(_) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => bail!("create context for {}: {status}", user.email),
        }
        let held = client
            .get_context(bearer(
                GetContextRequest {
                    name: user.context.clone(),
                },
                &user.access_token,
            ))
            .await
            .with_context(|| format!("get context of {}", user.email))?
            .into_inner()
            .context
            .map_or(0, |context| context.memory_count);
        let mut next = held;
        while next < memories {
            let batch = (next..memories.min(next + FILL_BATCH))
                .map(|n| memory(&user.context, n.unsigned_abs(), SEED_TAG))
                .collect();
            client
                .remember_many(bearer(
                    RememberManyRequest { memories: batch },
                    &user.access_token,
                ))
                .await
                .with_context(|| format!("fill the context of {}", user.email))?;
            next += FILL_BATCH;
        }
        Ok(())
    }
}

/// The accounts as `--setup-only` prints them: no tokens.
pub fn describe(users: &[BenchUser]) -> Value {
    json!({
        "users": users
            .iter()
            .map(|user| json!({"id": user.id, "email": user.email, "context": user.context}))
            .collect::<Vec<_>>(),
    })
}
