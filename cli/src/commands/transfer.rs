//! export and import: a user's memories as JSON lines (see
//! `export_format`), out of one account and into another.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
};

use chrono::{DateTime, Utc};
use ninaivalaigal::{
    json::object_to_struct,
    memory_v1::{
        ExportMemoriesRequest, ImportMemoriesRequest, ImportMemoriesResponse, ImportedContext,
        ImportedMemory, export_memories_response::Item,
    },
    timestamp::to_timestamp,
};
use prost::Message;
use serde::Serialize;

use crate::{
    client::App,
    exit::{Failure, Kind},
    export_format::{self, Line},
    output::{MemoryView, Render, time},
    terminal,
};

/// Longest line an import reads: a memory of the service's largest
/// setting, escaped, fits many times over.
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of encoded requests per import batch: under the memory-service's
/// default NINAIVALAIGAL_MAX_BATCH_BYTES (4 MiB).
const BATCH_BYTES: usize = 3 * 1024 * 1024;
/// Bad lines named before an import gives up on a file.
const MAX_BAD_LINES_SHOWN: usize = 20;

/// What `export` wrote.
#[derive(Debug, Default, Serialize)]
pub struct ExportedView {
    pub contexts: u64,
    pub memories: u64,
    pub format: &'static str,
    pub version: u32,
}

impl Render for ExportedView {
    fn human(&self) -> String {
        format!(
            "Exported {} contexts and {} memories ({} version {}).",
            self.contexts, self.memories, self.format, self.version
        )
    }
}

/// Streams the caller's memories (one context, or all) into `out` as JSON
/// lines.
pub async fn export(
    app: &App,
    context: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExportedView, Failure> {
    let request = ExportMemoriesRequest {
        context: context.unwrap_or_default().to_owned(),
    };
    let mut stream = app
        .memory(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.export_memories(request).await }
        })
        .await
        .map_err(|failure| {
            failure.hint_if(Kind::NotFound, "run `eM contexts` to see your contexts")
        })?;
    let written =
        |error: io::Error| Failure::new(Kind::Other, format!("cannot write the export: {error}"));
    let mut view = ExportedView {
        format: export_format::FORMAT,
        version: export_format::VERSION,
        ..ExportedView::default()
    };
    write_line(out, &Line::header(Utc::now())).map_err(written)?;
    loop {
        let item = match stream.message().await {
            Ok(Some(message)) => message.item,
            Ok(None) => break,
            Err(status) => {
                let failure = Failure::from_status(&status, &app.memory_server());
                return Err(Failure::new(
                    failure.kind,
                    format!(
                        "the export stopped after {} memories: {}",
                        view.memories, failure.message
                    ),
                )
                .hint("the output is incomplete; run the export again"));
            }
        };
        let line = match item {
            Some(Item::Context(context)) => {
                view.contexts += 1;
                Line::Context {
                    name: context.name,
                    description: context.description,
                    create_time: time(context.create_time),
                }
            }
            Some(Item::Memory(memory)) => {
                view.memories += 1;
                let request_id = memory.request_id.parse().ok();
                let created = memory.create_time;
                let memory = MemoryView::try_from(memory)?;
                Line::Memory {
                    id: memory.id,
                    context: memory.context,
                    memory_type: memory.kind,
                    data: memory.data,
                    create_time: time(created).ok_or_else(|| {
                        Failure::new(
                            Kind::Other,
                            format!("memory {} came without a time", memory.id),
                        )
                    })?,
                    request_id,
                }
            }
            None => continue,
        };
        write_line(out, &line).map_err(written)?;
    }
    out.flush().map_err(written)?;
    Ok(view)
}

fn write_line(out: &mut dyn Write, line: &Line) -> io::Result<()> {
    // JSON with \u escapes for what a terminal would act on: the same
    // strings once parsed, and safe when the export goes to a terminal.
    out.write_all(terminal::to_json_line(line).as_bytes())?;
    out.write_all(b"\n")
}

/// What `import` did.
#[derive(Debug, Default, Serialize)]
pub struct ImportedView {
    pub contexts_created: i64,
    pub contexts_skipped: i64,
    pub memories_created: i64,
    pub memories_skipped: i64,
    pub lines: u64,
}

impl ImportedView {
    fn add(&mut self, response: &ImportMemoriesResponse) {
        self.contexts_created += i64::from(response.contexts_created);
        self.contexts_skipped += i64::from(response.contexts_skipped);
        self.memories_created += i64::from(response.memories_created);
        self.memories_skipped += i64::from(response.memories_skipped);
    }

    fn so_far(&self) -> String {
        format!(
            "{} contexts and {} memories were created before it; running the import again skips them",
            self.contexts_created, self.memories_created
        )
    }
}

impl Render for ImportedView {
    fn human(&self) -> String {
        format!(
            "Imported {} lines: created {} contexts and {} memories; skipped {} contexts and {} memories that were there already.",
            self.lines,
            self.contexts_created,
            self.memories_created,
            self.contexts_skipped,
            self.memories_skipped
        )
    }
}

/// A line of the file, parsed, with its number.
struct Numbered {
    number: u64,
    line: Line,
}

/// Reads the lines of `path` one at a time, each at most
/// [`MAX_LINE_BYTES`]; blank lines are skipped.
struct Lines {
    reader: BufReader<File>,
    number: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, Failure> {
        let file = File::open(path)
            .map_err(|error| Failure::usage(format!("cannot open {}: {error}", path.display())))?;
        Ok(Self {
            reader: BufReader::new(file),
            number: 0,
        })
    }

    /// The next line: its number and what it holds, or why it is bad.
    fn next_line(&mut self) -> Option<(u64, Result<Line, String>)> {
        loop {
            let mut bytes = Vec::new();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut bytes);
            self.number += 1;
            let number = self.number;
            match read {
                Ok(0) => return None,
                Err(error) => return Some((number, Err(format!("cannot be read: {error}")))),
                Ok(_) if bytes.len() > MAX_LINE_BYTES => {
                    return Some((
                        number,
                        Err(format!("is longer than {MAX_LINE_BYTES} bytes")),
                    ));
                }
                Ok(_) => {}
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = serde_json::from_slice::<Line>(&bytes).map_err(|error| {
                format!("is not a line of a {} file: {error}", export_format::FORMAT)
            });
            return Some((number, parsed));
        }
    }
}

/// Checks the header: the format and a version this eM reads.
fn check_header(line: &Line) -> Result<(), String> {
    match line {
        Line::Header {
            format, version, ..
        } if format == export_format::FORMAT => {
            if *version == export_format::VERSION {
                Ok(())
            } else {
                Err(format!(
                    "is version {version} of the export format; this eM reads version {}",
                    export_format::VERSION
                ))
            }
        }
        _ => Err(format!(
            "is not the header of a {} file (`eM export` writes one first)",
            export_format::FORMAT
        )),
    }
}

/// Reads the whole file once, naming every bad line, so that a file with
/// one imports nothing.
fn check_file(path: &Path) -> Result<(), Failure> {
    let mut lines = Lines::open(path)?;
    let mut bad = Vec::new();
    let mut first = true;
    while let Some((number, parsed)) = lines.next_line() {
        let problem = match (&parsed, first) {
            (Err(why), _) => Some(why.clone()),
            (Ok(line), true) => check_header(line).err(),
            (Ok(Line::Header { .. }), false) => Some("is a second header".to_owned()),
            (Ok(_), false) => None,
        };
        first = false;
        if let Some(why) = problem {
            bad.push(format!("line {number} {why}"));
        }
    }
    if first {
        return Err(Failure::usage(format!("{} is empty", path.display()))
            .hint("give a file that `eM export` wrote"));
    }
    match bad.first() {
        None => Ok(()),
        Some(first) => {
            for line in bad.iter().skip(1).take(MAX_BAD_LINES_SHOWN) {
                eprintln!("error: {}", terminal::escape(line));
            }
            Err(Failure::usage(format!(
                "{} has {} bad lines; nothing was imported. The first: {first}",
                path.display(),
                bad.len()
            ))
            .hint("fix or remove those lines and run the import again"))
        }
    }
}

/// One batch on its way, with the file's line number of each item.
#[derive(Default)]
struct Batch {
    request: ImportMemoriesRequest,
    context_lines: Vec<u64>,
    memory_lines: Vec<u64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.request.contexts.len().max(self.request.memories.len())
    }

    /// The line an error of the memory-service names (`memories[3]: ...`),
    /// and the rest of its message.
    fn locate<'m>(&self, message: &'m str) -> (Option<u64>, &'m str) {
        for (field, lines) in [
            ("memories", &self.memory_lines),
            ("contexts", &self.context_lines),
        ] {
            let Some(rest) = message
                .strip_prefix(field)
                .and_then(|m| m.strip_prefix('['))
            else {
                continue;
            };
            let Some((index, rest)) = rest.split_once("]: ") else {
                continue;
            };
            if let Some(line) = index.parse::<usize>().ok().and_then(|i| lines.get(i)) {
                return (Some(*line), rest);
            }
        }
        (None, message)
    }
}

/// Imports `path` in batches of at most `batch_size` memories.
pub async fn import(app: &App, path: &Path, batch_size: usize) -> Result<ImportedView, Failure> {
    check_file(path)?;
    let mut lines = Lines::open(path)?;
    let mut view = ImportedView::default();
    let mut batch = Batch::default();
    while let Some((number, parsed)) = lines.next_line() {
        view.lines += 1;
        let item = Numbered {
            number,
            // Checked above; a file changed since is refused here.
            line: parsed
                .map_err(|why| Failure::usage(format!("line {number} {why}; {}", view.so_far())))?,
        };
        add(&mut batch, item)?;
        if batch.len() >= batch_size || batch.request.encoded_len() >= BATCH_BYTES {
            send(app, std::mem::take(&mut batch), &mut view).await?;
        }
    }
    if batch.len() > 0 {
        send(app, batch, &mut view).await?;
    }
    Ok(view)
}

fn add(batch: &mut Batch, item: Numbered) -> Result<(), Failure> {
    let timestamp = |time: DateTime<Utc>| {
        to_timestamp("create_time", time)
            .map_err(|error| Failure::usage(format!("line {}: {error}", item.number)))
    };
    match item.line {
        Line::Header { .. } => {}
        Line::Context {
            name,
            description,
            create_time,
        } => {
            batch.request.contexts.push(ImportedContext {
                name,
                description,
                create_time: create_time.map(timestamp).transpose()?,
            });
            batch.context_lines.push(item.number);
        }
        Line::Memory {
            id,
            context,
            memory_type,
            data,
            create_time,
            request_id,
        } => {
            let request_id = request_id.unwrap_or_else(|| {
                export_format::derived_request_id(id, &context, &memory_type, &data, create_time)
            });
            let data = object_to_struct(data).map_err(|error| {
                Failure::usage(format!(
                    "line {}: the data cannot be stored: {error}",
                    item.number
                ))
            })?;
            batch.request.memories.push(ImportedMemory {
                context,
                r#type: memory_type,
                data: Some(data),
                create_time: Some(timestamp(create_time)?),
                request_id: request_id.hyphenated().to_string(),
            });
            batch.memory_lines.push(item.number);
        }
    }
    Ok(())
}

async fn send(app: &App, batch: Batch, view: &mut ImportedView) -> Result<(), Failure> {
    let result = app
        .memory(|mut client, bearer| {
            let request = bearer.request(batch.request.clone());
            async move { client.import_memories(request).await }
        })
        .await;
    match result {
        Ok(response) => {
            view.add(&response);
            Ok(())
        }
        Err(failure) => {
            let (line, why) = batch.locate(&failure.message);
            let place = match line {
                Some(line) => format!("line {line}"),
                None => format!(
                    "the batch of lines {} to {}",
                    batch
                        .context_lines
                        .first()
                        .into_iter()
                        .chain(batch.memory_lines.first())
                        .min()
                        .copied()
                        .unwrap_or_default(),
                    batch
                        .context_lines
                        .last()
                        .into_iter()
                        .chain(batch.memory_lines.last())
                        .max()
                        .copied()
                        .unwrap_or_default()
                ),
            };
            let mut stopped = Failure::new(
                failure.kind,
                format!("the import stopped at {place}: {why}; {}", view.so_far()),
            );
            if let Some(hint) = failure.hint {
                stopped = stopped.hint(hint);
            }
            Err(stopped)
        }
    }
}
