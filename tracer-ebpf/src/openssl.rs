//! OpenSSL (and API-compatible builds that export the same symbols, e.g. node's static copy).
//!
//! Hooked symbols (OpenSSL 1.1.1 / 3.x prototypes):
//! - `int SSL_write(SSL *ssl, const void *buf, int num)`: returns bytes written, <= 0 on failure.
//! - `int SSL_read(SSL *ssl, void *buf, int num)`: returns bytes read, <= 0 on failure/close.
//! - `int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)`: 1 on success,
//!   the count is in `*written`.
//! - `int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)`: 1 on success, the
//!   count is in `*readbytes`.
//!
//! In OpenSSL 3.0 the plain and `_ex` functions do not call each other, so hooking all four
//! never counts a byte twice. Entry probes stash the arguments per thread; the one return
//! probe (shared by all four) copies what was really transferred.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{direction, stats, CallArgs, ConnId};

use crate::emit::{close_conn, count, emit_call, read_muted, skip_call, ARGS};

#[inline(always)]
fn stash(ctx: &ProbeContext, dir: u32, ex: bool) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let conn: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let count_ptr: u64 = if ex { ctx.arg(3).unwrap_or(0) } else { 0 };
    if conn == 0 || buf == 0 || (ex && count_ptr == 0) {
        return 0;
    }
    let id = ConnId {
        conn,
        pid: (pid_tgid >> 32) as u32,
        _pad: 0,
    };
    // Writes are never muted (every request is seen); a muted read still needs its return
    // probe, to count its bytes in the stream offset.
    let skip = dir == direction::READ && read_muted(id);
    let args = CallArgs {
        conn,
        buf,
        count_ptr,
        direction: dir,
        skip: u32::from(skip),
    };
    let _ = ARGS.insert(pid_tgid, args, 0);
    0
}

#[uprobe]
pub fn ssl_write_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::WRITE, false)
}

#[uprobe]
pub fn ssl_write_ex_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::WRITE, true)
}

#[uprobe]
pub fn ssl_read_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::READ, false)
}

#[uprobe]
pub fn ssl_read_ex_entry(ctx: ProbeContext) -> u32 {
    stash(&ctx, direction::READ, true)
}

/// `void SSL_free(SSL *s)` (and GnuTLS's `void gnutls_deinit(gnutls_session_t)`): the
/// connection object is freed, so its address may soon be reused by a new connection.
#[uprobe]
pub fn ssl_free_entry(ctx: ProbeContext) -> u32 {
    let conn: u64 = ctx.arg(0).unwrap_or(0);
    if conn != 0 {
        close_conn(bpf_get_current_pid_tgid(), conn);
    }
    0
}

/// Return of any of the four calls.
#[uretprobe]
pub fn ssl_rw_return(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before it is removed.
    let args = match unsafe { ARGS.get(pid_tgid) } {
        Some(a) => *a,
        None => {
            count(stats::NO_ARGS, 1);
            return 0;
        }
    };
    let _ = ARGS.remove(pid_tgid);
    let ret: i32 = ctx.ret();
    let total: u64 = if args.count_ptr == 0 {
        if ret <= 0 {
            count(stats::CALL_FAILED, 1);
            return 0;
        }
        ret as u64
    } else {
        if ret != 1 {
            count(stats::CALL_FAILED, 1);
            return 0;
        }
        // SAFETY: user memory read through the helper.
        match unsafe { bpf_probe_read_user(args.count_ptr as *const u64) } {
            Ok(n) => n,
            Err(_) => {
                count(stats::READ_FAILED, 1);
                return 0;
            }
        }
    };
    if total == 0 {
        return 0;
    }
    if args.skip != 0 {
        skip_call(pid_tgid, &args, total);
        return 0;
    }
    emit_call(pid_tgid, &args, total);
    0
}
