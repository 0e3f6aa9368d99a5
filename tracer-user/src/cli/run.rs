//! `llm-tracer run`: live capture -> Pipeline -> call handler.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use tracer_core::{
    call::LlmCall,
    pipeline::{Pipeline, PipelineConfig},
};
use tracing::{info, warn};

use super::{ready_line, shutdown_signal, CaptureArgs};
use crate::capture::live::{monotonic_ns, LiveCapture};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// What happens to each recognised call (console now; export sinks plug in here).
pub trait CallHandler {
    fn on_call(&mut self, call: LlmCall);
    fn flush(&mut self) {}
}

/// Prints one line per call.
pub struct PrintCalls;

impl CallHandler for PrintCalls {
    fn on_call(&mut self, call: LlmCall) {
        let json = serde_json::to_string(&call).unwrap_or_default();
        println!("{} {json}", call.span_name());
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let mut source = LiveCapture::start(args.capture.live_options())?;
    println!("{}", ready_line(&source.targets()));
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut handler = PrintCalls;
    drive(&mut source, &mut pipeline, &mut handler).await?;
    Ok(())
}

/// The main loop: records from the source into the pipeline, calls to the handler; time
/// ticks expire idle connections and report kernel loss. Ends on SIGINT/SIGTERM.
pub async fn drive(
    source: &mut LiveCapture,
    pipeline: &mut Pipeline,
    handler: &mut dyn CallHandler,
) -> Result<()> {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut lost_reported = 0u64;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            r = &mut shutdown => { r?; break; }
            r = source.next_batch(&mut batch) => {
                r?;
                for event in batch.drain(..) {
                    for call in pipeline.feed(event) {
                        handler.on_call(call);
                    }
                }
            }
            _ = ticker.tick() => {
                for call in pipeline.tick(monotonic_ns()) {
                    handler.on_call(call);
                }
                lost_reported = report_loss(source, lost_reported);
            }
        }
    }
    for call in pipeline.finish(monotonic_ns()) {
        handler.on_call(call);
    }
    handler.flush();
    report_loss(source, lost_reported);
    let k = source.kernel_stats();
    info!(
        "stopped: {} records delivered by the kernel, {} lost; pipeline saw {} events",
        k.records,
        k.ringbuf_lost,
        pipeline.stats().events
    );
    Ok(())
}

/// Logs kernel ring buffer loss since the last report; returns the new total.
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
