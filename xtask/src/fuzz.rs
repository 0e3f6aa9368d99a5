//! `cargo xtask fuzz --seconds N`: every fuzz target of `fuzz/` (cargo-fuzz, libFuzzer) for N
//! seconds each, from a corpus seeded with the project's fixtures (`fuzz/corpus/<target>/`, kept
//! between runs, not committed). Installs the nightly toolchain and cargo-fuzz when missing.
//! A crash input is left in `fuzz/artifacts/<target>/`: copy it to `fuzz/regressions/<target>/`
//! with the fix, and `cargo test -p tracer-fuzz` replays it from then on.

use std::{fs, process::Command};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::util::{self, output, root, run as sh};

#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only these targets (default: all).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// libFuzzer's random seed (CI passes one, so its short run goes the same way each time).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop each target after this many inputs (with --seed: the same inputs on every run and
    /// machine, whatever its speed; --seconds still bounds the time).
    #[arg(long)]
    pub runs: Option<u64>,
}

/// Limits given to libFuzzer: far above what any target needs, so a leak or a runaway input is
/// a failure, not a slow run.
const LIBFUZZER_FLAGS: &[&str] = &["-rss_limit_mb=1024", "-timeout=20", "-max_len=65536"];

/// The nightly `cargo` (`cargo xtask` runs under the stable toolchain's own cargo, first on the
/// PATH, which does not understand `+nightly`).
fn nightly_cargo() -> Command {
    let mut c = Command::new("rustup");
    c.env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["run", "nightly", "cargo"]);
    c
}

fn nightly() -> Result<()> {
    let list = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if list.lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    sh(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
}

fn cargo_fuzz() -> Result<()> {
    if output(nightly_cargo().args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (a few minutes, once)");
    sh(util::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// The target names, from `fuzz/Cargo.toml`'s `[[bin]]` sections.
fn all_targets() -> Result<Vec<String>> {
    let manifest = root().join("fuzz/Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(v) = line.strip_prefix("name = ") {
                names.push(v.trim_matches('"').to_string());
            }
        }
    }
    if names.is_empty() {
        bail!("no fuzz targets in {}", manifest.display());
    }
    Ok(names)
}

pub fn run(args: FuzzArgs) -> Result<()> {
    nightly()?;
    cargo_fuzz()?;
    let dir = root().join("fuzz");
    let targets = if args.targets.is_empty() {
        all_targets()?
    } else {
        args.targets.clone()
    };
    // Seed the corpus from the fixtures (adds files; what the fuzzer found before stays).
    sh(util::cargo().current_dir(root()).args([
        "run",
        "-q",
        "-p",
        "tracer-fuzz",
        "--example",
        "seed_corpus",
        "--",
        &dir.join("corpus").to_string_lossy(),
    ]))?;
    // One build for all targets: no sanitizer (safe Rust; the checks are the targets'
    // assertions), debug assertions on (overflow checks), release optimisation.
    let build = [
        "fuzz",
        "build",
        "-s",
        "none",
        "-a",
        "--features",
        "libfuzzer",
    ];
    sh(nightly_cargo().current_dir(root()).args(build))?;
    let bin_dir = root().join("target/x86_64-unknown-linux-gnu/release");
    let mut failed = Vec::new();
    for t in &targets {
        let corpus = dir.join("corpus").join(t);
        let artifacts = dir.join("artifacts").join(t);
        fs::create_dir_all(&corpus)?;
        fs::create_dir_all(&artifacts)?;
        let log = artifacts.join("fuzz.log");
        let log_file = fs::File::create(&log)?;
        let status = Command::new(bin_dir.join(t))
            .arg(&corpus)
            .arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(LIBFUZZER_FLAGS)
            .args(args.seed.map(|s| format!("-seed={s}")))
            .args(args.runs.map(|r| format!("-runs={r}")))
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()
            .with_context(|| format!("starting fuzz target {t}"))?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        let done = text
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("no summary")
            .to_string();
        let cov = text
            .lines()
            .rev()
            .find(|l| l.contains("DONE") || l.contains("pulse"))
            .and_then(|l| l.split("cov: ").nth(1))
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        if status.success() {
            eprintln!("xtask: fuzz {t}: ok, {done} (coverage {cov})");
        } else {
            eprintln!("xtask: fuzz {t}: FAILED ({status}); log {}", log.display());
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for l in tail.into_iter().rev() {
                eprintln!("    {l}");
            }
            failed.push(t.clone());
        }
    }
    println!(
        "fuzz: {} passed, {} failed",
        targets.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (inputs in fuzz/artifacts/)",
            failed.join(", ")
        );
    }
    Ok(())
}
