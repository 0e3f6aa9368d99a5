//! Installs what is missing, and nothing else: a second run on the same machine only checks.
//!
//! - Build: `rust-src` for the toolchain that builds the eBPF crate (tracer-user/build.rs uses the
//!   pinned stable 1.95.0 with RUSTC_BOOTSTRAP; a newer nightly's LLVM would not load in
//!   bpf-linker 0.10.4) and bpf-linker 0.10.4 (the newest that builds here without a system LLVM;
//!   shared/TOOLCHAIN.md).
//! - Tests: Debian packages listed in `tests/apt-packages.txt`, and a Python venv in
//!   `target/e2e-venv` with every `tests/*/requirements.txt` and `bench/requirements.txt`
//!   (re-installed only when those change).

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash, Hasher},
    path::PathBuf,
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::util::{self, output, root, run as sh};

pub const EBPF_TOOLCHAIN: &str = "1.95.0";
const BPF_LINKER_VERSION: &str = "0.10.4";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum For {
    Build,
    Tests,
}

pub fn run(what: For) -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    if what == For::Tests {
        apt_packages()?;
        python_venv()?;
    }
    Ok(())
}

fn ebpf_toolchain() -> String {
    std::env::var("LLM_TRACER_EBPF_TOOLCHAIN").unwrap_or_else(|_| EBPF_TOOLCHAIN.to_string())
}

fn rust_src() -> Result<()> {
    let tc = ebpf_toolchain();
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &tc,
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    if installed.is_empty() {
        // The toolchain itself is missing (or rustup could not list it): install it minimal.
        sh(Command::new("rustup").args(["toolchain", "install", &tc, "--profile", "minimal"]))?;
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", &tc]))
}

fn bpf_linker() -> Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.split_whitespace().nth(1) == Some(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing bpf-linker {BPF_LINKER_VERSION} (found: {}); about 90 s",
        if version.is_empty() { "none" } else { &version }
    );
    sh(util::cargo().args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
        "--force",
    ]))
}

/// Reads a package list: one name per line, `#` comments.
fn read_list(path: &PathBuf) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn apt_packages() -> Result<()> {
    let wanted = read_list(&root().join("tests/apt-packages.txt"))?;
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !util::is_root() {
        bail!(
            "these Debian packages are needed for the tests and missing: {}; run `cargo xtask setup --tests` as root (or apt-get install them)",
            missing.join(" ")
        );
    }
    sh(Command::new("apt-get").args(["update", "-q"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing))
}

pub fn venv_dir() -> PathBuf {
    root().join("target/e2e-venv")
}

pub fn venv_python() -> PathBuf {
    venv_dir().join("bin/python")
}

fn requirement_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(root().join("tests"))? {
        let req = entry?.path().join("requirements.txt");
        if req.is_file() {
            files.push(req);
        }
    }
    files.sort();
    // The benchmark's Python packages (`cargo xtask bench`).
    let bench = root().join("bench/requirements.txt");
    if bench.is_file() {
        files.push(bench);
    }
    Ok(files)
}

fn python_venv() -> Result<()> {
    let files = requirement_files()?;
    let mut hasher = DefaultHasher::new();
    for f in &files {
        fs::read(f)?.hash(&mut hasher);
    }
    let stamp_value = format!("{:x}\n", hasher.finish());
    let stamp = venv_dir().join(".requirements-stamp");
    if venv_python().exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_value) {
        return Ok(());
    }
    if !venv_python().exists() {
        sh(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv_dir()))?;
    }
    let mut pip = Command::new(venv_python());
    pip.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"]);
    for f in &files {
        pip.arg("-r").arg(f);
    }
    sh(&mut pip)?;
    fs::write(&stamp, stamp_value)?;
    Ok(())
}
