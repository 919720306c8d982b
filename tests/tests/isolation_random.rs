//! Randomized isolation: three users run random sequences of every
//! MemoryService RPC against one running pair, with names, descriptions,
//! types, queries and records full of SQL metacharacters, Unicode (combining
//! marks, right-to-left marks, emoji, characters beyond the BMP), control
//! characters, and empty and maximal sizes, and with attempts on each
//! other's context names and memory ids. A model says what each user should
//! see; after every step the RPC's answer (value or error code) must match
//! it, and every user's contexts (ListContexts) and memories (Recall of all
//! contexts) must equal the model exactly: nobody sees, changes or deletes
//! anything that is not theirs, and every acknowledged write is there with
//! exactly its data.
//!
//! 32 cases of up to 30 steps by default; `PROPTEST_CASES=500 cargo test
//! -p ninaivalaigal-tests --test isolation_random` runs more. A failing case
//! is shrunk and saved in `isolation_random.proptest-regressions` next to
//! this file, which proptest replays first on every later run (commit it).

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::{AtomicUsize, Ordering},
};

use ninaivalaigal::{
    json::{json_to_struct, struct_to_object, struct_to_text, text_to_struct},
    memory_v1 as pb,
};
use ninaivalaigal_tests::{PairSettings, TestPair, memory::MemoryAs, spawn_pair_with};
use proptest::{
    collection::{btree_map, vec},
    prelude::*,
    sample::select,
    test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner},
};
use prost_types::{Struct, Value, value::Kind};
use serde_json::{Value as Json, json};
use tonic::{Code, Status};

/// The memory-service's limit in this test, small so that maximal records
/// are cheap: `{"s":"…"}` is 8 bytes plus the string.
const MAX_MEMORY_BYTES: usize = 1024;
const USERS: usize = 3;
const MAX_STEPS: usize = 30;
const DEFAULT_CASES: u32 = 32;

// ---------------------------------------------------------------- inputs

/// Text that has broken services before: SQL and LIKE metacharacters,
/// quotes, backslashes, Unicode that changes length or direction, control
/// characters.
const NASTY: &[&str] = &[
    "",
    "'",
    "\"",
    "';--",
    "a'; DROP TABLE memories; --",
    "100% _wild_ card",
    "%",
    "_",
    "\\",
    "\\\\'\\\"",
    "$1 $$ :name ?",
    "e\u{301}",
    "\u{202E}elbat\u{202C}",
    "שלום",
    "🦀",
    "👩\u{200D}💻",
    "𝔘𝔫𝔦",
    "\u{1}\u{1f}\t\r\n",
    "\u{7f}\u{85}",
    "\u{feff}bom",
];

fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(NASTY).prop_map(str::to_owned),
        // Any characters at all, NUL and lone combining marks included.
        1 => vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

/// Context names: mostly valid ones from a small pool that every user
/// draws from (so they collide with each other's), some random valid ones,
/// and invalid ones of every kind.
/// The valid names every user draws from most of the time, the longest
/// allowed among them.
fn pool_name() -> impl Strategy<Value = String> {
    select(vec!["shared", "a", "A", "a_", "x-y.9"])
        .prop_map(str::to_owned)
        .boxed()
        .prop_union(Just("n".repeat(100)).boxed())
}

fn context_name() -> impl Strategy<Value = String> {
    // Few names, so that a user's steps often meet their own contexts and
    // other users' contexts of the same name.
    let invalid = [
        "",
        &"n".repeat(101),
        "a'; DROP TABLE recording_contexts; --",
        "a%",
        "_a",
        "-a",
        ".a",
        "a\"b",
        "a\\b",
        "a;b",
        "a b",
        " a",
        "é",
        "e\u{301}",
        "\u{202E}ab",
        "🦀",
        "𝔘",
        "a\0b",
        "a\nb",
    ]
    .map(str::to_owned)
    .to_vec();
    prop_oneof![
        16 => pool_name(),
        1 => "[a-zA-Z0-9][a-zA-Z0-9._-]{0,6}",
        2 => select(invalid),
        1 => nasty(),
    ]
}

fn description() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => nasty(),
        1 => Just("é".repeat(1000)),
        1 => Just("𝔘".repeat(1001)),
        1 => Just("a\0b".to_owned()),
    ]
}

fn memory_type() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(vec!["note", "decision", "it's; --", "%_\\", "e\u{301}", "🦀"]).prop_map(str::to_owned),
        1 => Just("𝔘".repeat(64)),
        1 => Just("a".repeat(65)),
        2 => nasty(),
    ]
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
        select(vec![
            0.1,
            -0.0,
            1.5e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            2.5,
            3.0
        ])
        .prop_map(|f| json!(f)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        nasty().prop_map(Json::String),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Json::Array),
            btree_map(nasty(), inner, 0..3).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// What a Remember sends as `data`.
#[derive(Clone, Debug)]
enum Data {
    /// A JSON object.
    Object(Json),
    /// `{"s": "aaa…"}` of exactly the limit plus this many bytes.
    Sized(i8),
    /// A `Struct` holding NaN, which JSON cannot say.
    NotANumber,
    /// No data at all.
    Missing,
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        10 => btree_map(nasty(), json_value(), 0..4)
            .prop_map(|m| Data::Object(Json::Object(m.into_iter().collect()))),
        3 => (-1i8..=1).prop_map(Data::Sized),
        1 => Just(Data::NotANumber),
        1 => Just(Data::Missing),
    ]
}

/// Which contexts a Recall reads.
#[derive(Clone, Debug)]
enum Selection {
    Recording,
    Named(String),
    All,
    /// A name and `all_contexts`: refused.
    Both(String),
}

/// Which memory a Forget names.
#[derive(Clone, Debug)]
enum Target {
    /// One of the caller's own (by index, if there are any).
    Own(usize),
    /// Any id any user was given in this case, deleted ones included.
    Seen(usize),
    /// A raw id.
    Raw(i64),
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        user: usize,
        name: String,
        description: String,
        visibility: i32,
    },
    List {
        user: usize,
        page_size: i32,
    },
    Get {
        user: usize,
        name: String,
    },
    Delete {
        user: usize,
        name: String,
    },
    Start {
        user: usize,
        name: String,
    },
    Stop {
        user: usize,
        name: String,
    },
    Remember {
        user: usize,
        context: String,
        memory_type: String,
        data: Data,
    },
    Recall {
        user: usize,
        selection: Selection,
        memory_type: Option<String>,
        query: Option<String>,
        page_size: i32,
    },
    Forget {
        user: usize,
        target: Target,
    },
}

/// Steps that make state: valid contexts from the pool, recording.
fn setup_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, pool_name(), select(NASTY)).prop_map(|(user, name, description)| Op::Create {
            user,
            name,
            description: description.to_owned(),
            visibility: 1,
        }),
        1 => (0..USERS, pool_name()).prop_map(|(user, name)| Op::Start { user, name }),
    ]
}

/// A case: a few steps that make state, then any steps, 30 at most.
fn steps() -> impl Strategy<Value = Vec<Op>> {
    (vec(setup_op(), 0..=6), vec(op(), 1..=MAX_STEPS - 6)).prop_map(|(mut setup, ops)| {
        setup.extend(ops);
        setup
    })
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let page_size = prop_oneof![Just(0), 1..4, Just(-1)];
    let selection = prop_oneof![
        1 => Just(Selection::Recording),
        3 => context_name().prop_map(Selection::Named),
        2 => Just(Selection::All),
        1 => context_name().prop_map(Selection::Both),
    ];
    let query = prop_oneof![
        select(vec![
            "note",
            "'; DROP",
            "a & b",
            "\"quoted phrase\"",
            "-x or y",
            "%",
            "🦀"
        ])
        .prop_map(str::to_owned),
        Just("q".repeat(1001)),
        nasty(),
    ];
    let target = prop_oneof![
        3 => any::<usize>().prop_map(Target::Own),
        3 => any::<usize>().prop_map(Target::Seen),
        1 => select(vec![0, -1, i64::MIN, i64::MAX]).prop_map(Target::Raw),
    ];
    prop_oneof![
        4 => (user.clone(), context_name(), description(), select(vec![0, 0, 0, 1, 1, 1, 2, -1]))
            .prop_map(|(user, name, description, visibility)| Op::Create { user, name, description, visibility }),
        1 => (user.clone(), page_size.clone()).prop_map(|(user, page_size)| Op::List { user, page_size }),
        1 => (user.clone(), context_name()).prop_map(|(user, name)| Op::Get { user, name }),
        1 => (user.clone(), context_name()).prop_map(|(user, name)| Op::Delete { user, name }),
        3 => (user.clone(), context_name()).prop_map(|(user, name)| Op::Start { user, name }),
        1 => (user.clone(), context_name()).prop_map(|(user, name)| Op::Stop { user, name }),
        6 => (user.clone(), prop_oneof![1 => Just(String::new()), 3 => context_name()], memory_type(), data())
            .prop_map(|(user, context, memory_type, data)| Op::Remember { user, context, memory_type, data }),
        2 => (user.clone(), selection, proptest::option::weighted(0.3, memory_type()), proptest::option::weighted(0.2, query), page_size)
            .prop_map(|(user, selection, memory_type, query, page_size)| Op::Recall { user, selection, memory_type, query, page_size }),
        2 => (user, target).prop_map(|(user, target)| Op::Forget { user, target }),
    ]
}

// ---------------------------------------------------------------- model

/// The documented syntax of a context name, written out again here.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=100).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

fn valid_type(value: &str) -> bool {
    (1..=64).contains(&value.chars().count())
        && !value.chars().any(char::is_control)
        && value.trim() == value
}

fn valid_description(value: &str) -> bool {
    value.chars().count() <= 1000 && !value.contains('\0')
}

fn valid_query(value: &str) -> bool {
    value.trim().chars().count() <= 1000 && !value.contains('\0')
}

fn has_nul(value: &Json) -> bool {
    match value {
        Json::String(text) => text.contains('\0'),
        Json::Array(items) => items.iter().any(has_nul),
        Json::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// What a Remember sends, and the record the model expects stored (`None`:
/// the request is invalid).
fn remember_data(data: &Data) -> (Option<Struct>, Option<Json>) {
    match data {
        Data::Object(object) => {
            if has_nul(object) {
                // Sent as is; the service must refuse it.
                return (Some(raw_struct(object)), None);
            }
            let record = json_to_struct(object.clone()).unwrap();
            // The record as the service writes it: numbers in their
            // shortest exact form (`3.0` is `3`); the size limit is on this.
            let text = struct_to_text(record.clone()).unwrap();
            let expected = (text.len() <= MAX_MEMORY_BYTES)
                .then(|| Json::Object(struct_to_object(text_to_struct(&text).unwrap()).unwrap()));
            (Some(record), expected)
        }
        Data::Sized(delta) => {
            let len = (MAX_MEMORY_BYTES - 8).saturating_add_signed((*delta).into());
            let object = json!({ "s": "a".repeat(len) });
            assert_eq!(
                object.to_string().len(),
                MAX_MEMORY_BYTES.saturating_add_signed((*delta).into())
            );
            let expected = (*delta <= 0).then(|| object.clone());
            (Some(json_to_struct(object).unwrap()), expected)
        }
        Data::NotANumber => {
            let record = Struct {
                fields: [(
                    "n".to_owned(),
                    Value {
                        kind: Some(Kind::NumberValue(f64::NAN)),
                    },
                )]
                .into(),
            };
            (Some(record), None)
        }
        Data::Missing => (None, None),
    }
}

/// A JSON object as a `Struct`, NUL characters and all.
fn raw_struct(object: &Json) -> Struct {
    match raw_value(object).kind {
        Some(Kind::StructValue(record)) => record,
        _ => unreachable!("an object"),
    }
}

fn raw_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(flag) => Kind::BoolValue(*flag),
        Json::Number(number) => Kind::NumberValue(number.as_f64().unwrap()),
        Json::String(text) => Kind::StringValue(text.clone()),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(raw_value).collect(),
        }),
        Json::Object(fields) => Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), raw_value(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

#[derive(Clone, Debug, PartialEq)]
struct Stored {
    context: String,
    memory_type: String,
    data: Json,
}

#[derive(Debug, Default)]
struct UserModel {
    /// Name -> description.
    contexts: BTreeMap<String, String>,
    recording: Option<String>,
    memories: BTreeMap<i64, Stored>,
}

impl UserModel {
    fn count(&self, context: &str) -> i64 {
        self.memories
            .values()
            .filter(|m| m.context == context)
            .count() as i64
    }

    /// The context a Remember or Recall without a name uses.
    fn resolve(&self, name: &str) -> Result<String, Code> {
        if name.is_empty() {
            self.recording.clone().ok_or(Code::FailedPrecondition)
        } else if self.contexts.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(Code::NotFound)
        }
    }

    /// What ListContexts should show: name -> (description, recording, count).
    fn listing(&self) -> BTreeMap<String, (String, bool, i64)> {
        self.contexts
            .iter()
            .map(|(name, description)| {
                let recording = self.recording.as_deref() == Some(name);
                (
                    name.clone(),
                    (description.clone(), recording, self.count(name)),
                )
            })
            .collect()
    }

    /// Memories newest first (ids grow with time).
    fn newest_first(&self, keep: impl Fn(&Stored) -> bool) -> Vec<(i64, Stored)> {
        self.memories
            .iter()
            .rev()
            .filter(|(_, m)| keep(m))
            .map(|(id, m)| (*id, m.clone()))
            .collect()
    }
}

#[derive(Debug, Default)]
struct Model {
    users: Vec<UserModel>,
    /// Every memory id any user was given in this case.
    seen: Vec<i64>,
}

/// How many steps ran and how many the service accepted, over all cases.
static STEPS: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------- checks

type Check<T = ()> = Result<T, TestCaseError>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

/// The answer must be a value when `want` is `Ok`, else that error code.
fn answer<T>(what: &str, got: Result<T, Status>, want: Result<(), Code>) -> Check<Option<T>> {
    STEPS.fetch_add(1, Ordering::Relaxed);
    match (got, want) {
        (Ok(value), Ok(())) => {
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
            Ok(Some(value))
        }
        (Err(status), Err(code)) if status.code() == code => Ok(None),
        (Ok(_), Err(code)) => Err(TestCaseError::fail(format!(
            "{what}: succeeded, expected {code:?}"
        ))),
        (Err(status), want) => Err(TestCaseError::fail(format!(
            "{what}: {:?} {:?}, expected {want:?}",
            status.code(),
            status.message()
        ))),
    }
}

fn memory_json(memory: &pb::Memory) -> Check<Json> {
    let data = memory
        .data
        .clone()
        .ok_or_else(|| TestCaseError::fail(format!("memory {} has no data", memory.id)))?;
    Ok(Json::Object(struct_to_object(data).map_err(|e| {
        TestCaseError::fail(format!("memory {} data: {e}", memory.id))
    })?))
}

fn same_memory(what: &str, got: &pb::Memory, id: i64, want: &Stored) -> Check {
    ensure!(got.id == id, "{what}: memory id {} != {id}", got.id);
    ensure!(
        got.context == want.context && got.r#type == want.memory_type,
        "{what}: memory {id} is in {:?} as {:?}, expected {:?} as {:?}",
        got.context,
        got.r#type,
        want.context,
        want.memory_type
    );
    let data = memory_json(got)?;
    ensure!(
        data == want.data,
        "{what}: memory {id} holds {data}, expected {}",
        want.data
    );
    Ok(())
}

fn same_context(what: &str, got: &pb::Context, model: &UserModel, name: &str) -> Check {
    let want = model.listing();
    let Some((description, recording, count)) = want.get(name) else {
        return Err(TestCaseError::fail(format!(
            "{what}: {name:?} not in model"
        )));
    };
    ensure!(
        got.name == name
            && &got.description == description
            && got.recording == *recording
            && got.memory_count == *count
            && got.visibility == pb::Visibility::Private as i32,
        "{what}: got {got:?}, expected {name:?} {description:?} recording={recording} count={count}"
    );
    Ok(())
}

/// Every page of ListContexts with `page_size`.
async fn list_all(client: &MemoryAs, page_size: i32) -> Result<Vec<pb::Context>, Status> {
    let mut contexts = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_contexts(page_size, &token).await?;
        contexts.extend(page.contexts);
        if page.next_page_token.is_empty() {
            return Ok(contexts);
        }
        token = page.next_page_token;
    }
}

/// A user's contexts and memories equal the model, exactly.
async fn check_user(index: usize, client: &MemoryAs, model: &UserModel) -> Check {
    let who = format!("user {index}");
    let contexts = list_all(client, 0)
        .await
        .map_err(|s| TestCaseError::fail(format!("{who}: ListContexts: {s:?}")))?;
    let names: BTreeSet<&str> = contexts.iter().map(|c| c.name.as_str()).collect();
    ensure!(
        names.len() == contexts.len(),
        "{who}: ListContexts repeats a name: {names:?}"
    );
    let listed: BTreeMap<String, (String, bool, i64)> = contexts
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                (c.description.clone(), c.recording, c.memory_count),
            )
        })
        .collect();
    ensure!(
        listed == model.listing(),
        "{who}: ListContexts shows {listed:?}, expected {:?}",
        model.listing()
    );
    let memories = client
        .recall_all(pb::RecallRequest {
            all_contexts: true,
            ..Default::default()
        })
        .await
        .map_err(|s| TestCaseError::fail(format!("{who}: Recall: {s:?}")))?;
    let want = model.newest_first(|_| true);
    ensure!(
        memories.iter().map(|m| m.id).collect::<Vec<_>>()
            == want.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "{who}: Recall shows ids {:?}, expected {:?}",
        memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        want.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    for (got, (id, stored)) in memories.iter().zip(&want) {
        same_memory(&who, got, *id, stored)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- steps

async fn step(clients: &[MemoryAs], model: &mut Model, op: &Op) -> Check {
    let what = format!("{op:?}");
    let what = what.as_str();
    match op {
        Op::Create {
            user,
            name,
            description,
            visibility,
        } => {
            let me = &mut model.users[*user];
            let want = if !valid_name(name)
                || !valid_description(description)
                || !matches!(visibility, 0 | 1)
            {
                Err(Code::InvalidArgument)
            } else if me.contexts.contains_key(name) {
                Err(Code::AlreadyExists)
            } else {
                Ok(())
            };
            let got = clients[*user]
                .create_context_with(pb::CreateContextRequest {
                    name: name.clone(),
                    description: description.clone(),
                    visibility: *visibility,
                })
                .await;
            if let Some(context) = answer(what, got, want)? {
                me.contexts.insert(name.clone(), description.clone());
                same_context(what, &context, me, name)?;
            }
        }
        Op::List { user, page_size } => {
            let want = if *page_size < 0 {
                Err(Code::InvalidArgument)
            } else {
                Ok(())
            };
            let got = list_all(&clients[*user], *page_size).await;
            if let Some(contexts) = answer(what, got, want)? {
                let me = &model.users[*user];
                ensure!(
                    contexts.len() == me.contexts.len(),
                    "{what}: {} contexts, expected {}",
                    contexts.len(),
                    me.contexts.len()
                );
                for context in &contexts {
                    same_context(what, context, me, &context.name)?;
                }
            }
        }
        Op::Get { user, name } => {
            let me = &model.users[*user];
            let want = named(me, name);
            let got = clients[*user].get_context(name).await;
            if let Some(context) = answer(what, got, want)? {
                same_context(what, &context, me, name)?;
            }
        }
        Op::Delete { user, name } => {
            let me = &mut model.users[*user];
            let want = named(me, name);
            let got = clients[*user].delete_context(name).await;
            if let Some(deleted) = answer(what, got, want)? {
                ensure!(
                    deleted == me.count(name),
                    "{what}: deleted {deleted} memories, expected {}",
                    me.count(name)
                );
                me.contexts.remove(name);
                me.memories.retain(|_, m| &m.context != name);
                if me.recording.as_deref() == Some(name) {
                    me.recording = None;
                }
            }
        }
        Op::Start { user, name } => {
            let me = &mut model.users[*user];
            let want = named(me, name);
            let got = clients[*user].start_recording(name).await;
            if let Some(response) = answer(what, got, want)? {
                let previous = me.recording.replace(name.clone());
                let previous = previous.filter(|p| p != name).unwrap_or_default();
                ensure!(
                    response.previous == previous,
                    "{what}: previous {:?}, expected {previous:?}",
                    response.previous
                );
                same_context(what, &response.context.unwrap(), me, name)?;
            }
        }
        Op::Stop { user, name } => {
            let me = &mut model.users[*user];
            let want = named(me, name);
            let got = clients[*user].stop_recording(name).await;
            if let Some(context) = answer(what, got, want)? {
                if me.recording.as_deref() == Some(name) {
                    me.recording = None;
                }
                same_context(what, &context, me, name)?;
            }
        }
        Op::Remember {
            user,
            context,
            memory_type,
            data,
        } => {
            let me = &mut model.users[*user];
            let (sent, expected) = remember_data(data);
            let want = if !(context.is_empty() || valid_name(context))
                || !valid_type(memory_type)
                || expected.is_none()
            {
                Err(Code::InvalidArgument)
            } else {
                me.resolve(context)
            };
            let got = clients[*user]
                .remember_struct(context, memory_type, sent)
                .await;
            if let Some(memory) = answer(what, got, want.clone().map(drop))? {
                let stored = Stored {
                    context: want.unwrap(),
                    memory_type: memory_type.clone(),
                    data: expected.unwrap(),
                };
                same_memory(what, &memory, memory.id, &stored)?;
                ensure!(
                    !model.seen.contains(&memory.id),
                    "{what}: id {} was given before",
                    memory.id
                );
                model.seen.push(memory.id);
                model.users[*user].memories.insert(memory.id, stored);
            }
        }
        Op::Recall {
            user,
            selection,
            memory_type,
            query,
            page_size,
        } => {
            let me = &model.users[*user];
            let (context, all_contexts) = match selection {
                Selection::Recording => (String::new(), false),
                Selection::Named(name) => (name.clone(), false),
                Selection::All => (String::new(), true),
                Selection::Both(name) => (name.clone(), true),
            };
            let valid = match selection {
                Selection::Both(name) => name.is_empty(),
                Selection::Named(name) => name.is_empty() || valid_name(name),
                Selection::Recording | Selection::All => true,
            } && memory_type
                .as_deref()
                .is_none_or(|t| t.is_empty() || valid_type(t))
                && query.as_deref().is_none_or(valid_query)
                && *page_size >= 0;
            let scope = if !valid {
                Err(Code::InvalidArgument)
            } else if all_contexts {
                Ok(None)
            } else {
                me.resolve(&context).map(Some)
            };
            let request = pb::RecallRequest {
                context,
                all_contexts,
                query: query.clone().unwrap_or_default(),
                r#type: memory_type.clone().unwrap_or_default(),
                page_size: *page_size,
                ..Default::default()
            };
            let got = clients[*user].recall_all(request).await;
            if let Some(memories) = answer(what, got, scope.clone().map(drop))? {
                let scope = scope.unwrap();
                let want = me.newest_first(|m| {
                    scope.as_ref().is_none_or(|c| &m.context == c)
                        && memory_type
                            .as_deref()
                            .is_none_or(|t| t.is_empty() || m.memory_type == t)
                });
                let text_query = query.as_deref().is_some_and(|q| !q.trim().is_empty());
                if text_query {
                    // Which memories match the text is PostgreSQL's to say;
                    // they must be among the caller's, with their data.
                    let want: BTreeMap<i64, Stored> = want.into_iter().collect();
                    let mut ids = Vec::new();
                    for memory in &memories {
                        let Some(stored) = want.get(&memory.id) else {
                            return Err(TestCaseError::fail(format!(
                                "{what}: memory {} is not the caller's to see",
                                memory.id
                            )));
                        };
                        same_memory(what, memory, memory.id, stored)?;
                        ids.push(memory.id);
                    }
                    ensure!(
                        ids.windows(2).all(|w| w[0] > w[1]),
                        "{what}: not newest first: {ids:?}"
                    );
                } else {
                    ensure!(
                        memories.len() == want.len(),
                        "{what}: {} memories, expected {:?}",
                        memories.len(),
                        want.iter().map(|(id, _)| id).collect::<Vec<_>>()
                    );
                    for (got, (id, stored)) in memories.iter().zip(&want) {
                        same_memory(what, got, *id, stored)?;
                    }
                }
            }
        }
        Op::Forget { user, target } => {
            let me = &mut model.users[*user];
            let id = match target {
                Target::Own(index) if !me.memories.is_empty() => {
                    *me.memories.keys().nth(index % me.memories.len()).unwrap()
                }
                Target::Seen(index) if !model.seen.is_empty() => {
                    model.seen[index % model.seen.len()]
                }
                Target::Own(_) | Target::Seen(_) => i64::MAX,
                Target::Raw(id) => *id,
            };
            let want = if id <= 0 {
                Err(Code::InvalidArgument)
            } else if me.memories.contains_key(&id) {
                Ok(())
            } else {
                Err(Code::NotFound)
            };
            let got = clients[*user].forget(id).await;
            if answer(&format!("{what} (id {id})"), got, want)?.is_some() {
                me.memories.remove(&id);
            }
        }
    }
    Ok(())
}

/// The answer for a named context of the caller.
fn named(me: &UserModel, name: &str) -> Result<(), Code> {
    if !valid_name(name) {
        Err(Code::InvalidArgument)
    } else if me.contexts.contains_key(name) {
        Ok(())
    } else {
        Err(Code::NotFound)
    }
}

/// Registers three new users and runs `ops`, checking everyone after
/// every step.
async fn run_case(pair: &TestPair, case: usize, ops: &[Op]) -> Check {
    let mut clients = Vec::new();
    for index in 0..USERS {
        let user = pair
            .register_user(&format!("random-{case}-{index}@example.test"))
            .await;
        clients.push(pair.memory_as(&user).await);
    }
    let mut model = Model {
        users: (0..USERS).map(|_| UserModel::default()).collect(),
        seen: Vec::new(),
    };
    for (number, op) in ops.iter().enumerate() {
        step(&clients, &mut model, op)
            .await
            .map_err(|e| TestCaseError::fail(format!("step {number}: {e}")))?;
        let (a, b, c) = tokio::join!(
            check_user(0, &clients[0], &model.users[0]),
            check_user(1, &clients[1], &model.users[1]),
            check_user(2, &clients[2], &model.users[2]),
        );
        for result in [a, b, c] {
            result.map_err(|e| TestCaseError::fail(format!("after step {number} {op:?}: {e}")))?;
        }
    }
    Ok(())
}

#[test]
fn random_rpc_sequences_keep_users_isolated_and_writes_exact() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pair = runtime.block_on(async {
        // Every case registers three users from this one address.
        let pair = spawn_pair_with(
            PairSettings::default()
                .auth(|s| s.registrations_per_client = 100_000)
                .memory(|s| s.max_memory_bytes = MAX_MEMORY_BYTES as u32),
        )
        .await;
        pair.wait_until_serving().await;
        pair
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // Shrinking re-runs whole cases against the services; bound it.
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let case = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let result = runner.run(&steps(), |ops| {
        let case = case.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(run_case(&pair, case, &ops))
    });
    eprintln!(
        "isolation_random: {} cases, {} steps ({} accepted) in {:.1} s",
        case.load(Ordering::Relaxed),
        STEPS.load(Ordering::Relaxed),
        ACCEPTED.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    runtime.block_on(pair.shutdown());
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!("{reason}\nminimal failing case: {ops:#?}"),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}
