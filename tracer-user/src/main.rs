//! `llm-tracer`: command line only; the work is in the library.

use std::process::ExitCode;

use clap::Parser as _;
use tracer_user::cli::{check, record, replay, run, Cli, Command};

/// glibc gives every thread that allocates its own malloc arena (up to 8 per core), each keeping
/// its freed memory: the run loop moves between the runtime's workers, so its allocations spread
/// over several arenas and the resident set grows with the thread count. The agent's threads
/// allocate little at the same time; one arena is enough. `MALLOC_ARENA_MAX` in the environment
/// still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only
        // sets an allocator parameter.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Spend(args)) => tracer_user::export::cli::run_spend(
            &args,
            std::time::SystemTime::now(),
            &mut std::io::stdout().lock(),
        ),
        Some(Command::Check(args)) => check::check(args),
        command => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("llm-tracer: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // The work runs as a task on a worker thread, not in `block_on` on the main thread:
            // the worker that sees the ring buffer readable then runs the loop itself, instead of
            // waking the main thread for every batch (a futex wake and a context switch each).
            runtime.block_on(async move {
                let work = tokio::spawn(async move {
                    match command {
                        Some(Command::Record(args)) => record::record(args).await,
                        Some(Command::Run(args)) => run::run(args).await,
                        Some(Command::Replay(args)) => replay::replay(args).await,
                        _ => run::run(cli.run).await,
                    }
                });
                work.await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("the agent task failed: {e}")))
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm-tracer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
