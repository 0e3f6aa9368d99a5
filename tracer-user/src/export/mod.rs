//! Sinks: where recognised calls go. The console (default), a JSONL file, OTLP spans and
//! metrics, a Prometheus scrape endpoint; plus the process -> resource lookup and the agent's own
//! health metrics.
//!
//! [`Exporter`] is the one entry point for the run loop: it resolves the calling process, prices
//! the call, converts its capture timestamps to wall time once, and hands the same
//! [`ExportedCall`] to every configured [`Sink`].

pub mod cli;
pub mod clock;
pub mod console;
pub mod health;
pub mod jsonl;
pub mod metrics;
pub mod otlp;
pub mod otlp_delivery;
pub mod prometheus;
pub mod resource;
pub mod semconv;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod otlp_tests;
#[cfg(test)]
pub(crate) mod test_receiver;

use std::sync::Arc;
use std::time::SystemTime;

use tracer_core::call::{LlmCall, Origin};
use tracer_core::spend::{call_cost, PriceTable};

pub use clock::WallClock;
pub use health::Health;
pub use resource::{ProcessCache, ProcessInfo};

/// Why a sink could not take a call. The call is counted as an export error; other sinks still
/// get it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("OpenTelemetry: {0}")]
    Otel(String),
}

/// One call as every sink sees it: the call, who made it, what it cost, and wall-clock times.
#[derive(Debug, Clone)]
pub struct ExportedCall<'a> {
    pub call: &'a LlmCall,
    pub process: Arc<ProcessInfo>,
    pub cost_usd: Option<f64>,
    pub clock: WallClock,
}

impl ExportedCall<'_> {
    pub fn start(&self) -> SystemTime {
        self.clock.system_time(self.call.timing.request_start_ns)
    }

    pub fn end(&self) -> SystemTime {
        self.clock.system_time(self.call.timing.end_ns)
    }

    pub fn start_unix_ns(&self) -> u64 {
        self.clock.unix_ns(self.call.timing.request_start_ns)
    }

    pub fn end_unix_ns(&self) -> u64 {
        self.clock.unix_ns(self.call.timing.end_ns)
    }

    /// Request start to response end, seconds.
    pub fn duration_s(&self) -> f64 {
        self.call.duration_ns() as f64 / 1e9
    }

    /// Request start to the first output chunk, seconds; streamed responses only.
    pub fn time_to_first_chunk_s(&self) -> Option<f64> {
        if !self.call.streamed {
            return None;
        }
        let first = self.call.timing.first_output_ns?;
        Some(first.saturating_sub(self.call.timing.request_start_ns) as f64 / 1e9)
    }

    /// Mean gap between output chunks after the first, seconds, and how many gaps there were
    /// (`LlmCall` carries the first and last chunk times and the chunk count, not each chunk's).
    pub fn mean_time_per_output_chunk_s(&self) -> Option<(f64, u32)> {
        if !self.call.streamed || self.call.output_chunks < 2 {
            return None;
        }
        let first = self.call.timing.first_output_ns?;
        let gaps = self.call.output_chunks - 1;
        let span = self.call.timing.end_ns.saturating_sub(first) as f64 / 1e9;
        Some((span / f64::from(gaps), gaps))
    }

    /// The model shown to people: what answered, else what was asked for.
    pub fn display_model(&self) -> Option<&str> {
        self.call
            .response
            .model
            .as_deref()
            .or(self.call.request.model.as_deref())
    }
}

/// A destination for calls.
pub trait Sink: Send {
    /// Short name for logs and the export-error metric.
    fn name(&self) -> &'static str;

    fn export(&mut self, call: &ExportedCall<'_>) -> Result<(), SinkError>;

    /// Push out anything buffered.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flush and release (end of the run, SIGINT/SIGTERM).
    fn shutdown(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// The export edge of the run loop: process lookup, pricing, clock, fan-out to sinks.
pub struct Exporter {
    sinks: Vec<Box<dyn Sink>>,
    processes: ProcessCache,
    prices: PriceTable,
    clock: WallClock,
    health: Arc<Health>,
}

impl Exporter {
    pub fn new(
        sinks: Vec<Box<dyn Sink>>,
        processes: ProcessCache,
        prices: PriceTable,
        clock: WallClock,
        health: Arc<Health>,
    ) -> Self {
        Exporter {
            sinks,
            processes,
            prices,
            clock,
            health,
        }
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Call when a process is first seen (its first captured event), so its identity is read
    /// before it can exit.
    pub fn observe_process(&mut self, origin: &Origin) {
        self.processes.observe(origin);
    }

    /// [`Exporter::observe_process`] for a captured record: call it for every record (a map
    /// lookup once the pid is known).
    pub fn observe_event(&mut self, event: &tracer_core::event::TlsEvent) {
        if self.processes.knows(event.pid) {
            return;
        }
        self.processes.observe(&Origin {
            pid: event.pid,
            tid: event.tid,
            comm: event.comm.clone(),
            conn: event.conn,
        });
    }

    /// Call when a process exited and its calls have been delivered.
    pub fn forget_process(&mut self, pid: u32) {
        self.processes.forget(pid);
    }

    /// Hand one call to every sink. A failing sink is counted and logged; the others still get
    /// the call.
    pub fn export(&mut self, call: &LlmCall) {
        let exported = ExportedCall {
            call,
            process: self.processes.get(&call.origin),
            cost_usd: call_cost(&self.prices, call),
            clock: self.clock,
        };
        self.health.record_call();
        for sink in &mut self.sinks {
            if let Err(e) = sink.export(&exported) {
                self.health.record_export_error(sink.name());
                tracing::warn!(sink = sink.name(), error = %e, "export failed");
            }
        }
    }

    pub fn flush(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.flush() {
                self.health.record_export_error(sink.name());
                tracing::warn!(sink = sink.name(), error = %e, "flush failed");
            }
        }
    }

    /// Flush and stop every sink (idempotent).
    pub fn shutdown(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.shutdown() {
                tracing::warn!(sink = sink.name(), error = %e, "shutdown failed");
            }
        }
        self.sinks.clear();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shutdown();
    }
}
