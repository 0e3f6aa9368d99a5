//! The response body of one exchange: decoded by its stream framing into messages handed to the
//! provider's [`Api`], or kept whole (capped) for a JSON body.

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
    /// An SSE event; `json` is its data parsed (None for `[DONE]` or non-JSON data).
    Sse {
        event: Option<&'a str>,
        data: &'a [u8],
        json: Option<&'a Value>,
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
            Msg::Sse { json, .. } | Msg::Aws { json, .. } => json,
            Msg::Json(v) => Some(v),
        }
    }

    /// SSE `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        matches!(self, Msg::Sse { data, .. } if data.trim_ascii() == b"[DONE]")
    }
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
                self.dispatch_sse(evs, ts_ns, api, acc);
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
                        self.dispatch_sse(evs, ts, api, acc);
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
                self.dispatch_sse(evs, ts, api, acc);
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

    fn dispatch_sse(&mut self, evs: Vec<SseEvent>, ts: u64, api: &mut dyn Api, acc: &mut Acc) {
        for ev in evs {
            let json = parse(&ev.data);
            let msg = Msg::Sse {
                event: ev.event.as_deref(),
                data: &ev.data,
                json: json.as_ref(),
            };
            if json.is_none() && !msg.is_done() {
                self.stats.invalid_json += 1;
            }
            deliver(msg, ts, api, acc);
        }
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
