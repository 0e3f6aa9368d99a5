//! Start-up checks that turn the usual failures into one sentence naming the problem and the fix.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Names each missing capability and what it is for (crate::privilege).
    #[error("llm-tracer cannot trace with these privileges: {0}")]
    NotPrivileged(#[from] crate::privilege::PrivilegeError),
    #[error(
        "this kernel does not offer BPF to this process ({0}): use Linux 5.8 or newer with CONFIG_BPF_SYSCALL, uprobes and BTF, outside a locked-down sandbox"
    )]
    NoBpf(String),
}

/// The capabilities loading and attaching need (docs/SECURITY.md), read from the effective set:
/// root with a bounded capability set (a container, `setpriv`) is judged by what it really has.
pub fn check_privileges() -> Result<(), PreflightError> {
    Ok(crate::privilege::check()?)
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
