//! LLM recognition: one file per provider, tried in an ordered detector chain on each request
//! ([`detect`]), then fed that exchange's response events, normalised into
//! [`crate::call::LlmCall`].
//!
//! Split of the work:
//! - this module keeps one [`Exchange`] per claimed request, fills the provider-independent
//!   fields (server, HTTP, timing, quality, trace context), and runs the response body through
//!   [`body::BodyReader`] (a stream framing chosen from the response `Content-Type`, or a capped
//!   whole-body buffer);
//! - a provider module implements [`Api`]: it reads the request parameters, and each decoded
//!   stream message (or the whole JSON body), telling whether the message carried output (for
//!   the time to first output and the chunk count).
//!
//! Provider naming (`gen_ai.provider.name`): the semconv value when the host is known
//! (`api.openai.com` -> `openai`, `api.groq.com` -> `groq`, …), `ollama` / `vllm` / `llama_cpp`
//! when the traffic itself says so (Ollama's native paths or `fp_ollama` fingerprint, vLLM's
//! per-choice `stop_reason`, llama.cpp's `timings`), and for any other host speaking a known wire
//! format `openai_compatible` / `anthropic_compatible`: the host is in `server.address` anyway,
//! and a host-derived name would explode the cardinality of every metric.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
mod body;
pub mod cohere;
pub mod common;
pub mod compat;
pub mod content;
pub mod detect;
pub mod fixture;
pub mod gemini;
pub mod ollama;
pub mod openai;
mod openai_chunk;
mod typed;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::call::{Content, LlmCall, Origin};
use crate::http::{Body, EndReason, ExchangeEvent, RequestHead, ResponseHead};

pub use body::Framing;
use body::{BodyReader, Msg};
use common::RequestCtx;
use content::Output;

/// Choices (`n`, `candidateCount`) tracked per call; higher indices are ignored.
pub const MAX_CHOICES: usize = 64;

/// Options of the recogniser.
#[derive(Debug, Clone)]
pub struct RecognizerConfig {
    /// Export message content (opt-in) and cap each content attribute at this many bytes.
    pub capture_content: Option<usize>,
    /// A non-streamed response body is kept up to this many bytes (then flagged truncated; the
    /// usage is still looked for in its last 64 KiB).
    pub max_response_body: usize,
    /// One stream message (SSE event, NDJSON line, event-stream frame) is kept up to this many
    /// bytes; bigger ones are skipped and counted.
    pub max_stream_message: usize,
    /// Exchanges open at once on one connection (HTTP/2 streams); the oldest is given up
    /// (yielded as incomplete) beyond this.
    pub max_open_exchanges: usize,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        RecognizerConfig {
            capture_content: None,
            max_response_body: 8 << 20,
            max_stream_message: crate::http::framing::DEFAULT_MAX_MESSAGE,
            max_open_exchanges: 128,
        }
    }
}

/// What the recogniser saw and dropped on its connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecognizerStats {
    pub requests: u64,
    /// Requests no provider claimed (not LLM traffic).
    pub unclaimed: u64,
    pub calls: u64,
    /// Stream messages skipped (over the size cap, bad CRC, unfinished at the end).
    pub dropped_messages: u64,
    /// Stream messages that were not valid JSON where JSON was expected.
    pub invalid_json: u64,
    /// Exchanges given up because too many were open at once.
    pub evicted: u64,
}

/// What a provider module implements for one exchange.
pub trait Api: std::fmt::Debug + Send {
    /// Read the request (parameters, input content). `body` is the parsed JSON body.
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc);
    /// The response head arrived (some providers put usage or ids in headers).
    fn response_head(&mut self, _head: &ResponseHead, _acc: &mut Acc) {}
    /// How a successful response body is framed, given its `Content-Type` (lower-cased, may be
    /// empty).
    fn framing(&self, content_type: &str) -> Framing {
        Framing::from_content_type(content_type)
    }
    /// One stream message. Returns whether it carried output.
    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool;
    /// The whole (non-streamed, successful) JSON body.
    fn whole(&mut self, body: &Value, acc: &mut Acc);
    /// The response is over (before the call is yielded).
    fn end(&mut self, _acc: &mut Acc) {}
}

/// The call being assembled, with what the provider modules need beside it.
#[derive(Debug)]
pub struct Acc {
    pub call: LlmCall,
    /// Output messages (only when content capture is on).
    pub output: Option<Output>,
    /// Content budget for the input side (only when capture is on).
    pub content_cap: Option<usize>,
    /// The stream reached its terminal event (`[DONE]`, `message_stop`, `response.completed`,
    /// Ollama `done`, Bedrock `metadata`/`messageStop`, Gemini finish…).
    pub terminal: bool,
    /// An error reported inside a successful response (stream `error` event, exception frame).
    pub stream_error: Option<String>,
}

impl Acc {
    /// Add a finish reason for choice `index` (kept in index order, one per choice).
    pub fn finish_reason(&mut self, index: u64, reason: &str) {
        let idx = index as usize;
        if idx >= MAX_CHOICES {
            return; // bounded: a hostile stream cannot grow the list without end
        }
        let fr = &mut self.call.response.finish_reasons;
        if fr.len() <= idx {
            fr.resize(idx + 1, String::new());
        }
        fr[idx] = reason.to_string();
        if let Some(o) = &mut self.output {
            o.finish_reason(index, reason);
        }
    }

    /// Set response model/id only from non-empty values (Azure's filter chunk has `""`).
    pub fn set_response_model(&mut self, m: Option<String>) {
        if let Some(m) = m.filter(|m| !m.is_empty()) {
            self.call.response.model = Some(m);
        }
    }

    /// [`Acc::set_response_model`] from a borrowed string: no copy when it is already set (a
    /// stream repeats it in every chunk).
    pub fn set_response_model_str(&mut self, m: &str) {
        if !m.is_empty() && self.call.response.model.as_deref() != Some(m) {
            self.call.response.model = Some(m.to_string());
        }
    }

    /// [`Acc::set_response_id`] from a borrowed string, copied only when it changes.
    pub fn set_response_id_str(&mut self, id: &str) {
        if !id.is_empty() && self.call.response.id.as_deref() != Some(id) {
            self.call.response.id = Some(id.to_string());
        }
    }

    pub fn set_response_id(&mut self, id: Option<String>) {
        if let Some(id) = id.filter(|m| !m.is_empty()) {
            self.call.response.id = Some(id);
        }
    }

    /// Record an in-band error (the first one wins: it is the cause).
    pub fn error(&mut self, code: String) {
        if self.stream_error.is_none() {
            self.stream_error = Some(code);
        }
    }

    pub fn content(&mut self) -> Option<&mut Content> {
        self.content_cap?;
        Some(self.call.content.get_or_insert_with(Content::default))
    }

    pub fn out(&mut self) -> Option<&mut Output> {
        self.output.as_mut()
    }
}

#[derive(Debug)]
struct Exchange {
    api: Box<dyn Api>,
    acc: Acc,
    reader: Option<BodyReader>,
    /// Order of arrival, for eviction.
    seq: u64,
}

/// Recognises LLM calls on one connection's exchange events (one `Recognizer` per connection).
///
/// Contract: `on_event` is called with a connection's [`ExchangeEvent`]s in order. A `Request`
/// that no provider claims is dropped (its response events are ignored, and
/// [`Recognizer::not_llm_traffic`] can tell the agent to mute the connection). A claimed exchange
/// yields exactly one `LlmCall` when its `ResponseEnd` arrives, when a new `Request` reuses its
/// exchange number, when it is evicted, or on [`Recognizer::finish`] (then flagged incomplete).
#[derive(Debug)]
pub struct Recognizer {
    pub config: RecognizerConfig,
    open: BTreeMap<u64, Exchange>,
    seq: u64,
    stats: RecognizerStats,
}

impl Recognizer {
    pub fn new(config: RecognizerConfig) -> Self {
        Recognizer {
            config,
            open: BTreeMap::new(),
            seq: 0,
            stats: RecognizerStats::default(),
        }
    }

    pub fn stats(&self) -> &RecognizerStats {
        &self.stats
    }

    /// True when this connection carried requests and none of them was an LLM call: the agent
    /// may mute it.
    pub fn not_llm_traffic(&self) -> bool {
        self.stats.unclaimed > 0 && self.stats.unclaimed == self.stats.requests
    }

    /// Move the drop counters (stream messages over the cap or corrupt, invalid JSON, evicted
    /// exchanges) into `drops`, by reason, and reset them.
    pub fn drain_drops(&mut self, drops: &mut std::collections::BTreeMap<&'static str, u64>) {
        for (reason, n) in [
            (
                "genai_stream_message_dropped",
                &mut self.stats.dropped_messages,
            ),
            ("genai_invalid_json", &mut self.stats.invalid_json),
            ("genai_exchange_evicted", &mut self.stats.evicted),
        ] {
            if *n > 0 {
                *drops.entry(reason).or_default() += std::mem::take(n);
            }
        }
    }

    /// Exchanges currently open.
    pub fn open_exchanges(&self) -> usize {
        self.open.len()
    }

    /// Bytes held for the open exchanges' response bodies (whole bodies kept for parsing, stream
    /// messages being assembled), so that the tracker's memory caps cover them too.
    pub fn buffered_bytes(&self) -> usize {
        self.open
            .values()
            .filter_map(|x| x.reader.as_ref())
            .map(BodyReader::buffered_bytes)
            .sum()
    }

    /// Feed one event of the connection `origin`; returns the calls it completed.
    pub fn on_event(&mut self, origin: &Origin, event: ExchangeEvent) -> Vec<LlmCall> {
        let mut done = Vec::new();
        match event {
            ExchangeEvent::Request {
                exchange,
                head,
                body,
                start_ns,
                end_ns,
                late_attach,
            } => {
                if let Some(old) = self.open.remove(&exchange) {
                    done.push(self.give_up(old, start_ns, EndReason::Abandoned));
                }
                self.stats.requests += 1;
                match self.claim(origin, &head, &body, start_ns, end_ns, late_attach) {
                    Some(x) => {
                        if self.open.len() >= self.config.max_open_exchanges.max(1) {
                            if let Some((&k, _)) = self.open.iter().min_by_key(|(_, x)| x.seq) {
                                if let Some(old) = self.open.remove(&k) {
                                    self.stats.evicted += 1;
                                    done.push(self.give_up(old, start_ns, EndReason::Abandoned));
                                }
                            }
                        }
                        self.open.insert(exchange, x);
                    }
                    None => self.stats.unclaimed += 1,
                }
            }
            ExchangeEvent::ResponseHead {
                exchange,
                head,
                ts_ns,
            } => {
                if let Some(x) = self.open.get_mut(&exchange) {
                    x.acc.call.http_status = Some(head.status);
                    x.acc.call.timing.response_start_ns = Some(ts_ns);
                    x.api.response_head(&head, &mut x.acc);
                    let ct = head
                        .headers
                        .get("content-type")
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let framing = if (200..300).contains(&head.status) {
                        x.api.framing(&ct)
                    } else {
                        Framing::Whole
                    };
                    x.acc.call.streamed = framing != Framing::Whole;
                    x.reader = Some(BodyReader::new(framing, &self.config));
                }
            }
            ExchangeEvent::ResponseData {
                exchange,
                ts_ns,
                data,
            } => {
                if let Some(x) = self.open.get_mut(&exchange) {
                    if let Some(r) = &mut x.reader {
                        r.push(&data, ts_ns, x.api.as_mut(), &mut x.acc);
                    }
                }
            }
            ExchangeEvent::ResponseEnd {
                exchange,
                ts_ns,
                reason,
                truncated,
                gap,
                decompression_capped,
            } => {
                if let Some(mut x) = self.open.remove(&exchange) {
                    let q = &mut x.acc.call.quality;
                    q.truncated |= truncated;
                    q.gap |= gap;
                    q.decompression_capped |= decompression_capped;
                    done.push(self.complete(x, ts_ns, reason));
                }
            }
        }
        done
    }

    /// The connection is over: yield every open exchange as incomplete.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<LlmCall> {
        let open = std::mem::take(&mut self.open);
        open.into_values()
            .map(|x| self.give_up(x, ts_ns, EndReason::Abandoned))
            .collect()
    }

    fn claim(
        &mut self,
        origin: &Origin,
        head: &RequestHead,
        body: &Body,
        start_ns: u64,
        end_ns: u64,
        late_attach: bool,
    ) -> Option<Exchange> {
        // Parse the body only for requests that can be LLM calls (cheap for the rest).
        let json: Option<Value> = if detect::worth_parsing(head, &body.bytes) {
            serde_json::from_slice(&body.bytes).ok()
        } else {
            None
        };
        let req = RequestCtx::new(head, json.as_ref());
        let found = detect::detect(&req)?;
        // A claimed request whose body is not valid JSON (cut by a gap or the cap): recover
        // the top-level parameters that can be found, for the provider module to read.
        let recovered = (json.is_none() && !body.bytes.is_empty())
            .then(|| common::scan_members(&body.bytes, common::REQUEST_MEMBERS))
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
        let mut call = LlmCall {
            origin: origin.clone(),
            provider: found.provider,
            operation: found.operation.to_string(),
            api_type: found.api_type.map(str::to_string),
            server_address: req.host.clone(),
            server_port: Some(req.port.unwrap_or(443)),
            http_method: head.method.clone(),
            http_path: req.path.to_string(),
            http_version: head.version.clone(),
            trace_parent: crate::http::traceparent::from_headers(&head.headers),
            ..Default::default()
        };
        call.timing.request_start_ns = start_ns;
        call.timing.request_end_ns = Some(end_ns);
        call.timing.end_ns = end_ns;
        call.quality.late_attach = late_attach;
        call.quality.truncated = body.truncated;
        call.quality.gap = body.gap;
        let mut acc = Acc {
            call,
            output: self.config.capture_content.map(Output::new),
            content_cap: self.config.capture_content,
            terminal: false,
            stream_error: None,
        };
        let mut api = found.api;
        match &recovered {
            Some(v) => api.request(
                &RequestCtx {
                    body: Some(v),
                    ..req
                },
                &mut acc,
            ),
            None => api.request(&req, &mut acc),
        }
        self.seq += 1;
        Some(Exchange {
            api,
            acc,
            reader: None,
            seq: self.seq,
        })
    }

    fn give_up(&mut self, x: Exchange, ts_ns: u64, reason: EndReason) -> LlmCall {
        self.complete(x, ts_ns, reason)
    }

    fn complete(&mut self, mut x: Exchange, ts_ns: u64, reason: EndReason) -> LlmCall {
        let acc = &mut x.acc;
        acc.call.timing.end_ns = ts_ns.max(acc.call.timing.request_start_ns);
        let mut body_complete = false;
        if let Some(mut reader) = x.reader.take() {
            let status = acc.call.http_status.unwrap_or(0);
            let out = reader.finish(status, x.api.as_mut(), acc);
            body_complete = out.parsed_whole;
            let s = reader.stats();
            self.stats.dropped_messages += s.dropped;
            self.stats.invalid_json += s.invalid_json;
            if s.dropped > 0 || out.truncated {
                acc.call.quality.truncated = true;
            }
        }
        x.api.end(acc);
        let call = &mut acc.call;
        // A call ends no earlier than the response bytes it was built from: records released
        // from the capture's reorder buffer can carry later timestamps than the event that ends
        // the exchange (found by the pipeline fuzz target).
        let t = &mut call.timing;
        t.end_ns = t
            .end_ns
            .max(t.first_output_ns.unwrap_or(0))
            .max(t.response_start_ns.unwrap_or(0));
        // a choice index that never got a reason leaves a hole: drop it
        call.response.finish_reasons.retain(|r| !r.is_empty());
        // error.type: an in-band error, else the HTTP status for a failed response.
        if let Some(e) = acc.stream_error.take() {
            call.error_type = Some(e);
        } else if let Some(st) = call.http_status.filter(|s| *s >= 400) {
            if call.error_type.is_none() {
                call.error_type = Some(st.to_string());
            }
        }
        // A response that did not complete: no head at all, or the body was cut before its
        // terminal event (a finish reason counts: clients often stop reading after it).
        let finished = acc.terminal || body_complete || !call.response.finish_reasons.is_empty();
        let cut = call.http_status.is_none() || (reason != EndReason::Complete && !finished);
        if cut {
            call.quality.incomplete = true;
            if call.error_type.is_none() {
                call.error_type = Some(
                    match reason {
                        EndReason::ConnectionClosed => "connection_closed",
                        _ => "incomplete",
                    }
                    .to_string(),
                );
            }
        }
        if let Some(o) = acc.output.take() {
            if let Some(c) = acc.content() {
                c.truncated |= o.truncated();
                if !o.is_empty() {
                    c.output_messages = Some(o.to_json());
                }
            }
        }
        if acc
            .call
            .content
            .as_ref()
            .is_some_and(|c| *c == Content::default())
        {
            acc.call.content = None; // capture on, but nothing to capture (embeddings)
        }
        self.stats.calls += 1;
        std::mem::take(&mut acc.call)
    }
}
