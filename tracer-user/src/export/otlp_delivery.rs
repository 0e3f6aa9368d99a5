//! What happens to OTLP data when the endpoint is away, slow or failing.
//!
//! - Spans wait in one bounded queue ([`BoundedQueue`], in front of the SDK's batch processor,
//!   `OTEL_BSP_MAX_QUEUE_SIZE` spans). When it is full, a new span is dropped and counted
//!   (`otlp_queue_full`): the run loop never waits for the endpoint.
//! - A batch the exporter could not deliver (after the OTLP exporter's own retries, within
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`) is dropped and its spans counted (`otlp_export_failed`). The
//!   next batches are tried as usual, so export resumes by itself when the endpoint is back.
//! - [`OutageLog`] says once per outage what is happening and how to fix it, and once when the
//!   endpoint works again. Every failure is counted in `llm_tracer.export.errors`.
//!
//! The SDK's batch processor also counts its own queue-full drops, but keeps the count private;
//! this queue is sized the same, so the SDK's never fills and every drop is counted here.

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::health::Health;

/// Drop reason: a span found the export queue full.
pub const DROP_QUEUE_FULL: &str = "otlp_queue_full";
/// Drop reason: a span was in a batch the endpoint did not take.
pub const DROP_EXPORT_FAILED: &str = "otlp_export_failed";

/// The SDK's default for `OTEL_BSP_MAX_QUEUE_SIZE`.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

/// `OTEL_BSP_MAX_QUEUE_SIZE` as the SDK reads it (a decimal number; anything else: the default).
pub fn max_queue_size(env: &dyn Fn(&str) -> Option<String>) -> usize {
    env("OTEL_BSP_MAX_QUEUE_SIZE")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_QUEUE_SIZE)
}

/// Spans handed to the batch processor and not yet taken by the exporter. Shared by
/// [`BoundedQueue`] (adds) and the exporter (takes away when a batch reaches it).
#[derive(Debug, Default, Clone)]
pub struct QueueDepth(Arc<AtomicUsize>);

impl QueueDepth {
    /// A batch of `n` spans left the queue for the exporter.
    pub fn taken(&self, n: usize) {
        // Saturating: a batch the SDK formed before this count existed must not wrap it.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                Some(d.saturating_sub(n))
            });
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A span processor that holds at most `cap` spans in `inner` (the batch processor): past that,
/// a finished span is dropped and counted, never waited for.
#[derive(Debug)]
pub struct BoundedQueue<P: SpanProcessor> {
    inner: P,
    depth: QueueDepth,
    cap: usize,
    health: Arc<Health>,
}

impl<P: SpanProcessor> BoundedQueue<P> {
    pub fn new(inner: P, depth: QueueDepth, cap: usize, health: Arc<Health>) -> Self {
        BoundedQueue {
            inner,
            depth,
            cap,
            health,
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for BoundedQueue<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let before = self.depth.0.fetch_add(1, Ordering::AcqRel);
        if before >= self.cap {
            self.depth.taken(1);
            self.health.add_drops(DROP_QUEUE_FULL, 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug, Default)]
struct Outage {
    failing: bool,
    failed_exports: u64,
    dropped: u64,
}

/// Logs an endpoint's failures once per outage: the first failure says what happens and how to
/// fix it; the first success after failures says it works again. Failures in between are only
/// counted (and logged at debug level).
#[derive(Debug)]
pub struct OutageLog {
    /// "span" or "metric".
    what: &'static str,
    /// Where the data goes, for people ("http://collector:4318", "the OTEL_* endpoint").
    endpoint: String,
    /// What happens to the data meanwhile, and how to fix it.
    consequence: String,
    state: Mutex<Outage>,
}

impl OutageLog {
    pub fn new(what: &'static str, endpoint: String, consequence: String) -> Self {
        OutageLog {
            what,
            endpoint,
            consequence,
            state: Mutex::new(Outage::default()),
        }
    }

    /// An export failed; `dropped` items went with it.
    pub fn failed(&self, error: &dyn Display, dropped: u64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.failed_exports += 1;
        s.dropped += dropped;
        if s.failing {
            tracing::debug!(what = self.what, error = %error, dropped, "OTLP export failed again");
            return;
        }
        s.failing = true;
        tracing::warn!(
            "OTLP {} export to {} failed: {error}. {} Check that an OTLP collector is reachable there (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT, --otlp-protocol); this is logged once per outage.",
            self.what,
            self.endpoint,
            self.consequence
        );
    }

    /// An export went through.
    pub fn succeeded(&self) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.failing {
            let dropped = if s.dropped > 0 {
                format!(", {} {}(s) dropped", s.dropped, self.what)
            } else {
                String::new()
            };
            tracing::info!(
                "OTLP {} export to {} works again, after {} failed export(s){dropped}",
                self.what,
                self.endpoint,
                s.failed_exports,
            );
        }
        *s = Outage::default();
    }

    pub fn failing(&self) -> bool {
        self.state.lock().map(|s| s.failing).unwrap_or(false)
    }
}

/// Wraps the OTLP metric exporter: failed exports are counted
/// (`llm_tracer.export.errors{llm_tracer.sink="otlp-metrics"}`) and logged once per outage.
/// Metrics are cumulative, so nothing is lost for good: the next export carries the totals.
#[derive(Debug)]
pub struct CountedMetricExporter<E: PushMetricExporter> {
    inner: E,
    health: Arc<Health>,
    log: OutageLog,
}

pub const METRIC_SINK: &str = "otlp-metrics";

impl<E: PushMetricExporter> CountedMetricExporter<E> {
    pub fn new(inner: E, health: Arc<Health>, endpoint: String) -> Self {
        CountedMetricExporter {
            inner,
            health,
            log: OutageLog::new(
                "metric",
                endpoint,
                "Metrics are cumulative: the next export that goes through carries the totals."
                    .into(),
            ),
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for CountedMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let r = self.inner.export(metrics).await;
        match &r {
            Ok(()) => self.log.succeeded(),
            Err(e) => {
                self.health.record_export_error(METRIC_SINK);
                self.log.failed(e, 0);
            }
        }
        r
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::SpanExporter;

    use super::super::fixtures::*;
    use super::super::otlp::{ResourceRegistry, SpanSink, SpanSinkConfig};
    use super::super::Sink;
    use super::*;

    /// Counts what it is given; fails while `fail` is set; waits while `gate` is closed.
    #[derive(Debug, Clone, Default)]
    struct TestExporter {
        got: Arc<AtomicUsize>,
        fail: Arc<AtomicBool>,
        gate: Arc<AtomicBool>,
    }

    impl SpanExporter for TestExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            while self.gate.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.fail.load(Ordering::Acquire) {
                return Err(OTelSdkError::InternalFailure(
                    "connection refused (test)".into(),
                ));
            }
            self.got.fetch_add(batch.len(), Ordering::AcqRel);
            Ok(())
        }
    }

    fn sink(exporter: TestExporter, cap: usize, health: &Arc<Health>) -> SpanSink {
        SpanSink::with_config(
            exporter,
            Arc::new(ResourceRegistry::new(None, "")),
            health.clone(),
            SpanSinkConfig {
                max_queue_size: cap,
                endpoint: "http://collector.test:4318".into(),
            },
        )
    }

    fn drops(h: &Health, reason: &str) -> u64 {
        h.snapshot().drops.get(reason).copied().unwrap_or(0)
    }

    #[test]
    fn a_full_queue_drops_new_spans_and_counts_them() {
        let health = Health::new();
        let exporter = TestExporter::default();
        // The endpoint hangs: the first full batch (the batch size is the queue size here) is
        // taken by the exporter and stays stuck there; the queue fills again behind it.
        exporter.gate.store(true, Ordering::Release);
        let mut s = sink(exporter.clone(), 4, &health);
        let call = openai_stream();
        let logs = logs_of(|| {
            for _ in 0..20 {
                s.export(&exported(&call)).unwrap();
            }
        });
        let dropped = drops(&health, DROP_QUEUE_FULL);
        // At most the queue plus the one batch in the exporter are held.
        assert!((12..=16).contains(&dropped), "{dropped}");
        assert_eq!(
            logs.matches("dropped: otlp_queue_full").count(),
            1,
            "{logs}"
        );
        assert!(logs.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{logs}");
        exporter.gate.store(false, Ordering::Release);
        s.shutdown().unwrap();
        // Every span is either delivered or counted.
        assert_eq!(exporter.got.load(Ordering::Acquire) as u64 + dropped, 20);
        assert_eq!(drops(&health, DROP_EXPORT_FAILED), 0);
    }

    #[test]
    fn spans_of_failed_batches_are_counted_and_export_resumes() {
        let health = Health::new();
        let exporter = TestExporter::default();
        exporter.fail.store(true, Ordering::Release);
        let mut s = sink(exporter.clone(), 64, &health);
        let call = openai_stream();
        for _ in 0..3 {
            s.export(&exported(&call)).unwrap();
        }
        assert!(s.flush().is_err());
        assert_eq!(drops(&health, DROP_EXPORT_FAILED), 3);
        assert_eq!(health.snapshot().export_errors.get("otlp-spans"), Some(&1));
        // The endpoint is back: the next spans go through, the queue is empty again.
        exporter.fail.store(false, Ordering::Release);
        for _ in 0..2 {
            s.export(&exported(&call)).unwrap();
        }
        s.flush().unwrap();
        assert_eq!(exporter.got.load(Ordering::Acquire), 2);
        assert_eq!(drops(&health, DROP_EXPORT_FAILED), 3);
        assert_eq!(drops(&health, DROP_QUEUE_FULL), 0);
        s.shutdown().unwrap();
    }

    #[test]
    fn stopping_does_not_wait_long_for_a_hanging_endpoint() {
        let health = Health::new();
        let exporter = TestExporter::default();
        exporter.gate.store(true, Ordering::Release);
        let mut s = sink(exporter.clone(), 64, &health);
        let call = openai_stream();
        for _ in 0..3 {
            s.export(&exported(&call)).unwrap();
        }
        let t0 = std::time::Instant::now();
        assert!(
            s.shutdown().is_err(),
            "the hanging export cannot have finished"
        );
        let took = t0.elapsed();
        assert!(
            took >= super::super::otlp::SHUTDOWN_WAIT && took < Duration::from_secs(5),
            "{took:?}"
        );
        exporter.gate.store(false, Ordering::Release);
    }

    #[test]
    fn an_outage_is_logged_once_and_its_end_once() {
        let log = OutageLog::new("span", "http://c:4318".into(), "What happens.".into());
        let logs = logs_of(|| {
            log.failed(&"connection refused", 5);
            log.failed(&"connection refused", 7);
            log.failed(&"timed out", 1);
            assert!(log.failing());
            log.succeeded();
            log.succeeded();
            log.failed(&"HTTP 503", 2);
        });
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 3, "{logs}");
        assert!(lines[0].contains("WARN"), "{logs}");
        assert!(
            lines[0].contains("OTLP span export to http://c:4318 failed: connection refused. What happens. Check that an OTLP collector is reachable"),
            "{logs}"
        );
        assert!(lines[1].contains("INFO"), "{logs}");
        assert!(
            lines[1].contains("works again, after 3 failed export(s), 13 span(s) dropped"),
            "{logs}"
        );
        assert!(lines[2].contains("failed: HTTP 503"), "{logs}");
    }

    #[test]
    fn queue_size_is_read_like_the_sdk() {
        assert_eq!(max_queue_size(&|_| None), DEFAULT_MAX_QUEUE_SIZE);
        assert_eq!(max_queue_size(&|_| Some("100".into())), 100);
        assert_eq!(
            max_queue_size(&|_| Some("lots".into())),
            DEFAULT_MAX_QUEUE_SIZE
        );
    }

    #[derive(Debug)]
    struct FailingMetrics;

    impl PushMetricExporter for FailingMetrics {
        async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
            Err(OTelSdkError::InternalFailure("HTTP 503 (test)".into()))
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    #[test]
    fn failed_metric_exports_are_counted() {
        use opentelemetry::metrics::MeterProvider as _;
        let health = Health::new();
        let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(CountedMetricExporter::new(
                FailingMetrics,
                health.clone(),
                "http://c:4318/v1/metrics".into(),
            ))
            .build();
        health.register(&mp.meter("llm-tracer"));
        assert!(mp.force_flush().is_err());
        assert!(mp.force_flush().is_err());
        assert_eq!(health.snapshot().export_errors.get(METRIC_SINK), Some(&2));
        let _ = mp.shutdown();
    }
}
