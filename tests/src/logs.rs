//! The services' logs, shown for failing tests.
//!
//! [`init`] installs a `tracing` subscriber once per test process. It writes
//! through libtest's capture (`with_test_writer`), so `cargo test` prints a
//! test's log lines only when that test fails (or with `--nocapture`). The
//! level comes from `TEST_LOG`:
//!
//! - unset, empty or `0`: warnings and errors;
//! - `1`: debug (the connection chatter of hyper, h2 and tokio-postgres at info);
//! - anything else: an `EnvFilter` directive, e.g. `TEST_LOG=memory_service=trace`.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// The level of the services' logs when `TEST_LOG` is `1`.
const VERBOSE: &str = "debug,h2=info,hyper=info,hyper_util=info,tower=info,tokio_postgres=info";

/// Installs the test subscriber; later calls do nothing. The harness calls it
/// whenever it creates a database or starts a service.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let directives = match std::env::var("TEST_LOG") {
            Err(_) => "warn".to_owned(),
            Ok(value) => match value.trim() {
                "" | "0" => "warn".to_owned(),
                "1" => VERBOSE.to_owned(),
                other => other.to_owned(),
            },
        };
        let filter = EnvFilter::try_new(&directives).unwrap_or_else(|error| {
            panic!("TEST_LOG={directives:?} is not a valid filter: {error}")
        });
        // Another subscriber may already be installed (a test that set up its
        // own); then that one wins.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            // Plain text: captured output often ends up in CI logs.
            .with_ansi(false)
            .try_init();
    });
}
