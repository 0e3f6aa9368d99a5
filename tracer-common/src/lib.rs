//! The kernel/user ABI: record header, record kinds, map names and size limits.
//!
//! Everything here is shared, byte for byte, by the eBPF programs (tracer-ebpf) and the agent
//! (tracer-user, which enables the `user` feature to get `aya::Pod`). Structs are `#[repr(C)]`
//! with explicit padding so both sides agree on the layout without guessing.
#![no_std]

/// Names of the maps and programs, used by both sides.
pub mod names {
    /// Ring buffer of [`crate::RecordHeader`] + data records.
    pub const EVENTS: &str = "EVENTS";
    /// Small ring buffer of exec notifications only, so discovery is not delayed behind a burst
    /// of data in EVENTS.
    pub const EXECS: &str = "EXECS";
    /// Per-thread arguments stashed by the entry probes (`u64` pid_tgid -> [`crate::CallArgs`]).
    pub const ARGS: &str = "ARGS";
    /// Go calls in flight ([`crate::GoCallKey`] -> [`crate::CallArgs`], LRU).
    pub const GO_ARGS: &str = "GO_ARGS";
    /// Per (pid, conn, direction) stream state (LRU): [`crate::StreamKey`] -> [`crate::StreamState`].
    pub const STREAMS: &str = "STREAMS";
    /// Exchanges userspace asked not to copy: [`crate::ConnId`] -> `u64`, the write offset the
    /// mute holds at (see [`crate::CallArgs::skip`]).
    pub const MUTED: &str = "MUTED";
    /// Configuration array, indexed by [`crate::config`].
    pub const CONFIG: &str = "CONFIG";
    /// Per-CPU counters, indexed by [`crate::stats`].
    pub const STATS: &str = "STATS";
    /// Per-CPU scratch buffer that one chunk record is assembled in.
    pub const SCRATCH: &str = "SCRATCH";
}

/// Size limits.
pub mod limits {
    /// The largest piece of data one ring buffer record carries. A call moving more is split.
    pub const CHUNK: usize = 16 * 1024;
    /// The most chunks one call is split into, so the largest capture cap is
    /// `CHUNK * MAX_CHUNKS` (4 MiB). The bound is what lets the verifier accept the loop.
    pub const MAX_CHUNKS: u32 = 256;
    /// The largest configurable capture cap per call.
    pub const MAX_CAPTURE_CAP: u64 = CHUNK as u64 * MAX_CHUNKS as u64;
    /// Default capture cap per call (bytes).
    pub const DEFAULT_CAPTURE_CAP: u64 = 256 * 1024;
    /// Default ring buffer size (bytes, a power of two multiple of the page size).
    pub const DEFAULT_RING_BYTES: u32 = 32 * 1024 * 1024;
    /// Size of the exec notification ring (bytes).
    pub const EXEC_RING_BYTES: u32 = 256 * 1024;
    /// Threads that can be inside a hooked call at the same time.
    pub const MAX_INFLIGHT: u32 = 16 * 1024;
    /// Streams whose offsets are tracked at once (LRU: the least recently used is forgotten).
    pub const MAX_STREAMS: u32 = 64 * 1024;
    /// Connections that can be muted at once.
    pub const MAX_MUTED: u32 = 64 * 1024;
    /// Length of a task's `comm` (with its NUL).
    pub const COMM_LEN: usize = 16;
}

/// Indices into the `CONFIG` array (each a `u64`).
pub mod config {
    /// Bytes captured per call at most; the rest is flagged TRUNCATED.
    pub const MAX_CAPTURE: u32 = 0;
    /// Ring buffer wake-up policy for data records: 0 = the kernel's default (the agent is woken
    /// for a record whenever it had caught up, i.e. about once per record when it keeps up);
    /// N > 0 = records are submitted without a wake-up, and the agent is woken only when the
    /// unread data crosses a multiple of N bytes (it also drains the ring on a short timer).
    pub const WAKE_BYTES: u32 = 1;
    /// Number of entries in the array.
    pub const LEN: u32 = 4;
}

/// Indices into the per-CPU `STATS` array (each a `u64`, summed over CPUs by userspace).
pub mod stats {
    /// Records the ring buffer refused (full): data lost.
    pub const RINGBUF_LOST: u32 = 0;
    /// Bytes those lost records would have carried.
    pub const RINGBUF_LOST_BYTES: u32 = 1;
    /// Return probes that found no stashed arguments (the entry was missed or muted).
    pub const NO_ARGS: u32 = 2;
    /// `bpf_probe_read_user` failures (the chunk is sent empty and flagged TRUNCATED).
    pub const READ_FAILED: u32 = 3;
    /// Calls the TLS library reported as failed (no data; not sent as records).
    pub const CALL_FAILED: u32 = 4;
    /// Read calls skipped because their exchange is muted.
    pub const MUTED: u32 = 5;
    /// Data records delivered to the ring buffer.
    pub const RECORDS: u32 = 6;
    /// Wake-ups of the agent forced by the data crossing the `WAKE_BYTES` threshold.
    pub const WAKEUPS: u32 = 7;
    /// Connections closed (`SSL_free` of a connection with stream state): CLOSE records sent.
    pub const CLOSES: u32 = 8;
    /// Bytes those muted reads moved (counted in the offsets, never copied).
    pub const MUTED_BYTES: u32 = 9;
    /// Number of counters.
    pub const LEN: u32 = 12;
}

/// Bits of [`RecordHeader::flags`]; the same values as `tracer_core::event::flags`.
pub mod flags {
    pub const TRUNCATED: u32 = 1 << 0;
    pub const LOST_BEFORE: u32 = 1 << 1;
    pub const CALL_FAILED: u32 = 1 << 2;
    pub const PROCESS_EXIT: u32 = 1 << 3;
    pub const CONN_CLOSED: u32 = 1 << 4;
    pub const SKIPPED_BEFORE: u32 = 1 << 5;
}

/// What a record is.
pub mod kind {
    /// TLS plaintext (header + `cap_len` bytes).
    pub const DATA: u32 = 0;
    /// A process called exec (attach discovery should look at it). No data.
    pub const EXEC: u32 = 1;
    /// A process (its thread group leader) exited. No data; flags has PROCESS_EXIT.
    pub const EXIT: u32 = 2;
    /// A connection object the agent had seen data of was freed (`SSL_free`): its stream
    /// offsets are forgotten (a new connection at the same address starts at 0 again). No
    /// data; `conn` is set and flags has CONN_CLOSED.
    pub const CLOSE: u32 = 3;
}

/// [`RecordHeader::direction`] values.
pub mod direction {
    pub const WRITE: u32 = 0;
    pub const READ: u32 = 1;
}

/// The header of every ring buffer record; `cap_len` bytes of data follow it directly.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns` when the call returned (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// The TLS connection object (`SSL *`).
    pub conn: u64,
    /// Byte offset of the first data byte within this connection's stream in `direction`.
    pub offset: u64,
    pub pid: u32,
    pub tid: u32,
    /// Bytes the whole call moved (its return value), not just this chunk.
    pub len: u32,
    /// Bytes of data following this header.
    pub cap_len: u32,
    /// See [`flags`].
    pub flags: u32,
    /// See [`direction`].
    pub direction: u32,
    /// See [`kind`].
    pub kind: u32,
    /// Explicit padding so the layout has no implicit holes (`Pod`).
    pub _pad: u32,
    /// The thread's `comm`, NUL padded.
    pub comm: [u8; limits::COMM_LEN],
}

/// Size of the header in bytes (72).
pub const HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();

/// One chunk record as assembled in the per-CPU scratch buffer.
#[repr(C)]
pub struct ChunkRecord {
    pub header: RecordHeader,
    pub data: [u8; limits::CHUNK],
}

/// What an entry probe stashes for its return probe.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallArgs {
    /// `SSL *`.
    pub conn: u64,
    /// The user buffer.
    pub buf: u64,
    /// `size_t *written` / `size_t *readbytes` of the `_ex` calls; 0 for the plain calls.
    pub count_ptr: u64,
    /// See [`direction`].
    pub direction: u32,
    /// 1: the call is a read of a muted exchange: its bytes only advance the stream offset
    /// (the next record delivered says SKIPPED_BEFORE), nothing is copied.
    ///
    /// Muting contract: userspace sets `MUTED[conn] = W`, the write offset right after a
    /// request it found not to be an LLM call. A read is muted while the connection's write
    /// offset is still `W`; the first read after any further write finds the entry stale and
    /// deletes it, so every request, and the response to anything written after the decision,
    /// is always copied in full. Writes are never muted.
    pub skip: u32,
}

/// A connection: process + TLS object.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub conn: u64,
    pub pid: u32,
    pub _pad: u32,
}

/// A Go call in flight: the goroutine (its `g` pointer, from R14) in a process. Go calls are
/// keyed by goroutine, not thread: a goroutine blocked in `Read` may resume on another thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GoCallKey {
    pub g: u64,
    pub pid: u32,
    pub _pad: u32,
}

/// One direction of one connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub conn: u64,
    pub pid: u32,
    pub direction: u32,
}

/// What the kernel remembers of a stream between calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// Bytes moved so far in this direction (including bytes not captured).
    pub offset: u64,
    /// Flags to put on the next record delivered for this stream (LOST_BEFORE after a loss).
    pub pending_flags: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are #[repr(C)] plain integers/arrays with explicit padding, valid for any bits.
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for CallArgs {}
    unsafe impl aya::Pod for ConnId {}
    unsafe impl aya::Pod for GoCallKey {}
    unsafe impl aya::Pod for StreamKey {}
    unsafe impl aya::Pod for StreamState {}
}

impl RecordHeader {
    /// Reads a header from the front of a record; `None` if too short.
    pub fn read_from(bytes: &[u8]) -> Option<RecordHeader> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        // SAFETY: length checked; RecordHeader is plain data valid for any bit pattern, and
        // read_unaligned copes with any alignment of the input.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<RecordHeader>()) })
    }
}

const _: () = assert!(HEADER_LEN == 72);
const _: () = assert!(HEADER_LEN.is_multiple_of(8));
