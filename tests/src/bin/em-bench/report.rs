//! What a run measured: latencies of successful calls in an HDR histogram,
//! and every answer counted by its status, as text and as JSON.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tonic::Code;

use crate::scenario::Scenario;

/// Status name of calls the generator did not send (open loop, every
/// in-flight slot taken): the load it could not offer.
const UNSENT: &str = "UNSENT";

/// Latencies from 1 µs to 2 minutes, to 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid")
}

/// One task's (or the whole run's) measurements.
pub struct Recorder {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            latency_us: histogram(),
            statuses: BTreeMap::new(),
        }
    }

    /// An answered call: its latency counts when it succeeded.
    pub fn record(&mut self, code: Code, latency: Duration) {
        if code == Code::Ok {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.latency_us.saturating_record(us.max(1));
        }
        *self.statuses.entry(status_name(code)).or_default() += 1;
    }

    pub fn record_unsent(&mut self) {
        *self.statuses.entry(UNSENT.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
    }
}

/// gRPC's own name of a status (`OK`, `UNAVAILABLE`, ...).
fn status_name(code: Code) -> String {
    let name = format!("{code:?}");
    // CamelCase to SCREAMING_SNAKE_CASE, as the gRPC specification spells it.
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    if code == Code::Ok { "OK".into() } else { out }
}

/// A finished run.
pub struct Report {
    scenario: Scenario,
    clients: usize,
    connections: usize,
    rate: Option<f64>,
    measured: Duration,
    recorder: Recorder,
}

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99_9", 0.999),
    ("max", 1.0),
];

impl Report {
    pub fn new(
        scenario: Scenario,
        clients: usize,
        connections: usize,
        rate: Option<f64>,
        measured: Duration,
        recorder: Recorder,
    ) -> Self {
        Self {
            scenario,
            clients,
            connections,
            rate,
            measured,
            recorder,
        }
    }

    /// Successful calls.
    pub fn ok(&self) -> u64 {
        self.recorder.statuses.get("OK").copied().unwrap_or(0)
    }

    fn ok_per_second(&self) -> f64 {
        self.ok() as f64 / self.measured.as_secs_f64()
    }

    fn quantiles_ms(&self) -> Vec<(&'static str, f64)> {
        QUANTILES
            .iter()
            .map(|(name, q)| {
                let us = if self.recorder.latency_us.is_empty() {
                    0
                } else {
                    self.recorder.latency_us.value_at_quantile(*q)
                };
                (*name, us as f64 / 1000.0)
            })
            .collect()
    }

    pub fn text(&self) -> String {
        let load = match self.rate {
            Some(rate) => format!(
                "open loop at {rate} calls/s, at most {} in flight",
                self.clients
            ),
            None => format!("{} closed-loop clients", self.clients),
        };
        let latencies = self
            .quantiles_ms()
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.2} ms"))
            .collect::<Vec<_>>()
            .join(", ");
        let statuses = self
            .recorder
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "scenario {}: {load} over {} connections, {:.1} s measured\n  throughput {:.0} OK calls/s\n  latency of OK calls: {latencies}\n  answers: {statuses}\n",
            self.scenario.name(),
            self.connections,
            self.measured.as_secs_f64(),
            self.ok_per_second(),
        )
    }

    pub fn json(&self) -> Value {
        let latency: serde_json::Map<String, Value> = self
            .quantiles_ms()
            .into_iter()
            .map(|(name, ms)| (format!("{name}_ms"), json!(ms)))
            .collect();
        json!({
            "scenario": self.scenario.name(),
            "clients": self.clients,
            "connections": self.connections,
            "rate": self.rate,
            "seconds": self.measured.as_secs_f64(),
            "ok_per_second": self.ok_per_second(),
            "latency": latency,
            "statuses": self.recorder.statuses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_as_grpc_names_them() {
        assert_eq!(status_name(Code::Ok), "OK");
        assert_eq!(status_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(status_name(Code::Unavailable), "UNAVAILABLE");
    }

    #[test]
    fn percentiles_come_from_the_successful_calls_only() {
        let mut recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.record(Code::Ok, Duration::from_millis(ms));
        }
        recorder.record(Code::Unavailable, Duration::from_secs(100));
        let mut other = Recorder::new();
        other.record_unsent();
        recorder.merge(other);
        let report = Report::new(
            Scenario::Recall,
            1,
            1,
            None,
            Duration::from_secs(10),
            recorder,
        );
        assert_eq!(report.ok(), 100);
        assert!((report.ok_per_second() - 10.0).abs() < 1e-9);
        let q: BTreeMap<_, _> = report.quantiles_ms().into_iter().collect();
        assert!((q["p50"] - 50.0).abs() < 0.1, "{q:?}");
        assert!((q["max"] - 100.0).abs() < 0.1, "{q:?}");
        let json = report.json();
        assert_eq!(json["statuses"]["UNAVAILABLE"], 1);
        assert_eq!(json["statuses"]["UNSENT"], 1);
    }
}
