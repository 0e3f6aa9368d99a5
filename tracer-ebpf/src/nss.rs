//! NSS (Mozilla's TLS: Firefox, Thunderbird, some curl and LibreOffice builds). The plaintext
//! goes through NSPR's generic I/O calls, which serve every kind of file descriptor:
//! - `PRInt32 PR_Write(PRFileDesc *fd, const void *buf, PRInt32 amount)`
//! - `PRInt32 PR_Read(PRFileDesc *fd, void *buf, PRInt32 amount)`
//! - `PRInt32 PR_Send(PRFileDesc *fd, const void *buf, PRInt32 amount, PRIntn flags, PRIntervalTime t)`
//! - `PRInt32 PR_Recv(PRFileDesc *fd, void *buf, PRInt32 amount, PRIntn flags, PRIntervalTime t)`
//!
//! All return the bytes moved, or -1. On an SSL socket they enter NSS's SSL layer, which
//! encrypts and calls the layer below through its method table (never through these exported
//! functions), so the application's calls are the only ones that carry plaintext.
//!
//! Files, pipes and plain sockets go through the same four functions, so only descriptors that
//! NSS made into SSL sockets are captured: `PRFileDesc *SSL_ImportFD(PRFileDesc *model,
//! PRFileDesc *fd)` (libssl3) returns the descriptor the application then reads and writes; a
//! return probe records it in `NSS_FDS`, and `PR_Close` (entry) forgets it before NSPR frees the
//! memory (a later file descriptor may get the same address). Exact, at the price that SSL
//! sockets imported before the agent attached are not seen.
//!
//! The calls are tail jumps through the method table (`jmp *0x18(%rax)`); the return probe
//! fires when the method returns. Because the return probe runs for every descriptor, it
//! only consumes a stash made at the same stack depth by the same thread: a file write nested
//! inside an SSL read (an application callback) can never take the SSL call's stash.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{direction, limits, stats, CallArgs, ConnId};

use crate::emit::{close_conn, count, emit_call, read_muted, skip_call};

/// (pid, `PRFileDesc *`) of SSL sockets made by `SSL_ImportFD` and not yet closed. LRU: a
/// process that exits without closing its sockets cannot fill it.
#[map(name = "NSS_FDS")]
static NSS_FDS: LruHashMap<ConnId, u8> = LruHashMap::with_max_entries(limits::MAX_STREAMS, 0);

/// What an entry stashes for its return: the call and the stack pointer at entry.
#[derive(Clone, Copy)]
#[repr(C)]
struct NssCall {
    args: CallArgs,
    /// RSP at entry (pointing at the return address); at the return it is `sp + 8`.
    sp: u64,
}

/// pid_tgid -> the SSL read/write the thread is inside.
#[map(name = "NSS_ARGS")]
static NSS_ARGS: HashMap<u64, NssCall> = HashMap::with_max_entries(limits::MAX_INFLIGHT, 0);

#[inline(always)]
fn conn_id(conn: u64, pid_tgid: u64) -> ConnId {
    ConnId {
        conn,
        pid: (pid_tgid >> 32) as u32,
        _pad: 0,
    }
}

/// Return of `SSL_ImportFD`: the SSL socket (NULL on failure).
#[uretprobe]
pub fn nss_import_fd_return(ctx: RetProbeContext) -> u32 {
    let fd: u64 = ctx.ret();
    if fd != 0 {
        let _ = NSS_FDS.insert(conn_id(fd, bpf_get_current_pid_tgid()), 1, 0);
    }
    0
}

/// Entry of `PR_Close`: the descriptor is about to be freed.
#[uprobe]
pub fn nss_close_entry(ctx: ProbeContext) -> u32 {
    let fd: u64 = ctx.arg(0).unwrap_or(0);
    if fd != 0 {
        let pid_tgid = bpf_get_current_pid_tgid();
        // An SSL socket closing is the end of its connection (as `SSL_free` for OpenSSL).
        if NSS_FDS.remove(conn_id(fd, pid_tgid)).is_ok() {
            close_conn(pid_tgid, fd);
        }
    }
    0
}

#[inline(always)]
fn stash(ctx: &ProbeContext, dir: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let conn: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    if conn == 0 || buf == 0 {
        return 0;
    }
    let id = conn_id(conn, pid_tgid);
    // SAFETY: lookups; the values are not kept.
    if unsafe { NSS_FDS.get(id) }.is_none() {
        return 0; // a file, a pipe or a plain socket
    }
    // Only reads are muted, and they still count their bytes at the return (as for OpenSSL).
    let skip = dir == direction::READ && read_muted(id);
    // SAFETY: in a uprobe program the context is the user registers at the probe point.
    let sp = unsafe { (*ctx.regs).rsp };
    let call = NssCall {
        args: CallArgs {
            conn,
            buf,
            count_ptr: 0,
            direction: dir,
            skip: u32::from(skip),
        },
        sp,
    };
    let _ = NSS_ARGS.insert(pid_tgid, call, 0);
    0
}

/// Entry of `PR_Write` and `PR_Send`.
#[uprobe]
pub fn nss_write_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::WRITE)
}

/// Entry of `PR_Read` and `PR_Recv`.
#[uprobe]
pub fn nss_read_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::READ)
}

/// Return of any of the four.
#[uretprobe]
pub fn nss_rw_return(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before it is removed.
    let Some(call) = (unsafe { NSS_ARGS.get(pid_tgid) }).copied() else {
        return 0; // not an SSL descriptor: the common case, not a loss
    };
    // SAFETY: as in `stash`.
    let sp = unsafe { (*ctx.regs).rsp };
    if sp != call.sp + 8 {
        return 0; // a nested call on another descriptor returning
    }
    let _ = NSS_ARGS.remove(pid_tgid);
    let ret: i32 = ctx.ret();
    if ret <= 0 {
        // 0 is the end of the stream, -1 an error (PR_GetError says which).
        if ret < 0 {
            count(stats::CALL_FAILED, 1);
        }
        return 0;
    }
    if call.args.skip != 0 {
        skip_call(pid_tgid, &call.args, ret as u64);
        return 0;
    }
    emit_call(pid_tgid, &call.args, ret as u64);
    0
}
