//! The load generator (`em-bench`) in its smoke mode: every scenario runs
//! for a moment against a real pair and reports what happened. Nothing here
//! measures speed; `deploy/local/bench.sh` does that.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection, RunQueryDsl};
use ninaivalaigal_tests::{TestPair, cluster::Role, db::set_rls_user, spawn_pair};
use serde_json::Value;

const USERS: usize = 2;
const MEMORIES_PER_USER: i64 = 30;

/// Runs em-bench against `pair` with `args`; returns its JSON report.
/// (Asynchronously: the pair is served by this test's own runtime.)
async fn em_bench(pair: &TestPair, args: &[&str]) -> Value {
    let json = tempfile::NamedTempFile::new().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_em-bench"))
        .args(["--memory-url", &pair.memory_url()])
        .args(["--auth-url", &pair.auth_url()])
        .args(["--users", &USERS.to_string()])
        .args(["--memories-per-user", &MEMORIES_PER_USER.to_string()])
        .args(["--clients", "3", "--connections", "2"])
        .args(["--seconds", "0.5", "--warmup-seconds", "0"])
        .arg("--json")
        .arg(json.path())
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "em-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if args.contains(&"--setup-only") {
        return serde_json::from_str(&stdout).unwrap();
    }
    assert!(stdout.contains("throughput"), "{stdout}");
    serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Memories of `user_id`, counted in the database as that user.
async fn memories_of(pair: &TestPair, user_id: i64) -> i64 {
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction(async |conn| {
        set_rls_user(conn, user_id).await?;
        let count: Count = diesel::sql_query("SELECT count(*) AS n FROM memories")
            .get_result(conn)
            .await?;
        Ok::<_, diesel::result::Error>(count.n)
    })
    .await
    .unwrap()
}

fn ok_calls(report: &Value) -> i64 {
    report["statuses"]["OK"].as_i64().unwrap_or(0)
}

/// Only OK answers, at least one, and latencies to go with them.
fn assert_all_ok(report: &Value) {
    let statuses = report["statuses"].as_object().unwrap();
    assert!(ok_calls(report) > 0, "{report}");
    assert_eq!(statuses.len(), 1, "only OK answers: {report}");
    assert!(
        report["latency"]["p50_ms"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["ok_per_second"].as_f64().unwrap() > 0.0, "{report}");
}

#[tokio::test]
async fn every_scenario_runs_against_the_pair_and_reports() {
    let pair = spawn_pair().await;
    pair.wait_until_serving().await;

    // Set-up registers the accounts and fills their contexts.
    let setup = em_bench(&pair, &["--setup-only"]).await;
    let users: Vec<i64> = setup["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["id"].as_i64().unwrap())
        .collect();
    assert_eq!(users.len(), USERS);
    assert!(!setup.to_string().contains("token"), "no secrets: {setup}");
    for &user in &users {
        assert_eq!(memories_of(&pair, user).await, MEMORIES_PER_USER);
    }

    // Every acknowledged Remember is stored; a second run reuses the
    // accounts (logging in) and stores nothing on set-up.
    let remember = em_bench(&pair, &["--scenario", "remember"]).await;
    assert_all_ok(&remember);
    let mut stored = 0;
    for &user in &users {
        stored += memories_of(&pair, user).await - MEMORIES_PER_USER;
    }
    assert_eq!(stored, ok_calls(&remember), "{remember}");

    for scenario in ["recall", "recall-text", "mixed", "login"] {
        let report = em_bench(&pair, &["--scenario", scenario]).await;
        assert_eq!(report["scenario"], scenario);
        assert_all_ok(&report);
    }

    // Open loop: a call due every 25 ms for 0.5 s, answered or (when all
    // 3 in-flight slots are taken on a slow machine) counted as unsent.
    let open = em_bench(&pair, &["--scenario", "recall", "--rate", "40"]).await;
    assert_eq!(open["rate"], 40.0);
    let due: i64 = open["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_i64().unwrap())
        .sum();
    assert_eq!(due, 20, "{open}");
    assert!(ok_calls(&open) > 0, "{open}");
}
