//! What commands print: tables and sentences for people, or with `--json`
//! exactly one JSON document with stable, snake_case field names. The same
//! views are what the MCP tools return.

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets::NOTHING};
use ninaivalaigal::{auth_v1, memory_v1};
use prost_types::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::{
    exit::{Failure, Kind},
    terminal::{self, escape},
};

/// Something a command prints.
pub trait Render: Serialize {
    /// The text shown to a person.
    fn human(&self) -> String;
}

/// Prints `value` as text or as one JSON document. Neither carries a
/// character the terminal would act on (see `terminal`): views escape what
/// they were sent, and the text is checked once more as a whole.
pub fn print<T: Render>(json: bool, value: &T) {
    if json {
        println!("{}", terminal::to_json(value));
    } else {
        let text = value.human();
        if !text.is_empty() {
            println!("{}", terminal::escape_lines(text.trim_end()));
        }
    }
}

/// Prints a warning on stderr: a line of text, or with `--json` one line of
/// `{"warning": {"message": ...}}`.
pub fn print_warning(json: bool, message: &str) {
    if json {
        let document = serde_json::json!({ "warning": { "message": message } });
        eprintln!("{}", terminal::to_json_line(&document));
    } else {
        eprintln!("warning: {}", escape(message));
    }
}

/// `value` as pretty JSON.
pub fn to_json<T: Serialize>(value: &T) -> String {
    // Views are plain data (strings, numbers, maps with string keys), which
    // always serialise.
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}

/// Prints a failure on stderr, as text or as `{"error": {...}}`.
pub fn print_failure(json: bool, failure: &Failure) {
    if json {
        let document = serde_json::json!({
            "error": {
                "kind": failure.kind.name(),
                "exit_code": failure.kind.code(),
                "message": failure.message,
                "hint": failure.hint,
            }
        });
        eprintln!("{}", terminal::to_json(&document));
    } else {
        // Messages may quote what a server said.
        eprintln!("error: {}", escape(&failure.message));
        if let Some(hint) = &failure.hint {
            eprintln!("hint: {}", escape(hint));
        }
    }
}

/// A time a server sent, for display: `None` when it sent none, or one a
/// `Timestamp` cannot hold (shown blank rather than failing the command).
pub fn time(timestamp: Option<Timestamp>) -> Option<DateTime<Utc>> {
    ninaivalaigal::timestamp::from_timestamp("time", &timestamp?).ok()
}

fn human_time(time: Option<DateTime<Utc>>) -> String {
    time.map(|time| time.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The table as text, without the padding at the ends of lines.
fn render(table: &Table) -> String {
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// An account.
#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub account_type: String,
    pub role: String,
    pub create_time: Option<DateTime<Utc>>,
}

impl From<auth_v1::User> for UserView {
    fn from(user: auth_v1::User) -> Self {
        let role = match user.role() {
            auth_v1::Role::Admin => "admin",
            auth_v1::Role::User | auth_v1::Role::Unspecified => "user",
        };
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            account_type: user.account_type,
            role: role.to_owned(),
            create_time: time(user.create_time),
        }
    }
}

/// After `register` or `login`.
#[derive(Debug, Serialize)]
pub struct LoginView {
    pub user: UserView,
    pub session_id: String,
    pub access_token_expire_time: DateTime<Utc>,
    pub credentials_file: String,
    #[serde(skip)]
    pub registered: bool,
}

impl Render for LoginView {
    fn human(&self) -> String {
        let verb = if self.registered {
            "Registered and logged in"
        } else {
            "Logged in"
        };
        format!(
            "{verb} as {} ({}).\nCredentials saved to {}.",
            escape(&self.user.email),
            escape(&self.user.name),
            escape(&self.credentials_file)
        )
    }
}

/// `whoami`.
#[derive(Debug, Serialize)]
pub struct WhoAmIView {
    pub user: UserView,
    pub session_id: String,
    pub access_token_expire_time: Option<DateTime<Utc>>,
    /// `environment` (NINAIVALAIGAL_USER_TOKEN) or `credentials_file`.
    pub token_source: &'static str,
}

impl Render for WhoAmIView {
    fn human(&self) -> String {
        let source = match self.token_source {
            "environment" => "NINAIVALAIGAL_USER_TOKEN",
            _ => "saved login",
        };
        format!(
            "{} ({}), user id {}, role {}\nsession {} via {source}, token valid until {}",
            escape(&self.user.email),
            escape(&self.user.name),
            self.user.id,
            escape(&self.user.role),
            escape(&self.session_id),
            human_time(self.access_token_expire_time)
        )
    }
}

/// `logout`.
#[derive(Debug, Serialize)]
pub struct LogoutView {
    pub email: Option<String>,
    /// Whether the auth-service revoked the session.
    pub revoked: bool,
    /// Whether saved credentials were deleted.
    pub credentials_removed: bool,
    /// `--local`: the session was deliberately left alone.
    #[serde(skip)]
    pub local_only: bool,
}

impl Render for LogoutView {
    fn human(&self) -> String {
        match (&self.email, self.credentials_removed) {
            (Some(email), _) if !self.revoked && self.local_only => format!(
                "Deleted the saved login of {} without ending its session: it stays valid until it expires.",
                escape(email)
            ),
            (Some(email), _) => format!("Logged out {}.", escape(email)),
            (None, true) => "Logged out.".to_owned(),
            (None, false) => "You were not logged in.".to_owned(),
        }
    }
}

/// `account delete`: the receipt of the erasure.
#[derive(Debug, Serialize)]
pub struct DeletedAccountView {
    pub user_id: i64,
    pub contexts: i64,
    pub memories: i64,
    pub sessions: i64,
    pub refresh_tokens: i64,
    pub audit_events_scrubbed: i64,
    pub erase_time: Option<DateTime<Utc>>,
    /// Whether the saved login was deleted too.
    pub credentials_removed: bool,
}

impl Render for DeletedAccountView {
    fn human(&self) -> String {
        format!(
            "Erased account {} at {}: {} contexts, {} memories, {} sessions, {} refresh tokens; {} audit rows now keep only the account's id and the event.",
            self.user_id,
            human_time(self.erase_time),
            self.contexts,
            self.memories,
            self.sessions,
            self.refresh_tokens,
            self.audit_events_scrubbed
        )
    }
}

/// A context.
#[derive(Clone, Debug, Serialize)]
pub struct ContextView {
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub recording: bool,
    pub memory_count: i64,
    pub create_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
}

impl From<memory_v1::Context> for ContextView {
    fn from(context: memory_v1::Context) -> Self {
        let visibility = match context.visibility() {
            memory_v1::Visibility::Private | memory_v1::Visibility::Unspecified => "private",
        };
        Self {
            visibility: visibility.to_owned(),
            name: context.name,
            description: context.description,
            recording: context.recording,
            memory_count: context.memory_count,
            create_time: time(context.create_time),
            update_time: time(context.update_time),
        }
    }
}

impl Render for ContextView {
    fn human(&self) -> String {
        let mut lines = vec![format!("Context {}", escape(&self.name))];
        if !self.description.is_empty() {
            lines.push(format!("  description: {}", escape(&self.description)));
        }
        lines.push(format!(
            "  recording:   {}",
            if self.recording { "yes" } else { "no" }
        ));
        lines.push(format!("  memories:    {}", self.memory_count));
        lines.push(format!("  visibility:  {}", escape(&self.visibility)));
        lines.push(format!("  created:     {}", human_time(self.create_time)));
        lines.push(format!("  updated:     {}", human_time(self.update_time)));
        lines.join("\n")
    }
}

/// `context create`.
#[derive(Debug, Serialize)]
pub struct CreatedContextView {
    pub context: ContextView,
}

impl Render for CreatedContextView {
    fn human(&self) -> String {
        let name = escape(&self.context.name);
        format!("Created context {name}. Start recording into it with `eM start --context {name}`.")
    }
}

/// `contexts`.
#[derive(Debug, Serialize)]
pub struct ContextListView {
    pub contexts: Vec<ContextView>,
}

impl Render for ContextListView {
    fn human(&self) -> String {
        if self.contexts.is_empty() {
            return "No contexts yet. Create one with `eM context create NAME`.".to_owned();
        }
        let mut table = table(&["NAME", "RECORDING", "MEMORIES", "CREATED", "DESCRIPTION"]);
        for context in &self.contexts {
            table.add_row(vec![
                escape(&context.name).into_owned(),
                if context.recording { "●" } else { "" }.to_owned(),
                context.memory_count.to_string(),
                human_time(context.create_time),
                escape(&context.description).into_owned(),
            ]);
        }
        render(&table)
    }
}

/// `context delete`.
#[derive(Debug, Serialize)]
pub struct DeletedContextView {
    pub name: String,
    pub deleted_memories: i64,
}

impl Render for DeletedContextView {
    fn human(&self) -> String {
        format!(
            "Deleted context {} and {} memor{}.",
            escape(&self.name),
            self.deleted_memories,
            if self.deleted_memories == 1 {
                "y"
            } else {
                "ies"
            }
        )
    }
}

/// `start`.
#[derive(Debug, Serialize)]
pub struct StartedView {
    pub context: ContextView,
    /// The context that was recording before, if another one.
    pub previous: Option<String>,
}

impl Render for StartedView {
    fn human(&self) -> String {
        let mut text = format!("Recording into context {}.", escape(&self.context.name));
        if let Some(previous) = &self.previous {
            text.push_str(&format!(" Stopped recording {}.", escape(previous)));
        }
        text
    }
}

/// `stop`.
#[derive(Debug, Serialize)]
pub struct StoppedView {
    pub context: ContextView,
}

impl Render for StoppedView {
    fn human(&self) -> String {
        format!("Stopped recording context {}.", escape(&self.context.name))
    }
}

/// A memory.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryView {
    pub id: i64,
    pub context: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Map<String, Json>,
    pub create_time: Option<DateTime<Utc>>,
}

impl TryFrom<memory_v1::Memory> for MemoryView {
    type Error = Failure;

    fn try_from(memory: memory_v1::Memory) -> Result<Self, Failure> {
        let data = ninaivalaigal::json::struct_to_object(memory.data.unwrap_or_default()).map_err(
            |error| {
                Failure::new(
                    Kind::Other,
                    format!(
                        "memory {} came back in a form JSON cannot hold: {error}",
                        memory.id
                    ),
                )
            },
        )?;
        Ok(Self {
            id: memory.id,
            context: memory.context,
            kind: memory.r#type,
            data,
            create_time: time(memory.create_time),
        })
    }
}

/// `remember`.
#[derive(Debug, Serialize)]
pub struct RememberedView {
    pub memory: MemoryView,
    /// The id the write was sent (and any retry resent) with.
    pub request_id: String,
    /// True when that id had stored the memory already (nothing new stored).
    pub already_stored: bool,
}

impl Render for RememberedView {
    fn human(&self) -> String {
        let verb = if self.already_stored {
            "Already remembered"
        } else {
            "Remembered"
        };
        format!(
            "{verb} {} {} in context {}.",
            escape(&self.memory.kind),
            self.memory.id,
            escape(&self.memory.context)
        )
    }
}

/// `recall`.
#[derive(Debug, Serialize)]
pub struct RecallView {
    pub memories: Vec<MemoryView>,
    /// Set when more memories matched than `--limit` allowed.
    pub next_page_token: Option<String>,
}

impl Render for RecallView {
    fn human(&self) -> String {
        if self.memories.is_empty() {
            return "No memories found.".to_owned();
        }
        let mut table = table(&["ID", "CREATED", "CONTEXT", "TYPE", "DATA"]);
        for memory in &self.memories {
            table.add_row(vec![
                memory.id.to_string(),
                human_time(memory.create_time),
                escape(&memory.context).into_owned(),
                escape(&memory.kind).into_owned(),
                escape(&summary(&memory.data)).into_owned(),
            ]);
        }
        let mut text = render(&table);
        if self.next_page_token.is_some() {
            text.push_str("\nMore memories match; raise --limit to see them.");
        }
        text
    }
}

/// The record for a table cell: its `message` when that is all it holds (a
/// plain note), the compact JSON otherwise.
fn summary(data: &Map<String, Json>) -> String {
    match data.get("message") {
        Some(Json::String(message)) if data.len() == 1 => message.clone(),
        _ => serde_json::to_string(data).unwrap_or_default(),
    }
}

/// `forget`.
#[derive(Debug, Serialize)]
pub struct ForgottenView {
    pub id: i64,
}

impl Render for ForgottenView {
    fn human(&self) -> String {
        format!("Forgot memory {}.", self.id)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn memories_serialise_with_stable_names() {
        let view = RecallView {
            memories: vec![MemoryView {
                id: 1,
                context: "proj".to_owned(),
                kind: "note".to_owned(),
                data: json!({"message": "hi"}).as_object().unwrap().clone(),
                create_time: DateTime::from_timestamp(0, 0),
            }],
            next_page_token: None,
        };
        let value: Json = serde_json::from_str(&to_json(&view)).unwrap();
        assert_eq!(
            value,
            json!({
                "memories": [{
                    "id": 1,
                    "context": "proj",
                    "type": "note",
                    "data": {"message": "hi"},
                    "create_time": "1970-01-01T00:00:00Z"
                }],
                "next_page_token": null
            })
        );
        assert!(view.human().contains("hi"));
    }

    #[test]
    fn views_escape_what_they_were_sent() {
        let hostile = "x\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}2J\u{202e}\nhint: y";
        let context = ContextView {
            name: "proj".to_owned(),
            description: hostile.to_owned(),
            visibility: "private".to_owned(),
            recording: true,
            memory_count: 1,
            create_time: None,
            update_time: None,
        };
        let memory = MemoryView {
            id: 1,
            context: "proj".to_owned(),
            kind: hostile.to_owned(),
            data: json!({"message": hostile}).as_object().unwrap().clone(),
            create_time: None,
        };
        let texts = [
            context.human(),
            ContextListView {
                contexts: vec![context.clone()],
            }
            .human(),
            RecallView {
                memories: vec![memory.clone()],
                next_page_token: None,
            }
            .human(),
            RememberedView {
                memory,
                request_id: String::new(),
                already_stored: true,
            }
            .human(),
        ];
        for text in texts {
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && crate::terminal::is_unsafe(c)),
                "{text:?}"
            );
            assert!(text.contains("x\\u{1b}]52;c;"), "{text}");
            assert!(!text.contains("\nhint: y"), "no line of its own: {text}");
        }
    }

    #[test]
    fn summaries_show_a_lone_message_and_json_otherwise() {
        assert_eq!(summary(json!({"message": "hi"}).as_object().unwrap()), "hi");
        assert_eq!(
            summary(json!({"message": "hi", "n": 1}).as_object().unwrap()),
            r#"{"message":"hi","n":1}"#
        );
    }
}
