//! Process lifecycle from scheduler tracepoints (no kprobes on these kernels).
//!
//! BTF tracepoints (`tp_btf`) rather than classic ones: they attach by BTF id, so they need no
//! tracefs mount (classic tracepoints read their id from tracefs, often not mounted).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use tracer_common::{flags, kind};

use crate::emit::{emit_process_event, EVENTS, EXECS};

/// `sched/sched_process_exec`: a process image was replaced. The agent scans it for TLS
/// libraries (they are mapped a little later by the dynamic loader, so it rescans).
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    emit_process_event(
        &EXECS,
        (pid_tgid >> 32) as u32,
        pid_tgid as u32,
        kind::EXEC,
        0,
    );
    0
}

/// `sched/sched_process_exit`: fires for every exiting thread; only the thread group leader's
/// exit ends the process for us.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(_ctx: BtfTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (pid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if pid == tid {
        emit_process_event(&EVENTS, pid, tid, kind::EXIT, flags::PROCESS_EXIT);
    }
    0
}
