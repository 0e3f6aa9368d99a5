//! HTTP on top of a connection's two byte streams.
//!
//! The parsers here turn ordered bytes into [`ExchangeEvent`]s: a request (head and whole, decoded,
//! capped body), then the response head, the response body as it arrives (de-chunked and
//! decompressed, each piece with its capture timestamp), then the end. HTTP/1.1 and HTTP/2 produce
//! the same events, so the LLM layer never knows which one it is looking at.
//!
//! Body framings used by LLM streams (SSE, NDJSON, AWS event stream, streamed JSON arrays) are
//! incremental decoders in [`framing`], applied by the LLM layer on the body pieces.

pub mod decode;
pub mod framing;
pub mod h1;
pub mod h2;
pub mod traceparent;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters of input that was dropped or skipped, by reason (a short static snake_case name).
/// Parsers fill one; the pipeline sums them into its stats.
pub type DropCounts = BTreeMap<&'static str, u64>;

/// Add one to `reason` in `drops`.
pub fn count_drop(drops: &mut DropCounts, reason: &'static str) {
    *drops.entry(reason).or_default() += 1;
}

/// Limits shared by the HTTP parsers (HTTP/1.1 and HTTP/2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request or response head (start line + headers), bytes.
    pub max_head_bytes: usize,
    /// Most header fields in one head.
    pub max_headers: usize,
    /// Request bodies are kept whole up to this many decoded bytes (then flagged truncated).
    pub max_request_body: usize,
    /// Decoded response body bytes passed on per exchange (then flagged truncated, or
    /// decompression_capped for a compressed body).
    pub max_response_body: usize,
    /// Decompression bombs: at most this many decoded bytes per encoded byte (past 1 MiB).
    pub max_decompression_ratio: u64,
    /// Requests waiting for their response on one connection (pipelining).
    pub max_pending_exchanges: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head_bytes: 64 << 10,
            max_headers: 128,
            max_request_body: 16 << 20,
            max_response_body: 64 << 20,
            max_decompression_ratio: 200,
            max_pending_exchanges: 32,
        }
    }
}

impl HttpConfig {
    pub fn request_limits(&self) -> decode::DecodeLimits {
        decode::DecodeLimits {
            max_output: self.max_request_body,
            max_ratio: self.max_decompression_ratio,
            ratio_floor: 1 << 20,
        }
    }

    pub fn response_limits(&self) -> decode::DecodeLimits {
        decode::DecodeLimits {
            max_output: self.max_response_body,
            max_ratio: self.max_decompression_ratio,
            ratio_floor: 1 << 20,
        }
    }
}

/// Header list, names lower-cased, in wire order, secrets already removed (see [`crate::redact`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// First value of a header (name matched case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    pub method: String,
    /// Request target with secret query parameters (`key=`, `api_key=`...) redacted.
    pub target: String,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2), when known.
    pub authority: Option<String>,
    /// `1.1` or `2`.
    pub version: String,
    pub headers: Headers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Headers,
}

/// A body that is kept whole (request bodies), decoded, up to a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// The body went past the cap (or its decompression did); `bytes` holds the start.
    pub truncated: bool,
    /// Bytes were missing from the capture inside this body.
    pub gap: bool,
}

/// Why a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The body ended as its framing said (Content-Length reached, last chunk, END_STREAM).
    Complete,
    /// The connection closed: complete for a close-delimited body, else cut short.
    ConnectionClosed,
    /// HTTP/2 RST_STREAM or GOAWAY ended the stream.
    Reset,
    /// The process exited or the connection expired idle before the response completed, or the
    /// capture lost the rest of it (then `gap` is set) or it was malformed (then `truncated`).
    /// May come without a `ResponseHead` (no response was seen at all).
    Abandoned,
}

/// What the HTTP layer tells the LLM layer, per connection, in order. `exchange` numbers the
/// request/response pairs of a connection (HTTP/1.1: sequence; HTTP/2: stream id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeEvent {
    Request {
        exchange: u64,
        head: RequestHead,
        body: Body,
        /// First and last request byte.
        start_ns: u64,
        end_ns: u64,
        /// The connection was not seen from its start (HTTP/2: unknown HPACK state).
        late_attach: bool,
    },
    ResponseHead {
        exchange: u64,
        head: ResponseHead,
        ts_ns: u64,
    },
    /// A piece of the decoded response body.
    ResponseData {
        exchange: u64,
        ts_ns: u64,
        data: Vec<u8>,
    },
    ResponseEnd {
        exchange: u64,
        ts_ns: u64,
        reason: EndReason,
        /// Some response body bytes were not captured or exceeded a cap.
        truncated: bool,
        gap: bool,
        decompression_capped: bool,
    },
}

/// A protocol parser for one connection (HTTP/1.1 in `h1`, HTTP/2 in `h2`). The connection
/// tracker feeds it the two directions' bytes in order and tells it about gaps and the end.
pub trait ConnectionParser {
    /// Ordered bytes of one direction, captured at `ts_ns`.
    fn feed(
        &mut self,
        direction: crate::event::Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<ExchangeEvent>,
    );
    /// `missing` bytes of `direction` were not captured (lost or truncated) before the next feed.
    fn gap(
        &mut self,
        direction: crate::event::Direction,
        ts_ns: u64,
        missing: u64,
        out: &mut Vec<ExchangeEvent>,
    );
    /// The connection is over (closed, expired, process exited): end what is open.
    fn close(&mut self, ts_ns: u64, reason: EndReason, out: &mut Vec<ExchangeEvent>);
    /// Bytes currently buffered (for the memory caps).
    fn buffered_bytes(&self) -> usize;
    /// Move this parser's drop counters into `into` (and reset them).
    fn drain_drops(&mut self, into: &mut DropCounts) {
        let _ = into;
    }
}
