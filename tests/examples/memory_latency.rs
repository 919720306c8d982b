//! Rough latency figures of the memory-service on this machine: the pair on
//! real sockets against the local Postgres, one client, sequential calls.
//! Not a test; run with
//! `cargo run --release -p ninaivalaigal-tests --example memory_latency [N]`.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::spawn_pair;
use serde_json::json;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what:<32} n={:<5} p50={:>8.2?} p90={:>8.2?} p99={:>8.2?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let pair = spawn_pair().await;
    let user = pair.register_user("bench@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("bench", "").await.unwrap();

    let mut remember = Vec::with_capacity(n);
    for i in 0..n {
        let data = json!({"text": format!("memory number {i} about postgres row security"), "i": i, "tags": ["a", "b"]});
        let start = Instant::now();
        memory.remember("bench", "note", data).await.unwrap();
        remember.push(start.elapsed());
    }
    report("Remember (small JSON)", remember);

    let mut recall = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        memory
            .recall(pb::RecallRequest {
                context: "bench".into(),
                page_size: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        recall.push(start.elapsed());
    }
    report("Recall (page of 50)", recall);

    let mut search = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        memory
            .recall(pb::RecallRequest {
                context: "bench".into(),
                query: format!("number {i}"),
                page_size: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        search.push(start.elapsed());
    }
    report("Recall (full-text query)", search);

    let mut get = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        memory.get_context("bench").await.unwrap();
        get.push(start.elapsed());
    }
    report("GetContext", get);
    pair.shutdown().await;
}
