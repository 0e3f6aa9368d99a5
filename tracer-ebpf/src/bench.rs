//! Do-nothing entry and return programs, for `cargo xtask bench` only: attached (by the hidden
//! `--bench-empty-probes PATH` option) to the same functions as ours, they measure what a bare
//! uprobe + uretprobe pair costs on this machine, the floor our probes are compared with.

use aya_ebpf::{
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};

#[uprobe]
pub fn bench_empty_entry(_ctx: ProbeContext) -> u32 {
    0
}

#[uretprobe]
pub fn bench_empty_return(_ctx: RetProbeContext) -> u32 {
    0
}
