//! `cargo xtask test`: unit tests (`cargo test`), then the end-to-end suites under `tests/*/`
//! (pytest, as root: they attach real uprobes to real clients), against the release binary.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Result};
use clap::Args;

use crate::{
    setup,
    util::{self, root, run as sh},
};

/// Inputs per fuzz target in `cargo xtask test` (the slowest target, h2, does about 100 a second
/// on a loaded 2-core VM).
const FUZZ_RUNS: u64 = 2000;

#[derive(Args)]
pub struct TestArgs {
    /// Only `cargo test` (no root needed).
    #[arg(long, conflicts_with = "e2e_only")]
    unit_only: bool,
    /// Only the end-to-end suites.
    #[arg(long)]
    e2e_only: bool,
    /// Passed to pytest as `-k EXPR`.
    #[arg(short = 'k')]
    filter: Option<String>,
    /// Skip the set-up step (for quick re-runs).
    #[arg(long)]
    no_setup: bool,
    /// Time bound per fuzz target in the short fuzz run after `cargo test`, which stops each
    /// target after a fixed number of inputs from a fixed seed (0: no fuzzing).
    #[arg(long, default_value_t = 60)]
    fuzz_seconds: u64,
}

pub fn run(args: TestArgs) -> Result<()> {
    if !args.no_setup {
        setup::run(if args.unit_only {
            setup::For::Build
        } else {
            setup::For::Tests
        })?;
    }
    if !args.e2e_only {
        sh(util::cargo()
            .current_dir(root())
            .args(["test", "--no-fail-fast"]))?;
        // The Kubernetes pod metadata resolver is behind the `k8s` feature (kube-rs is slow
        // to build, so the default build leaves it out): its tests run here, on their own.
        sh(util::cargo().current_dir(root()).args([
            "test",
            "--no-fail-fast",
            "-p",
            "tracer-user",
            "--features",
            "k8s",
            "--lib",
            "k8s::",
        ]))?;
        if args.fuzz_seconds > 0 {
            crate::fuzz::run(crate::fuzz::FuzzArgs {
                // A fixed seed and input count: CI fuzzes the same inputs every time, so a red
                // run is a real finding, reproducible with the same command; the time is only a
                // bound for slow machines.
                seconds: args.fuzz_seconds,
                targets: Vec::new(),
                seed: Some(1),
                runs: Some(FUZZ_RUNS),
            })?;
        }
    }
    if args.unit_only {
        return Ok(());
    }
    if !util::is_root() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        eprintln!("!! The end-to-end tests need root: they load eBPF programs and attach uprobes.");
        eprintln!(
            "!! They did NOT run. Run `sudo -E cargo xtask test` (or --unit-only on purpose)."
        );
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        bail!("end-to-end tests not run: not root");
    }
    util::build_release()?;
    let suites = suites()?;
    if suites.is_empty() {
        bail!("no end-to-end suites found under tests/");
    }
    let mut pytest = Command::new(setup::venv_python());
    pytest
        .current_dir(root())
        .env("LLM_TRACER_BIN", util::tracer_bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args([
            "-m",
            "pytest",
            "-ra",
            "-p",
            "no:cacheprovider",
            "--durations=15",
        ])
        .args(&suites);
    if let Some(k) = &args.filter {
        pytest.args(["-k", k]);
    }
    sh(&mut pytest)
}

/// Every `tests/<suite>/` folder that holds `test_*.py` files.
fn suites() -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root().join("tests"))? {
        let dir = entry?.path();
        if !dir.is_dir() {
            continue;
        }
        let has_tests = fs::read_dir(&dir)?.flatten().any(|f| {
            let name = f.file_name();
            let name = name.to_string_lossy();
            name.starts_with("test_") && name.ends_with(".py")
        });
        if has_tests {
            out.push(dir.strip_prefix(root()).unwrap_or(&dir).to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}
