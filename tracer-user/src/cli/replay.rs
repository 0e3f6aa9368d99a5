//! `llm-tracer replay`: a recording through the same Pipeline and the same export sinks as live
//! events (`--jsonl`, `--otlp-endpoint`, ... as in `run`; the console by default).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Args;
use tracer_core::{
    event::{flags, Direction},
    pipeline::Pipeline,
};
use tracing::warn;

use crate::capture::file::RecordReader;
use crate::export::{
    cli::{ExportArgs, Source},
    Health,
};

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A recording made by `llm-tracer record`.
    pub file: PathBuf,
    #[command(flatten)]
    pub content: super::ContentArgs,
    #[command(flatten)]
    pub export: ExportArgs,
}

#[derive(Default)]
struct ConnSummary {
    comm: String,
    records: u64,
    write_bytes: u64,
    read_bytes: u64,
    truncated: u64,
    lost_before: u64,
}

/// Must run inside a tokio runtime (OTLP over gRPC and the Prometheus endpoint use it).
pub async fn replay(args: ReplayArgs) -> Result<()> {
    crate::export::cli::validate(&args.export)?;
    let reader = RecordReader::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut setup =
        crate::export::cli::setup_with(&args.export, Health::new(), None, Source::Recording)
            .await?;
    let mut pipeline = Pipeline::new(args.content.pipeline_config());
    let mut conns: BTreeMap<(u32, u64), ConnSummary> = BTreeMap::new();
    let (mut bad, mut last_ts) = (0u64, 0u64);
    // Where the time goes: reading and decoding the file, the pipeline, the export sinks.
    let started = Instant::now();
    let (mut in_pipeline, mut in_export) = (Duration::ZERO, Duration::ZERO);
    for item in reader {
        let event = match item {
            Ok(e) => e,
            Err(e) => {
                bad += 1;
                warn!("{}: {e}", args.file.display());
                continue;
            }
        };
        last_ts = last_ts.max(event.ts_ns);
        if !event.has(flags::PROCESS_EXIT) && !event.has(flags::CONN_CLOSED) {
            let c = conns.entry((event.pid, event.conn)).or_default();
            c.comm.clone_from(&event.comm);
            c.records += 1;
            match event.direction {
                Direction::Write => c.write_bytes += event.data.len() as u64,
                Direction::Read => c.read_bytes += event.data.len() as u64,
            }
            c.truncated += u64::from(event.has(flags::TRUNCATED));
            c.lost_before += u64::from(event.has(flags::LOST_BEFORE));
        }
        let t = Instant::now();
        setup.exporter.observe_event(&event);
        let calls = pipeline.feed(event);
        let t2 = Instant::now();
        for call in &calls {
            setup.exporter.export(call);
        }
        in_pipeline += t2 - t;
        in_export += t2.elapsed();
    }
    let t = Instant::now();
    let calls = pipeline.finish(last_ts);
    let t2 = Instant::now();
    for call in &calls {
        setup.exporter.export(call);
    }
    // No flush here: the JSONL sink writes each line as it comes; `close` below sends what the
    // OTLP batches hold, with a bounded wait.
    in_pipeline += t2 - t;
    in_export += t2.elapsed();
    let total = started.elapsed();
    println!("connections:");
    for ((pid, conn), c) in &conns {
        println!(
            "  pid {pid} ({}) conn {conn:#x}: {} records, {} bytes written, {} bytes read{}{}",
            c.comm,
            c.records,
            c.write_bytes,
            c.read_bytes,
            if c.truncated > 0 {
                format!(", {} truncated", c.truncated)
            } else {
                String::new()
            },
            if c.lost_before > 0 {
                format!(", {} after a loss", c.lost_before)
            } else {
                String::new()
            },
        );
    }
    let s = pipeline.stats();
    println!(
        "replayed {} records ({} bytes) from {}, {} bad lines, {} calls",
        s.events,
        s.bytes,
        args.file.display(),
        bad,
        s.calls
    );
    // `cargo xtask bench` reads the numbers of this line in order.
    let both = in_pipeline + in_export;
    println!(
        "replay time {:.3} s: pipeline and export {:.3} s (pipeline {:.3} s, export {:.3} s), reading and decoding the file {:.3} s",
        total.as_secs_f64(),
        both.as_secs_f64(),
        in_pipeline.as_secs_f64(),
        in_export.as_secs_f64(),
        total.saturating_sub(both).as_secs_f64()
    );
    setup.close().await;
    Ok(())
}
