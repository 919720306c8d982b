//! The calls each scenario makes, as one account of the load.

use std::time::Duration;

use anyhow::{Context, Result};
use ninaivalaigal::{
    auth_v1::{LoginRequest, auth_service_client::AuthServiceClient},
    memory_v1::{RecallRequest, RememberRequest, memory_service_client::MemoryServiceClient},
};
use ninaivalaigal_tests::bearer;
use tonic::{
    Code, Request,
    transport::{Channel, Endpoint},
};

use crate::setup::{BenchUser, LOAD_TAG, memory, query_word};

/// What each call of a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Remember one small JSON memory into the account's context.
    Remember,
    /// Recall the newest 20 memories of the account's context.
    Recall,
    /// Recall the newest 20 memories matching a one-word text query.
    RecallText,
    /// 90% Recall (newest 20), 10% Remember.
    Mixed,
    /// Log in with the right password (bcrypt on every call).
    Login,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Remember => "remember",
            Scenario::Recall => "recall",
            Scenario::RecallText => "recall-text",
            Scenario::Mixed => "mixed",
            Scenario::Login => "login",
        }
    }
}

/// What every client of a run shares.
pub struct Load {
    scenario: Scenario,
    /// Connections to the memory-service (or, for logins, the auth-service).
    channels: Vec<Channel>,
    users: Vec<BenchUser>,
    password: String,
    deadline: Duration,
}

/// An HTTP/2 connection of its own (tonic multiplexes calls on it).
pub async fn connect(url: &str) -> Result<Channel> {
    Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

impl Load {
    pub async fn connect(
        scenario: Scenario,
        memory_url: &str,
        auth_url: &str,
        connections: usize,
        users: Vec<BenchUser>,
        deadline: Duration,
    ) -> Result<Self> {
        let url = if scenario == Scenario::Login {
            auth_url
        } else {
            memory_url
        };
        let mut channels = Vec::with_capacity(connections);
        for _ in 0..connections {
            channels.push(connect(url).await?);
        }
        Ok(Self {
            scenario,
            channels,
            users,
            password: crate::setup::PASSWORD.to_owned(),
            deadline,
        })
    }

    /// Call number `n` of client `client`; returns its status.
    pub async fn call(&self, client: usize, n: u64) -> Code {
        let user = &self.users[client % self.users.len()];
        let channel = self.channels[client % self.channels.len()].clone();
        let result = match self.scenario {
            Scenario::Remember => self.remember(channel, user, n).await,
            Scenario::Recall => self.recall(channel, user, String::new()).await,
            Scenario::RecallText => self.recall(channel, user, query_word(n).into()).await,
            // Every tenth call of a client remembers.
            Scenario::Mixed if n % 10 == 9 => self.remember(channel, user, n).await,
            Scenario::Mixed => self.recall(channel, user, String::new()).await,
            Scenario::Login => self.login(channel, user).await,
        };
        match result {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        }
    }

    fn request<T>(&self, message: T, user: &BenchUser) -> Request<T> {
        let mut request = bearer(message, &user.access_token);
        request.set_timeout(self.deadline);
        request
    }

    async fn remember(
        &self,
        channel: Channel,
        user: &BenchUser,
        n: u64,
    ) -> Result<(), tonic::Status> {
        let request: RememberRequest = memory(&user.context, n, LOAD_TAG);
        MemoryServiceClient::new(channel)
            .remember(self.request(request, user))
            .await
            .map(drop)
    }

    async fn recall(
        &self,
        channel: Channel,
        user: &BenchUser,
        query: String,
    ) -> Result<(), tonic::Status> {
        let request = RecallRequest {
            context: user.context.clone(),
            query,
            page_size: 20,
            ..Default::default()
        };
        MemoryServiceClient::new(channel)
            .recall(self.request(request, user))
            .await
            .map(drop)
    }

    async fn login(&self, channel: Channel, user: &BenchUser) -> Result<(), tonic::Status> {
        let mut request = Request::new(LoginRequest {
            email: user.email.clone(),
            password: self.password.clone(),
        });
        request.set_timeout(self.deadline);
        AuthServiceClient::new(channel)
            .login(request)
            .await
            .map(drop)
    }
}
