//! The capabilities the agent needs, checked at start-up so that a missing one is named in the
//! error instead of surfacing later as a bare `EPERM` from the kernel.
//!
//! Measured on Linux 6.x (see docs/SECURITY.md): loading the probes and creating their maps and
//! ring buffer takes `CAP_BPF`; tracing programs and perf events take `CAP_PERFMON`; creating a
//! uprobe perf event takes `CAP_SYS_ADMIN` since the 2025 kernel change "perf/core: require
//! CAP_SYS_ADMIN for uprobes" (also in stable kernels; measured by tests/deploy/test_image.py);
//! reading `/proc/PID/maps`, `/proc/PID/root/...` (libraries inside containers) and
//! `/proc/PID/environ` of other users' processes takes `CAP_SYS_PTRACE`; opening library files
//! that are not world-readable takes `CAP_DAC_READ_SEARCH`. `CAP_SYS_ADMIN` also stands in for
//! `CAP_BPF` and `CAP_PERFMON` (kernels before 5.8 know only it).

use thiserror::Error;

/// One capability the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Bit number (`linux/capability.h`).
    pub bit: u32,
    pub name: &'static str,
    /// What it is needed for.
    pub why: &'static str,
}

pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// What `llm-tracer run` needs.
pub const REQUIRED: &[Capability] = &[
    Capability {
        bit: CAP_BPF,
        name: "CAP_BPF",
        why: "load the eBPF probes and create their maps and ring buffer",
    },
    Capability {
        bit: CAP_PERFMON,
        name: "CAP_PERFMON",
        why: "tracing programs and perf events",
    },
    Capability {
        bit: CAP_SYS_ADMIN,
        name: "CAP_SYS_ADMIN",
        why: "create uprobe perf events on the TLS libraries (Linux requires it for uprobes since 2025)",
    },
    Capability {
        bit: CAP_SYS_PTRACE,
        name: "CAP_SYS_PTRACE",
        why: "read /proc/PID/maps, /proc/PID/root and /proc/PID/environ of other users' processes",
    },
    Capability {
        bit: CAP_DAC_READ_SEARCH,
        name: "CAP_DAC_READ_SEARCH",
        why: "open TLS libraries and binaries that are not world-readable",
    },
];

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("cannot read the capabilities of this process from /proc/self/status: {0}")]
    Status(String),
    #[error(
        "missing capabilities: {}. Run as root, or grant them, e.g. `setpriv --inh-caps=+bpf,+perfmon,+sys_admin,+sys_ptrace,+dac_read_search --ambient-caps=+bpf,+perfmon,+sys_admin,+sys_ptrace,+dac_read_search llm-tracer` (docs/SECURITY.md)",
        .0.iter().map(|c| format!("{} ({})", c.name, c.why)).collect::<Vec<_>>().join(", ")
    )]
    Missing(Vec<Capability>),
}

/// The effective capability set (`CapEff:` line of a `/proc/PID/status` text).
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn has(eff: u64, bit: u32) -> bool {
    eff & (1u64 << bit) != 0
}

/// The required capabilities missing from `eff`.
pub fn missing(eff: u64) -> Vec<Capability> {
    let admin = has(eff, CAP_SYS_ADMIN);
    REQUIRED
        .iter()
        .filter(|c| {
            let granted = has(eff, c.bit) || (admin && matches!(c.bit, CAP_BPF | CAP_PERFMON));
            !granted
        })
        .copied()
        .collect()
}

/// Check this process: `Ok` when it has everything [`REQUIRED`] lists.
pub fn check() -> Result<(), PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| PrivilegeError::Status(e.to_string()))?;
    let eff = parse_cap_eff(&status)
        .ok_or_else(|| PrivilegeError::Status("no CapEff line".to_string()))?;
    let m = missing(eff);
    if m.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Missing(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Name:\tllm-tracer\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    fn eff(bits: &[u32]) -> u64 {
        bits.iter().map(|b| 1u64 << b).sum()
    }

    #[test]
    fn full_root_lacks_nothing() {
        let e = parse_cap_eff(ROOT).expect("CapEff");
        assert_eq!(e, 0x1ff_ffff_ffff);
        assert!(missing(e).is_empty());
    }

    #[test]
    fn the_documented_set_is_enough() {
        let e = eff(&[
            CAP_BPF,
            CAP_PERFMON,
            CAP_SYS_ADMIN,
            CAP_SYS_PTRACE,
            CAP_DAC_READ_SEARCH,
        ]);
        assert!(missing(e).is_empty());
        let without_admin = eff(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        let names: Vec<_> = missing(without_admin).iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["CAP_SYS_ADMIN"], "uprobe perf events need it");
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_only() {
        let m = missing(eff(&[CAP_SYS_ADMIN]));
        let names: Vec<_> = m.iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]);
    }

    #[test]
    fn the_error_names_each_missing_capability() {
        let m = missing(eff(&[CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]));
        let text = PrivilegeError::Missing(m).to_string();
        assert!(text.contains("CAP_BPF (load the eBPF probes"), "{text}");
        assert!(text.contains("CAP_PERFMON"), "{text}");
        assert!(!text.contains("CAP_SYS_PTRACE ("), "{text}");
        assert!(missing(0).len() == 5);
    }

    #[test]
    fn unreadable_status_is_an_error_not_a_pass() {
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tnothex\n"), None);
    }

    #[test]
    fn this_process_is_checked_from_proc() {
        // Whatever this test runs as, the live check agrees with the parsed status.
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        let e = parse_cap_eff(&status).expect("CapEff");
        assert_eq!(check().is_ok(), missing(e).is_empty());
    }
}
