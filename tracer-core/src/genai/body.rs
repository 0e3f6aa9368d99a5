//! The response body of one exchange: decoded by its stream framing into messages handed to the
//! provider's [`Api`], or kept whole (capped) for a JSON body.

use std::cell::{Cell, OnceCell};

use serde::Deserialize;
use serde_json::Value;

use super::common::{error_code, scan_tail};
use super::{Acc, Api, RecognizerConfig};
use crate::http::framing::eventstream::{EventStreamDecoder, EventStreamMessage};
use crate::http::framing::json_array::JsonArrayDecoder;
use crate::http::framing::ndjson::NdjsonDecoder;
use crate::http::framing::sse::{SseDecoder, SseEvent};

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document (non-streamed responses, errors).
    Whole,
    Sse,
    Ndjson,
    EventStream,
    JsonArray,
}

impl Framing {
    pub fn from_content_type(ct: &str) -> Framing {
        let mime = ct.split(';').next().unwrap_or("").trim();
        match mime {
            "text/event-stream" => Framing::Sse,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Framing::Ndjson,
            "application/vnd.amazon.eventstream" => Framing::EventStream,
            _ => Framing::Whole,
        }
    }
}

/// One decoded stream message.
#[derive(Debug, Clone, Copy)]
pub enum Msg<'a> {
    /// An SSE event; its data is parsed into a `Value` only when asked ([`Msg::json`]), so a
    /// provider can read it with a typed fast path ([`Msg::typed`]) instead.
    Sse {
        event: Option<&'a str>,
        data: &'a [u8],
        lazy: &'a LazyJson,
    },
    /// An NDJSON line or a streamed JSON-array element.
    Json(&'a Value),
    /// An AWS event-stream message; `json` is its payload parsed.
    Aws {
        msg: &'a EventStreamMessage,
        json: Option<&'a Value>,
    },
}

impl<'a> Msg<'a> {
    /// The JSON of the message, whatever the framing.
    pub fn json(&self) -> Option<&'a Value> {
        match *self {
            Msg::Sse { data, lazy, .. } => lazy.value(data),
            Msg::Aws { json, .. } => json,
            Msg::Json(v) => Some(v),
        }
    }

    /// An SSE event's data deserialized into a typed (borrowing) struct, without building a
    /// `Value`. None when the data is not such a struct (a caller then falls back to
    /// [`Msg::json`]) or when serde's reading could differ from the `Value` parse (see
    /// [`typed_safe`]). Success proves the data valid JSON.
    pub fn typed<T: Deserialize<'a>>(&self) -> Option<T> {
        let Msg::Sse { data, lazy, .. } = *self else {
            return None;
        };
        let text = typed_safe(data)?;
        // from a `str`: serde_json then does not check each string's UTF-8 again
        let t = serde_json::from_str(text).ok()?;
        lazy.valid.set(true);
        Some(t)
    }

    /// SSE `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        matches!(self, Msg::Sse { data, .. } if data.trim_ascii() == b"[DONE]")
    }
}

/// An SSE event's data parsed into a `Value` at most once, on demand.
#[derive(Debug, Default)]
pub struct LazyJson {
    json: OnceCell<Option<Value>>,
    /// A typed read of the data succeeded: it is valid JSON.
    valid: Cell<bool>,
}

impl LazyJson {
    fn value(&self, data: &[u8]) -> Option<&Value> {
        self.json.get_or_init(|| parse(data)).as_ref()
    }
}

/// Whether a typed read agrees with the `Value` parse on validity. serde_json skips unknown
/// fields without checking their strings' UTF-8 or `\u` surrogate pairing, which the `Value`
/// parse rejects; such data (rare) goes the `Value` way so the outcome stays the same.
/// Only objects: a derived struct would also accept a JSON array, by position. The data as
/// text when it is safe.
fn typed_safe(data: &[u8]) -> Option<&str> {
    if data.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    // any `\uD800`-`\uDFFF` escape (a surrogate, paired or not)
    let surrogate = memchr::memchr_iter(b'\\', data).any(|i| {
        data.get(i + 1) == Some(&b'u')
            && matches!(data.get(i + 2), Some(b'd' | b'D'))
            && matches!(
                data.get(i + 3),
                Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            )
    });
    (!surrogate).then_some(text)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ReaderStats {
    pub dropped: u64,
    pub invalid_json: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FinishOut {
    /// A whole JSON body parsed completely.
    pub parsed_whole: bool,
    /// The whole body went past its cap.
    pub truncated: bool,
}

const TAIL: usize = 64 << 10;

#[derive(Debug)]
enum Decoder {
    Whole {
        head: Vec<u8>,
        tail: Vec<u8>,
        truncated: bool,
    },
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
    EventStream(EventStreamDecoder),
    JsonArray(JsonArrayDecoder),
}

#[derive(Debug)]
pub struct BodyReader {
    decoder: Decoder,
    max_body: usize,
    max_message: usize,
    stats: ReaderStats,
    last_ts: u64,
}

impl BodyReader {
    pub fn new(framing: Framing, config: &RecognizerConfig) -> Self {
        let m = config.max_stream_message;
        let decoder = match framing {
            Framing::Whole => Decoder::Whole {
                head: Vec::new(),
                tail: Vec::new(),
                truncated: false,
            },
            Framing::Sse => Decoder::Sse(SseDecoder::new(m)),
            Framing::Ndjson => Decoder::Ndjson(NdjsonDecoder::new(m)),
            Framing::EventStream => Decoder::EventStream(EventStreamDecoder::new(m)),
            Framing::JsonArray => Decoder::JsonArray(JsonArrayDecoder::new(m)),
        };
        BodyReader {
            decoder,
            max_body: config.max_response_body,
            max_message: m,
            stats: ReaderStats::default(),
            last_ts: 0,
        }
    }

    pub fn stats(&self) -> ReaderStats {
        let mut s = self.stats;
        s.dropped += match &self.decoder {
            Decoder::Whole { .. } => 0,
            Decoder::Sse(d) => d.dropped(),
            Decoder::Ndjson(d) => d.dropped(),
            Decoder::EventStream(d) => d.dropped() + d.corrupt(),
            Decoder::JsonArray(d) => d.dropped(),
        };
        s
    }

    /// Bytes held for the body (a whole body kept for parsing, or the stream message being
    /// assembled), for the tracker's memory caps.
    pub fn buffered_bytes(&self) -> usize {
        match &self.decoder {
            Decoder::Whole { head, tail, .. } => head.len() + tail.len(),
            Decoder::Sse(d) => d.buffered(),
            Decoder::Ndjson(d) => d.buffered(),
            Decoder::EventStream(d) => d.buffered(),
            Decoder::JsonArray(d) => d.buffered(),
        }
    }

    /// One piece of the decoded body, read at `ts_ns`.
    pub fn push(&mut self, data: &[u8], ts_ns: u64, api: &mut dyn Api, acc: &mut Acc) {
        self.last_ts = ts_ns;
        match &mut self.decoder {
            Decoder::Whole {
                head,
                tail,
                truncated,
            } => {
                let room = self.max_body.saturating_sub(head.len());
                let (h, t) = data.split_at(room.min(data.len()));
                head.extend_from_slice(h);
                if !t.is_empty() {
                    *truncated = true;
                    tail.extend_from_slice(t);
                    if tail.len() > 2 * TAIL {
                        tail.drain(..tail.len() - TAIL);
                    }
                }
            }
            Decoder::Sse(d) => {
                let mut evs = Vec::new();
                d.push(data, &mut evs);
                let spare = self.dispatch_sse(evs, ts_ns, api, acc);
                if let (Decoder::Sse(d), Some(buf)) = (&mut self.decoder, spare) {
                    d.recycle(buf);
                }
            }
            Decoder::Ndjson(d) => {
                let mut lines = Vec::new();
                d.push(data, &mut lines);
                self.dispatch_json(lines, ts_ns, api, acc);
            }
            Decoder::JsonArray(d) => {
                let mut els = Vec::new();
                d.push(data, &mut els);
                self.dispatch_json(els, ts_ns, api, acc);
            }
            Decoder::EventStream(d) => {
                let mut msgs = Vec::new();
                d.push(data, &mut msgs);
                self.dispatch_aws(msgs, ts_ns, api, acc);
            }
        }
    }

    /// The body is over: flush the framing, or parse the whole body.
    pub fn finish(&mut self, status: u16, api: &mut dyn Api, acc: &mut Acc) -> FinishOut {
        let ts = self.last_ts;
        let mut out = FinishOut::default();
        match &mut self.decoder {
            Decoder::Whole {
                head,
                tail,
                truncated,
            } => {
                let head = std::mem::take(head);
                out.truncated = *truncated;
                let parsed: Option<Value> = if *truncated {
                    None
                } else {
                    serde_json::from_slice(&head).ok()
                };
                match parsed {
                    Some(v) => {
                        out.parsed_whole = true;
                        if (200..300).contains(&status) && !super::common::is_error_body(&v) {
                            api.whole(&v, acc);
                        } else if let Some(code) = error_code(&v) {
                            acc.error(code);
                        } else if (200..300).contains(&status) {
                            acc.error("error".to_string());
                        }
                    }
                    None if *truncated => {
                        if (200..300).contains(&status) {
                            let mut t = std::mem::take(tail);
                            if t.is_empty() {
                                t = head;
                            }
                            let found = scan_tail(&t);
                            api.whole(&found, acc);
                        }
                    }
                    None if (200..300).contains(&status) && looks_like_sse(&head) => {
                        // Labelled JSON but really SSE (some gateways): decode it as a stream.
                        acc.call.streamed = true;
                        let mut d = SseDecoder::new(self.max_message);
                        let mut evs = Vec::new();
                        d.push(&head, &mut evs);
                        d.finish(&mut evs);
                        self.stats.dropped += d.dropped();
                        let _ = self.dispatch_sse(evs, ts, api, acc);
                    }
                    None if (200..300).contains(&status) && looks_like_ndjson(&head) => {
                        // Several JSON lines under a JSON label (Ollama-like servers).
                        acc.call.streamed = true;
                        let mut d = NdjsonDecoder::new(self.max_message);
                        let mut lines = Vec::new();
                        d.push(&head, &mut lines);
                        d.finish(&mut lines);
                        self.stats.dropped += d.dropped();
                        self.dispatch_json(lines, ts, api, acc);
                    }
                    None => {
                        if !head.trim_ascii().is_empty() {
                            self.stats.invalid_json += 1;
                        }
                    }
                }
            }
            Decoder::Sse(d) => {
                let mut evs = Vec::new();
                d.finish(&mut evs);
                let _ = self.dispatch_sse(evs, ts, api, acc);
            }
            Decoder::Ndjson(d) => {
                let mut lines = Vec::new();
                d.finish(&mut lines);
                self.dispatch_json(lines, ts, api, acc);
            }
            Decoder::JsonArray(d) => d.finish(),
            Decoder::EventStream(d) => d.finish(),
        }
        out
    }

    /// Returns the last event's data buffer, for reuse.
    fn dispatch_sse(
        &mut self,
        evs: Vec<SseEvent>,
        ts: u64,
        api: &mut dyn Api,
        acc: &mut Acc,
    ) -> Option<Vec<u8>> {
        let mut spare = None;
        for ev in evs {
            let lazy = LazyJson::default();
            let msg = Msg::Sse {
                event: ev.event.as_deref(),
                data: &ev.data,
                lazy: &lazy,
            };
            deliver(msg, ts, api, acc);
            // counted as before: parsed here only if the provider read neither way
            if !msg.is_done() && !lazy.valid.get() && lazy.value(&ev.data).is_none() {
                self.stats.invalid_json += 1;
            }
            spare = Some(ev.data);
        }
        spare
    }

    fn dispatch_json(&mut self, items: Vec<Vec<u8>>, ts: u64, api: &mut dyn Api, acc: &mut Acc) {
        for item in items {
            match parse(&item) {
                Some(v) => deliver(Msg::Json(&v), ts, api, acc),
                None => self.stats.invalid_json += 1,
            }
        }
    }

    fn dispatch_aws(
        &mut self,
        msgs: Vec<EventStreamMessage>,
        ts: u64,
        api: &mut dyn Api,
        acc: &mut Acc,
    ) {
        for m in msgs {
            let json = parse(&m.payload);
            deliver(
                Msg::Aws {
                    msg: &m,
                    json: json.as_ref(),
                },
                ts,
                api,
                acc,
            );
        }
    }
}

fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

fn deliver(msg: Msg<'_>, ts: u64, api: &mut dyn Api, acc: &mut Acc) {
    if api.message(msg, acc) {
        let c = &mut acc.call;
        c.output_chunks = c.output_chunks.saturating_add(1);
        if c.timing.first_output_ns.is_none() {
            c.timing.first_output_ns = Some(ts);
        }
    }
}

fn looks_like_sse(body: &[u8]) -> bool {
    let b = body.trim_ascii_start();
    b.starts_with(b"data:") || b.starts_with(b"event:") || b.starts_with(b":")
}

fn looks_like_ndjson(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    let first = b.split(|&c| c == b'\n').next().unwrap_or(b);
    first.len() < b.len() && serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok()
}

#[cfg(test)]
mod tests {
    use super::typed_safe;

    #[test]
    fn typed_reads_only_what_the_value_parse_would_read_alike() {
        assert!(typed_safe(b" {\"a\":\"\\u00e9\\n\"}").is_some());
        // a derived struct would take an array by position
        assert!(typed_safe(b"[null,null]").is_none());
        // serde skips an unknown field's bytes without the checks the Value parse makes
        assert!(typed_safe(b"{\"x\":\"\xff\"}").is_none());
        assert!(typed_safe(b"{\"x\":\"\\ud800\"}").is_none());
        assert!(typed_safe(b"{\"x\":\"\\uDC00\"}").is_none());
    }
}
