//! The command line: one module per subcommand; `main.rs` only dispatches.
pub mod record;
pub mod replay;
pub mod run;

use clap::{Args, Parser, Subcommand};
use tracer_common::limits;

use crate::capture::{ebpf::KernelOptions, live::LiveOptions};

/// Zero-code tracing of LLM API calls made by any process on this host.
#[derive(Debug, Parser)]
#[command(name = "llm-tracer", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run` (the default command).
    #[command(flatten)]
    pub run: run::RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach host-wide and report LLM calls (the default).
    Run(run::RunArgs),
    /// Capture TLS plaintext records to a JSON Lines file.
    Record(record::RecordArgs),
    /// Feed a recording through the pipeline, as if it were live.
    Replay(replay::ReplayArgs),
    /// Calls, tokens and cost per process, model or provider, from a `--jsonl` file.
    Spend(crate::export::cli::SpendArgs),
}

/// Options of the kernel capture, shared by `run` and `record`.
#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Bytes captured per TLS read/write call at most; the rest is flagged truncated with its
    /// true length (at most 4194304).
    #[arg(long, env = "LLM_TRACER_MAX_CAPTURE_BYTES", default_value_t = limits::DEFAULT_CAPTURE_CAP)]
    pub max_capture_bytes: u64,
    /// Kernel ring buffer size in bytes (a power of two); larger absorbs bigger bursts.
    #[arg(long, env = "LLM_TRACER_RING_BYTES", default_value_t = limits::DEFAULT_RING_BYTES)]
    pub ring_bytes: u32,
    /// Seconds between rescans of all processes for TLS libraries loaded late.
    #[arg(long, default_value_t = 2.0)]
    pub rescan_secs: f64,
}

impl CaptureArgs {
    pub fn live_options(&self) -> LiveOptions {
        LiveOptions {
            kernel: KernelOptions {
                max_capture_bytes: self.max_capture_bytes,
                ring_bytes: self.ring_bytes,
            },
            rescan_every: std::time::Duration::from_secs_f64(self.rescan_secs.clamp(0.1, 3600.0)),
        }
    }
}

/// The line that tells scripts and tests that capture has started.
pub fn ready_line(targets: &[crate::probe::discovery::AttachedTarget]) -> String {
    let paths: Vec<&str> = targets.iter().map(|t| t.path.as_str()).collect();
    format!(
        "llm-tracer ready: probes attached to {} file(s): {}",
        targets.len(),
        paths.join(", ")
    )
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
