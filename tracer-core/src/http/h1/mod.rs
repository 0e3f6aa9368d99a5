//! HTTP/1.1 on one connection: requests on the write side, responses on the read side, paired in
//! order (keep-alive and pipelining), into [`ExchangeEvent`]s.
//!
//! Every byte is looked at a bounded number of times: heads are collected line by line (each
//! byte copied once, `httparse` run once on a complete head), bodies pass straight from the input
//! slice to the de-chunker and decoder. Nothing is re-scanned from the start of a buffer.
//!
//! Late attach and lost sync: a direction that is not at a known message start skips to the next
//! line start (or the start of the next captured write/read, which is where programs begin
//! messages) and only takes a line that is a valid start line: a request line on the write side,
//! a status line on the read side, and then only while a request is waiting for it.

mod body;
mod headers;
mod start_line;

use std::collections::VecDeque;

use memchr::memchr;

use super::decode::{BodyDecoder, Coding};
use super::{
    count_drop, Body, ConnectionParser, DropCounts, EndReason, ExchangeEvent, HttpConfig,
    RequestHead, ResponseHead,
};
use crate::event::Direction;
use crate::redact;
use body::{Chunked, Framing, FramingError};
use headers::{coding, content_length, convert_headers, transfer_encoding};
use start_line::{
    is_blank_line, is_request_line, is_status_line, HeadBuf, LineCheck, MAX_START_LINE,
};

/// Where one direction is.
enum Phase<B> {
    /// Lost sync: discard up to the next line start.
    Skip,
    /// Collecting what may be a start line.
    Line,
    /// Collecting header lines after a valid start line.
    Head,
    Body(B),
    /// The connection switched protocols (101, CONNECT): nothing more is parsed.
    Dead,
}

/// An absolute-form target (`https://host/path?q`, as sent to proxies) as origin-form
/// (`/path?q`) and its authority (without userinfo); other targets unchanged.
fn origin_form(target: &str) -> (String, Option<String>) {
    let Some(rest) = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
    else {
        return (target.to_string(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = &rest[end..];
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    (path, Some(authority.to_string()))
}

/// A request whose head was parsed, waiting for (or receiving) its response.
struct Pending {
    exchange: u64,
    is_head: bool,
    is_connect: bool,
    /// The `Request` event has been emitted.
    emitted: bool,
}

/// A request body being received.
struct ReqBody {
    exchange: u64,
    framing: Framing,
    decoder: BodyDecoder,
    head: Option<RequestHead>,
    body: Body,
    start_ns: u64,
    late_attach: bool,
}

/// A response body being received.
struct RespBody {
    exchange: u64,
    framing: Framing,
    decoder: BodyDecoder,
    gap: bool,
    /// The connection is a tunnel after this response (CONNECT 2xx).
    then_dead: bool,
}

/// The HTTP/1.1 parser of one connection.
pub struct H1Connection {
    cfg: HttpConfig,
    next_exchange: u64,
    pending: VecDeque<Pending>,
    req_phase: Phase<ReqBody>,
    req_head: HeadBuf,
    resp_phase: Phase<RespBody>,
    resp_head: HeadBuf,
    /// Bytes were skipped on the write side before the first request: the connection predates
    /// the capture. Reported on the first request.
    skipped_before_first: bool,
    seen_request: bool,
    /// Decoded response bytes of the current feed, sent as one `ResponseData`.
    piece: Vec<u8>,
    drops: DropCounts,
    /// Bytes looked at: every input byte once, plus heads and start lines read again whole.
    /// A complexity check for tests (stays linear in the input).
    examined: u64,
}

impl ConnectionParser for H1Connection {
    fn feed(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<ExchangeEvent>,
    ) {
        match direction {
            Direction::Write => self.feed_request(ts_ns, data, out),
            Direction::Read => self.feed_response(ts_ns, data, out),
        }
    }

    fn gap(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        missing: u64,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if missing == 0 {
            return;
        }
        match direction {
            Direction::Write => self.request_gap(ts_ns, missing, out),
            Direction::Read => self.response_gap(ts_ns, missing, out),
        }
    }

    fn close(&mut self, ts_ns: u64, reason: EndReason, out: &mut Vec<ExchangeEvent>) {
        if let Phase::Body(b) = &mut self.req_phase {
            if b.head.is_some() {
                b.body.truncated = true;
                emit_request(b, ts_ns, &mut self.pending, out);
            }
        }
        self.req_phase = Phase::Line;
        self.req_head.clear();
        let mut current = match std::mem::replace(&mut self.resp_phase, Phase::Line) {
            Phase::Body(b) => Some(b),
            _ => None,
        };
        self.resp_head.clear();
        for p in std::mem::take(&mut self.pending) {
            match current.take() {
                Some(mut b) if b.exchange == p.exchange => {
                    let reason = if b.framing == Framing::Close {
                        // A close-delimited body has no other end.
                        EndReason::ConnectionClosed
                    } else {
                        reason
                    };
                    self.end_response(&mut b, ts_ns, reason, false, out);
                }
                other => {
                    current = other;
                    out.push(ExchangeEvent::ResponseEnd {
                        exchange: p.exchange,
                        ts_ns,
                        reason,
                        truncated: false,
                        gap: false,
                        decompression_capped: false,
                    });
                }
            }
        }
    }

    fn buffered_bytes(&self) -> usize {
        let req = match &self.req_phase {
            Phase::Body(b) => b.body.bytes.capacity() + b.decoder.buffered_bytes(),
            _ => 0,
        };
        let resp = match &self.resp_phase {
            Phase::Body(b) => b.decoder.buffered_bytes(),
            _ => 0,
        };
        req + resp
            + self.req_head.buf.capacity()
            + self.resp_head.buf.capacity()
            + self.piece.capacity()
    }

    fn drain_drops(&mut self, into: &mut DropCounts) {
        for (k, v) in std::mem::take(&mut self.drops) {
            *into.entry(k).or_default() += v;
        }
    }
}

/// Emit the `Request` event of a body being received (complete or not).
fn emit_request(
    b: &mut ReqBody,
    end_ns: u64,
    pending: &mut VecDeque<Pending>,
    out: &mut Vec<ExchangeEvent>,
) {
    let Some(head) = b.head.take() else {
        return;
    };
    if !b.body.truncated && !b.body.gap {
        // Complete by its framing: check the compressed stream ended well too.
        b.decoder.finish(&mut b.body.bytes);
    }
    if b.decoder.capped() || b.decoder.failed() {
        b.body.truncated = true;
    }
    if let Some(p) = pending.iter_mut().find(|p| p.exchange == b.exchange) {
        p.emitted = true;
    }
    out.push(ExchangeEvent::Request {
        exchange: b.exchange,
        head,
        body: std::mem::take(&mut b.body),
        start_ns: b.start_ns,
        end_ns,
        late_attach: b.late_attach,
    });
}

impl H1Connection {
    /// See `examined`: bytes looked at so far.
    /// Every byte written so far belongs to requests already emitted: no request head or body
    /// is in progress on the write side (the agent may then mute the current response).
    pub fn request_side_idle(&self) -> bool {
        matches!(self.req_phase, Phase::Line) && self.req_head.buf.is_empty()
    }

    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    pub fn new(cfg: HttpConfig) -> Self {
        H1Connection {
            cfg,
            next_exchange: 0,
            pending: VecDeque::new(),
            req_phase: Phase::Line,
            req_head: HeadBuf::new(),
            resp_phase: Phase::Line,
            resp_head: HeadBuf::new(),
            skipped_before_first: false,
            seen_request: false,
            piece: Vec::new(),
            drops: DropCounts::new(),
            examined: 0,
        }
    }

    fn lose_request_sync(&mut self, reason: &'static str) {
        count_drop(&mut self.drops, reason);
        self.req_head.clear();
        self.req_phase = Phase::Skip;
        if !self.seen_request {
            self.skipped_before_first = true;
        }
    }

    fn feed_request(&mut self, ts: u64, mut input: &[u8], out: &mut Vec<ExchangeEvent>) {
        // Programs start a message with a new write: a feed start is a possible line start.
        if matches!(self.req_phase, Phase::Skip) {
            self.req_phase = Phase::Line;
        }
        while !input.is_empty() {
            match &mut self.req_phase {
                Phase::Dead => return,
                Phase::Skip => match memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.req_phase = Phase::Line;
                    }
                    None => return,
                },
                Phase::Line => {
                    if self.req_head.buf.is_empty() {
                        let c = input[0];
                        if c == b'\r' || c == b'\n' {
                            input = &input[1..];
                            continue;
                        }
                        self.req_head.start_ns = ts;
                        self.req_head.check = LineCheck::request();
                    }
                    let (n, complete) = self.req_head.take_start_line(input, true);
                    input = &input[n..];
                    match complete {
                        None if self.req_head.buf.len() > MAX_START_LINE => {
                            self.lose_request_sync("h1_request_resync")
                        }
                        None => {}
                        Some(true)
                            if self.reread(self.req_head.buf.len())
                                && is_request_line(&self.req_head.buf) =>
                        {
                            self.req_head.line_start = self.req_head.buf.len();
                            self.req_phase = Phase::Head;
                        }
                        // Not a request line: skip the rest of it; the next line may be one.
                        Some(_) => self.lose_request_sync("h1_request_resync"),
                    }
                }
                Phase::Head => {
                    let (n, complete) = self.req_head.take_line(input);
                    input = &input[n..];
                    if complete {
                        if is_blank_line(self.req_head.last_line()) {
                            self.on_request_head(ts, out);
                            continue;
                        }
                        self.req_head.line_start = self.req_head.buf.len();
                    }
                    if self.req_head.buf.len() > self.cfg.max_head_bytes {
                        self.lose_request_sync("h1_head_too_large");
                    }
                }
                Phase::Body(b) => {
                    let ReqBody {
                        framing,
                        decoder,
                        body,
                        head,
                        ..
                    } = b;
                    let keep = head.is_some();
                    let step = framing.step(input, &mut |d| {
                        if keep {
                            decoder.push(d, &mut body.bytes)
                        }
                    });
                    match step {
                        Ok((n, done)) => {
                            input = &input[n..];
                            if done {
                                emit_request(b, ts, &mut self.pending, out);
                                self.req_phase = Phase::Line;
                            }
                        }
                        Err(FramingError) => {
                            b.body.truncated = true;
                            emit_request(b, ts, &mut self.pending, out);
                            self.lose_request_sync("h1_bad_chunked_request");
                        }
                    }
                }
            }
        }
    }

    /// Count `n` bytes read a second time; always true (for use in guards).
    fn reread(&mut self, n: usize) -> bool {
        self.examined += n as u64;
        true
    }

    fn on_request_head(&mut self, ts: u64, out: &mut Vec<ExchangeEvent>) {
        self.reread(self.req_head.buf.len());
        let mut raw = vec![httparse::EMPTY_HEADER; self.cfg.max_headers];
        let mut req = httparse::Request::new(&mut raw);
        let parsed = match req.parse(&self.req_head.buf) {
            Ok(httparse::Status::Complete(_)) => {
                let headers = convert_headers(req.headers);
                let (target, url_authority) = origin_form(req.path.unwrap_or(""));
                Some(RequestHead {
                    method: req.method.unwrap_or("").to_string(),
                    authority: headers.get("host").map(str::to_string).or(url_authority),
                    target: redact::redact_target(&target),
                    version: if req.version == Some(0) { "1.0" } else { "1.1" }.to_string(),
                    headers,
                })
            }
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => {
                self.lose_request_sync("h1_too_many_headers");
                return;
            }
            Err(_) => None,
        };
        let Some(head) = parsed else {
            self.lose_request_sync("h1_bad_request_head");
            return;
        };
        let start_ns = self.req_head.start_ns;
        self.req_head.clear();
        let framing = match (
            transfer_encoding(&head.headers),
            content_length(&head.headers),
        ) {
            (Some(true), _) => Some(Framing::Chunked(Chunked::start())),
            (Some(false), _) | (None, Err(())) => {
                // A request body whose end cannot be known: the server would reject it too.
                self.lose_request_sync("h1_bad_request_framing");
                return;
            }
            (None, Ok(Some(0) | None)) => None,
            (None, Ok(Some(len))) => Some(Framing::Length(len)),
        };
        if self.pending.len() >= self.cfg.max_pending_exchanges {
            // Requests nobody answers: forget the oldest.
            count_drop(&mut self.drops, "h1_too_many_pending");
            if let Some(p) = self.pending.pop_front() {
                out.push(ExchangeEvent::ResponseEnd {
                    exchange: p.exchange,
                    ts_ns: ts,
                    reason: EndReason::Abandoned,
                    truncated: false,
                    gap: false,
                    decompression_capped: false,
                });
            }
        }
        let exchange = self.next_exchange;
        self.next_exchange += 1;
        let late_attach = std::mem::take(&mut self.skipped_before_first);
        self.seen_request = true;
        self.pending.push_back(Pending {
            exchange,
            is_head: head.method == "HEAD",
            is_connect: head.method == "CONNECT",
            emitted: false,
        });
        // A response starts after its request: the read side may start looking for it.
        if matches!(self.resp_phase, Phase::Skip) {
            self.resp_phase = Phase::Line;
        }
        let decoder = BodyDecoder::new(
            coding(&head.headers, &mut self.drops),
            self.cfg.request_limits(),
        );
        let mut b = ReqBody {
            exchange,
            framing: framing.unwrap_or(Framing::Length(0)),
            decoder,
            head: Some(head),
            body: Body::default(),
            start_ns,
            late_attach,
        };
        if framing.is_none() {
            emit_request(&mut b, ts, &mut self.pending, out);
            self.req_phase = Phase::Line;
        } else {
            self.req_phase = Phase::Body(b);
        }
    }

    fn request_gap(&mut self, ts: u64, missing: u64, out: &mut Vec<ExchangeEvent>) {
        match &mut self.req_phase {
            Phase::Dead => {}
            Phase::Skip | Phase::Line | Phase::Head => {
                if !self.req_head.buf.is_empty() || !matches!(self.req_phase, Phase::Skip) {
                    self.lose_request_sync("h1_gap_in_request_head");
                }
                self.req_phase = Phase::Skip;
            }
            Phase::Body(b) => {
                b.body.gap = true;
                b.decoder.interrupt();
                match b.framing.skip(missing) {
                    Ok(None) => {}
                    Ok(Some(rest)) => {
                        emit_request(b, ts, &mut self.pending, out);
                        self.req_phase = if rest == 0 { Phase::Line } else { Phase::Skip };
                    }
                    Err(FramingError) => {
                        emit_request(b, ts, &mut self.pending, out);
                        self.lose_request_sync("h1_gap_in_chunked_request");
                    }
                }
            }
        }
    }

    /// End the oldest waiting request without a (readable) response.
    fn abandon_oldest(
        &mut self,
        ts: u64,
        truncated: bool,
        gap: bool,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if let Some(p) = self.pending.pop_front() {
            out.push(ExchangeEvent::ResponseEnd {
                exchange: p.exchange,
                ts_ns: ts,
                reason: EndReason::Abandoned,
                truncated,
                gap,
                decompression_capped: false,
            });
        }
    }

    fn lose_response_sync(&mut self, reason: &'static str) {
        count_drop(&mut self.drops, reason);
        self.resp_head.clear();
        self.resp_phase = Phase::Skip;
    }

    fn flush_piece(&mut self, exchange: u64, ts: u64, out: &mut Vec<ExchangeEvent>) {
        if !self.piece.is_empty() {
            out.push(ExchangeEvent::ResponseData {
                exchange,
                ts_ns: ts,
                data: std::mem::take(&mut self.piece),
            });
        }
    }

    fn feed_response(&mut self, ts: u64, mut input: &[u8], out: &mut Vec<ExchangeEvent>) {
        if matches!(self.resp_phase, Phase::Skip) && !self.pending.is_empty() {
            self.resp_phase = Phase::Line;
        }
        while !input.is_empty() {
            match &mut self.resp_phase {
                Phase::Dead => return,
                Phase::Skip | Phase::Line if self.pending.is_empty() => {
                    // Nothing was asked: the tail of an exchange from before the capture.
                    count_drop(&mut self.drops, "h1_response_without_request");
                    self.resp_head.clear();
                    self.resp_phase = Phase::Skip;
                    return;
                }
                Phase::Skip => match memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.resp_phase = Phase::Line;
                    }
                    None => return,
                },
                Phase::Line => {
                    if self.resp_head.buf.is_empty() {
                        let c = input[0];
                        if c == b'\r' || c == b'\n' {
                            input = &input[1..];
                            continue;
                        }
                        self.resp_head.start_ns = ts;
                        self.resp_head.check = LineCheck::status();
                    }
                    let (n, complete) = self.resp_head.take_start_line(input, false);
                    input = &input[n..];
                    match complete {
                        None if self.resp_head.buf.len() > MAX_START_LINE => {
                            self.lose_response_sync("h1_response_resync")
                        }
                        None => {}
                        Some(true)
                            if self.reread(self.resp_head.buf.len())
                                && is_status_line(&self.resp_head.buf) =>
                        {
                            self.resp_head.line_start = self.resp_head.buf.len();
                            self.resp_phase = Phase::Head;
                        }
                        Some(_) => self.lose_response_sync("h1_response_resync"),
                    }
                }
                Phase::Head => {
                    let (n, complete) = self.resp_head.take_line(input);
                    input = &input[n..];
                    if complete {
                        if is_blank_line(self.resp_head.last_line()) {
                            self.on_response_head(ts, out);
                            continue;
                        }
                        self.resp_head.line_start = self.resp_head.buf.len();
                    }
                    if self.resp_head.buf.len() > self.cfg.max_head_bytes {
                        // This response is unreadable: its request ends here, so that the next
                        // response is not paired with it.
                        self.abandon_oldest(ts, true, false, out);
                        self.lose_response_sync("h1_head_too_large");
                    }
                }
                Phase::Body(b)
                    if matches!(
                        b.framing,
                        Framing::Chunked(Chunked::Size {
                            digits: 0,
                            ext: 0,
                            ..
                        })
                    ) && input.starts_with(b"HTTP/1.")
                        && self.pending.len() > 1 =>
                {
                    // A status line exactly where the next chunk size was due, with a later
                    // request waiting: the client stopped reading this body (SDKs close a
                    // stream after `[DONE]` without reading the last chunk) and the TLS library
                    // reused the connection object's address for its next connection, so the
                    // capture sees one stream. This response ends here with nothing lost; the
                    // next one starts at this line. Like the request side's resync, this looks at
                    // the start of a read only (a new connection's answer comes in a fresh read),
                    // so it depends on read boundaries by design: hence a `resync` drop reason.
                    let Phase::Body(mut b) = std::mem::replace(&mut self.resp_phase, Phase::Line)
                    else {
                        unreachable!("in a body")
                    };
                    count_drop(&mut self.drops, "h1_response_resync_at_status_line");
                    self.end_response(&mut b, ts, EndReason::ConnectionClosed, false, out);
                }
                Phase::Body(b) => {
                    let RespBody {
                        framing, decoder, ..
                    } = b;
                    let piece = &mut self.piece;
                    let step = framing.step(input, &mut |d| decoder.push(d, piece));
                    match step {
                        Ok((n, done)) => {
                            input = &input[n..];
                            if done {
                                let Phase::Body(mut b) =
                                    std::mem::replace(&mut self.resp_phase, Phase::Line)
                                else {
                                    unreachable!("in a body")
                                };
                                self.end_response(&mut b, ts, EndReason::Complete, false, out);
                            }
                        }
                        Err(FramingError) => {
                            let Phase::Body(mut b) =
                                std::mem::replace(&mut self.resp_phase, Phase::Skip)
                            else {
                                unreachable!("in a body")
                            };
                            count_drop(&mut self.drops, "h1_bad_chunked_response");
                            self.end_response(&mut b, ts, EndReason::Abandoned, true, out);
                            self.resp_phase = Phase::Skip;
                        }
                    }
                }
            }
        }
        if let Phase::Body(b) = &self.resp_phase {
            let exchange = b.exchange;
            self.flush_piece(exchange, ts, out);
        }
    }

    /// Emit the rest of the body and the end of exchange `b`, and retire its pending entry.
    fn end_response(
        &mut self,
        b: &mut RespBody,
        ts: u64,
        reason: EndReason,
        truncated: bool,
        out: &mut Vec<ExchangeEvent>,
    ) {
        if reason == EndReason::Complete && !truncated && !b.gap {
            b.decoder.finish(&mut self.piece);
        }
        self.flush_piece(b.exchange, ts, out);
        let identity = b.decoder.coding() == Coding::Identity;
        out.push(ExchangeEvent::ResponseEnd {
            exchange: b.exchange,
            ts_ns: ts,
            reason,
            truncated: truncated || b.decoder.failed() || (identity && b.decoder.capped()),
            gap: b.gap,
            decompression_capped: !identity && b.decoder.capped(),
        });
        if self
            .pending
            .front()
            .is_some_and(|p| p.exchange == b.exchange)
        {
            self.pending.pop_front();
        }
        if b.then_dead {
            self.req_phase = Phase::Dead;
            self.resp_phase = Phase::Dead;
        }
    }

    fn on_response_head(&mut self, ts: u64, out: &mut Vec<ExchangeEvent>) {
        self.reread(self.resp_head.buf.len());
        let mut raw = vec![httparse::EMPTY_HEADER; self.cfg.max_headers];
        let mut resp = httparse::Response::new(&mut raw);
        let parsed = match resp.parse(&self.resp_head.buf) {
            Ok(httparse::Status::Complete(_)) => resp.code.map(|status| ResponseHead {
                status,
                headers: convert_headers(resp.headers),
            }),
            _ => None,
        };
        let start_ns = self.resp_head.start_ns;
        self.resp_head.clear();
        let Some(head) = parsed else {
            // The response to the oldest request is unreadable: end it rather than pairing the
            // next response with the wrong request.
            self.abandon_oldest(ts, true, false, out);
            self.lose_response_sync("h1_bad_response_head");
            return;
        };
        let status = head.status;
        if (100..200).contains(&status) && status != 101 {
            // Interim response (100 Continue, 103 Early Hints): the final one follows.
            self.resp_phase = Phase::Line;
            return;
        }
        let Some(p) = self.pending.front() else {
            self.lose_response_sync("h1_response_without_request");
            return;
        };
        let (exchange, is_head, is_connect, emitted) =
            (p.exchange, p.is_head, p.is_connect, p.emitted);
        if !emitted {
            // The server answered before the request body was complete (an early error, or
            // `Expect: 100-continue` refused): the request goes out now, marked incomplete.
            if let Phase::Body(b) = &mut self.req_phase {
                if b.exchange == exchange {
                    b.body.truncated = true;
                    emit_request(b, ts, &mut self.pending, out);
                }
            }
        }
        let switching = status == 101 || (is_connect && (200..300).contains(&status));
        let framing = if switching || is_head || status == 204 || status == 304 {
            None
        } else {
            match (
                transfer_encoding(&head.headers),
                content_length(&head.headers),
            ) {
                (Some(true), _) => Some(Framing::Chunked(Chunked::start())),
                (Some(false), _) => Some(Framing::Close),
                (None, Ok(Some(0))) => None,
                (None, Ok(Some(len))) => Some(Framing::Length(len)),
                (None, Ok(None)) => Some(Framing::Close),
                (None, Err(())) => {
                    count_drop(&mut self.drops, "h1_bad_content_length");
                    Some(Framing::Close)
                }
            }
        };
        let decoder = BodyDecoder::new(
            coding(&head.headers, &mut self.drops),
            self.cfg.response_limits(),
        );
        out.push(ExchangeEvent::ResponseHead {
            exchange,
            head,
            ts_ns: start_ns,
        });
        let mut b = RespBody {
            exchange,
            framing: framing.unwrap_or(Framing::Length(0)),
            decoder,
            gap: false,
            then_dead: switching,
        };
        if framing.is_none() {
            self.resp_phase = Phase::Line;
            self.end_response(&mut b, ts, EndReason::Complete, false, out);
        } else {
            self.resp_phase = Phase::Body(b);
        }
    }

    fn response_gap(&mut self, ts: u64, missing: u64, out: &mut Vec<ExchangeEvent>) {
        match std::mem::replace(&mut self.resp_phase, Phase::Skip) {
            Phase::Dead => self.resp_phase = Phase::Dead,
            Phase::Skip | Phase::Line => {
                // No response head was being read, so whole responses may be in the hole. A
                // client that waits for each response before its next request (all but
                // pipelining ones) has written the newest request after the responses the hole
                // swallowed: the next status line answers the newest request, and the older
                // ones end here. (A muted response is such a hole: the kernel skips it until
                // the next request is written.)
                while self.pending.len() > 1 {
                    count_drop(&mut self.drops, "h1_response_in_gap");
                    self.abandon_oldest(ts, false, true, out);
                }
            }
            Phase::Head => {
                // The head of the oldest request's response is lost.
                self.abandon_oldest(ts, false, true, out);
                self.lose_response_sync("h1_gap_in_response_head");
            }
            Phase::Body(mut b) => {
                b.gap = true;
                b.decoder.interrupt();
                match b.framing.skip(missing) {
                    Ok(None) => self.resp_phase = Phase::Body(b),
                    Ok(Some(rest)) => {
                        self.end_response(&mut b, ts, EndReason::Complete, false, out);
                        if !matches!(self.resp_phase, Phase::Dead) {
                            self.resp_phase = if rest == 0 { Phase::Line } else { Phase::Skip };
                        }
                    }
                    Err(FramingError) => {
                        self.end_response(&mut b, ts, EndReason::Abandoned, false, out);
                        self.lose_response_sync("h1_gap_in_chunked_response");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::origin_form;

    #[test]
    fn absolute_targets_become_origin_form() {
        assert_eq!(origin_form("/v1/x?a=1"), ("/v1/x?a=1".into(), None));
        assert_eq!(origin_form("*"), ("*".into(), None));
        assert_eq!(
            origin_form("https://api.openai.com/v1/chat/completions"),
            ("/v1/chat/completions".into(), Some("api.openai.com".into()))
        );
        assert_eq!(
            origin_form("http://user:pw@proxy.invalid:8080?k=v"),
            ("/?k=v".into(), Some("proxy.invalid:8080".into()))
        );
        assert_eq!(
            origin_form("https://h.invalid"),
            ("/".into(), Some("h.invalid".into()))
        );
    }
}

#[cfg(test)]
mod reused_connection_tests {
    use super::*;
    use crate::event::Direction::{Read, Write};

    fn req(model: &str) -> Vec<u8> {
        let body = format!(r#"{{"model":"{model}","stream":true}}"#);
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// An SDK stops reading a chunked SSE body after `[DONE]` (the last `0` chunk unread) and
    /// opens a new connection whose TLS object reuses the old address: the capture sees the
    /// next request and response continue the same streams. The second response must still be
    /// paired with the second request, and the first must end without a loss flag.
    #[test]
    fn a_status_line_where_a_chunk_size_was_due_starts_the_next_response() {
        let mut p = H1Connection::new(HttpConfig::default());
        let mut out = Vec::new();
        p.feed(Write, 1, &req("first"), &mut out);
        p.feed(
            Read,
            2,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\ne\r\ndata: [DONE]\n\n\r\n",
            &mut out,
        );
        p.feed(Write, 3, &req("second"), &mut out);
        p.feed(
            Read,
            4,
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            &mut out,
        );
        let heads: Vec<(u64, u16)> = out
            .iter()
            .filter_map(|e| match e {
                ExchangeEvent::ResponseHead { exchange, head, .. } => {
                    Some((*exchange, head.status))
                }
                _ => None,
            })
            .collect();
        let ends: Vec<(u64, EndReason, bool)> = out
            .iter()
            .filter_map(|e| match e {
                ExchangeEvent::ResponseEnd {
                    exchange,
                    reason,
                    truncated,
                    ..
                } => Some((*exchange, *reason, *truncated)),
                _ => None,
            })
            .collect();
        let requests: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                ExchangeEvent::Request { exchange, .. } => Some(*exchange),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 2);
        assert_eq!(heads, vec![(requests[0], 200), (requests[1], 200)]);
        assert_eq!(
            ends,
            vec![
                (requests[0], EndReason::ConnectionClosed, false),
                (requests[1], EndReason::Complete, false)
            ]
        );
    }
}
