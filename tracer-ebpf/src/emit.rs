//! Maps shared by all probes, and the copy of one call's data into ring buffer records.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_user_buf, generated::bpf_loop,
    },
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    config, flags, kind, limits, stats, CallArgs, ChunkRecord, ConnId, RecordHeader, StreamKey,
    StreamState, HEADER_LEN,
};

/// Records to userspace. Userspace overrides the size at load time (`--ring-bytes`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(limits::DEFAULT_RING_BYTES, 0);

/// Exec notifications (header-only records), apart from the data so they are never queued
/// behind a burst of it. Exits stay in EVENTS: they must come after the process's last data.
#[map(name = "EXECS")]
pub static EXECS: RingBuf = RingBuf::with_byte_size(limits::EXEC_RING_BYTES, 0);

/// pid_tgid -> arguments of the hooked call the thread is inside.
#[map(name = "ARGS")]
pub static ARGS: HashMap<u64, CallArgs> = HashMap::with_max_entries(limits::MAX_INFLIGHT, 0);

/// Stream offsets and pending flags. LRU, so a forgotten connection never fills the map; an
/// evicted stream restarts at offset 0, which the agent sees as a new stream.
#[map(name = "STREAMS")]
pub static STREAMS: LruHashMap<StreamKey, StreamState> =
    LruHashMap::with_max_entries(limits::MAX_STREAMS, 0);

/// Exchanges userspace does not want copied: connection -> the write offset the mute holds at
/// (the contract is on `CallArgs::skip`).
#[map(name = "MUTED")]
pub static MUTED: HashMap<ConnId, u64> = HashMap::with_max_entries(limits::MAX_MUTED, 0);

#[map(name = "CONFIG")]
pub static CONFIG: Array<u64> = Array::with_max_entries(config::LEN, 0);

#[map(name = "STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// One chunk record is assembled here (too big for the 512-byte BPF stack).
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<ChunkRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(index: u32, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and probes do not nest on one CPU.
        unsafe { *p += n };
    }
}

#[inline(always)]
fn comm() -> [u8; limits::COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; limits::COMM_LEN])
}

/// Sends a header-only record (exec / exit).
#[inline(always)]
pub fn emit_process_event(ring: &RingBuf, pid: u32, tid: u32, record_kind: u32, record_flags: u32) {
    let Some(mut entry) = ring.reserve::<RecordHeader>(0) else {
        count(stats::RINGBUF_LOST, 1);
        return;
    };
    entry.write(RecordHeader {
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        conn: 0,
        offset: 0,
        pid,
        tid,
        len: 0,
        cap_len: 0,
        flags: record_flags,
        direction: 0,
        kind: record_kind,
        _pad: 0,
        comm: comm(),
    });
    entry.submit(0);
}

/// Whether a read on `id` is muted: the agent muted the response of the last request, and
/// nothing was written since (the write offset is still the one the mute names). A stale
/// mute is deleted here, so it never outlives the next request.
#[inline(always)]
pub fn read_muted(id: ConnId) -> bool {
    // SAFETY: a lookup; the value is copied.
    let at = match unsafe { MUTED.get(id) } {
        Some(&at) => at,
        None => return false,
    };
    let write = StreamKey {
        conn: id.conn,
        pid: id.pid,
        direction: tracer_common::direction::WRITE,
    };
    // SAFETY: as above.
    let written = unsafe { STREAMS.get(write) }.map(|s| s.offset);
    if written == Some(at) {
        return true;
    }
    let _ = MUTED.remove(id);
    false
}

/// The stream state of `key`, created at offset 0 if new.
#[inline(always)]
fn stream_state(key: StreamKey) -> Option<*mut StreamState> {
    if let Some(p) = STREAMS.get_ptr_mut(key) {
        return Some(p);
    }
    let _ = STREAMS.insert(key, StreamState::default(), 0);
    STREAMS.get_ptr_mut(key)
}

/// A muted read moved `total` bytes: count them in the stream offset without copying, and flag
/// the next record of the stream SKIPPED_BEFORE so the agent takes the hole as a gap at once.
#[inline(always)]
pub fn skip_call(pid_tgid: u64, args: &CallArgs, total: u64) {
    let key = StreamKey {
        conn: args.conn,
        pid: (pid_tgid >> 32) as u32,
        direction: args.direction,
    };
    let Some(state) = stream_state(key) else {
        return;
    };
    // SAFETY: a valid map value pointer; only this thread's calls on this stream touch it.
    unsafe {
        (*state).offset += total;
        (*state).pending_flags |= flags::SKIPPED_BEFORE;
    }
    count(stats::MUTED, 1);
    count(stats::MUTED_BYTES, total);
}

/// The connection object `conn` of this process is being freed: forget its stream offsets and
/// its mute, and tell the agent (a header-only CLOSE record) if it had seen data of it. Only
/// connections with stream state produce a record, so freeing objects we never saw costs two
/// map deletes and nothing in the ring.
#[inline(always)]
pub fn close_conn(pid_tgid: u64, conn: u64) {
    let pid = (pid_tgid >> 32) as u32;
    let write = StreamKey {
        conn,
        pid,
        direction: tracer_common::direction::WRITE,
    };
    let read = StreamKey {
        conn,
        pid,
        direction: tracer_common::direction::READ,
    };
    let seen_write = STREAMS.remove(write).is_ok();
    let seen_read = STREAMS.remove(read).is_ok();
    let _ = MUTED.remove(ConnId { conn, pid, _pad: 0 });
    if !(seen_write || seen_read) {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<RecordHeader>(0) else {
        count(stats::RINGBUF_LOST, 1);
        return;
    };
    entry.write(RecordHeader {
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        conn,
        offset: 0,
        pid,
        tid: pid_tgid as u32,
        len: 0,
        cap_len: 0,
        flags: flags::CONN_CLOSED,
        direction: 0,
        kind: kind::CLOSE,
        _pad: 0,
        comm: comm(),
    });
    let wake = match CONFIG.get(config::WAKE_BYTES) {
        Some(&w) => wake_flag(w, HEADER_LEN as u64),
        None => 0,
    };
    entry.submit(wake);
    count(stats::CLOSES, 1);
}

/// State of one call's copy, shared by the `bpf_loop` iterations (lives on the caller's stack).
#[repr(C)]
struct CopyState {
    buf: u64,
    conn: u64,
    start: u64,
    to_copy: u64,
    total: u64,
    ts_ns: u64,
    /// See `config::WAKE_BYTES` (0: the kernel's default wake-up).
    wake_bytes: u64,
    pid: u32,
    tid: u32,
    call_len: u32,
    direction: u32,
    pending: u32,
    _pad: u32,
    comm: [u8; limits::COMM_LEN],
}

/// Copies what one call really moved (`total` bytes at `args.buf`) into records of at most
/// `CHUNK` bytes, up to the configured cap, and advances the stream offset by `total`.
///
/// Verifier: a plain `for` loop over MAX_CHUNKS made the verifier walk every iteration with
/// every branch combination and hit its 1M-instruction budget; `bpf_loop` (Linux 5.17) verifies
/// the body once.
#[inline(always)]
pub fn emit_call(pid_tgid: u64, args: &CallArgs, total: u64) {
    let pid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    let key = StreamKey {
        conn: args.conn,
        pid,
        direction: args.direction,
    };
    let Some(state) = stream_state(key) else {
        return;
    };
    // SAFETY: a valid map value pointer; only this thread's calls on this stream touch it.
    let (start, pending) = unsafe { ((*state).offset, (*state).pending_flags) };

    let cap = match CONFIG.get(config::MAX_CAPTURE) {
        Some(&c) if c > 0 => c,
        _ => limits::DEFAULT_CAPTURE_CAP,
    };
    let to_copy = if total < cap { total } else { cap };
    let wake_bytes = match CONFIG.get(config::WAKE_BYTES) {
        Some(&w) => w,
        None => 0,
    };
    let mut copy = CopyState {
        buf: args.buf,
        conn: args.conn,
        start,
        to_copy,
        total,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        wake_bytes,
        pid,
        tid,
        call_len: if total > u32::MAX as u64 {
            u32::MAX
        } else {
            total as u32
        },
        direction: args.direction,
        pending,
        _pad: 0,
        comm: comm(),
    };
    let chunks = to_copy.div_ceil(limits::CHUNK as u64);
    let chunks = if chunks > limits::MAX_CHUNKS as u64 {
        limits::MAX_CHUNKS
    } else {
        chunks as u32
    };
    // SAFETY: the callback only touches `copy` through the context pointer, during the call.
    unsafe {
        bpf_loop(
            chunks,
            copy_chunk as *mut c_void,
            (&mut copy as *mut CopyState).cast(),
            0,
        );
    }
    // SAFETY: as above.
    unsafe {
        (*state).offset = start + total;
        (*state).pending_flags = copy.pending;
    }
}

/// The submit flags of a data record of `size` bytes under the wake-up policy `wake_bytes`
/// (`config::WAKE_BYTES`).
///
/// With the kernel's default, every record whose submission finds the agent caught up wakes it:
/// on a VM that is a cross-CPU wake-up per TLS call, most of what our probe costs above an empty
/// pair. Batched: no wake-up, except when this record makes the unread data cross a multiple of
/// `wake_bytes`, so a burst still gets the agent going long before the ring fills; whatever is
/// left below the threshold is drained by the agent's short poll timer.
#[inline(always)]
fn wake_flag(wake_bytes: u64, size: u64) -> u64 {
    if wake_bytes == 0 {
        return 0;
    }
    // Racy by design (other CPUs submit too): at worst a crossing wakes twice or not at all,
    // and the timer covers the latter.
    let before = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if before / wake_bytes != (before + size) / wake_bytes {
        count(stats::WAKEUPS, 1);
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// One iteration of the copy: the next chunk into one ring buffer record. Returns 1 to stop.
#[inline(never)]
extern "C" fn copy_chunk(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context pointer given by emit_call.
    let c = unsafe { &mut *ctx.cast::<CopyState>() };
    // Verifier: the position is derived from the loop index (unknown to the verifier) rather
    // than kept as a counter in the context: a counter is a new exact value every iteration,
    // so the verifier's states never converge and it walks all iterations until its budget
    // runs out.
    let done = index * limits::CHUNK as u64;
    if done >= c.to_copy {
        return 1;
    }
    let Some(rec) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU scratch value, valid for the whole program run.
    let rec = unsafe { &mut *rec };
    let left = c.to_copy - done;
    // Verifier: the copy length must be provably in [0, CHUNK]; an unsigned min does it.
    let n = if left < limits::CHUNK as u64 {
        left as usize
    } else {
        limits::CHUNK
    };
    let mut rflags = c.pending;
    let mut cap_len = n as u32;
    let read_ok = match rec.data.get_mut(..n) {
        // SAFETY: reading user memory through the helper, which faults safely.
        Some(dst) => unsafe { bpf_probe_read_user_buf((c.buf + done) as *const u8, dst).is_ok() },
        None => false,
    };
    if !read_ok {
        // The page was not readable (e.g. swapped out): say so, never a silent gap.
        count(stats::READ_FAILED, 1);
        cap_len = 0;
        rflags |= flags::TRUNCATED;
    } else if done + n as u64 >= c.to_copy && c.to_copy < c.total {
        rflags |= flags::TRUNCATED;
    }
    rec.header = RecordHeader {
        ts_ns: c.ts_ns,
        conn: c.conn,
        offset: c.start + done,
        pid: c.pid,
        tid: c.tid,
        len: c.call_len,
        cap_len,
        flags: rflags,
        direction: c.direction,
        kind: kind::DATA,
        _pad: 0,
        comm: c.comm,
    };
    let size = HEADER_LEN + cap_len as usize;
    // SAFETY: `rec` is a valid ChunkRecord; viewing it as bytes is fine (plain data).
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (rec as *const ChunkRecord).cast::<u8>(),
            core::mem::size_of::<ChunkRecord>(),
        )
    };
    let wake = wake_flag(c.wake_bytes, size as u64);
    // Verifier: `get(..size)` bounds the output length by the scratch value size.
    let sent = match bytes.get(..size) {
        Some(b) => EVENTS.output::<[u8]>(b, wake).is_ok(),
        None => false,
    };
    if !sent {
        // Ring buffer full: count it, drop the rest of this call, and flag the next record of
        // this stream LOST_BEFORE (its offset tells how much is missing).
        count(stats::RINGBUF_LOST, 1);
        count(stats::RINGBUF_LOST_BYTES, c.to_copy - done);
        c.pending = flags::LOST_BEFORE;
        return 1;
    }
    count(stats::RECORDS, 1);
    c.pending = 0;
    if !read_ok {
        return 1;
    }
    0
}
