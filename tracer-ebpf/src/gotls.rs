//! Go's `crypto/tls`: `func (c *Conn) Write(b []byte) (int, error)` and
//! `func (c *Conn) Read(b []byte) (int, error)`, Go >= 1.17 on x86-64 (register ABI).
//!
//! Go moves goroutine stacks, so uretprobes (which rewrite the return address on the stack)
//! crash Go programs. Userspace finds the function's entry and every RET instruction
//! (`probe::gobin`) and attaches plain uprobes to both:
//! - at the entry, ABIInternal passes the receiver `c` in RAX and the slice `b` as
//!   (ptr, len, cap) in RBX, RCX, RDI; we stash `c` and `b.ptr`;
//! - at each RET, the results are in RAX (`n`) and RBX/RCX (the `error` interface); we copy
//!   `n` bytes from the stashed buffer.
//!
//! A goroutine can move to another OS thread while it blocks inside `Read`, so the stash is
//! keyed by the goroutine, not the thread: R14 holds the current `g` on amd64 since Go 1.17.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use tracer_common::{direction, limits, stats, CallArgs, ConnId, GoCallKey};

use crate::emit::{close_conn, count, emit_call, read_muted, skip_call};

/// (pid, goroutine) -> the arguments of the Read/Write it is inside. LRU: a goroutine that
/// never returns (it panicked through the call) cannot fill the map.
#[map(name = "GO_ARGS")]
static GO_ARGS: LruHashMap<GoCallKey, CallArgs> =
    LruHashMap::with_max_entries(limits::MAX_INFLIGHT, 0);

#[inline(always)]
fn regs(ctx: &ProbeContext) -> (u64, u64, u64) {
    // SAFETY: in a uprobe program the context is the user registers at the probe point.
    let r = unsafe { &*ctx.regs };
    (r.rax, r.rbx, r.r14)
}

#[inline(always)]
fn stash(ctx: &ProbeContext, dir: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (conn, buf, g) = regs(ctx);
    if conn == 0 || buf == 0 || g == 0 {
        return 0;
    }
    let pid = (pid_tgid >> 32) as u32;
    let id = ConnId { conn, pid, _pad: 0 };
    // As for OpenSSL: only reads are muted, and they still count their bytes at the RET.
    let skip = dir == direction::READ && read_muted(id);
    let key = GoCallKey { g, pid, _pad: 0 };
    let args = CallArgs {
        conn,
        buf,
        count_ptr: 0,
        direction: dir,
        skip: u32::from(skip),
    };
    let _ = GO_ARGS.insert(key, args, 0);
    0
}

#[uprobe]
pub fn go_tls_write_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::WRITE)
}

#[uprobe]
pub fn go_tls_read_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::READ)
}

/// `func (c *Conn) Close() error`, at its entry: the receiver is in RAX. The connection is over
/// (as `SSL_free` for OpenSSL): its stream state is freed and the agent closes it at once.
#[uprobe]
pub fn go_tls_close(ctx: ProbeContext) -> u32 {
    let (conn, _, _) = regs(&ctx);
    if conn != 0 {
        close_conn(bpf_get_current_pid_tgid(), conn);
    }
    0
}

/// At a RET of Read or Write (an entry-style uprobe on the RET instruction).
#[uprobe]
pub fn go_tls_ret(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (n, err_itab, g) = regs(&ctx);
    let key = GoCallKey {
        g,
        pid: (pid_tgid >> 32) as u32,
        _pad: 0,
    };
    // SAFETY: the value is copied out before it is removed.
    let args = match unsafe { GO_ARGS.get(key) } {
        Some(a) => *a,
        None => {
            count(stats::NO_ARGS, 1);
            return 0;
        }
    };
    let _ = GO_ARGS.remove(key);
    // `n` is a Go int; a Read may return data together with an error (e.g. io.EOF after the
    // last bytes), so the data is kept whenever n > 0.
    let n = n as i64;
    if n <= 0 {
        if err_itab != 0 {
            count(stats::CALL_FAILED, 1);
        }
        return 0;
    }
    if args.skip != 0 {
        skip_call(pid_tgid, &args, n as u64);
        return 0;
    }
    emit_call(pid_tgid, &args, n as u64);
    0
}
