//! One captured chunk of TLS plaintext, as the agent sees it after the kernel/user boundary.

use serde::{Deserialize, Serialize};

/// Which way the bytes went, seen from the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The process wrote these bytes (`SSL_write*`): for an HTTP client, the request.
    Write,
    /// The process read these bytes (`SSL_read*`): for an HTTP client, the response.
    Read,
}

/// A connection: the traced process and the TLS library's connection object (e.g. the `SSL *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnKey {
    pub pid: u32,
    pub conn: u64,
}

/// Bits of [`TlsEvent::flags`]. The same values are used on the wire (tracer-common) and in
/// recordings, so they never change meaning.
pub mod flags {
    /// The call moved more bytes than the capture cap: bytes after this record's data, up to
    /// `offset_of_call + len`, were not captured.
    ///
    /// The connection tracker takes the size of the hole from the next record's `offset` (so
    /// offsets must count every byte moved, captured or not) and passes it on as a gap at once,
    /// without waiting for a reordered record.
    pub const TRUNCATED: u32 = 1 << 0;
    /// The kernel failed to deliver one or more records of this connection before this one
    /// (ring buffer full). The byte offsets tell how much is missing. Without this flag, a
    /// record ahead of the expected offset is first held briefly as possibly reordered.
    pub const LOST_BEFORE: u32 = 1 << 1;
    /// The TLS library reported an error for this call (no data).
    pub const CALL_FAILED: u32 = 1 << 2;
    /// Synthetic: the process exited; no more data will come for its connections. Only `pid`
    /// and `ts_ns` are read: every connection of the pid is closed (open exchanges abandoned).
    pub const PROCESS_EXIT: u32 = 1 << 3;
    /// Synthetic: the TLS library freed the connection object (`SSL_free`); no more data will
    /// come for it, and a later connection at the same address is a new one. Only `pid`,
    /// `conn` and `ts_ns` are read: the connection is closed at once (an exchange still open
    /// ends as the parser ends it on a closed connection).
    pub const CONN_CLOSED: u32 = 1 << 4;
    /// The kernel skipped bytes of this direction before this record on purpose: the agent
    /// muted the response of a request that was not an LLM call. Like [`LOST_BEFORE`], the
    /// offsets tell how much, and the hole is passed on as a gap at once; it is not a loss.
    pub const SKIPPED_BEFORE: u32 = 1 << 5;
}

/// One record: a piece of the plaintext that one `SSL_read`/`SSL_write`-like call moved.
///
/// A large call is split into several records with consecutive `offset`s; `len` is the length of
/// the whole call, so `offset + data.len() < call_start + len` on the last record means the rest
/// was not captured (and [`flags::TRUNCATED`] says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEvent {
    pub pid: u32,
    pub tid: u32,
    /// The thread's command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// The TLS library's connection object address, unique within `pid` while the connection lives.
    pub conn: u64,
    pub direction: Direction,
    /// Monotonic clock (`CLOCK_MONOTONIC`, as `bpf_ktime_get_ns`) when the call returned.
    pub ts_ns: u64,
    /// Byte offset of `data[0]` within this connection's stream in `direction`, counted from
    /// 0 at the first byte the capture saw in that direction (and every byte moved counts,
    /// captured or not). The tracker relies on it: a first record above 0 waits briefly for
    /// the lower ones, and offset 0 again on a known connection means the connection object's
    /// address was reused by a new connection.
    pub offset: u64,
    /// Bytes the whole call really moved (its return value).
    pub len: u32,
    /// The bytes captured (may be shorter than `len`).
    pub data: Vec<u8>,
    /// See [`flags`].
    pub flags: u32,
}

impl TlsEvent {
    pub fn key(&self) -> ConnKey {
        ConnKey {
            pid: self.pid,
            conn: self.conn,
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}
