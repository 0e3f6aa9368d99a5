//! `cargo xtask`: the project's chores. `setup` installs what is missing (idempotent, fast the second
//! time), `run` builds and starts the tracer, `test` runs every test (unit and end-to-end as root).
//!
//! Every install step lives here (never by hand), so a fresh machine and CI get the same set-up.

mod bench;
mod demo;
mod fuzz;
mod setup;
mod test;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "llm-tracer chores: setup, build, run, test, fuzz"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building (and, with --tests, testing) needs; skips what is there.
    Setup {
        /// Also install the test dependencies (apt packages, the Python venv).
        #[arg(long)]
        tests: bool,
    },
    /// Build the agent in release mode (the eBPF object is built and embedded by build.rs).
    Build,
    /// Set up, build, and start `llm-tracer` (as root) with the given arguments.
    Run {
        /// Arguments for llm-tracer (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show the tracer at work on a machine with no internet: a local LLM endpoint, real
    /// curl / python3 / node calls, and the tracer's console.
    Demo,
    /// Set up, then run every test: `cargo test`, a short fuzz run of every target, then the
    /// end-to-end suites (root) with pytest.
    Test(test::TestArgs),
    /// Run every fuzz target (cargo-fuzz) for `--seconds` each, from the fixture-seeded corpus.
    Fuzz(fuzz::FuzzArgs),
    /// Measure what tracing costs (probe, app-visible, agent CPU/RSS, loss, replay throughput);
    /// writes target/bench/summary.json. As root.
    Bench(bench::BenchArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup { tests } => setup::run(if tests {
            setup::For::Tests
        } else {
            setup::For::Build
        }),
        Command::Build => {
            setup::run(setup::For::Build)?;
            util::build_release()
        }
        Command::Run { args } => {
            setup::run(setup::For::Build)?;
            util::build_release()?;
            util::exec_tracer(&args)
        }
        Command::Demo => demo::run(),
        Command::Test(args) => test::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
