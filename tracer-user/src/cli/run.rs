//! `llm-tracer run`: live capture -> Pipeline -> call handler.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use tracer_core::{
    call::LlmCall,
    event::TlsEvent,
    pipeline::{Pipeline, PipelineStats},
};
use tracing::{info, warn};

use super::{ready_line, CaptureArgs, ShutdownSignal};
use crate::capture::live::{monotonic_ns, LiveCapture};
use crate::export::{
    cli::{ExportArgs, ExportSetup},
    health::CaptureLosses,
    Health,
};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub k8s: crate::k8s::K8sArgs,
    #[command(flatten)]
    pub content: super::ContentArgs,
    /// Seconds between coverage scans of all processes (the `llm_tracer.process.coverage`
    /// metric and the log line for each new process whose TLS the probes cannot see).
    #[arg(long, default_value_t = 10.0)]
    pub coverage_secs: f64,
}

/// What happens to each recognised call, and what the run loop reports on the way.
pub trait CallHandler {
    fn on_call(&mut self, call: LlmCall);
    /// Every captured record, before the pipeline sees it (process identity is read early).
    fn on_event(&mut self, _event: &TlsEvent) {}
    /// Once a second: the counters of the pipeline and the capture.
    fn on_tick(&mut self, _pipeline: &PipelineStats, _source: &LiveCapture) {}
    fn flush(&mut self) {}
}

/// The export sinks (console, JSONL, OTLP, Prometheus) as the run loop's call handler.
pub struct ExportCalls {
    setup: ExportSetup,
}

impl CallHandler for ExportCalls {
    fn on_call(&mut self, call: LlmCall) {
        self.setup.exporter.export(&call);
    }

    fn on_event(&mut self, event: &TlsEvent) {
        self.setup.exporter.observe_event(event);
    }

    fn on_tick(&mut self, pipeline: &PipelineStats, source: &LiveCapture) {
        let health = self.setup.exporter.health();
        health.set_pipeline(pipeline);
        let k = source.kernel_stats();
        let s = source.source_stats();
        // Every loss in one place: llm_tracer.drops by reason, each reason logged once.
        health.set_capture_losses(&CaptureLosses {
            ring_buffer_full: k.ringbuf_lost,
            kernel_read_failed: k.read_failed,
            bad_kernel_record: s.decode_errors,
            exec_queue_full: s.execs_dropped,
        });
        health.set_kernel(k.muted_bytes, k.closes);
        health.set_attached_targets(source.targets().len() as u64);
    }

    // No `flush`: `run` closes the outputs right after the loop, and closing sends what is
    // pending with a bounded wait (a flush first would wait for a slow endpoint twice).
}

pub async fn run(args: RunArgs) -> Result<()> {
    crate::export::cli::validate(&args.export)?;
    let health = Health::new();
    let pods = crate::k8s::start(&args.k8s).await?;
    let setup = crate::export::cli::setup(&args.export, health.clone(), pods).await?;
    let mut shutdown = ShutdownSignal::install()?;
    let mut source = LiveCapture::start(args.capture.live_options())?;
    health.set_attached_targets(source.targets().len() as u64);
    health.set_ready(true);
    println!("{}", ready_line(&source.targets()));
    // Logs each process whose TLS the probes cannot see, once (see `llm-tracer check`), and
    // keeps the verdicts for the `llm_tracer.process.coverage` metric.
    crate::probe::coverage::spawn_coverage_watch(
        Duration::from_secs_f64(args.coverage_secs.clamp(0.1, 3600.0)),
        health.coverage(),
    )?;
    let mut pipeline = Pipeline::new(args.content.pipeline_config());
    let mut handler = ExportCalls { setup };
    let result = drive(&mut source, &mut pipeline, &mut handler, &mut shutdown).await;
    // Flush and stop the outputs even when the loop failed: calls already made are not lost.
    handler.setup.close().await;
    info!("outputs closed");
    drop(source);
    result
}

/// The main loop: records from the source into the pipeline, calls to the handler; time
/// ticks expire idle connections and hand the counters (kernel loss among them) to the handler.
/// Ends on SIGINT/SIGTERM.
pub async fn drive(
    source: &mut LiveCapture,
    pipeline: &mut Pipeline,
    handler: &mut (dyn CallHandler + Send),
    shutdown: &mut ShutdownSignal,
) -> Result<()> {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            r = source.next_batch(&mut batch) => {
                r?;
                for event in batch.drain(..) {
                    handler.on_event(&event);
                    for call in pipeline.feed(event) {
                        handler.on_call(call);
                    }
                }
                source.mute_not_llm(pipeline.take_not_llm());
            }
            _ = ticker.tick() => {
                for call in pipeline.tick(monotonic_ns()) {
                    handler.on_call(call);
                }
                handler.on_tick(pipeline.stats(), source);
            }
        }
    }
    info!("stopping: flushing the outputs");
    for call in pipeline.finish(monotonic_ns()) {
        handler.on_call(call);
    }
    handler.on_tick(pipeline.stats(), source);
    handler.flush();
    let k = source.kernel_stats();
    info!(
        "stopped: {} records delivered by the kernel, {} lost, {} wake-ups; {} muted reads skipped ({} bytes); {} connections freed; pipeline saw {} events ({} bytes), {} calls",
        k.records,
        k.ringbuf_lost,
        k.wakeups,
        k.muted,
        k.muted_bytes,
        k.closes,
        pipeline.stats().events,
        pipeline.stats().bytes,
        pipeline.stats().calls
    );
    Ok(())
}

/// Logs kernel ring buffer loss since the last report; returns the new total (`record`, which
/// has no self-metrics; `run` counts it in `llm_tracer.drops`, logged once).
pub fn report_loss(source: &LiveCapture, reported: u64) -> u64 {
    let k = source.kernel_stats();
    if k.ringbuf_lost > reported {
        warn!(
            "the kernel dropped {} record(s) ({} bytes in total so far) because the ring buffer was full; raise --ring-bytes",
            k.ringbuf_lost - reported,
            k.ringbuf_lost_bytes
        );
    }
    k.ringbuf_lost
}
