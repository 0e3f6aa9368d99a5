//! HTTP/2 framing (RFC 9113 §4, §6): the 9-byte frame header, and an incremental per-direction
//! reader that turns ordered bytes into frames without ever needing a whole DATA frame in memory.
//!
//! The reader has two ways of finding frame boundaries:
//! - in sync: from the client preface (or the server's first SETTINGS) on, every header is trusted;
//! - resync (late attach, or after a gap of unknown extent): it scans for a *plausible* frame
//!   header (known type, defined flags only, a length the type allows, the stream id the type and
//!   direction allow) that is confirmed by the header right after it also being plausible. The
//!   decision depends only on the bytes, never on how the capture split them.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const FRAME_HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// SETTINGS identifiers we care about.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Default SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// With the reserved bit cleared.
    pub stream_id: u32,
    /// The reserved bit was set (a sender must not; used only as a resync plausibility test).
    pub reserved: bool,
}

impl FrameHeader {
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        let sid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream_id: sid & 0x7fff_ffff,
            reserved: sid & 0x8000_0000 != 0,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Could this be a real frame header sent by the client (`from_client`) or the server?
    /// Strict on purpose: used only to find frame boundaries in bytes of unknown alignment.
    pub fn plausible(&self, from_client: bool, max_len: u32) -> bool {
        if self.reserved || self.len > max_len {
            return false;
        }
        let sid = self.stream_id;
        let client_stream = sid != 0 && sid % 2 == 1;
        let (allowed_flags, len_ok, sid_ok) = match self.kind {
            DATA => (
                FLAG_END_STREAM | FLAG_PADDED,
                true,
                // clients only send DATA on their own (odd) streams
                sid != 0 && (!from_client || client_stream),
            ),
            HEADERS => (
                FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
                true,
                sid != 0 && (!from_client || client_stream),
            ),
            PRIORITY => (0, self.len == 5, sid != 0),
            RST_STREAM => (0, self.len == 4, sid != 0),
            SETTINGS => (
                FLAG_ACK,
                if self.has(FLAG_ACK) {
                    self.len == 0
                } else {
                    self.len.is_multiple_of(6)
                },
                sid == 0,
            ),
            PUSH_PROMISE => (
                FLAG_END_HEADERS | FLAG_PADDED,
                self.len >= 4,
                !from_client && client_stream,
            ),
            PING => (FLAG_ACK, self.len == 8, sid == 0),
            GOAWAY => (0, self.len >= 8, sid == 0),
            WINDOW_UPDATE => (0, self.len == 4, true),
            CONTINUATION => (FLAG_END_HEADERS, true, sid != 0),
            _ => return false,
        };
        self.flags & !allowed_flags == 0 && len_ok && sid_ok
    }
}

/// What the reader hands to the connection, in wire order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A whole non-DATA frame (payload at most the reader's cap).
    Frame { hdr: FrameHeader, payload: &'a [u8] },
    /// A non-DATA frame whose payload was larger than the cap, or partly not captured: skipped
    /// (framing stays in sync, the frame's content is lost).
    Lost { hdr: FrameHeader },
    /// A piece of a DATA frame's payload, padding already removed.
    Data { stream_id: u32, data: &'a [u8] },
    /// A DATA frame is over (after all its pieces; also for an empty DATA frame).
    DataEnd { stream_id: u32, end_stream: bool },
    /// Framing was lost; the reader is scanning for the next frame. Header compression state of
    /// this direction can no longer be trusted. `lost`: bytes went missing (a gap, or a protocol
    /// error); otherwise the direction simply did not start at its beginning (late attach).
    Desync { lost: bool },
    /// The reader found a frame boundary again after a `Desync` or at a late attach.
    Resynced { skipped: u64 },
}

#[derive(Debug)]
enum State {
    /// First bytes of the direction: client expects the preface, server a SETTINGS frame.
    Start,
    /// `n` bytes of the preface matched so far.
    Preface(usize),
    Header,
    /// Accumulating a non-DATA payload (`skip`: over the cap, dropped).
    Payload {
        hdr: FrameHeader,
        remaining: u32,
        skip: bool,
    },
    /// DATA frame with PADDED flag: the next byte is the pad length.
    DataPadLen {
        hdr: FrameHeader,
        remaining: u32,
    },
    Data {
        hdr: FrameHeader,
        data_left: u32,
        pad_left: u32,
    },
    /// Looking for a frame boundary.
    Resync,
}

/// Counters of the reader (bytes it could not place in a frame).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Captured bytes thrown away while looking for a frame boundary.
    pub resync_skipped_bytes: u64,
    pub lost_frames: u64,
    pub desyncs: u64,
}

/// Incremental frame reader for one direction.
#[derive(Debug)]
pub struct FrameReader {
    from_client: bool,
    state: State,
    hdr_buf: [u8; FRAME_HEADER_LEN],
    hdr_have: usize,
    payload: Vec<u8>,
    /// Largest non-DATA payload kept (bigger ones are skipped).
    max_payload: usize,
    /// Largest frame length accepted while resynchronising.
    resync_max_len: u32,
    /// Bytes kept while resynchronising, and where the scan goes on from.
    resync_buf: Vec<u8>,
    resync_pos: usize,
    resync_skipped: u64,
    /// Skipped bytes not yet taken by [`FrameReader::take_skipped`].
    unreported_skipped: u64,
    /// Whether this direction was seen from its first byte (preface / first SETTINGS).
    exact_start: Option<bool>,
    pub stats: ReaderStats,
}

impl FrameReader {
    pub fn new(from_client: bool, max_payload: usize) -> FrameReader {
        FrameReader {
            from_client,
            state: State::Start,
            hdr_buf: [0; FRAME_HEADER_LEN],
            hdr_have: 0,
            payload: Vec::new(),
            max_payload,
            resync_max_len: DEFAULT_MAX_FRAME_SIZE,
            resync_buf: Vec::new(),
            resync_pos: 0,
            resync_skipped: 0,
            unreported_skipped: 0,
            exact_start: None,
            stats: ReaderStats::default(),
        }
    }

    /// `Some(true)` when the direction's first bytes were its start (preface or first SETTINGS),
    /// `Some(false)` when they were not (late attach), `None` before any byte.
    pub fn exact_start(&self) -> Option<bool> {
        self.exact_start
    }

    /// The peer told us the largest frame this direction may carry.
    pub fn set_max_frame_len(&mut self, len: u32) {
        self.resync_max_len = len.clamp(DEFAULT_MAX_FRAME_SIZE, (1 << 24) - 1);
    }

    pub fn buffered_bytes(&self) -> usize {
        self.payload.capacity() + self.resync_buf.capacity()
    }

    /// Bytes the resync scan may hold: enough for one maximal frame plus the next header.
    fn resync_cap(&self) -> usize {
        self.resync_max_len as usize + 2 * FRAME_HEADER_LEN + 1
    }

    /// Feed ordered bytes; `on` gets every step.
    pub fn feed(&mut self, mut data: &[u8], on: &mut dyn FnMut(Step<'_>)) {
        while !data.is_empty() {
            let used = self.step(data, on);
            data = &data[used..];
        }
    }

    /// `missing` bytes were not captured. Inside a DATA frame that still has that many bytes the
    /// framing survives (the caller marks the body as having a gap); otherwise the reader
    /// resynchronises. Returns the stream id of a DATA frame that absorbed the gap.
    pub fn gap(&mut self, missing: u64, on: &mut dyn FnMut(Step<'_>)) -> Option<u32> {
        if missing == 0 {
            return None;
        }
        match &mut self.state {
            State::Data {
                hdr,
                data_left,
                pad_left,
            } if missing <= u64::from(*data_left) + u64::from(*pad_left) => {
                let sid = hdr.stream_id;
                // The missing bytes come out of the data first, then the padding.
                let from_data = missing.min(u64::from(*data_left)) as u32;
                *data_left -= from_data;
                *pad_left -= (missing - u64::from(from_data)) as u32;
                if *data_left == 0 && *pad_left == 0 {
                    let end_stream = hdr.has(FLAG_END_STREAM);
                    self.state = State::Header;
                    on(Step::DataEnd {
                        stream_id: sid,
                        end_stream,
                    });
                }
                Some(sid)
            }
            State::Payload {
                remaining, skip, ..
            } if missing <= u64::from(*remaining) => {
                // The frame's bytes are partly missing: its content is lost, framing is kept.
                *remaining -= missing as u32;
                *skip = true;
                self.payload.clear();
                if *remaining == 0 {
                    self.finish_payload(on);
                }
                None
            }
            State::Resync => {
                // Bytes kept so far are no longer contiguous with what comes next.
                self.discard(self.resync_buf.len());
                self.resync_skipped += self.resync_buf.len() as u64 + missing;
                self.resync_buf.clear();
                self.resync_pos = 0;
                None
            }
            _ => {
                if let State::Data { hdr, .. } = &self.state {
                    on(Step::DataEnd {
                        stream_id: hdr.stream_id,
                        end_stream: false,
                    });
                }
                if self.exact_start.is_none() {
                    self.exact_start = Some(false);
                }
                self.enter_resync(true, on);
                self.resync_skipped += missing;
                None
            }
        }
    }

    fn enter_resync(&mut self, lost: bool, on: &mut dyn FnMut(Step<'_>)) {
        self.stats.desyncs += 1;
        self.state = State::Resync;
        self.hdr_have = 0;
        self.payload.clear();
        self.resync_buf.clear();
        self.resync_pos = 0;
        self.resync_skipped = 0;
        on(Step::Desync { lost });
    }

    /// Consume a prefix of `data`, returning how much.
    fn step(&mut self, data: &[u8], on: &mut dyn FnMut(Step<'_>)) -> usize {
        match &mut self.state {
            State::Start => {
                if self.from_client {
                    if data[0] == PREFACE[0] {
                        self.state = State::Preface(0);
                    } else {
                        self.exact_start = Some(false);
                        self.enter_resync(false, on);
                    }
                    return 0;
                }
                // Server: its first frame is SETTINGS (RFC 9113 §3.4); wait for a whole header.
                let take = (FRAME_HEADER_LEN - self.hdr_have).min(data.len());
                self.hdr_buf[self.hdr_have..self.hdr_have + take].copy_from_slice(&data[..take]);
                self.hdr_have += take;
                if self.hdr_have == FRAME_HEADER_LEN {
                    self.hdr_have = 0;
                    let hdr = FrameHeader::parse(&self.hdr_buf);
                    if hdr.kind == SETTINGS
                        && !hdr.has(FLAG_ACK)
                        && hdr.plausible(false, (1 << 24) - 1)
                    {
                        self.exact_start = Some(true);
                        self.state = State::Header;
                        self.begin_frame(hdr, on);
                    } else {
                        self.exact_start = Some(false);
                        self.enter_resync(false, on);
                        let first = self.hdr_buf;
                        self.resync_buf.extend_from_slice(&first);
                    }
                }
                take
            }
            State::Preface(n) => {
                let want = &PREFACE[*n..];
                let take = want.len().min(data.len());
                if data[..take] == want[..take] {
                    *n += take;
                    if *n == PREFACE.len() {
                        self.exact_start = Some(true);
                        self.state = State::Header;
                    }
                    take
                } else {
                    // Not a preface after all: what matched so far goes to the scan as well.
                    let matched = *n;
                    self.exact_start = Some(false);
                    self.enter_resync(false, on);
                    self.resync_buf.extend_from_slice(&PREFACE[..matched]);
                    0
                }
            }
            State::Header => {
                let take = (FRAME_HEADER_LEN - self.hdr_have).min(data.len());
                self.hdr_buf[self.hdr_have..self.hdr_have + take].copy_from_slice(&data[..take]);
                self.hdr_have += take;
                if self.hdr_have == FRAME_HEADER_LEN {
                    self.hdr_have = 0;
                    let hdr = FrameHeader::parse(&self.hdr_buf);
                    self.begin_frame(hdr, on);
                }
                take
            }
            State::Payload {
                remaining, skip, ..
            } => {
                let take = (*remaining as usize).min(data.len());
                if !*skip {
                    self.payload.extend_from_slice(&data[..take]);
                }
                *remaining -= take as u32;
                if *remaining == 0 {
                    self.finish_payload(on);
                }
                take
            }
            State::DataPadLen { hdr, remaining } => {
                let pad = u32::from(data[0]);
                let hdr = *hdr;
                let rest = *remaining - 1;
                if pad > rest {
                    // Padding longer than the frame: a protocol error, framing is not trusted.
                    on(Step::DataEnd {
                        stream_id: hdr.stream_id,
                        end_stream: false,
                    });
                    self.enter_resync(true, on);
                    return 1;
                }
                self.state = State::Data {
                    hdr,
                    data_left: rest - pad,
                    pad_left: pad,
                };
                self.finish_data_if_done(on);
                1
            }
            State::Data {
                hdr,
                data_left,
                pad_left,
            } => {
                let sid = hdr.stream_id;
                if *data_left > 0 {
                    let take = (*data_left as usize).min(data.len());
                    *data_left -= take as u32;
                    on(Step::Data {
                        stream_id: sid,
                        data: &data[..take],
                    });
                    self.finish_data_if_done(on);
                    take
                } else {
                    let take = (*pad_left as usize).min(data.len());
                    *pad_left -= take as u32;
                    self.finish_data_if_done(on);
                    take
                }
            }
            State::Resync => self.resync(data, on),
        }
    }

    fn begin_frame(&mut self, hdr: FrameHeader, on: &mut dyn FnMut(Step<'_>)) {
        if hdr.kind == DATA {
            if hdr.has(FLAG_PADDED) {
                if hdr.len == 0 {
                    // PADDED without the pad length byte: protocol error.
                    self.enter_resync(true, on);
                    return;
                }
                self.state = State::DataPadLen {
                    hdr,
                    remaining: hdr.len,
                };
            } else {
                self.state = State::Data {
                    hdr,
                    data_left: hdr.len,
                    pad_left: 0,
                };
                self.finish_data_if_done(on);
            }
        } else {
            let skip = hdr.len as usize > self.max_payload;
            self.state = State::Payload {
                hdr,
                remaining: hdr.len,
                skip,
            };
            if hdr.len == 0 {
                self.state = State::Header;
                on(Step::Frame { hdr, payload: &[] });
            }
        }
    }

    /// A non-DATA payload is complete: hand it over.
    fn finish_payload(&mut self, on: &mut dyn FnMut(Step<'_>)) {
        if let State::Payload { hdr, skip, .. } = self.state {
            self.state = State::Header;
            if skip {
                self.stats.lost_frames += 1;
                on(Step::Lost { hdr });
            } else {
                on(Step::Frame {
                    hdr,
                    payload: &self.payload,
                });
            }
            self.payload.clear();
            if self.payload.capacity() > 64 * 1024 {
                self.payload = Vec::new();
            }
        }
    }

    fn finish_data_if_done(&mut self, on: &mut dyn FnMut(Step<'_>)) {
        if let State::Data {
            hdr,
            data_left: 0,
            pad_left: 0,
        } = self.state
        {
            self.state = State::Header;
            on(Step::DataEnd {
                stream_id: hdr.stream_id,
                end_stream: hdr.has(FLAG_END_STREAM),
            });
        }
    }

    /// Scan for a frame boundary. Takes all of `data` into the scan buffer, and once a boundary
    /// is confirmed replays the bytes from there through the normal states.
    fn resync(&mut self, data: &[u8], on: &mut dyn FnMut(Step<'_>)) -> usize {
        self.resync_buf.extend_from_slice(data);
        loop {
            match self.scan() {
                Scan::Found(p) => {
                    let skipped = self.resync_skipped + p as u64;
                    self.discard(p);
                    self.resync_skipped = 0;
                    let buf = std::mem::take(&mut self.resync_buf);
                    self.resync_pos = 0;
                    self.state = State::Header;
                    on(Step::Resynced { skipped });
                    // Replay the rest through the normal states (may re-enter resync).
                    let mut rest = &buf[p..];
                    while !rest.is_empty() {
                        if matches!(self.state, State::Resync) {
                            self.resync_buf.extend_from_slice(rest);
                            break;
                        }
                        let used = self.step(rest, on);
                        rest = &rest[used..];
                    }
                    if matches!(self.state, State::Resync) && !self.resync_buf.is_empty() {
                        continue;
                    }
                    return data.len();
                }
                Scan::NeedMore => {
                    // Bytes before the scan position are rejected: drop them now and then (not on
                    // every feed, so the buffer is not shifted once per byte).
                    if self.resync_pos >= self.resync_cap() {
                        let drop = self.resync_pos;
                        self.resync_buf.drain(..drop);
                        self.resync_pos = 0;
                        self.resync_skipped += drop as u64;
                        self.discard(drop);
                    }
                    return data.len();
                }
            }
        }
    }

    /// No more bytes will come: frames still waiting in the resync scan for the header that
    /// would confirm them are accepted if a chain of plausible frames covers the rest exactly.
    pub fn finish(&mut self, on: &mut dyn FnMut(Step<'_>)) {
        if !matches!(self.state, State::Resync) {
            return;
        }
        let buf = std::mem::take(&mut self.resync_buf);
        let mut p = self.resync_pos;
        while p + FRAME_HEADER_LEN <= buf.len() {
            if self.chain_to_end(&buf, p) {
                self.discard(p);
                on(Step::Resynced {
                    skipped: self.resync_skipped + p as u64,
                });
                self.resync_skipped = 0;
                self.state = State::Header;
                let mut rest = &buf[p..];
                while !rest.is_empty() && !matches!(self.state, State::Resync) {
                    let used = self.step(rest, on);
                    rest = &rest[used..];
                }
                self.resync_buf.clear();
                self.resync_pos = 0;
                return;
            }
            p += 1;
        }
        self.discard(buf.len());
        self.resync_buf.clear();
        self.resync_pos = 0;
    }

    fn discard(&mut self, n: usize) {
        self.stats.resync_skipped_bytes += n as u64;
        self.unreported_skipped += n as u64;
    }

    /// Skipped bytes since the last call.
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.unreported_skipped)
    }

    fn chain_to_end(&self, buf: &[u8], mut p: usize) -> bool {
        loop {
            if p == buf.len() {
                return true;
            }
            if p + FRAME_HEADER_LEN > buf.len() {
                return false;
            }
            let hdr = header_at(buf, p);
            if !hdr.plausible(self.from_client, self.resync_max_len) {
                return false;
            }
            p += FRAME_HEADER_LEN + hdr.len as usize;
            if p > buf.len() {
                return false;
            }
        }
    }

    /// Look for a confirmed frame start from `resync_pos` on.
    fn scan(&mut self) -> Scan {
        let buf = &self.resync_buf;
        let max_len = self.resync_max_len;
        while self.resync_pos + FRAME_HEADER_LEN <= buf.len() {
            let p = self.resync_pos;
            let hdr = header_at(buf, p);
            if hdr.plausible(self.from_client, max_len) && hdr.kind != CONTINUATION {
                // Confirmed only by the next header: the decision depends on these bytes alone,
                // never on where the capture happened to split them.
                let next = p + FRAME_HEADER_LEN + hdr.len as usize;
                if next + FRAME_HEADER_LEN > buf.len() {
                    return Scan::NeedMore;
                }
                if header_at(buf, next).plausible(self.from_client, max_len) {
                    return Scan::Found(p);
                }
            }
            self.resync_pos += 1;
        }
        Scan::NeedMore
    }
}

enum Scan {
    Found(usize),
    NeedMore,
}

fn header_at(buf: &[u8], p: usize) -> FrameHeader {
    let mut b = [0u8; FRAME_HEADER_LEN];
    b.copy_from_slice(&buf[p..p + FRAME_HEADER_LEN]);
    FrameHeader::parse(&b)
}

/// Parsed SETTINGS parameters (id, value) of a SETTINGS payload; an odd tail is ignored.
pub fn settings(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|c| {
        (
            u16::from_be_bytes([c[0], c[1]]),
            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
        )
    })
}

/// The header block fragment of a HEADERS payload (padding and priority removed), or `None` when
/// the payload is malformed.
pub fn headers_fragment<'a>(hdr: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let (mut start, mut end) = (0usize, payload.len());
    if hdr.has(FLAG_PADDED) {
        let pad = *payload.first()? as usize;
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if hdr.has(FLAG_PRIORITY) {
        start += 5;
    }
    payload.get(start..end)
}

/// Promised stream id and header block fragment of a PUSH_PROMISE payload.
pub fn push_promise_fragment<'a>(hdr: &FrameHeader, payload: &'a [u8]) -> Option<(u32, &'a [u8])> {
    let (mut start, mut end) = (0usize, payload.len());
    if hdr.has(FLAG_PADDED) {
        let pad = *payload.first()? as usize;
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let id = payload.get(start..start + 4)?;
    let promised = u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff;
    Some((promised, payload.get(start + 4..end)?))
}

/// Last stream id of a GOAWAY payload.
pub fn goaway_last_stream(payload: &[u8]) -> Option<u32> {
    let b = payload.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
}

/// Serialise a frame header (used by tests and fixture writers).
pub fn write_header(out: &mut Vec<u8>, len: u32, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
}
