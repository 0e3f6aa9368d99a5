//! Start-up checks that turn the usual failures into one sentence naming the problem and the fix.

use std::path::Path;

/// Capability bits (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "llm-tracer needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN) to load eBPF programs: run it with sudo"
    )]
    NotPrivileged,
    #[error(
        "this kernel does not offer BPF to this process ({0}): use Linux 5.8 or newer with CONFIG_BPF_SYSCALL, uprobes and BTF, outside a locked-down sandbox"
    )]
    NoBpf(String),
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Root, or the capabilities loading and attaching needs.
pub fn check_privileges() -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = effective_caps().unwrap_or(0);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    Err(PreflightError::NotPrivileged)
}

/// What the kernel must offer: the bpf syscall, uprobes (perf PMU) and BTF.
pub fn check_kernel() -> Result<(), PreflightError> {
    if !Path::new("/sys/bus/event_source/devices/uprobe").exists() {
        return Err(PreflightError::NoBpf(
            "no uprobe support: /sys/bus/event_source/devices/uprobe is missing".into(),
        ));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBpf(
            "no kernel BTF: /sys/kernel/btf/vmlinux is missing".into(),
        ));
    }
    Ok(())
}
