//! `llm-tracer check`: which running processes use which TLS stack, and whether llm-tracer's
//! probes see them. Traces nothing; needs only read access to `/proc` (root for all processes).

use std::io::Write as _;

use clap::Args;

use crate::probe::coverage::{render_json, render_text, Scanner};

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Print JSON (an array of processes) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list processes without any TLS stack.
    #[arg(long)]
    pub all: bool,
    /// Only these processes (repeatable).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
}

pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let mut scanner = Scanner::default();
    let procs = if args.pids.is_empty() {
        scanner.scan_all()
    } else {
        args.pids
            .iter()
            .filter_map(|&p| scanner.process(p))
            .collect()
    };
    // Asking for a pid means wanting its line even when it has no TLS.
    let all = args.all || !args.pids.is_empty();
    let out = if args.json {
        render_json(&procs, all) + "\n"
    } else {
        render_text(&procs, all)
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}
