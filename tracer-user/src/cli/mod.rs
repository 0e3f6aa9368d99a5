//! The command line: one module per subcommand; `main.rs` only dispatches.
pub mod check;
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
    /// List running processes, their TLS stack, and whether llm-tracer covers them.
    Check(check::CheckArgs),
}

/// Message content export: off unless asked for (prompts and completions are user data).
#[derive(Debug, Clone, Default, Args)]
pub struct ContentArgs {
    /// Export message content: `gen_ai.input.messages`, `gen_ai.output.messages` and
    /// `gen_ai.system_instructions` (JSON strings in the OTel GenAI message shape) on spans and
    /// in JSONL. Off by default. CAP: text bytes kept per call (default 65536); past it the text
    /// is cut and the call says so.
    /// Also on with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
    #[arg(long, value_name = "CAP", num_args = 0..=1, default_missing_value = "65536")]
    pub capture_content: Option<usize>,
}

/// The OpenTelemetry GenAI instrumentations' switch for message content; `true` turns content
/// capture on (at the default cap) when `--capture-content` is not given. The Helm chart sets it.
pub const CAPTURE_CONTENT_ENV: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
const DEFAULT_CONTENT_CAP: usize = 65536;

impl ContentArgs {
    /// The pipeline configuration these options ask for.
    pub fn pipeline_config(&self) -> tracer_core::pipeline::PipelineConfig {
        self.pipeline_config_with(std::env::var(CAPTURE_CONTENT_ENV).ok().as_deref())
    }

    /// [`ContentArgs::pipeline_config`] with the environment switch's value given.
    pub fn pipeline_config_with(&self, env: Option<&str>) -> tracer_core::pipeline::PipelineConfig {
        let mut cfg = tracer_core::pipeline::PipelineConfig::default();
        let from_env = env
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            .then_some(DEFAULT_CONTENT_CAP);
        cfg.recognizer.capture_content = self.capture_content.or(from_env);
        cfg
    }
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
    /// Benchmarks only: wake the agent when the unread data in the ring crosses a multiple of
    /// this many bytes (default: ring size / 16); 0 wakes it for every record (the kernel's
    /// default). Either way the agent also drains the ring every few milliseconds.
    #[arg(long, value_name = "BYTES", hide = true)]
    pub ring_wakeup_bytes: Option<u64>,
    /// Seconds between rescans of all processes for TLS libraries loaded late.
    #[arg(long, default_value_t = 2.0)]
    pub rescan_secs: f64,
    /// Never attach to TLS libraries or binaries under this path (repeatable), e.g. a private
    /// copy of libssl used by traffic you do not want traced.
    #[arg(long, value_name = "PATH")]
    pub exclude_path: Vec<std::path::PathBuf>,
    /// Benchmarks only: attach do-nothing entry+return programs to the OpenSSL read/write
    /// functions of this file (exclude it with --exclude-path so ours stay off it).
    #[arg(long, value_name = "PATH", hide = true)]
    pub bench_empty_probes: Option<std::path::PathBuf>,
    /// Copy every response, even those of requests that are not LLM calls. By default the
    /// kernel skips the response of an HTTP/1.1 request no provider claims (e.g. a download on
    /// the same host) until the connection's next request, so unrelated TLS traffic costs
    /// little; every request is always seen, and HTTP/2 is never muted.
    #[arg(long)]
    pub no_mute_non_llm: bool,
    /// Accepted for compatibility: muting is on by default now.
    #[arg(long, hide = true)]
    pub mute_non_llm: bool,
}

impl CaptureArgs {
    pub fn live_options(&self) -> LiveOptions {
        LiveOptions {
            kernel: KernelOptions {
                max_capture_bytes: self.max_capture_bytes,
                ring_bytes: self.ring_bytes,
                wake_bytes: self
                    .ring_wakeup_bytes
                    .unwrap_or(KernelOptions::default_wake_bytes(self.ring_bytes)),
            },
            rescan_every: std::time::Duration::from_secs_f64(self.rescan_secs.clamp(0.1, 3600.0)),
            exclude: self.exclude_path.clone(),
            bench_empty_probes: self.bench_empty_probes.clone(),
            mute_non_llm: !self.no_mute_non_llm,
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

/// SIGINT and SIGTERM handlers, installed at once: call it before printing `ready`, so that a
/// signal sent right after `ready` is a clean stop (flush, exit 0), never the default kill.
pub struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves when SIGINT or SIGTERM arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_of(args: &[&str]) -> Option<usize> {
        let cli = Cli::try_parse_from(args).expect("valid arguments");
        match cli.command {
            Some(Command::Run(r)) => r.content.capture_content,
            Some(Command::Replay(r)) => r.content.capture_content,
            None => cli.run.content.capture_content,
            Some(_) => panic!("unexpected command"),
        }
    }

    #[test]
    fn content_capture_is_off_unless_asked_for() {
        assert_eq!(content_of(&["llm-tracer"]), None);
        assert_eq!(content_of(&["llm-tracer", "run"]), None);
        assert_eq!(content_of(&["llm-tracer", "replay", "f.jsonl"]), None);
        let cfg = ContentArgs::default().pipeline_config_with(None);
        assert_eq!(cfg.recognizer.capture_content, None);
        let cfg = ContentArgs::default().pipeline_config_with(Some("false"));
        assert_eq!(cfg.recognizer.capture_content, None);
    }

    #[test]
    fn the_otel_genai_content_switch_turns_capture_on_and_the_flag_wins() {
        let cfg = ContentArgs::default().pipeline_config_with(Some("true"));
        assert_eq!(cfg.recognizer.capture_content, Some(DEFAULT_CONTENT_CAP));
        let cfg = ContentArgs {
            capture_content: Some(512),
        }
        .pipeline_config_with(Some("TRUE"));
        assert_eq!(cfg.recognizer.capture_content, Some(512));
    }

    #[test]
    fn content_capture_flag_with_and_without_a_cap() {
        assert_eq!(
            content_of(&["llm-tracer", "--capture-content"]),
            Some(65536)
        );
        assert_eq!(
            content_of(&["llm-tracer", "run", "--capture-content=512"]),
            Some(512)
        );
        assert_eq!(
            content_of(&["llm-tracer", "replay", "f.jsonl", "--capture-content"]),
            Some(65536)
        );
        let cfg = ContentArgs {
            capture_content: Some(512),
        }
        .pipeline_config_with(None);
        assert_eq!(cfg.recognizer.capture_content, Some(512));
        assert!(Cli::try_parse_from(["llm-tracer", "--capture-content=lots"]).is_err());
    }
}
