//! The commands. Each operation returns a view (see `output`), so the CLI
//! and the MCP server share them; this module adds what only a terminal
//! needs (prompts, stdin, confirmation) and prints.

pub mod account;
pub mod contexts;
pub mod memories;
pub mod transfer;

use std::io::{self, BufRead, IsTerminal, Read, Write};

use crate::{
    args::{AccountCommand, Command, ContextCommand},
    client::App,
    exit::Failure,
    output::print,
};

/// Runs one CLI command (everything except `mcp`).
pub async fn run(app: &App, command: Command, json: bool) -> Result<(), Failure> {
    match command {
        Command::Register(args) => {
            let email = account::email_or_prompt(args.email)?;
            let name = match args.name {
                Some(name) => Some(name),
                None => {
                    account::optional_prompt("Name (empty for the part of the email before '@'): ")?
                }
            };
            let password = account::read_password(args.password_stdin, true)?;
            let view = account::register(app, &email, name.as_deref(), password).await?;
            print(json, &view);
            warn_if_overridden(app);
        }
        Command::Login(args) => {
            let email = account::email_or_prompt(args.email)?;
            let password = account::read_password(args.password_stdin, false)?;
            print(json, &account::login(app, &email, password).await?);
            warn_if_overridden(app);
        }
        Command::Logout(args) => print(json, &account::logout(app, args.local).await?),
        Command::Whoami => print(json, &account::whoami(app).await?),
        Command::Contexts => print(json, &contexts::list(app).await?),
        Command::Context(ContextCommand::Create { name, description }) => {
            print(json, &contexts::create(app, &name, &description).await?);
        }
        Command::Context(ContextCommand::Show { name }) => {
            print(json, &contexts::show(app, &name).await?);
        }
        Command::Context(ContextCommand::Delete { name, yes }) => {
            if !yes {
                confirm_delete(app, &name).await?;
            }
            print(json, &contexts::delete(app, &name).await?);
        }
        Command::Start(args) => print(json, &contexts::start(app, &args.context).await?),
        Command::Stop(args) => print(json, &contexts::stop(app, args.context.as_deref()).await?),
        Command::Remember(args) => {
            let text = match args.memory.as_deref() {
                None | Some("-") => read_stdin()?,
                Some(text) => text.to_owned(),
            };
            let (kind, data) = memories::parse_memory(&text)?;
            let view =
                memories::remember(app, args.context.as_deref(), &kind, data, args.request_id)
                    .await?;
            print(json, &view);
        }
        Command::Recall(args) => {
            let query = memories::RecallQuery {
                context: args.context,
                all_contexts: args.all_contexts,
                query: args.query,
                kind: args.kind,
                since: args.since,
                until: args.until,
                limit: args.limit,
            };
            print(json, &memories::recall(app, &query).await?);
        }
        Command::Forget(args) => print(json, &memories::forget(app, args.id).await?),
        Command::Export(args) => match &args.output {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|error| {
                    Failure::usage(format!("cannot create {}: {error}", path.display()))
                })?;
                let mut out = io::BufWriter::new(file);
                print(
                    json,
                    &transfer::export(app, args.context.as_deref(), &mut out).await?,
                );
            }
            None => {
                let mut out = io::BufWriter::new(io::stdout().lock());
                let view = transfer::export(app, args.context.as_deref(), &mut out).await?;
                drop(out);
                // stdout holds the export; the summary goes beside it.
                if json {
                    eprintln!("{}", crate::terminal::to_json_line(&view));
                } else {
                    eprintln!("{}", crate::output::Render::human(&view));
                }
            }
        },
        Command::Import(args) => {
            print(
                json,
                &transfer::import(app, &args.file, args.batch_size as usize).await?,
            );
        }
        Command::Account(AccountCommand::Delete {
            yes,
            password_stdin,
        }) => {
            if !yes {
                confirm_erasure()?;
            }
            let password = account::read_password(password_stdin, false)?;
            print(json, &account::delete(app, password).await?);
        }
        Command::Mcp => unreachable!("`eM mcp` is dispatched before this"),
    }
    Ok(())
}

/// A new login does not take effect while the variable overrides it.
fn warn_if_overridden(app: &App) {
    if app.config.env_token.is_some() {
        eprintln!(
            "note: NINAIVALAIGAL_USER_TOKEN is set and is used instead of this login; unset it to use the login"
        );
    }
}

/// Deleting a context deletes its memories: ask first, and refuse to guess
/// when nobody can be asked.
async fn confirm_delete(app: &App, name: &str) -> Result<(), Failure> {
    if !io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "deleting context {name} deletes all of its memories"
        ))
        .hint("pass --yes to delete it without being asked"));
    }
    let context = contexts::show(app, name).await?;
    eprint!(
        "Delete context {} and its {} memories? [y/N] ",
        crate::terminal::escape(name),
        context.memory_count
    );
    io::stderr().flush().ok();
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| Failure::usage(format!("cannot read the answer: {error}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::new(crate::exit::Kind::Other, "not deleted"))
    }
}

/// Erasing an account cannot be undone: the user types `delete` to go on,
/// and nobody is assumed to agree when nobody can be asked.
fn confirm_erasure() -> Result<(), Failure> {
    if !io::stdin().is_terminal() {
        return Err(Failure::usage(
            "deleting your account erases every context, memory and session of it",
        )
        .hint("pass --yes to delete it without being asked"));
    }
    eprint!(
        "This erases your account with all of its contexts and memories, for good (`eM export` keeps a copy).\nType delete to go on: "
    );
    io::stderr().flush().ok();
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| Failure::usage(format!("cannot read the answer: {error}")))?;
    if answer.trim() == "delete" {
        Ok(())
    } else {
        Err(Failure::new(crate::exit::Kind::Other, "not deleted"))
    }
}

fn read_stdin() -> Result<String, Failure> {
    if io::stdin().is_terminal() {
        return Err(Failure::usage("no memory given").hint(
            r#"pass it as an argument, e.g. eM remember '{"type": "note", "data": {"message": "..."}}', or pipe it in"#,
        ));
    }
    let mut text = String::new();
    io::stdin()
        .read_to_string(&mut text)
        .map_err(|error| Failure::usage(format!("cannot read the memory from stdin: {error}")))?;
    Ok(text)
}
