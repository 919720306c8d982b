//! Running the real `eM` binary against the in-process services, each test
//! with its own config directory (so its own credentials file).

#![allow(dead_code)]

use std::{path::PathBuf, process::Stdio};

use chrono::{DateTime, Duration, Utc};
use ninaivalaigal_tests::keys;
use serde_json::json;

use ninaivalaigal_tests::TestPair;
use serde_json::Value;
use tempfile::TempDir;
use tokio::{io::AsyncWriteExt, process::Command};

/// Exit codes documented in `eM --help`.
pub mod code {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 2;
    pub const AUTH: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const CONFLICT: i32 = 5;
    pub const UNAVAILABLE: i32 = 6;
}

/// The `eM` binary, configured for one test.
pub struct Em {
    config_home: TempDir,
    pub server_url: String,
    pub auth_url: String,
    /// `NINAIVALAIGAL_USER_TOKEN`, when set.
    pub user_token: Option<String>,
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with the output unless the run exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the run succeeded.
    pub fn ok(&self) -> &Self {
        self.expect_code(code::OK)
    }

    /// stdout as the one JSON document `--json` promises.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }
}

impl Em {
    /// `eM` pointed at `pair`, with a fresh, empty config directory.
    pub fn new(pair: &TestPair) -> Self {
        Self::with_urls(pair.memory_url(), pair.auth_url())
    }

    /// `eM` pointed at the given URLs.
    pub fn with_urls(server_url: String, auth_url: String) -> Self {
        Self {
            config_home: tempfile::tempdir().expect("temp config dir"),
            server_url,
            auth_url,
            user_token: None,
        }
    }

    /// Where `eM` keeps the credentials in this test.
    pub fn credentials_path(&self) -> PathBuf {
        self.config_home
            .path()
            .join("ninaivalaigal")
            .join("credentials.json")
    }

    /// The saved credentials, parsed.
    pub fn credentials(&self) -> Value {
        let text = std::fs::read_to_string(self.credentials_path()).expect("credentials saved");
        serde_json::from_str(&text).expect("credentials are JSON")
    }

    /// Overwrites the saved credentials.
    pub fn write_credentials(&self, credentials: &Value) {
        std::fs::write(
            self.credentials_path(),
            serde_json::to_vec_pretty(credentials).unwrap(),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eM"));
        command.args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NINAIVALAIGAL_") {
                command.env_remove(name);
            }
        }
        command
            .env("XDG_CONFIG_HOME", self.config_home.path())
            .env("NINAIVALAIGAL_SERVER_URL", &self.server_url)
            .env("NINAIVALAIGAL_AUTH_URL", &self.auth_url)
            .env("NINAIVALAIGAL_TIMEOUT_SECS", "10")
            .kill_on_drop(true);
        if let Some(token) = &self.user_token {
            command.env("NINAIVALAIGAL_USER_TOKEN", token);
        }
        command
    }

    /// Runs `eM args...` with nothing on stdin.
    pub async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, None).await
    }

    /// Runs `eM args...` with `input` on stdin.
    pub async fn run_with_input(&self, args: &[&str], input: &str) -> Outcome {
        self.run_with_stdin(args, Some(input)).await
    }

    async fn run_with_stdin(&self, args: &[&str], input: Option<&str>) -> Outcome {
        let mut child = self
            .command(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("eM starts");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            // eM may exit without reading its input (a refusal before the
            // password prompt): its exit code and output are the outcome.
            match stdin.write_all(input.as_bytes()).await {
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
                written => written.expect("write stdin"),
            }
            drop(stdin);
        }
        let output = child.wait_with_output().await.expect("eM runs");
        Outcome {
            code: output.status.code().expect("eM exits normally"),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }

    /// A command for `eM mcp`, for an MCP client to spawn.
    pub fn mcp_command(&self) -> Command {
        let mut command = self.command(&["mcp"]);
        command.stderr(Stdio::inherit());
        command
    }

    /// Registers `email` with `password` through `eM register`.
    pub async fn register(&self, email: &str, password: &str) -> Outcome {
        self.run_with_input(
            &[
                "register",
                "--email",
                email,
                "--name",
                "Test user",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
        .await
    }

    /// Logs in through `eM login`, the password on stdin.
    pub async fn login(&self, email: &str, password: &str) -> Outcome {
        self.run_with_input(&["login", "--email", email], &format!("{password}\n"))
            .await
    }
}

/// A URL where nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// The password tests use.
pub const PASSWORD: &str = "correct horse battery staple";

/// Makes the saved access token look as it will once its time is up.
pub fn age_saved_token(em: &Em, token: String, expire_time: DateTime<Utc>) {
    let mut saved = em.credentials();
    saved["access_token"] = json!(token);
    saved["access_token_expire_time"] = json!(expire_time);
    em.write_credentials(&saved);
}

pub fn expired_token(saved: &serde_json::Value) -> String {
    let mut claims = keys::claims_for(
        saved["user_id"].as_i64().unwrap(),
        saved["email"].as_str().unwrap(),
        saved["session_id"].as_str().unwrap().parse().unwrap(),
    );
    let past = Utc::now() - Duration::hours(2);
    claims.iat = past.timestamp();
    claims.nbf = past.timestamp();
    claims.exp = past.timestamp() + 60;
    keys::mint(&claims)
}
