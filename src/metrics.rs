//! One service's metrics, rendered as Prometheus text by the service's
//! metrics endpoint (`server::MetricsSettings`).
//!
//! Each service owns a [`Metrics`] of its own rather than the process-wide
//! recorder of the `metrics` crate: the tests run several services in one
//! process, and each must count only its own requests. Label values are
//! `&'static str`, so they come from a set fixed in the code, never from
//! what a client sends (RPC names are mapped onto the known set by the
//! server frame first).

use std::{fmt, sync::Arc};

pub use metrics::{Counter, Gauge, Histogram};
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use parking_lot::Mutex;

/// Bucket bounds of every histogram whose name ends in `_seconds`: from a
/// millisecond to the longest request timeout anyone would set.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METADATA: Metadata<'static> = Metadata::new("ninaivalaigal", Level::INFO, None);

/// Work run just before each scrape, to set gauges that are cheaper read
/// than kept (pool state, the age of a list).
type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// A service's metrics registry. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    on_scrape: Mutex<Vec<ScrapeHook>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry; histograms of seconds are real Prometheus
    /// histograms (buckets), not summaries.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("the bucket list is a non-empty constant")
            .build_recorder();
        Self {
            inner: Arc::new(Inner {
                recorder,
                on_scrape: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The counter `name` with these labels.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.inner
            .recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// The gauge `name` with these labels.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&key(name, labels), &METADATA)
    }

    /// The histogram `name` with these labels.
    pub fn histogram(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// Sets the `# HELP` line of `name`.
    pub fn describe(&self, name: &'static str, help: &'static str) {
        self.inner
            .recorder
            .describe_counter(KeyName::from_const_str(name), None, help.into());
    }

    /// Runs `hook` before every scrape, to bring gauges up to date.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.inner.on_scrape.lock().push(Box::new(hook));
    }

    /// The recorder, for series whose label values are not `'static` (the
    /// server frame's RPC names, taken from a fixed set).
    #[cfg(feature = "server")]
    pub(crate) fn recorder(&self) -> &PrometheusRecorder {
        &self.inner.recorder
    }

    /// The metadata every series is registered with.
    #[cfg(feature = "server")]
    pub(crate) fn metadata(&self) -> &'static Metadata<'static> {
        &METADATA
    }

    /// Everything recorded, in the Prometheus text format.
    pub fn render(&self) -> String {
        for hook in self.inner.on_scrape.lock().iter() {
            hook();
        }
        self.inner.recorder.handle().render()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|&(label, value)| Label::from_static_parts(label, value))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registry_counts_on_its_own_and_renders_histograms_with_buckets() {
        let (one, other) = (Metrics::new(), Metrics::new());
        one.describe("test_calls_total", "Calls made.");
        one.counter("test_calls_total", &[("code", "OK")])
            .increment(2);
        other
            .counter("test_calls_total", &[("code", "OK")])
            .increment(5);
        one.histogram("test_wait_seconds", &[]).record(0.003);
        let text = one.render();
        assert!(
            text.contains("# HELP test_calls_total Calls made."),
            "{text}"
        );
        assert!(text.contains("test_calls_total{code=\"OK\"} 2"), "{text}");
        assert!(
            text.contains("test_wait_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(other.render().contains("test_calls_total{code=\"OK\"} 5"));
    }

    #[test]
    fn scrape_hooks_run_before_rendering() {
        let metrics = Metrics::new();
        let gauge = metrics.gauge("test_size", &[]);
        metrics.on_scrape(move || gauge.set(7.0));
        assert!(metrics.render().contains("test_size 7"));
    }
}
