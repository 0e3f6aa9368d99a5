//! Small helpers: paths, running commands loudly, root check.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, echoing it first; fails with the command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

/// Captures a command's stdout (trimmed), or None when it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn tracer_bin() -> PathBuf {
    root().join("target/release/llm-tracer")
}

pub fn build_release() -> Result<()> {
    run(cargo().current_dir(root()).args([
        "build",
        "--release",
        "-p",
        "tracer-user",
        "--bin",
        "llm-tracer",
    ]))
}

/// Replaces this process with the tracer (through sudo when not root).
pub fn exec_tracer(args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let bin = tracer_bin();
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        eprintln!("xtask: llm-tracer needs root (or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH): using sudo");
        let mut c = Command::new("sudo");
        c.arg("-E").arg(&bin);
        c
    };
    cmd.args(args);
    Err(cmd.exec()).with_context(|| format!("could not start {}", bin.display()))
}
