//! HTTP/2 (RFC 9113) on a connection's two byte streams, producing the same
//! [`ExchangeEvent`]s as HTTP/1.1: one exchange per client stream (`exchange` = stream id),
//! method / target / authority from the pseudo-headers, version `"2"`.
//!
//! # Use
//! The connection tracker creates one [`H2Connection`] per connection with
//! [`H2Connection::new`] when [`sniff`] says the client's first bytes are the HTTP/2 preface, or
//! when they are plausible HTTP/2 frames ([`sniff`] returns [`Sniff::Frames`]: a connection opened
//! before the tracer attached). The same constructor serves both: the parser finds out itself
//! whether it saw the connection from its start. By default the traced process is the client
//! (its writes are requests); [`H2Connection::new_server_side`] is for a traced server.
//!
//! # Late attach
//! When a direction is not seen from its start, frames are found by resynchronising on plausible
//! frame headers ([`frames`]) and header blocks are decoded with an HPACK table whose older
//! entries are unknown ([`hpack_state`]). A header field that may come from an entry we never saw
//! is never attributed: it is dropped (and counted). An exchange whose request head was decoded
//! that way, or not seen at all, carries `late_attach: true`; an unknown `:method` is reported as
//! method `""`, an unknown `:path` as target `""`, an unknown `:authority` as `None` (in practice
//! `:method POST` comes from the static table and stays known, while `:path` and `:authority`
//! are usually dynamic-table references, so the LLM layer recognises such calls by body shape). A response whose head was not seen still produces `ResponseData`
//! and `ResponseEnd`, without a `ResponseHead`.
//!
//! # Bounds
//! Streams tracked, header block size, request body, response body and frame payloads are capped
//! ([`H2Config`]); whatever is dropped is counted by reason ([`H2Connection::drops`]).

pub mod frames;
pub mod hpack_state;
mod plain_literals;

use std::collections::{BTreeMap, VecDeque};

use crate::event::Direction;
use crate::http::decode::{BodyDecoder, Coding};
use crate::http::{
    count_drop, Body, ConnectionParser, DropCounts, EndReason, ExchangeEvent, Headers, HttpConfig,
    RequestHead, ResponseHead,
};
use crate::redact;

use frames::{FrameHeader, FrameReader, Step};
use hpack_state::{Field, HpackState};

/// Limits of one HTTP/2 connection: the shared HTTP limits (head size, header count, body caps,
/// decompression ratio) and how many streams are tracked at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Config {
    pub http: HttpConfig,
    /// Streams tracked at once; further streams are dropped (counted).
    pub max_streams: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            http: HttpConfig::default(),
            max_streams: 256,
        }
    }
}

/// What the first client bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// The HTTP/2 client preface.
    Preface,
    /// Plausible HTTP/2 frames (a connection opened before the capture started).
    Frames,
    /// Not HTTP/2.
    NotH2,
    /// Too few bytes to tell.
    NeedMore,
}

/// Classify the first bytes the client wrote on a connection.
pub fn sniff(first: &[u8]) -> Sniff {
    let n = first.len().min(frames::PREFACE.len());
    if first[..n] == frames::PREFACE[..n] {
        return if n == frames::PREFACE.len() {
            Sniff::Preface
        } else {
            Sniff::NeedMore
        };
    }
    // Two chained plausible client frame headers at the very start.
    let h = frames::FRAME_HEADER_LEN;
    let Some(b) = first.get(..h) else {
        return if first.first().is_some_and(|&b| b != 0) {
            Sniff::NotH2
        } else {
            Sniff::NeedMore
        };
    };
    let hdr = FrameHeader::parse(b.try_into().expect("9 bytes"));
    if !hdr.plausible(true, frames::DEFAULT_MAX_FRAME_SIZE) {
        return Sniff::NotH2;
    }
    let next = h + hdr.len as usize;
    match first.get(next..next + h) {
        Some(b) => {
            if FrameHeader::parse(b.try_into().expect("9 bytes"))
                .plausible(true, frames::DEFAULT_MAX_FRAME_SIZE)
            {
                Sniff::Frames
            } else {
                Sniff::NotH2
            }
        }
        None => Sniff::NeedMore,
    }
}

/// A header block being assembled from HEADERS / PUSH_PROMISE + CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    push: bool,
    end_stream: bool,
    bytes: Vec<u8>,
    ts_ns: u64,
}

/// One side (client or server) of the connection.
#[derive(Debug)]
struct Side {
    reader: FrameReader,
    hpack: HpackState,
    pending: Option<PendingBlock>,
    /// The side's framing or header state was not seen from its start.
    late: bool,
}

#[derive(Default)]
struct Stream {
    /// Request pseudo-headers and headers, when known.
    method: Option<String>,
    target: Option<String>,
    authority: Option<String>,
    headers: Headers,
    /// The request head was not seen, or decoded with unknown table entries.
    late: bool,
    /// Decoded request body (the decoder applies the request cap).
    req_body: Vec<u8>,
    req_decoder: Option<BodyDecoder>,
    req_gap: bool,
    req_start_ns: Option<u64>,
    req_end_ns: Option<u64>,
    request_emitted: bool,
    /// Response: final head emitted.
    resp_head: bool,
    /// A response HEADERS frame was seen (even if undecodable): the body start is in view.
    resp_headers_seen: bool,
    /// The response head had fields we could not know (content-encoding among them, maybe).
    resp_unknown_head: bool,
    resp_coding: Option<Coding>,
    resp_decoder: Option<BodyDecoder>,
    /// First response body bytes held until there are enough to sniff a compression magic
    /// number (when the head's content-encoding is unknown), so the choice does not depend on
    /// how the capture split the body.
    resp_sniff: Vec<u8>,
    resp_gap: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("late", &self.late)
            .field("request_emitted", &self.request_emitted)
            .field("resp_head", &self.resp_head)
            .finish()
    }
}

/// The HTTP/2 parser of one connection.
#[derive(Debug)]
pub struct H2Connection {
    config: H2Config,
    /// Which captured direction the client wrote.
    client_dir: Direction,
    client: Side,
    server: Side,
    streams: BTreeMap<u32, Stream>,
    /// Recently finished or refused stream ids (so late frames do not revive them); small and
    /// bounded, searched only when a frame names a stream we do not track.
    finished: VecDeque<u32>,
    /// Lowest client stream id whose request HEADERS we saw: lower ids were opened before.
    first_seen_request: Option<u32>,
    drops: DropCounts,
}

const FINISHED_MEMORY: usize = 128;

impl H2Connection {
    /// Parser for a connection whose traced process is the HTTP/2 client (its writes are the
    /// requests). Works from the preface on, or attached mid-connection.
    pub fn new(config: H2Config) -> H2Connection {
        H2Connection::with_client_dir(config, Direction::Write)
    }

    /// [`H2Connection::new`] with the shared HTTP limits (what the connection tracker calls).
    pub fn from_http_config(http: &HttpConfig) -> H2Connection {
        H2Connection::new(H2Config {
            http: http.clone(),
            ..H2Config::default()
        })
    }

    /// Parser for a connection whose traced process is the HTTP/2 server.
    pub fn new_server_side(config: H2Config) -> H2Connection {
        H2Connection::with_client_dir(config, Direction::Read)
    }

    fn with_client_dir(config: H2Config, client_dir: Direction) -> H2Connection {
        let max_block = config.http.max_head_bytes;
        let side = |from_client| Side {
            reader: FrameReader::new(from_client, max_block),
            hpack: HpackState::exact(max_block),
            pending: None,
            late: false,
        };
        H2Connection {
            client: side(true),
            server: side(false),
            config,
            client_dir,
            streams: BTreeMap::new(),
            finished: VecDeque::new(),
            first_seen_request: None,
            drops: DropCounts::new(),
        }
    }

    /// Counters of what was dropped, by reason.
    pub fn drops(&mut self) -> &DropCounts {
        self.pull_reader_drops();
        &self.drops
    }

    fn pull_reader_drops(&mut self) {
        let skipped = self.client.reader.take_skipped() + self.server.reader.take_skipped();
        if skipped > 0 {
            *self.drops.entry("h2_resync_skipped_bytes").or_default() += skipped;
        }
    }

    /// Streams currently tracked.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    fn drop_count(&mut self, reason: &'static str) {
        count_drop(&mut self.drops, reason);
    }

    fn handle(&mut self, from_client: bool, ts: u64, step: Step<'_>, out: &mut Vec<ExchangeEvent>) {
        match step {
            Step::Frame { hdr, payload } => self.on_frame(from_client, ts, hdr, payload, out),
            Step::Lost { hdr } => {
                self.check_interrupted(from_client, hdr.kind, hdr.stream_id, out);
                self.drop_count("h2_frame_lost");
                if matches!(
                    hdr.kind,
                    frames::HEADERS | frames::CONTINUATION | frames::PUSH_PROMISE
                ) {
                    // A header block we could not decode: the table is now unknown.
                    self.lose_header_state(from_client);
                    if hdr.kind == frames::HEADERS {
                        self.on_lost_headers(from_client, ts, hdr, out);
                    }
                }
            }
            Step::Data { stream_id, data } => {
                self.check_interrupted(from_client, frames::DATA, stream_id, out);
                self.on_data(from_client, ts, stream_id, data, out)
            }
            Step::DataEnd {
                stream_id,
                end_stream,
            } => {
                self.check_interrupted(from_client, frames::DATA, stream_id, out);
                if end_stream {
                    self.on_end_stream(from_client, ts, stream_id, out);
                }
            }
            Step::Desync { lost } => {
                self.drop_count(if lost { "h2_desync" } else { "h2_late_attach" });
                self.lose_header_state(from_client);
                if from_client {
                    // Request heads may have been lost: any stream seen from now on may be one
                    // whose head we missed.
                    self.first_seen_request = None;
                }
                // Bytes were lost: every open stream may have lost some in this direction. (At
                // a late attach, the streams we know began after the attach point.)
                for s in self.streams.values_mut().filter(|_| lost) {
                    if from_client {
                        s.req_gap = true;
                    } else {
                        s.resp_gap = true;
                    }
                }
            }
            // Skipped bytes are counted by the reader (see `pull_reader_drops`).
            Step::Resynced { .. } => {}
        }
    }

    fn side(&mut self, from_client: bool) -> &mut Side {
        if from_client {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    fn lose_header_state(&mut self, from_client: bool) {
        let side = self.side(from_client);
        side.late = true;
        side.pending = None;
        side.hpack.reset_late();
    }

    /// A header block must be continued by CONTINUATION frames of the same stream only; anything
    /// else loses the block (and the table state): the stream goes on with an unknown head.
    fn check_interrupted(
        &mut self,
        from_client: bool,
        kind: u8,
        stream_id: u32,
        out: &mut Vec<ExchangeEvent>,
    ) {
        let Some(p) = self.side(from_client).pending.as_ref() else {
            return;
        };
        if kind == frames::CONTINUATION && p.stream_id == stream_id {
            return;
        }
        self.drop_count("h2_header_block_interrupted");
        let lost = self.side(from_client).pending.take();
        self.lose_header_state(from_client);
        if let Some(p) = lost.filter(|p| !p.push) {
            let flags = if p.end_stream {
                frames::FLAG_END_STREAM
            } else {
                0
            };
            let lost_hdr = FrameHeader {
                len: 0,
                kind: frames::HEADERS,
                flags,
                stream_id: p.stream_id,
                reserved: false,
            };
            self.on_lost_headers(from_client, p.ts_ns, lost_hdr, out);
        }
    }

    fn on_frame(
        &mut self,
        from_client: bool,
        ts: u64,
        hdr: FrameHeader,
        payload: &[u8],
        out: &mut Vec<ExchangeEvent>,
    ) {
        self.check_interrupted(from_client, hdr.kind, hdr.stream_id, out);
        match hdr.kind {
            frames::HEADERS => {
                let Some(frag) = frames::headers_fragment(&hdr, payload) else {
                    self.drop_count("h2_bad_headers_frame");
                    self.lose_header_state(from_client);
                    self.on_lost_headers(from_client, ts, hdr, out);
                    return;
                };
                let block = PendingBlock {
                    stream_id: hdr.stream_id,
                    push: false,
                    end_stream: hdr.has(frames::FLAG_END_STREAM),
                    bytes: frag.to_vec(),
                    ts_ns: ts,
                };
                self.start_block(from_client, hdr, block, out);
            }
            frames::PUSH_PROMISE => {
                let Some((_promised, frag)) = frames::push_promise_fragment(&hdr, payload) else {
                    self.drop_count("h2_bad_push_promise");
                    self.lose_header_state(from_client);
                    return;
                };
                let block = PendingBlock {
                    stream_id: hdr.stream_id,
                    push: true,
                    end_stream: false,
                    bytes: frag.to_vec(),
                    ts_ns: ts,
                };
                self.start_block(from_client, hdr, block, out);
            }
            frames::CONTINUATION => {
                let max = self.config.http.max_head_bytes;
                let side = self.side(from_client);
                let Some(p) = side.pending.as_mut() else {
                    // A continuation of a block we did not see (late attach, or lost).
                    self.drop_count("h2_orphan_continuation");
                    self.lose_header_state(from_client);
                    return;
                };
                if p.bytes.len() + payload.len() > max {
                    let sid = p.stream_id;
                    let push = p.push;
                    self.drop_count("h2_header_block_too_large");
                    self.lose_header_state(from_client);
                    if !push {
                        let fake = FrameHeader {
                            len: 0,
                            kind: frames::HEADERS,
                            flags: 0,
                            stream_id: sid,
                            reserved: false,
                        };
                        self.on_lost_headers(from_client, ts, fake, out);
                    }
                    return;
                }
                p.bytes.extend_from_slice(payload);
                if hdr.has(frames::FLAG_END_HEADERS) {
                    if let Some(block) = self.side(from_client).pending.take() {
                        self.finish_block(from_client, block, out);
                    }
                }
            }
            frames::SETTINGS => {
                if hdr.has(frames::FLAG_ACK) {
                    return;
                }
                for (id, value) in frames::settings(payload) {
                    match id {
                        // The sender's decoder table size bounds the other side's encoder.
                        frames::SETTINGS_HEADER_TABLE_SIZE => {
                            self.side(!from_client).hpack.peer_table_size(value)
                        }
                        // The largest frame the sender accepts: what the other side may send.
                        frames::SETTINGS_MAX_FRAME_SIZE => {
                            self.side(!from_client).reader.set_max_frame_len(value)
                        }
                        _ => {}
                    }
                }
            }
            frames::RST_STREAM => {
                self.end_stream_reset(ts, hdr.stream_id, out);
            }
            // Streams the receiver of the GOAWAY opened above last-stream-id were not (and will
            // not be) processed. Only client streams are exchanges, so only the server's counts.
            frames::GOAWAY if !from_client => {
                if let Some(last) = frames::goaway_last_stream(payload) {
                    let ids: Vec<u32> = self
                        .streams
                        .range(last.saturating_add(1)..)
                        .map(|(k, _)| *k)
                        .collect();
                    for id in ids {
                        self.end_stream_reset(ts, id, out);
                    }
                }
            }
            // PRIORITY, PING, WINDOW_UPDATE and extension frames carry nothing we report.
            _ => {}
        }
    }

    fn start_block(
        &mut self,
        from_client: bool,
        hdr: FrameHeader,
        block: PendingBlock,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if hdr.has(frames::FLAG_END_HEADERS) {
            self.finish_block(from_client, block, out);
        } else {
            self.side(from_client).pending = Some(block);
        }
    }

    fn finish_block(
        &mut self,
        from_client: bool,
        block: PendingBlock,
        out: &mut Vec<ExchangeEvent>,
    ) {
        let decoded = self.side(from_client).hpack.decode(&block.bytes);
        let decoded = match decoded {
            Ok(b) => Some(b),
            Err(_) => {
                self.drop_count("h2_hpack_error");
                self.side(from_client).late = true;
                None
            }
        };
        if block.push {
            // Promised requests are decoded (to keep the table right) and otherwise ignored.
            return;
        }
        let sid = block.stream_id;
        let ts = block.ts_ns;
        if from_client {
            self.on_request_headers(sid, ts, decoded, block.end_stream, out);
        } else {
            self.on_response_headers(sid, ts, decoded, block.end_stream, out);
        }
    }

    /// A HEADERS frame whose content is lost: the stream still exists, its head is unknown.
    fn on_lost_headers(
        &mut self,
        from_client: bool,
        ts: u64,
        hdr: FrameHeader,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if from_client {
            self.on_request_headers(
                hdr.stream_id,
                ts,
                None,
                hdr.has(frames::FLAG_END_STREAM),
                out,
            );
        } else {
            self.on_response_headers(
                hdr.stream_id,
                ts,
                None,
                hdr.has(frames::FLAG_END_STREAM),
                out,
            );
        }
    }

    /// Find a stream, creating it when `create` allows and the caps permit.
    fn stream_for(&mut self, sid: u32, create: Create) -> Option<&mut Stream> {
        if sid == 0 || sid.is_multiple_of(2) {
            // Server-pushed (even) streams are not exchanges.
            return None;
        }
        if !self.streams.contains_key(&sid) {
            if self.finished.contains(&sid) {
                return None;
            }
            let allowed = match create {
                Create::Request => true,
                // A stream seen first by its data or response: only if it may have been opened
                // before the capture saw this connection's header blocks.
                Create::Late => {
                    (self.client.late || self.server.late)
                        && self.first_seen_request.is_none_or(|f| sid < f)
                }
            };
            if !allowed {
                self.drop_count("h2_frame_for_unknown_stream");
                return None;
            }
            if self.streams.len() >= self.config.max_streams {
                self.drop_count("h2_too_many_streams");
                self.remember_finished(sid);
                return None;
            }
            let late = !matches!(create, Create::Request);
            self.streams.insert(
                sid,
                Stream {
                    late,
                    // A late stream's request began before we saw it.
                    req_gap: late,
                    ..Stream::default()
                },
            );
        }
        self.streams.get_mut(&sid)
    }

    fn remember_finished(&mut self, sid: u32) {
        if !self.finished.contains(&sid) {
            if self.finished.len() == FINISHED_MEMORY {
                self.finished.pop_front();
            }
            self.finished.push_back(sid);
        }
    }

    /// Turn a decoded header block into (pseudo-headers, redacted headers); fields we could not
    /// know are counted and left out, fields past the head limits are dropped and counted.
    fn head_fields(&mut self, block: hpack_state::Block) -> HeadFields {
        let max_bytes = self.config.http.max_head_bytes;
        let max_fields = self.config.http.max_headers;
        let mut h = HeadFields {
            late: block.late,
            ..HeadFields::default()
        };
        let mut size = 0usize;
        let (mut unknown, mut over) = (0u64, 0u64);
        for f in block.fields {
            let (name, value) = match f {
                Field::Known { name, value } => (name, value),
                Field::UnknownName { .. } | Field::Unknown => {
                    unknown += 1;
                    h.unknown = true;
                    continue;
                }
            };
            size += name.len() + value.len();
            if size > max_bytes || h.headers.0.len() >= max_fields {
                over += 1;
                continue;
            }
            let name = String::from_utf8_lossy(&name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(&value).into_owned();
            if name.starts_with(':') {
                h.pseudo.push((name, value));
            } else {
                let v = redact::header_value(&name, &value).to_string();
                h.headers.0.push((name, v));
            }
        }
        if unknown > 0 {
            *self.drops.entry("h2_header_field_unknown").or_default() += unknown;
        }
        if over > 0 {
            *self.drops.entry("h2_header_over_limit").or_default() += over;
        }
        h
    }

    fn coding(&mut self, headers: &Headers) -> Coding {
        Coding::from_header(headers.get("content-encoding")).unwrap_or_else(|_| {
            count_drop(&mut self.drops, "h2_unsupported_content_encoding");
            Coding::Identity
        })
    }

    fn on_request_headers(
        &mut self,
        sid: u32,
        ts: u64,
        block: Option<hpack_state::Block>,
        end_stream: bool,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if !self.streams.contains_key(&sid) && self.finished.contains(&sid) {
            return;
        }
        if self.first_seen_request.is_none() && block.is_some() {
            // Client streams below the first request head we decode may predate the capture.
            self.first_seen_request = Some(sid);
        }
        let fields = block.map(|b| self.head_fields(b));
        let coding = fields.as_ref().map(|f| self.coding(&f.headers));
        let limits = self.config.http.request_limits();
        let Some(s) = self.stream_for(sid, Create::Request) else {
            return;
        };
        if s.req_start_ns.is_none() && !s.request_emitted {
            s.req_start_ns = Some(ts);
            match fields {
                Some(f) => {
                    s.late |= f.late || f.unknown;
                    for (n, v) in f.pseudo {
                        match n.as_str() {
                            ":method" => s.method = Some(v),
                            ":path" => s.target = Some(redact::redact_target(&v)),
                            ":authority" => s.authority = Some(v),
                            _ => {}
                        }
                    }
                    s.headers = f.headers;
                }
                None => s.late = true,
            }
            s.req_decoder = Some(BodyDecoder::new(coding.unwrap_or(Coding::Identity), limits));
        }
        // Otherwise: trailers; only their END_STREAM matters.
        if end_stream {
            self.on_end_stream(true, ts, sid, out);
        }
    }

    fn on_response_headers(
        &mut self,
        sid: u32,
        ts: u64,
        block: Option<hpack_state::Block>,
        end_stream: bool,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if self.stream_for(sid, Create::Late).is_none() {
            return;
        }
        self.emit_request(sid, ts, out);
        let fields = block.map(|b| self.head_fields(b));
        let coding = fields.as_ref().map(|f| self.coding(&f.headers));
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        s.resp_headers_seen = true;
        if !s.resp_head {
            let status = fields.as_ref().and_then(|f| {
                f.pseudo
                    .iter()
                    .find(|(n, _)| n == ":status")
                    .and_then(|(_, v)| v.trim().parse::<u16>().ok())
            });
            match (status, fields) {
                // Informational responses (100, 103): the final one follows.
                (Some(st), _) if (100..200).contains(&st) => {}
                (Some(st), Some(f)) => {
                    s.resp_head = true;
                    s.resp_unknown_head = f.unknown;
                    s.resp_coding = coding;
                    out.push(ExchangeEvent::ResponseHead {
                        exchange: u64::from(sid),
                        head: ResponseHead {
                            status: st,
                            headers: f.headers,
                        },
                        ts_ns: ts,
                    });
                }
                // Status unknown: no head to report; the body still counts.
                _ => s.resp_unknown_head = true,
            }
        }
        if end_stream {
            self.on_end_stream(false, ts, sid, out);
        }
    }

    fn on_data(
        &mut self,
        from_client: bool,
        ts: u64,
        sid: u32,
        data: &[u8],
        out: &mut Vec<ExchangeEvent>,
    ) {
        if self.stream_for(sid, Create::Late).is_none() {
            return;
        }
        if from_client {
            let limits = self.config.http.request_limits();
            let Some(s) = self.streams.get_mut(&sid) else {
                return;
            };
            if s.request_emitted {
                self.drop_count("h2_request_data_after_response");
                return;
            }
            s.req_start_ns.get_or_insert(ts);
            s.req_decoder
                .get_or_insert_with(|| BodyDecoder::new(Coding::Identity, limits))
                .push(data, &mut s.req_body);
        } else {
            self.emit_request(sid, ts, out);
            let limits = self.config.http.response_limits();
            let Some(s) = self.streams.get_mut(&sid) else {
                return;
            };
            let mut data = data;
            if s.resp_decoder.is_none() {
                let known = match s.resp_coding {
                    Some(c) if c != Coding::Identity || !s.resp_unknown_head => Some(c),
                    _ => None,
                };
                if known.is_none() && s.resp_sniff.len() + data.len() < SNIFF_BYTES {
                    s.resp_sniff.extend_from_slice(data);
                    return;
                }
                if !s.resp_headers_seen {
                    // The response began before we saw this connection: its start is missing.
                    s.resp_gap = true;
                }
                s.resp_sniff.extend_from_slice(data);
                // The head (and maybe its content-encoding) was not fully known: look at the
                // body's first bytes for a compression format's magic number.
                let coding = known.unwrap_or_else(|| sniff_coding(&s.resp_sniff));
                s.resp_decoder = Some(BodyDecoder::new(coding, limits));
                data = &s.resp_sniff;
            }
            let Some(dec) = s.resp_decoder.as_mut() else {
                return;
            };
            let mut decoded = Vec::new();
            dec.push(data, &mut decoded);
            s.resp_sniff = Vec::new();
            if !decoded.is_empty() {
                out.push(ExchangeEvent::ResponseData {
                    exchange: u64::from(sid),
                    ts_ns: ts,
                    data: decoded,
                });
            }
        }
    }

    fn on_end_stream(
        &mut self,
        from_client: bool,
        ts: u64,
        sid: u32,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if from_client {
            let Some(s) = self.streams.get_mut(&sid) else {
                return;
            };
            s.req_end_ns = Some(ts);
            self.emit_request(sid, ts, out);
        } else {
            self.finish(sid, ts, EndReason::Complete, out);
        }
    }

    fn end_stream_reset(&mut self, ts: u64, sid: u32, out: &mut Vec<ExchangeEvent>) {
        if self.streams.contains_key(&sid) {
            self.finish(sid, ts, EndReason::Reset, out);
        }
    }

    /// Emit the stream's Request event if not done yet.
    fn emit_request(&mut self, sid: u32, ts: u64, out: &mut Vec<ExchangeEvent>) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.request_emitted {
            return;
        }
        s.request_emitted = true;
        // An unknown method or target is reported as "" (see the module doc).
        let known = s.method.is_some() && s.target.is_some();
        let method = s.method.take().unwrap_or_default();
        let target = s.target.take().unwrap_or_default();
        let truncated = s
            .req_decoder
            .as_ref()
            .is_some_and(|d| d.capped() || d.failed());
        s.req_decoder = None;
        let start = s.req_start_ns.unwrap_or(ts);
        out.push(ExchangeEvent::Request {
            exchange: u64::from(sid),
            head: RequestHead {
                method,
                target,
                authority: s.authority.take(),
                version: "2".to_string(),
                headers: std::mem::take(&mut s.headers),
            },
            body: Body {
                bytes: std::mem::take(&mut s.req_body),
                truncated,
                gap: s.req_gap,
            },
            start_ns: start,
            end_ns: s.req_end_ns.unwrap_or(ts).max(start),
            late_attach: s.late || !known,
        });
    }

    /// End the exchange: request (if still due), then ResponseEnd; forget the stream.
    fn finish(&mut self, sid: u32, ts: u64, reason: EndReason, out: &mut Vec<ExchangeEvent>) {
        self.emit_request(sid, ts, out);
        if let Some(mut s) = self.streams.remove(&sid) {
            if s.resp_decoder.is_none() && !s.resp_sniff.is_empty() {
                // A body shorter than a magic number: decide on what there is.
                let mut d = BodyDecoder::new(
                    sniff_coding(&s.resp_sniff),
                    self.config.http.response_limits(),
                );
                let mut decoded = Vec::new();
                d.push(&s.resp_sniff, &mut decoded);
                s.resp_decoder = Some(d);
                if !s.resp_headers_seen {
                    s.resp_gap = true;
                }
                if !decoded.is_empty() {
                    out.push(ExchangeEvent::ResponseData {
                        exchange: u64::from(sid),
                        ts_ns: ts,
                        data: decoded,
                    });
                }
            }
            let (capped, failed, identity) =
                s.resp_decoder.as_ref().map_or((false, false, true), |d| {
                    (d.capped(), d.failed(), d.coding() == Coding::Identity)
                });
            out.push(ExchangeEvent::ResponseEnd {
                exchange: u64::from(sid),
                ts_ns: ts,
                reason,
                truncated: failed || (identity && capped),
                gap: s.resp_gap,
                decompression_capped: !identity && capped,
            });
            self.remember_finished(sid);
        }
    }

    fn is_client(&self, direction: Direction) -> bool {
        direction == self.client_dir
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    /// A request HEADERS frame: a new exchange.
    Request,
    /// Any other frame: only streams that may predate what we saw.
    Late,
}

impl ConnectionParser for H2Connection {
    fn feed(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<ExchangeEvent>,
    ) {
        let from_client = self.is_client(direction);
        // The reader and the rest of the connection are borrowed apart.
        let mut reader = std::mem::replace(
            &mut self.side(from_client).reader,
            FrameReader::new(from_client, 0),
        );
        reader.feed(data, &mut |step| self.handle(from_client, ts_ns, step, out));
        self.side(from_client).reader = reader;
    }

    fn gap(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        missing: u64,
        out: &mut Vec<ExchangeEvent>,
    ) {
        let from_client = self.is_client(direction);
        let mut reader = std::mem::replace(
            &mut self.side(from_client).reader,
            FrameReader::new(from_client, 0),
        );
        let absorbed = reader.gap(missing, &mut |step| {
            self.handle(from_client, ts_ns, step, out)
        });
        self.side(from_client).reader = reader;
        if let Some(sid) = absorbed {
            if let Some(s) = self.streams.get_mut(&sid) {
                // A compressed body cannot be decoded past a hole (identity goes on).
                if from_client {
                    s.req_gap = true;
                    if let Some(d) = s.req_decoder.as_mut() {
                        d.interrupt();
                    }
                } else {
                    s.resp_gap = true;
                    if let Some(d) = s.resp_decoder.as_mut() {
                        d.interrupt();
                    }
                }
            }
        }
    }

    fn close(&mut self, ts_ns: u64, reason: EndReason, out: &mut Vec<ExchangeEvent>) {
        // Frames still waiting for resync confirmation are taken if they end the capture exactly.
        for from_client in [true, false] {
            let mut reader = std::mem::replace(
                &mut self.side(from_client).reader,
                FrameReader::new(from_client, 0),
            );
            reader.finish(&mut |step| self.handle(from_client, ts_ns, step, out));
            self.side(from_client).reader = reader;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for sid in ids {
            self.finish(sid, ts_ns, reason, out);
        }
    }

    fn drain_drops(&mut self, into: &mut DropCounts) {
        self.pull_reader_drops();
        for (k, v) in std::mem::take(&mut self.drops) {
            *into.entry(k).or_default() += v;
        }
    }

    fn buffered_bytes(&self) -> usize {
        let streams: usize = self
            .streams
            .values()
            .map(|s| {
                s.req_body.capacity()
                    + s.resp_sniff.len()
                    + s.resp_decoder.as_ref().map_or(0, |d| d.buffered_bytes())
            })
            .sum();
        let pending = |s: &Side| s.pending.as_ref().map_or(0, |p| p.bytes.capacity());
        streams
            + self.client.hpack.table_bytes()
            + self.server.hpack.table_bytes()
            + self.client.reader.buffered_bytes()
            + self.server.reader.buffered_bytes()
            + pending(&self.client)
            + pending(&self.server)
    }
}

/// Pseudo-headers and redacted headers of a decoded block.
#[derive(Debug, Default)]
struct HeadFields {
    pseudo: Vec<(String, String)>,
    headers: Headers,
    /// Decoded with a table holding unknown entries.
    late: bool,
    /// Some fields could not be known (and were left out).
    unknown: bool,
}

/// A compression format's magic number at the start of a body (gzip, zstd); brotli has none.
/// Bytes needed to tell the compression formats apart by their magic numbers.
const SNIFF_BYTES: usize = 4;

fn sniff_coding(first: &[u8]) -> Coding {
    if first.starts_with(&[0x1f, 0x8b]) {
        Coding::Gzip
    } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Coding::Zstd
    } else {
        Coding::Identity
    }
}

#[cfg(test)]
mod tests;
