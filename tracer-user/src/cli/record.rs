//! `llm-tracer record`: live capture -> JSON Lines file.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use clap::Args;
use tracing::warn;

use super::{ready_line, CaptureArgs, ShutdownSignal};
use crate::capture::{file::RecordWriter, live::LiveCapture};

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Where to write the recording (JSON Lines, one object per record).
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

pub async fn record(args: RecordArgs) -> Result<()> {
    let mut writer = RecordWriter::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut shutdown = ShutdownSignal::install()?;
    let mut source = LiveCapture::start(args.capture.live_options())?;
    println!("{}", ready_line(&source.targets()));
    let deadline = tokio::time::sleep(
        args.duration
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9)))
            .unwrap_or(Duration::from_secs(u64::MAX / 4)),
    );
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut lost = 0u64;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = &mut deadline => break,
            r = source.next_batch(&mut batch) => {
                r?;
                for e in batch.drain(..) {
                    writer.write(&e).context("writing the recording")?;
                }
            }
            _ = ticker.tick() => {
                writer.flush().context("writing the recording")?;
                lost = super::run::report_loss(&source, lost);
            }
        }
    }
    // Drain what is already in the ring (without waiting for more), for at most a second: on a
    // busy machine new records keep coming, and a stop must not wait for them to end.
    // (The deadline is checked here: a timeout polls its future first, and under steady
    // traffic `next_batch` is ready at once every time.)
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < drain_until {
        let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_millis(50), source.next_batch(&mut batch)).await
        else {
            break;
        };
        for e in batch.drain(..) {
            writer.write(&e).context("writing the recording")?;
        }
    }
    writer.flush().context("writing the recording")?;
    let k = source.kernel_stats();
    let s = source.source_stats();
    if k.ringbuf_lost > 0 {
        warn!(
            "the kernel dropped {} record(s) (ring buffer full)",
            k.ringbuf_lost
        );
    }
    println!(
        "recorded {} records ({} data bytes) to {}; kernel: {} records sent, {} lost ({} bytes), {} read failures; {} bad records",
        writer.records,
        writer.bytes,
        args.out.display(),
        k.records,
        k.ringbuf_lost,
        k.ringbuf_lost_bytes,
        k.read_failed,
        s.decode_errors
    );
    Ok(())
}
