//! The command line, as clap parses it: the commands and flags the README's
//! "Using `eM`" section shows.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::exit::EXIT_CODES_HELP;

const AFTER_HELP: &str = "\
Environment:
  NINAIVALAIGAL_SERVER_URL   memory-service URL (default http://127.0.0.1:13370)
  NINAIVALAIGAL_AUTH_URL     auth-service URL (default http://127.0.0.1:13371)
  NINAIVALAIGAL_USER_TOKEN   access token to use instead of the saved login
  NINAIVALAIGAL_CA_CERT      extra PEM CA certificate for https:// URLs
  XDG_CONFIG_HOME            credentials go to $XDG_CONFIG_HOME/ninaivalaigal/credentials.json";

/// eM: remember and recall what you work on, by hand or through your AI assistant.
#[derive(Debug, Parser)]
#[command(
    name = "eM",
    version,
    after_help = format!("{AFTER_HELP}\n\n{EXIT_CODES_HELP}"),
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command takes.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// memory-service URL [default: the one saved at login, else http://127.0.0.1:13370]
    #[arg(
        long,
        env = "NINAIVALAIGAL_SERVER_URL",
        global = true,
        value_name = "URL"
    )]
    pub server_url: Option<String>,

    /// auth-service URL [default: the one saved at login, else http://127.0.0.1:13371]
    #[arg(
        long,
        env = "NINAIVALAIGAL_AUTH_URL",
        global = true,
        value_name = "URL"
    )]
    pub auth_url: Option<String>,

    /// Extra CA certificate (PEM) to trust for https:// URLs.
    #[arg(
        long,
        env = "NINAIVALAIGAL_CA_CERT",
        global = true,
        value_name = "PATH"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text (errors go to stderr as JSON).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for a server before giving up.
    #[arg(
        long,
        env = "NINAIVALAIGAL_TIMEOUT_SECS",
        global = true,
        default_value_t = 30,
        value_name = "SECONDS",
        hide_short_help = true
    )]
    pub timeout_secs: u64,

    /// Refresh the access token when less than this many seconds of it are left.
    #[arg(
        long,
        env = "NINAIVALAIGAL_REFRESH_MARGIN_SECS",
        global = true,
        default_value_t = 86_400,
        value_name = "SECONDS",
        hide_short_help = true
    )]
    pub refresh_margin_secs: u64,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and log in to it.
    Register(RegisterArgs),
    /// Log in; the password is prompted for without echo, or read from stdin.
    Login(LoginArgs),
    /// End the session at the auth-service that issued it, then delete the saved credentials.
    Logout(LogoutArgs),
    /// Show who you are logged in as.
    Whoami,
    /// List your contexts.
    Contexts,
    /// Create, show or delete one context.
    #[command(subcommand)]
    Context(ContextCommand),
    /// Start recording into a context: `remember` writes there by default.
    Start(ContextArg),
    /// Stop recording into a context (by default the one recording now).
    Stop(OptionalContextArg),
    /// Store a memory: '{"type": "note", "data": {...}}' as an argument or on stdin.
    Remember(RememberArgs),
    /// Find memories, newest first.
    Recall(RecallArgs),
    /// Delete one memory by id.
    Forget(ForgetArgs),
    /// Write your memories as JSON lines (one context, or all) to stdout or a file.
    Export(ExportArgs),
    /// Recreate contexts and memories from a file `eM export` wrote; safe to run twice.
    Import(ImportArgs),
    /// Manage your account.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Serve the memory tools to an AI assistant over MCP on stdio.
    Mcp,
}

/// `eM register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Email address of the new account [asked for when not given].
    #[arg(long, env = "NINAIVALAIGAL_EMAIL")]
    pub email: Option<String>,
    /// Display name [asked for on a terminal; default: the part of the email before '@'].
    #[arg(long)]
    pub name: Option<String>,
    /// Read the password from the first line of stdin (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `eM login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Email address of the account [asked for when not given].
    #[arg(long, env = "NINAIVALAIGAL_EMAIL")]
    pub email: Option<String>,
    /// Read the password from the first line of stdin (for scripts). Also
    /// the behaviour whenever stdin is not a terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `eM logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Only delete the saved credentials, without ending the session (for
    /// when its auth-service is gone for good); the session stays valid
    /// until it expires.
    #[arg(long)]
    pub local: bool,
}

/// `eM context ...`.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create a context.
    Create {
        /// Name: letters, digits, '.', '_' and '-', starting with a letter or digit.
        name: String,
        /// What the context is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one context.
    Show {
        /// Name of the context.
        name: String,
    },
    /// Delete a context and every memory in it.
    Delete {
        /// Name of the context.
        name: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// A required `--context NAME`.
#[derive(Debug, Args)]
pub struct ContextArg {
    /// Name of the context.
    #[arg(long, value_name = "NAME")]
    pub context: String,
}

/// An optional `--context NAME`.
#[derive(Debug, Args)]
pub struct OptionalContextArg {
    /// Name of the context [default: the one recording now].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// `eM remember`.
#[derive(Debug, Args)]
pub struct RememberArgs {
    /// The memory as JSON: {"type": "note", "data": {...}}. Read from stdin when absent or '-'.
    #[arg(value_name = "JSON")]
    pub memory: Option<String>,
    /// Context to store into [default: the one recording now].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Id of this write (a UUID) [default: a new one]. Give the same id when
    /// you run the command again for the same memory, and it is stored once.
    #[arg(long, value_name = "UUID")]
    pub request_id: Option<Uuid>,
}

/// `eM recall`.
#[derive(Debug, Args)]
pub struct RecallArgs {
    /// Context to read [default: the one recording now].
    #[arg(long, value_name = "NAME", conflicts_with = "all_contexts")]
    pub context: Option<String>,
    /// Read every context instead of one.
    #[arg(long)]
    pub all_contexts: bool,
    /// Full-text query: words, "quoted phrases", -excluded, or.
    #[arg(long, value_name = "TEXT")]
    pub query: Option<String>,
    /// Only memories of this type.
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
    /// Only memories created at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<DateTime<Utc>>,
    /// Only memories created before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
    /// Return at most this many memories.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

/// `eM export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this context [default: every context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Write to this file instead of stdout (then the summary goes to stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `eM import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file `eM export` wrote (JSON lines).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Memories per request, at most the server's NINAIVALAIGAL_MAX_BATCH_MEMORIES.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000), hide_short_help = true)]
    pub batch_size: u32,
}

/// `eM account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Erase your account: every context, memory and session, for good.
    /// Asks for confirmation and for your password.
    Delete {
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `eM forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Id of the memory, as `recall` shows it.
    pub id: i64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_readme_spellings_parse() {
        for line in [
            vec!["eM", "register", "--email", "a@example.com"],
            vec!["eM", "login", "--email", "a@example.com"],
            vec!["eM", "logout"],
            vec!["eM", "logout", "--local"],
            vec!["eM", "export", "--context", "proj"],
            vec!["eM", "export", "-o", "memories.jsonl"],
            vec!["eM", "import", "memories.jsonl"],
            vec!["eM", "account", "delete", "--yes", "--password-stdin"],
            vec![
                "eM",
                "remember",
                "{}",
                "--request-id",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
            ],
            vec!["eM", "whoami"],
            vec!["eM", "contexts"],
            vec!["eM", "context", "create", "proj"],
            vec!["eM", "context", "show", "proj"],
            vec!["eM", "context", "delete", "proj", "--yes"],
            vec!["eM", "start", "--context", "proj"],
            vec!["eM", "stop", "--context", "proj"],
            vec![
                "eM",
                "remember",
                r#"{"type": "note", "data": {"message": "hi"}}"#,
                "--context",
                "proj",
            ],
            vec![
                "eM",
                "recall",
                "--context",
                "proj",
                "--query",
                "hi",
                "--type",
                "note",
                "--limit",
                "5",
            ],
            vec!["eM", "forget", "42"],
            vec!["eM", "mcp"],
            vec!["eM", "contexts", "--json"],
        ] {
            if let Err(error) = Cli::try_parse_from(&line) {
                panic!("{line:?}: {error}");
            }
        }
    }

    #[test]
    fn a_password_cannot_be_given_as_an_argument() {
        assert!(
            Cli::try_parse_from(["eM", "login", "--email", "a@b.c", "--password", "x"]).is_err()
        );
    }
}
