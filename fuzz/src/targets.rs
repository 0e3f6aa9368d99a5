//! The fuzz target bodies. Each one feeds the input to a part of the pure core, split at points
//! the seed chooses, and checks properties that must hold for any input: no panic, the caps
//! hold, every exchange ends once, and (where the component promises it) the result does not
//! depend on where the input was split. A failed check panics, which libFuzzer reports as a crash.

use std::collections::BTreeMap;

use tracer_core::call::{LlmCall, Origin};
use tracer_core::event::{flags, Direction, TlsEvent};
use tracer_core::genai::{Recognizer, RecognizerConfig, MAX_CHOICES};
use tracer_core::http::decode::{BodyDecoder, Coding, DecodeLimits};
use tracer_core::http::framing::eventstream::EventStreamDecoder;
use tracer_core::http::framing::json_array::JsonArrayDecoder;
use tracer_core::http::framing::ndjson::NdjsonDecoder;
use tracer_core::http::framing::sse::SseDecoder;
use tracer_core::http::h1::H1Connection;
use tracer_core::http::h2::H2Connection;
use tracer_core::http::{
    Body, ConnectionParser, EndReason, ExchangeEvent, Headers, HttpConfig, RequestHead,
    ResponseHead,
};
use tracer_core::pipeline::{Pipeline, PipelineConfig};
use tracer_core::redact;

use crate::script::{Cut, Rng, Script};

/// Small caps, so that the fuzzer reaches them with inputs of a few KiB.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        max_head_bytes: 4 << 10,
        max_headers: 32,
        max_request_body: 32 << 10,
        max_response_body: 128 << 10,
        max_decompression_ratio: 50,
        max_pending_exchanges: 8,
    }
}

/// Message cap of the framing targets.
pub const MAX_MESSAGE: usize = 2048;

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 and HTTP/2 connection parsers

fn dir_of(i: usize) -> Direction {
    if i.is_multiple_of(2) {
        Direction::Write
    } else {
        Direction::Read
    }
}

/// Feed the parts (alternating request side / response side) to a parser; `faults` adds gaps.
fn run_parser(
    mut p: Box<dyn ConnectionParser>,
    script: &Script<'_>,
    cut: Cut,
    faults: bool,
    constant_ts: bool,
) -> (Vec<ExchangeEvent>, bool) {
    let mut rng = Rng::new(script.seed >> 2);
    // decisions apart from the split points, so that two runs cut differently end alike
    let mut decide = Rng::new(!script.seed);
    let mut out = Vec::new();
    let mut ts = 1u64;
    for (i, part) in script.parts.iter().enumerate() {
        let dir = dir_of(i);
        for piece in cut.pieces(part, &mut rng) {
            if !constant_ts {
                ts += 1 + rng.below(1000);
            }
            if faults && rng.one_in(97) {
                p.gap(dir, ts, 1 + rng.below(5000), &mut out);
                continue;
            }
            p.feed(dir, ts, piece, &mut out);
            assert!(
                p.buffered_bytes() <= 64 << 20,
                "parser holds {} bytes",
                p.buffered_bytes()
            );
        }
    }
    let reason = match decide.below(3) {
        0 => EndReason::ConnectionClosed,
        1 => EndReason::Abandoned,
        _ => EndReason::Reset,
    };
    p.close(ts + 1, reason, &mut out);
    let mut drops = tracer_core::http::DropCounts::new();
    p.drain_drops(&mut drops);
    (out, drops.keys().any(|k| k.contains("resync")))
}

/// No secret header value gets past the parser.
fn assert_redacted(headers: &Headers) {
    for (name, value) in &headers.0 {
        if redact::is_secret_header(name) {
            assert_eq!(value, redact::REDACTED, "secret header {name} passed on");
        }
    }
}

/// Properties of a parser's event sequence.
fn check_exchanges(events: &[ExchangeEvent], cfg: &HttpConfig) {
    #[derive(Default)]
    struct X {
        requested: bool,
        ended: bool,
        bytes: usize,
    }
    let mut xs: BTreeMap<u64, X> = BTreeMap::new();
    for e in events {
        match e {
            ExchangeEvent::Request {
                exchange,
                head,
                body,
                start_ns,
                end_ns,
                ..
            } => {
                assert_redacted(&head.headers);
                assert!(
                    body.bytes.len() <= cfg.max_request_body,
                    "request body over its cap"
                );
                assert!(start_ns <= end_ns, "request ends before it starts");
                let x = xs.entry(*exchange).or_default();
                x.requested = true;
            }
            ExchangeEvent::ResponseHead { exchange, head, .. } => {
                assert_redacted(&head.headers);
                let x = xs.entry(*exchange).or_default();
                assert!(!x.ended, "response head after the end of {exchange}");
            }
            ExchangeEvent::ResponseData { exchange, data, .. } => {
                let x = xs.entry(*exchange).or_default();
                assert!(!x.ended, "response data after the end of {exchange}");
                x.bytes += data.len();
                assert!(
                    x.bytes <= cfg.max_response_body,
                    "response body of {exchange} over its cap: {}",
                    x.bytes
                );
            }
            ExchangeEvent::ResponseEnd { exchange, .. } => {
                let x = xs.entry(*exchange).or_default();
                assert!(!x.ended, "exchange {exchange} ended twice");
                x.ended = true;
            }
        }
    }
    for (id, x) in &xs {
        assert!(
            !x.requested || x.ended,
            "exchange {id} was never ended after close"
        );
    }
}

/// The events with timestamps and body piece boundaries taken out (each response body joined
/// and shown at its end), for comparing two runs split differently. Bodies flagged truncated
/// are returned apart: a corrupt compressed stream stops where its decoder notices, and a
/// decoder (brotli) may hold output of the last read when it does, so only one of the two
/// bodies being a prefix of the other is required of them.
fn normalise(events: &[ExchangeEvent]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut bodies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut cut = Vec::new();
    let mut out = Vec::new();
    for e in events {
        match e {
            ExchangeEvent::Request {
                exchange,
                head,
                body,
                late_attach,
                ..
            } => {
                if body.truncated {
                    // a compressed request body cut or corrupt: see above
                    cut.push(body.bytes.clone());
                    out.push(format!(
                        "req {exchange} {head:?} cut {} {late_attach}",
                        body.gap
                    ));
                } else {
                    out.push(format!("req {exchange} {head:?} {body:?} {late_attach}"));
                }
            }
            ExchangeEvent::ResponseHead { exchange, head, .. } => {
                out.push(format!("head {exchange} {head:?}"))
            }
            ExchangeEvent::ResponseData { exchange, data, .. } => {
                bodies.entry(*exchange).or_default().extend_from_slice(data)
            }
            ExchangeEvent::ResponseEnd {
                exchange,
                reason,
                truncated,
                gap,
                decompression_capped,
                ..
            } => {
                let mut body = bodies.remove(exchange).unwrap_or_default();
                if *truncated {
                    cut.push(std::mem::take(&mut body));
                }
                out.push(format!(
                    "end {exchange} {reason:?} {truncated} {gap} {decompression_capped} {body:?}"
                ))
            }
        }
    }
    (out, cut)
}

fn parser_target(data: &[u8], new: impl Fn(&HttpConfig) -> Box<dyn ConnectionParser>) {
    let script = Script::parse(data);
    let cfg = http_config();
    let cut = Cut::from_seed(script.seed);
    let (faulty, _) = run_parser(new(&cfg), &script, cut, true, false);
    check_exchanges(&faulty, &cfg);
    // The same bytes in one piece per part and at the seed's split points: same exchanges.
    let (whole, whole_resync) = run_parser(new(&cfg), &script, Cut::Whole, false, true);
    check_exchanges(&whole, &cfg);
    let (split, split_resync) = run_parser(new(&cfg), &script, cut, false, true);
    check_exchanges(&split, &cfg);
    if whole_resync || split_resync {
        // Garbage before a message: the parsers take each read's start as a possible message
        // start (programs write a request with a fresh call), so where they find their footing
        // again depends on the reads by design.
        return;
    }
    let (whole, whole_cut) = normalise(&whole);
    let (split, split_cut) = normalise(&split);
    assert_eq!(whole, split, "HTTP events depend on the split ({cut:?})");
    for (a, b) in whole_cut.iter().zip(&split_cut) {
        assert!(
            a.starts_with(b) || b.starts_with(a),
            "cut bodies differ beyond a prefix ({cut:?})"
        );
    }
}

/// HTTP/1.1 with chunked bodies and content decoding: parts alternate request side and
/// response side of one connection.
pub fn http1(data: &[u8]) {
    parser_target(data, |cfg| Box::new(H1Connection::new(cfg.clone())));
}

/// HTTP/2 (frames, HPACK), seen from its preface or attached mid-way.
pub fn h2(data: &[u8]) {
    parser_target(data, |cfg| Box::new(H2Connection::from_http_config(cfg)));
}

// ---------------------------------------------------------------------------------------------
// Content decoding

fn coding_of(b: u8) -> Coding {
    match b % 5 {
        0 => Coding::Identity,
        1 => Coding::Gzip,
        2 => Coding::Deflate,
        3 => Coding::Brotli,
        _ => Coding::Zstd,
    }
}

/// One body through [`BodyDecoder`]: the first part's first byte picks the coding, the rest of
/// the parts are the encoded body (joined).
pub fn decode(data: &[u8]) {
    let script = Script::parse(data);
    let Some((&c, first)) = script.parts[0].split_first() else {
        return;
    };
    let mut body = first.to_vec();
    for p in &script.parts[1..] {
        body.extend_from_slice(p);
    }
    let limits = DecodeLimits {
        max_output: 1 << 20,
        max_ratio: 20,
        ratio_floor: 64 << 10,
    };
    let run = |cut: Cut| {
        let mut rng = Rng::new(script.seed >> 2);
        let mut d = BodyDecoder::new(coding_of(c), limits);
        let mut out = Vec::new();
        let mut input = 0usize;
        for piece in cut.pieces(&body, &mut rng) {
            d.push(piece, &mut out);
            input += piece.len();
            assert_eq!(d.output_total(), out.len() as u64);
            assert!(out.len() <= limits.max_output, "output over its cap");
            assert!(
                out.len() <= limits.ratio_floor.max(input * limits.max_ratio as usize),
                "output {} over the ratio cap for {input} input bytes",
                out.len()
            );
        }
        (out, d.capped(), d.failed())
    };
    let whole = run(Cut::Whole);
    let split = run(Cut::from_seed(script.seed));
    // The ratio cap is checked as input arrives, so it may stop a split run earlier; a clean
    // decode must not depend on the split.
    if !whole.1 && !whole.2 && !split.1 && !split.2 {
        assert_eq!(whole.0, split.0, "decoded body depends on the split");
    }
}

// ---------------------------------------------------------------------------------------------
// Body framings

/// Run a framing decoder over the joined parts whole and split, compare the messages.
fn framing_target<M: PartialEq + std::fmt::Debug>(
    data: &[u8],
    run: impl Fn(&[&[u8]]) -> (Vec<M>, u64),
) {
    let script = Script::parse(data);
    let body: Vec<u8> = script.parts.concat();
    let mut rng = Rng::new(script.seed >> 2);
    let cut = Cut::from_seed(script.seed);
    let whole = run(&[&body]);
    let split = run(&cut.pieces(&body, &mut rng));
    assert_eq!(whole, split, "messages depend on the split ({cut:?})");
}

pub fn sse(data: &[u8]) {
    framing_target(data, |pieces| {
        let mut d = SseDecoder::new(MAX_MESSAGE);
        let mut out = Vec::new();
        for p in pieces {
            d.push(p, &mut out);
            assert!(d.buffered() <= MAX_MESSAGE, "SSE holds {}", d.buffered());
        }
        d.finish(&mut out);
        for e in &out {
            assert!(e.data.len() <= MAX_MESSAGE, "SSE event over the cap");
        }
        (out, d.dropped())
    });
}

pub fn ndjson(data: &[u8]) {
    framing_target(data, |pieces| {
        let mut d = NdjsonDecoder::new(MAX_MESSAGE);
        let mut out = Vec::new();
        for p in pieces {
            d.push(p, &mut out);
            assert!(d.buffered() <= MAX_MESSAGE, "NDJSON holds {}", d.buffered());
        }
        d.finish(&mut out);
        assert!(out.iter().all(|l| l.len() <= MAX_MESSAGE));
        (out, d.dropped())
    });
}

pub fn eventstream(data: &[u8]) {
    framing_target(data, |pieces| {
        let mut d = EventStreamDecoder::new(MAX_MESSAGE);
        let mut out = Vec::new();
        for p in pieces {
            d.push(p, &mut out);
            assert!(
                d.buffered() <= MAX_MESSAGE,
                "event stream holds {}",
                d.buffered()
            );
        }
        d.finish();
        assert!(out.iter().all(|m| m.payload.len() <= MAX_MESSAGE));
        (out, d.dropped() + d.corrupt())
    });
}

pub fn json_array(data: &[u8]) {
    framing_target(data, |pieces| {
        let mut d = JsonArrayDecoder::new(MAX_MESSAGE);
        let mut out = Vec::new();
        for p in pieces {
            d.push(p, &mut out);
            assert!(
                d.buffered() <= MAX_MESSAGE,
                "JSON array holds {}",
                d.buffered()
            );
        }
        d.finish();
        assert!(out.iter().all(|m| m.len() <= MAX_MESSAGE));
        (out, d.dropped())
    });
}

// ---------------------------------------------------------------------------------------------
// LLM recognition, one target per provider family

/// Hosts and request targets per provider family: the fuzzer writes the bodies, the target
/// puts them on one of these endpoints so each provider module gets the fuzzer's attention.
pub fn endpoints(provider: &str) -> &'static [(&'static str, &'static str)] {
    match provider {
        "openai" => &[
            ("api.openai.com", "/v1/chat/completions"),
            ("api.openai.com", "/v1/responses"),
            ("api.openai.com", "/v1/completions"),
            ("api.openai.com", "/v1/embeddings"),
            ("api.groq.com", "/openai/v1/chat/completions"),
            ("localhost:8000", "/v1/chat/completions"),
            ("gateway.internal.example", "/proxy/llm"),
        ],
        "anthropic" => &[
            ("api.anthropic.com", "/v1/messages"),
            ("bedrock-mantle.us-east-1.api.aws", "/anthropic/v1/messages"),
            (
                "us-east5-aiplatform.googleapis.com",
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
            ),
            (
                "us-east5-aiplatform.googleapis.com",
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
            ),
        ],
        "gemini" => &[
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/gemini-2.5-flash:generateContent",
            ),
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            ),
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            ),
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/text-embedding-004:embedContent",
            ),
            (
                "us-central1-aiplatform.googleapis.com",
                "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse",
            ),
        ],
        "bedrock" => &[
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream",
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/meta.llama3-8b-instruct-v1%3A0/invoke",
            ),
        ],
        "ollama" => &[
            ("localhost:11434", "/api/chat"),
            ("localhost:11434", "/api/generate"),
            ("localhost:11434", "/api/embed"),
            ("localhost:11434", "/v1/chat/completions"),
        ],
        "cohere" => &[("api.cohere.com", "/v2/chat"), ("api.cohere.com", "/v2/embed")],
        "azure" => &[
            (
                "myres.openai.azure.com",
                "/openai/deployments/my-gpt4o-prod/chat/completions?api-version=2024-10-21",
            ),
            ("myres.openai.azure.com", "/openai/v1/responses"),
            (
                "myres.openai.azure.com",
                "/openai/deployments/emb/embeddings?api-version=2024-10-21",
            ),
        ],
        _ => &[],
    }
}

/// Content types a response may be labelled with.
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "text/event-stream; charset=utf-8",
    "application/x-ndjson",
    "application/vnd.amazon.eventstream",
    "application/json; charset=UTF-8",
    "",
];

/// Fuzz input of a recogniser target: parts in threes, one exchange each on one connection:
/// request body, response meta (`STATUS` then one byte choosing the content type), response
/// body (decoded). The seed picks the endpoint, content capture, split points and how each
/// response ends.
pub fn genai_input(seed: u64, exchanges: &[(&[u8], u16, usize, &[u8])]) -> Vec<u8> {
    let mut metas = Vec::new();
    for (_, status, ct, _) in exchanges {
        let mut m = status.to_string().into_bytes();
        m.push(*ct as u8);
        metas.push(m);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for (i, (req, _, _, resp)) in exchanges.iter().enumerate() {
        parts.push(req);
        parts.push(&metas[i]);
        parts.push(resp);
    }
    Script::encode(seed, &parts)
}

/// The index of `content_type` in the list the recogniser targets choose from.
pub fn content_type_index(content_type: &str) -> usize {
    let ct = content_type.to_ascii_lowercase();
    CONTENT_TYPES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(&ct))
        .or_else(|| {
            CONTENT_TYPES
                .iter()
                .position(|c| !c.is_empty() && ct.starts_with(c.split(';').next().unwrap_or("")))
        })
        .unwrap_or(CONTENT_TYPES.len() - 1)
}

/// Content cap used when the seed turns capture on.
pub const CONTENT_CAP: usize = 512;

fn run_recognizer(
    provider: &str,
    script: &Script<'_>,
    cut: Cut,
    constant_ts: bool,
) -> (Vec<LlmCall>, u64) {
    let eps = endpoints(provider);
    let mut rng = Rng::new(script.seed >> 2);
    let mut decide = Rng::new(!script.seed);
    let (host, target) = eps[(script.seed >> 8) as usize % eps.len()];
    let capture = (script.seed >> 16) & 1 == 1;
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: capture.then_some(CONTENT_CAP),
        max_response_body: 64 << 10,
        max_stream_message: MAX_MESSAGE,
        max_open_exchanges: 4,
    });
    let origin = Origin {
        pid: 7,
        tid: 7,
        comm: "fuzz".into(),
        conn: 1,
    };
    let mut calls = Vec::new();
    let mut ts = 10u64;
    let mut tick = |rng: &mut Rng| {
        if !constant_ts {
            ts += 1 + rng.below(100);
        }
        ts
    };
    for (n, x) in script.parts.chunks(3).enumerate() {
        let exchange = n as u64 + 1;
        let req_body = x[0];
        let (status, ct) = match x.get(1) {
            Some(meta) => {
                let digits: String = meta
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .take(3)
                    .map(|&b| b as char)
                    .collect();
                let ct = meta.get(digits.len()).copied().unwrap_or(0) as usize;
                (digits.parse::<u16>().unwrap_or(200), ct)
            }
            None => (200, 0),
        };
        let head = RequestHead {
            method: "POST".into(),
            target: target.into(),
            authority: Some(host.into()),
            version: "1.1".into(),
            headers: Headers(vec![
                ("host".into(), host.into()),
                ("content-type".into(), "application/json".into()),
            ]),
        };
        let start = tick(&mut rng);
        calls.extend(r.on_event(
            &origin,
            ExchangeEvent::Request {
                exchange,
                head,
                body: Body {
                    bytes: req_body.to_vec(),
                    truncated: false,
                    gap: false,
                },
                start_ns: start,
                end_ns: tick(&mut rng),
                late_attach: false,
            },
        ));
        if x.len() < 2 {
            continue; // no response at all
        }
        let mut headers = vec![];
        let ct = CONTENT_TYPES[ct % CONTENT_TYPES.len()];
        if !ct.is_empty() {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        calls.extend(r.on_event(
            &origin,
            ExchangeEvent::ResponseHead {
                exchange,
                head: ResponseHead {
                    status,
                    headers: Headers(headers),
                },
                ts_ns: tick(&mut rng),
            },
        ));
        let body = x.get(2).copied().unwrap_or(&[]);
        for piece in cut.pieces(body, &mut rng) {
            calls.extend(r.on_event(
                &origin,
                ExchangeEvent::ResponseData {
                    exchange,
                    ts_ns: tick(&mut rng),
                    data: piece.to_vec(),
                },
            ));
        }
        let end = decide.below(4);
        if end < 3 {
            calls.extend(r.on_event(
                &origin,
                ExchangeEvent::ResponseEnd {
                    exchange,
                    ts_ns: tick(&mut rng),
                    reason: match end {
                        0 => EndReason::Complete,
                        1 => EndReason::ConnectionClosed,
                        _ => EndReason::Abandoned,
                    },
                    truncated: false,
                    gap: false,
                    decompression_capped: false,
                },
            ));
        }
    }
    calls.extend(r.finish(tick(&mut rng)));
    let claimed = r.stats().requests - r.stats().unclaimed;
    (calls, claimed)
}

fn check_call(c: &LlmCall, capture: bool) {
    assert!(c.response.finish_reasons.len() <= MAX_CHOICES);
    assert!(c.timing.end_ns >= c.timing.request_start_ns);
    if let Some(t) = c.timing.first_output_ns {
        assert!(t <= c.timing.end_ns, "first output after the end");
    }
    match (&c.content, capture) {
        (Some(_), false) => panic!("content exported while capture is off"),
        (Some(content), true) => {
            // Text is capped by the budget; the JSON around it by the bounded choices/parts.
            let bound = CONTENT_CAP * 6 + MAX_CHOICES * 256 * 96 + (64 << 10);
            for s in [
                &content.input_messages,
                &content.output_messages,
                &content.system_instructions,
            ]
            .into_iter()
            .flatten()
            {
                assert!(s.len() <= bound, "content attribute of {} bytes", s.len());
                serde_json::from_str::<serde_json::Value>(s).expect("content is valid JSON");
            }
        }
        (None, _) => {}
    }
    serde_json::to_string(c).expect("a call serialises");
}

fn genai_target(provider: &str, data: &[u8]) {
    let script = Script::parse(data);
    let capture = (script.seed >> 16) & 1 == 1;
    let cut = Cut::from_seed(script.seed);
    let (calls, claimed) = run_recognizer(provider, &script, cut, false);
    assert_eq!(
        calls.len() as u64,
        claimed,
        "every claimed request yields exactly one call"
    );
    for c in &calls {
        check_call(c, capture);
    }
    // At one timestamp, the calls must not depend on how the bodies were split.
    let (whole, _) = run_recognizer(provider, &script, Cut::Whole, true);
    let (split, _) = run_recognizer(provider, &script, cut, true);
    assert_eq!(whole, split, "calls depend on the split ({cut:?})");
}

pub fn genai_openai(data: &[u8]) {
    genai_target("openai", data)
}
pub fn genai_anthropic(data: &[u8]) {
    genai_target("anthropic", data)
}
pub fn genai_gemini(data: &[u8]) {
    genai_target("gemini", data)
}
pub fn genai_bedrock(data: &[u8]) {
    genai_target("bedrock", data)
}
pub fn genai_ollama(data: &[u8]) {
    genai_target("ollama", data)
}
pub fn genai_cohere(data: &[u8]) {
    genai_target("cohere", data)
}
pub fn genai_azure(data: &[u8]) {
    genai_target("azure", data)
}

// ---------------------------------------------------------------------------------------------
// The whole pipeline

/// Caps small enough to be hit: two connections at most, a few hundred KiB in all.
pub fn pipeline_config() -> PipelineConfig {
    let mut cfg = PipelineConfig::default();
    cfg.tracker.http = http_config();
    cfg.tracker.max_connections = 2;
    cfg.tracker.max_conn_bytes = 256 << 10;
    cfg.tracker.max_total_bytes = 384 << 10;
    cfg.tracker.max_reorder_bytes = 16 << 10;
    cfg.tracker.max_reorder_records = 8;
    cfg.tracker.reorder_window_ns = 1_000;
    cfg.tracker.idle_timeout_ns = 1_000_000;
    cfg.recognizer.max_response_body = 64 << 10;
    cfg.recognizer.max_stream_message = MAX_MESSAGE;
    cfg.recognizer.max_open_exchanges = 4;
    cfg
}

/// Whole pipeline: parts alternate the write and read side; pairs of parts go to one of up to
/// three connections of up to two processes. The seed splits the bytes into records and adds
/// capture faults: lost records, truncated records, swapped records, idle time, process exits.
pub fn pipeline(data: &[u8]) {
    let script = Script::parse(data);
    let mut rng = Rng::new(script.seed >> 2);
    let cut = Cut::from_seed(script.seed);
    let conns = 1 + (script.seed >> 8) % 3;
    let mut p = Pipeline::new(pipeline_config());
    let cfg = p.config().clone();
    let mut offsets: BTreeMap<(u64, bool), u64> = BTreeMap::new();
    let mut ts = 1_000u64;
    let mut calls = Vec::new();
    let mut held: Option<TlsEvent> = None;
    for (i, part) in script.parts.iter().enumerate() {
        let conn = (i as u64 / 2) % conns;
        let pid = 100 + (conn % 2) as u32;
        let direction = dir_of(i);
        for piece in cut.pieces(part, &mut rng) {
            ts += 1 + rng.below(300);
            let off = offsets
                .entry((conn, direction == Direction::Write))
                .or_default();
            let mut ev = TlsEvent {
                pid,
                tid: pid,
                comm: "fuzz".into(),
                conn: 0x1000 + conn,
                direction,
                ts_ns: ts,
                offset: *off,
                len: piece.len() as u32,
                data: piece.to_vec(),
                flags: 0,
            };
            *off += piece.len() as u64;
            match rng.below(64) {
                0 => continue, // lost: the next record shows the hole
                1 => {
                    let keep = rng.below(piece.len() as u64) as usize;
                    ev.data.truncate(keep);
                    ev.flags |= flags::TRUNCATED;
                }
                2 => {
                    ev.flags |= flags::LOST_BEFORE;
                }
                3 => {
                    // arrives after the next record
                    if let Some(h) = held.replace(ev) {
                        calls.extend(p.feed(h));
                    }
                    continue;
                }
                4 => calls.extend(p.tick(ts + rng.below(2_000_000))),
                5 if rng.one_in(4) => {
                    calls.extend(p.feed(TlsEvent {
                        pid,
                        tid: pid,
                        comm: "fuzz".into(),
                        conn: 0,
                        direction,
                        ts_ns: ts,
                        offset: 0,
                        len: 0,
                        data: Vec::new(),
                        flags: flags::PROCESS_EXIT,
                    }));
                    offsets.retain(|(c, _), _| (c % 2) as u32 + 100 != pid);
                    continue;
                }
                _ => {}
            }
            calls.extend(p.feed(ev));
            if let Some(h) = held.take() {
                calls.extend(p.feed(h));
            }
            let s = p.stats();
            assert!(
                s.memory_bytes as usize <= cfg.tracker.max_total_bytes,
                "tracked memory {} over the total cap",
                s.memory_bytes
            );
            assert!(s.connections_open as usize <= cfg.tracker.max_connections);
        }
    }
    if let Some(h) = held.take() {
        calls.extend(p.feed(h));
    }
    calls.extend(p.tick(ts + 10));
    calls.extend(p.finish(ts + 20));
    let s = p.stats();
    assert_eq!(s.connections_open, 0, "connections left open after finish");
    assert_eq!(s.memory_bytes, 0, "memory held after finish");
    assert_eq!(s.calls, calls.len() as u64);
    assert!(s.calls <= s.requests, "more calls than requests");
    for c in &calls {
        check_call(c, false);
    }
}
