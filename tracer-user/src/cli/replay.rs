//! `llm-tracer replay`: a recording through the same Pipeline as live events.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;
use tracer_core::{
    event::{flags, Direction},
    pipeline::Pipeline,
};
use tracing::warn;

use super::run::{CallHandler, PrintCalls};
use crate::capture::file::RecordReader;

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A recording made by `llm-tracer record`.
    pub file: PathBuf,
    #[command(flatten)]
    pub content: super::ContentArgs,
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

pub fn replay(args: ReplayArgs) -> Result<()> {
    let reader = RecordReader::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut pipeline = Pipeline::new(args.content.pipeline_config());
    let mut handler = PrintCalls;
    let mut conns: BTreeMap<(u32, u64), ConnSummary> = BTreeMap::new();
    let (mut bad, mut last_ts) = (0u64, 0u64);
    // Where the time goes: reading and decoding the file vs the pipeline (and the call output).
    let started = std::time::Instant::now();
    let mut in_pipeline = std::time::Duration::ZERO;
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
        if !event.has(flags::PROCESS_EXIT) {
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
        let t = std::time::Instant::now();
        for call in pipeline.feed(event) {
            handler.on_call(call);
        }
        in_pipeline += t.elapsed();
    }
    let t = std::time::Instant::now();
    for call in pipeline.finish(last_ts) {
        handler.on_call(call);
    }
    handler.flush();
    in_pipeline += t.elapsed();
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
    println!(
        "replay time {:.3} s: pipeline and output {:.3} s, reading and decoding the file {:.3} s",
        total.as_secs_f64(),
        in_pipeline.as_secs_f64(),
        total.saturating_sub(in_pipeline).as_secs_f64()
    );
    Ok(())
}
