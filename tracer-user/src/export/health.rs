//! The agent's own health: what it captured, dropped and exported, as `llm_tracer.*` metrics
//! (OTLP and Prometheus) and for `/healthz`.
//!
//! The run loop copies its running totals in (`set_*`, from `PipelineStats`, the probe
//! bookkeeping and the kernel loss counter); metric callbacks read them at collection time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::probe::coverage::SharedCoverage;

/// Shared counters. Totals only ever grow except `attached_targets` (a gauge).
#[derive(Debug, Default)]
pub struct Health {
    events: AtomicU64,
    bytes: AtomicU64,
    calls: AtomicU64,
    lost_records: AtomicU64,
    attached_targets: AtomicU64,
    connections_open: AtomicU64,
    memory_bytes: AtomicU64,
    muted_bytes: AtomicU64,
    connections_freed: AtomicU64,
    ready: AtomicBool,
    /// reason -> total.
    drops: Mutex<BTreeMap<String, u64>>,
    /// sink -> total.
    export_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// The latest TLS coverage verdict of every process with a TLS stack (filled by
    /// `probe::coverage::spawn_coverage_watch`; processes that exit leave it at the next scan).
    coverage: SharedCoverage,
}

/// What a drop reason means and what to do about it, for the one log line of each reason.
fn drop_hint(reason: &str) -> &'static str {
    match reason {
        "ring_buffer_full" => {
            "the kernel found the ring buffer full and dropped TLS records; raise --ring-bytes (or mute non-LLM traffic with --mute-non-llm)"
        }
        "kernel_read_failed" => {
            "the probes could not read a TLS buffer from the traced process; the call is flagged truncated"
        }
        "bad_kernel_record" => "a record from the kernel could not be decoded and was skipped",
        "exec_queue_full" => {
            "new processes arrived faster than discovery could look at them; the periodic rescan attaches to them later"
        }
        "otlp_queue_full" => {
            "the OTLP endpoint takes spans slower than calls are made (or is away); raise OTEL_BSP_MAX_QUEUE_SIZE or check the collector"
        }
        "otlp_export_failed" => "the OTLP endpoint did not take a batch of spans; check the collector",
        _ => "input the pipeline could not keep (a bound or unparsable data); the calls concerned are flagged",
    }
}

/// Store a drop total; the first drop of a reason is logged (once per reason for the agent's
/// life: the count goes on in the `llm_tracer.drops` metric, the log is not flooded).
fn set_drop(drops: &mut BTreeMap<String, u64>, reason: &str, total: u64, log: bool) {
    let before = drops.get(reason).copied().unwrap_or(0);
    if log && before == 0 && total > 0 {
        tracing::warn!(
            reason,
            "dropped: {reason}: {}; further drops of this reason are only counted, in llm_tracer.drops{{llm_tracer.drop.reason=\"{reason}\"}}",
            drop_hint(reason)
        );
    }
    drops.insert(reason.to_string(), total.max(before));
}

/// Totals of what the capture side lost, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureLosses {
    /// Records the kernel could not put in the ring buffer (it was full).
    pub ring_buffer_full: u64,
    /// TLS buffers the probes could not read (sent empty, flagged truncated).
    pub kernel_read_failed: u64,
    /// Records from the kernel that did not decode.
    pub bad_kernel_record: u64,
    /// New-process notifications discovery had no room for.
    pub exec_queue_full: u64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HealthSnapshot {
    pub ready: bool,
    pub events: u64,
    pub bytes: u64,
    pub calls: u64,
    pub lost_records: u64,
    pub attached_targets: u64,
    pub connections_open: u64,
    pub memory_bytes: u64,
    /// Bytes of non-LLM responses the kernel skipped (muted), never copied.
    pub muted_bytes: u64,
    /// Connections the kernel saw freed by their TLS library (closed at once).
    pub connections_freed: u64,
    pub drops: BTreeMap<String, u64>,
    pub export_errors: BTreeMap<String, u64>,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Health::default())
    }

    /// TLS records captured so far (total).
    pub fn set_events(&self, total: u64) {
        self.events.store(total, Ordering::Relaxed);
    }

    /// Plaintext bytes captured so far (total).
    pub fn set_bytes(&self, total: u64) {
        self.bytes.store(total, Ordering::Relaxed);
    }

    /// Copy the pure pipeline's counters (call after each batch or tick).
    pub fn set_pipeline(&self, stats: &tracer_core::pipeline::PipelineStats) {
        self.set_events(stats.events);
        self.set_bytes(stats.bytes);
        self.connections_open
            .store(stats.connections_open, Ordering::Relaxed);
        self.memory_bytes
            .store(stats.memory_bytes, Ordering::Relaxed);
        if let Ok(mut d) = self.drops.lock() {
            for (reason, n) in &stats.drops {
                set_drop(&mut d, reason, *n, true);
            }
        }
    }

    /// Ring-buffer records the kernel could not deliver (total).
    pub fn set_lost_records(&self, total: u64) {
        self.lost_records.store(total, Ordering::Relaxed);
    }

    /// Kernel totals: bytes of muted responses skipped, connections seen freed.
    pub fn set_kernel(&self, muted_bytes: u64, connections_freed: u64) {
        self.muted_bytes.store(muted_bytes, Ordering::Relaxed);
        self.connections_freed
            .store(connections_freed, Ordering::Relaxed);
    }

    /// Probe targets attached right now.
    pub fn set_attached_targets(&self, n: u64) {
        self.attached_targets.store(n, Ordering::Relaxed);
    }

    /// Probes attached: the agent is ready (`/healthz` reports it).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Total drops for one reason (e.g. `ring_buffer_full`, `conn_cap`, `body_cap`), from a
    /// counter kept elsewhere. Totals never go down.
    pub fn set_drops(&self, reason: &str, total: u64) {
        if let Ok(mut d) = self.drops.lock() {
            set_drop(&mut d, reason, total, true);
        }
    }

    /// Add to the drops for one reason (logged at the first).
    pub fn add_drops(&self, reason: &str, n: u64) {
        self.add(reason, n, true);
    }

    /// Add to the drops for one reason without the first-drop log line, for callers that say
    /// themselves what happened (the OTLP outage log).
    pub fn count_drops(&self, reason: &str, n: u64) {
        self.add(reason, n, false);
    }

    fn add(&self, reason: &str, n: u64, log: bool) {
        if let Ok(mut d) = self.drops.lock() {
            let total = d.get(reason).copied().unwrap_or(0).saturating_add(n);
            set_drop(&mut d, reason, total, log);
        }
    }

    /// Copy the kernel's and the capture's loss counters into the drops (call each tick).
    pub fn set_capture_losses(&self, losses: &CaptureLosses) {
        self.set_lost_records(losses.ring_buffer_full);
        if let Ok(mut d) = self.drops.lock() {
            for (reason, total) in [
                ("ring_buffer_full", losses.ring_buffer_full),
                ("kernel_read_failed", losses.kernel_read_failed),
                ("bad_kernel_record", losses.bad_kernel_record),
                ("exec_queue_full", losses.exec_queue_full),
            ] {
                set_drop(&mut d, reason, total, true);
            }
        }
    }

    /// The coverage verdicts the `llm_tracer.process.coverage` gauge reports (a scanner keeps
    /// the list current).
    pub fn coverage(&self) -> SharedCoverage {
        self.coverage.clone()
    }

    pub(crate) fn record_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_export_error(&self, sink: &'static str) {
        if let Ok(mut e) = self.export_errors.lock() {
            *e.entry(sink).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            ready: self.ready.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            lost_records: self.lost_records.load(Ordering::Relaxed),
            attached_targets: self.attached_targets.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            memory_bytes: self.memory_bytes.load(Ordering::Relaxed),
            muted_bytes: self.muted_bytes.load(Ordering::Relaxed),
            connections_freed: self.connections_freed.load(Ordering::Relaxed),
            drops: self.drops.lock().map(|d| d.clone()).unwrap_or_default(),
            export_errors: self
                .export_errors
                .lock()
                .map(|e| e.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
        }
    }

    /// Register the `llm_tracer.*` instruments on `meter`. They read this struct at each
    /// collection, so they live as long as the meter provider.
    pub fn register(self: &Arc<Self>, meter: &Meter) {
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.events")
            .with_unit("{event}")
            .with_description("TLS plaintext records captured")
            .with_callback(move |o| o.observe(h.events.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.bytes")
            .with_unit("By")
            .with_description("TLS plaintext bytes captured")
            .with_callback(move |o| o.observe(h.bytes.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.calls")
            .with_unit("{call}")
            .with_description("LLM calls recognised and exported")
            .with_callback(move |o| o.observe(h.calls.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.ring_buffer.lost")
            .with_unit("{record}")
            .with_description(
                "Records the kernel could not put in the ring buffer (also in llm_tracer.drops as ring_buffer_full)",
            )
            .with_callback(move |o| o.observe(h.lost_records.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_gauge("llm_tracer.attached_targets")
            .with_unit("{target}")
            .with_description("Libraries and binaries with probes attached")
            .with_callback(move |o| o.observe(h.attached_targets.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_gauge("llm_tracer.connections.open")
            .with_unit("{connection}")
            .with_description("TLS connections being tracked")
            .with_callback(move |o| o.observe(h.connections_open.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_gauge("llm_tracer.tracker.memory")
            .with_unit("By")
            .with_description("Bytes held by the connection trackers")
            .with_callback(move |o| o.observe(h.memory_bytes.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.muted.bytes")
            .with_unit("By")
            .with_description("Bytes of non-LLM responses the kernel skipped without copying")
            .with_callback(move |o| o.observe(h.muted_bytes.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.connections.freed")
            .with_unit("{connection}")
            .with_description("TLS connections the kernel saw freed (closed at once)")
            .with_callback(move |o| o.observe(h.connections_freed.load(Ordering::Relaxed), &[]))
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.drops")
            .with_unit("{item}")
            .with_description(
                "Data dropped, by reason: kernel and capture losses, pipeline bounds, OTLP export queue and failed exports",
            )
            .with_callback(move |o| {
                for (reason, n) in h.snapshot().drops {
                    o.observe(n, &[KeyValue::new("llm_tracer.drop.reason", reason)]);
                }
            })
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter("llm_tracer.export.errors")
            .with_unit("{error}")
            .with_description("Failed exports, by sink (a failed OTLP export is one batch)")
            .with_callback(move |o| {
                for (sink, n) in h.snapshot().export_errors {
                    o.observe(n, &[KeyValue::new("llm_tracer.sink", sink)]);
                }
            })
            .build();
        let h = self.clone();
        meter
            .u64_observable_gauge(METRIC_PROCESS_COVERAGE)
            // No unit: "1" would make the Prometheus name `..._ratio`, which a 0/1 state is not.
            .with_description(
                "Per process and TLS stack: 1 when the probes see its TLS plaintext, 0 when not (the reason says why)",
            )
            .with_callback(move |o| {
                let Ok(procs) = h.coverage.lock() else { return };
                for p in procs.iter() {
                    let name = p.exe.rsplit('/').next().unwrap_or(&p.exe).to_owned();
                    for s in &p.stacks {
                        let mut attrs = vec![
                            KeyValue::new("process.pid", i64::from(p.pid)),
                            KeyValue::new("process.executable.name", name.clone()),
                            KeyValue::new("llm_tracer.tls.stack", s.stack.id()),
                        ];
                        if let Some(r) = &s.reason {
                            attrs.push(KeyValue::new("llm_tracer.coverage.reason", r.clone()));
                        }
                        o.observe(u64::from(s.covered), &attrs);
                    }
                }
            })
            .build();
    }
}

/// Per-process TLS coverage gauge (one point per process and stack; bounded by the running
/// processes that have a TLS stack).
pub const METRIC_PROCESS_COVERAGE: &str = "llm_tracer.process.coverage";

impl Health {
    #[cfg(test)]
    fn set_coverage(&self, procs: Vec<crate::probe::coverage::ProcessTls>) {
        if let Ok(mut c) = self.coverage.lock() {
            *c = procs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::logs_of;
    use super::*;
    use crate::probe::coverage::ProcessTls;
    use crate::probe::tlsstack::{StackKind, StackVerdict};

    #[test]
    fn each_drop_reason_is_logged_once() {
        let h = Health::new();
        let logs = logs_of(|| {
            let mut stats = tracer_core::pipeline::PipelineStats::default();
            stats.drops.insert("conn_memory_cap", 1);
            h.set_pipeline(&stats);
            stats.drops.insert("conn_memory_cap", 5);
            stats.drops.insert("h1_bad_start_line", 2);
            h.set_pipeline(&stats);
            h.set_pipeline(&stats);
            h.add_drops("channel_full", 3);
            h.add_drops("channel_full", 3);
            h.set_drops("ringbuf_lost", 0);
        });
        let lines_with = |r: &str| logs.lines().filter(|l| l.contains(r)).count();
        assert_eq!(lines_with("conn_memory_cap"), 1, "{logs}");
        assert_eq!(logs.lines().count(), 3, "{logs}");
        assert!(logs.contains("dropped: h1_bad_start_line"), "{logs}");
        assert!(logs.contains("dropped: channel_full"), "{logs}");
        assert!(
            !logs.contains("ringbuf_lost"),
            "a zero total is not a drop: {logs}"
        );
        assert_eq!(h.snapshot().drops.get("channel_full"), Some(&6));
        assert_eq!(h.snapshot().drops.get("conn_memory_cap"), Some(&5));
    }

    #[test]
    fn capture_losses_are_drops_with_a_reason_logged_once() {
        let h = Health::new();
        let mut losses = CaptureLosses {
            ring_buffer_full: 5,
            ..Default::default()
        };
        let logs = logs_of(|| {
            h.set_capture_losses(&losses);
            losses.ring_buffer_full = 9;
            losses.exec_queue_full = 1;
            h.set_capture_losses(&losses);
            h.count_drops("otlp_export_failed", 4);
        });
        let s = h.snapshot();
        assert_eq!(s.drops.get("ring_buffer_full"), Some(&9));
        assert_eq!(s.drops.get("exec_queue_full"), Some(&1));
        assert_eq!(s.drops.get("otlp_export_failed"), Some(&4));
        // Known reasons are there from the start, at zero (a series to alert on).
        assert_eq!(s.drops.get("kernel_read_failed"), Some(&0));
        assert_eq!(s.lost_records, 9);
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].contains("dropped: ring_buffer_full"), "{logs}");
        assert!(lines[0].contains("raise --ring-bytes"), "{logs}");
        assert!(lines[1].contains("dropped: exec_queue_full"), "{logs}");
    }

    #[test]
    fn pipeline_stats_are_copied() {
        let h = Health::new();
        h.add_drops("channel_full", 2);
        let mut stats = tracer_core::pipeline::PipelineStats {
            events: 10,
            bytes: 4096,
            connections_open: 3,
            memory_bytes: 777,
            ..Default::default()
        };
        stats.drops.insert("conn_cap", 4);
        h.set_pipeline(&stats);
        h.set_attached_targets(2);
        let s = h.snapshot();
        assert_eq!(
            (
                s.events,
                s.bytes,
                s.connections_open,
                s.memory_bytes,
                s.attached_targets
            ),
            (10, 4096, 3, 777, 2)
        );
        assert_eq!(s.drops.get("conn_cap"), Some(&4));
        assert_eq!(s.drops.get("channel_full"), Some(&2));
    }

    fn process(pid: u32, exe: &str, stack: StackKind, reason: Option<&str>) -> ProcessTls {
        ProcessTls {
            pid,
            comm: "x".into(),
            exe: exe.into(),
            stacks: vec![StackVerdict {
                stack,
                version: None,
                path: exe.into(),
                covered: reason.is_none(),
                reason: reason.map(str::to_owned),
            }],
        }
    }

    fn scrape(registry: &prometheus::Registry) -> String {
        use prometheus::Encoder as _;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn coverage_gauge_follows_the_running_processes() {
        use opentelemetry::metrics::MeterProvider as _;
        let (reader, registry) = crate::export::prometheus::reader().unwrap();
        let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .build();
        let h = Health::new();
        h.register(&mp.meter("llm-tracer"));
        h.set_coverage(vec![
            process(41, "/usr/bin/python3.11", StackKind::OpenSslDynamic, None),
            process(
                42,
                "/opt/agent",
                StackKind::Rustls,
                Some("rustls: not supported"),
            ),
        ]);
        let text = scrape(&registry);
        let line = |pid: u32| {
            text.lines()
                .find(|l| {
                    l.starts_with("llm_tracer_process_coverage")
                        && l.contains(&format!("process_pid=\"{pid}\""))
                })
                .unwrap_or_else(|| panic!("no coverage line for pid {pid} in:\n{text}"))
                .to_owned()
        };
        let py = line(41);
        assert!(py.ends_with(" 1"), "{py}");
        assert!(
            py.contains("process_executable_name=\"python3.11\""),
            "{py}"
        );
        assert!(
            py.contains("llm_tracer_tls_stack=\"openssl_dynamic\""),
            "{py}"
        );
        assert!(!py.contains("llm_tracer_coverage_reason"), "{py}");
        let agent = line(42);
        assert!(agent.ends_with(" 0"), "{agent}");
        assert!(
            agent.contains("llm_tracer_coverage_reason=\"rustls: not supported\""),
            "{agent}"
        );
        // The uncovered process exits: its series is gone at the next collection.
        h.set_coverage(vec![process(
            41,
            "/usr/bin/python3.11",
            StackKind::OpenSslDynamic,
            None,
        )]);
        let text = scrape(&registry);
        let series = text
            .lines()
            .filter(|l| l.starts_with("llm_tracer_process_coverage{"))
            .count();
        assert_eq!(series, 1, "{text}");
        assert!(!text.contains("process_pid=\"42\""), "{text}");
        mp.shutdown().unwrap();
    }
}
