//! Builds the eBPF programs (tracer-ebpf) for `bpfel-unknown-none` with aya-build and leaves the
//! object in `OUT_DIR/tracer`, which `src/capture/ebpf.rs` embeds.
//!
//! Why in build.rs and not xtask: the binary then always carries the object that matches its
//! source (the current aya layout). Cargo has no working artifact dependencies yet
//! (rust-lang/cargo#12374, #12375, #12385), hence the nested cargo run that aya-build drives.
//!
//! Toolchain: the pinned stable `1.95.0` with `RUSTC_BOOTSTRAP=1` for `-Z build-std=core`
//! (shared/TOOLCHAIN.md). A floating nightly would bring an LLVM bpf-linker 0.10.4 cannot load.
//! `LLM_TRACER_EBPF_TOOLCHAIN` overrides it.
//!
//! Skipping: clippy (it never needs the object) and `AYA_BUILD_SKIP=1` skip the eBPF build and
//! embed an empty object instead; such a binary says so and refuses to start capturing.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, Result};
use aya_build::{Package, Toolchain};

fn main() -> Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("tracer");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=LLM_TRACER_EBPF_TOOLCHAIN");
    // The ABI crate is shared; a change there must rebuild the kernel side too.
    println!("cargo:rerun-if-changed=../tracer-common/src");

    let under_clippy = env::var("RUSTC_WORKSPACE_WRAPPER")
        .map(|w| w.contains("clippy-driver"))
        .unwrap_or(false);
    let skip_env = env::var("AYA_BUILD_SKIP")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    if under_clippy || skip_env {
        // An empty object: the binary checks for this and explains.
        if !object.exists() || fs::metadata(&object)?.len() == 0 {
            fs::write(&object, b"")?;
        }
        return Ok(());
    }

    let toolchain = env::var("LLM_TRACER_EBPF_TOOLCHAIN").unwrap_or_else(|_| "1.95.0".to_string());
    if env::var_os("RUSTC_BOOTSTRAP").is_none() && !toolchain.starts_with("nightly") {
        // SAFETY: build scripts are single-threaded here; aya-build reads this and passes it on
        // to the nested cargo so `-Z build-std=core` works on stable.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let ebpf_dir = manifest_dir.join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
    .context("building the eBPF programs (tracer-ebpf); see the cargo warnings above")
}
