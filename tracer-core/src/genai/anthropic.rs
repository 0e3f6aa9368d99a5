//! Anthropic Messages (`POST /v1/messages`), also as carried by Bedrock InvokeModel, Bedrock
//! mantle, Vertex `rawPredict` and Anthropic-compatible servers (Ollama, llama.cpp).
//!
//! Stream: `message_start` (id, model, input-side usage, a placeholder output count),
//! `content_block_start|delta|stop`, `ping`, `message_delta` (stop_reason and *cumulative*
//! usage), `message_stop`, and `error` after a 200. Usage rule: each field from the last
//! `message_delta` that has it, else from `message_start` (never summed); the output count only
//! from `message_delta` (the `message_start` one is a placeholder). OTel input tokens =
//! `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.

use serde::Deserialize;
use serde_json::{Number, Value};

use super::body::Msg;
use super::common::{bool_at, error_code, f64_at, str_at, strings_at, u64_at, RequestCtx};
use super::compat;
use super::content::{self, Budget};
use super::detect::Detected;
use super::typed::{count, present, Str};
use super::{Acc, Api};

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let p = req.path.trim_end_matches('/');
    if !p.ends_with("/v1/messages") {
        return None; // `/v1/messages/count_tokens` and `/batches` are not inference calls
    }
    if let Some(b) = req.body {
        b.get("messages")?;
    }
    detect_any(req, None)
}

/// Claim a request known to be in the Anthropic format; `model` when it is in the URL.
pub fn detect_any(req: &RequestCtx<'_>, model: Option<String>) -> Option<Detected> {
    Some(Detected {
        provider: compat::anthropic_provider(req),
        operation: "chat",
        api_type: None,
        api: Box::new(Anthropic::new(model)),
    })
}

#[derive(Debug, Default, Clone, Copy)]
struct RawUsage {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    thinking: Option<u64>,
}

impl RawUsage {
    fn read(u: &Value) -> RawUsage {
        RawUsage {
            input: u64_at(u, &["input_tokens"]),
            output: u64_at(u, &["output_tokens"]),
            cache_read: u64_at(u, &["cache_read_input_tokens"]),
            cache_creation: u64_at(u, &["cache_creation_input_tokens"]),
            thinking: u64_at(u, &["output_tokens_details", "thinking_tokens"]),
        }
    }

    /// Later values win field by field.
    fn overlay(&mut self, later: RawUsage) {
        self.input = later.input.or(self.input);
        self.output = later.output.or(self.output);
        self.cache_read = later.cache_read.or(self.cache_read);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
        self.thinking = later.thinking.or(self.thinking);
    }
}

#[derive(Debug)]
pub struct Anthropic {
    url_model: Option<String>,
    start: RawUsage,
    delta: Option<RawUsage>,
    /// Bedrock's `amazon-bedrock-invocationMetrics` (fallback only).
    bedrock_metrics: Option<(Option<u64>, Option<u64>)>,
    whole: Option<RawUsage>,
}

impl Anthropic {
    pub fn new(url_model: Option<String>) -> Self {
        Anthropic {
            url_model,
            start: RawUsage::default(),
            delta: None,
            bedrock_metrics: None,
            whole: None,
        }
    }

    /// Handle one Anthropic event object (from SSE, or decoded from a Bedrock `chunk`).
    pub fn event(&mut self, v: &Value, acc: &mut Acc) -> bool {
        if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
            self.bedrock_metrics = Some((
                u64_at(m, &["inputTokenCount"]),
                u64_at(m, &["outputTokenCount"]),
            ));
        }
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    acc.set_response_id(str_at(m, &["id"]));
                    acc.set_response_model(str_at(m, &["model"]));
                    if let Some(u) = m.get("usage") {
                        self.start = RawUsage::read(u);
                    }
                }
                false
            }
            "content_block_start" => {
                let idx = u64_at(v, &["index"]).unwrap_or(0);
                if let (Some(o), Some(b)) = (acc.output.as_mut(), v.get("content_block")) {
                    if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                        o.tool_call(
                            0,
                            idx,
                            b.get("id").and_then(Value::as_str),
                            b.get("name").and_then(Value::as_str),
                            "",
                        );
                    }
                }
                false
            }
            "content_block_delta" => {
                let idx = u64_at(v, &["index"]).unwrap_or(0);
                if let (Some(o), Some(d)) = (acc.output.as_mut(), v.get("delta")) {
                    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
                    match d.get("type").and_then(Value::as_str) {
                        Some("text_delta") => o.text(0, s("text")),
                        Some("thinking_delta") => o.reasoning(0, s("thinking")),
                        Some("input_json_delta") => {
                            o.tool_call(0, idx, None, None, s("partial_json"))
                        }
                        _ => {}
                    }
                }
                true
            }
            "message_delta" => {
                if let Some(r) = v.get("delta").and_then(|d| d.get("stop_reason")) {
                    if let Some(r) = r.as_str() {
                        acc.finish_reason(0, r);
                    }
                }
                if let Some(u) = v.get("usage") {
                    let mut d = self.delta.unwrap_or_default();
                    d.overlay(RawUsage::read(u));
                    self.delta = Some(d);
                }
                false
            }
            "message_stop" => {
                acc.terminal = true;
                false
            }
            "error" => {
                acc.error(error_code(v).unwrap_or_else(|| "error".into()));
                false
            }
            _ => false,
        }
    }

    fn whole_message(&mut self, v: &Value, acc: &mut Acc) {
        acc.set_response_id(str_at(v, &["id"]));
        acc.set_response_model(str_at(v, &["model"]));
        if let Some(r) = v.get("stop_reason").and_then(Value::as_str) {
            acc.finish_reason(0, r);
        }
        if let Some(u) = v.get("usage") {
            self.whole = Some(RawUsage::read(u));
        }
        if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
            self.bedrock_metrics = Some((
                u64_at(m, &["inputTokenCount"]),
                u64_at(m, &["outputTokenCount"]),
            ));
        }
        if let Some(o) = acc.output.as_mut() {
            for (n, b) in v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => o.text(0, s("text")),
                    Some("thinking") => o.reasoning(0, s("thinking")),
                    Some("tool_use") => o.tool_call(
                        0,
                        n as u64,
                        b.get("id").and_then(Value::as_str),
                        b.get("name").and_then(Value::as_str),
                        &b.get("input").map(Value::to_string).unwrap_or_default(),
                    ),
                    _ => {}
                }
            }
        }
    }

    /// Fill the call's usage from what was seen.
    pub fn settle_usage(&mut self, acc: &mut Acc) {
        let raw = match (self.whole, self.delta) {
            (Some(w), _) => Some(w),
            (None, Some(d)) => {
                let mut u = self.start;
                u.output = None; // the message_start count is a placeholder
                u.overlay(d);
                Some(u)
            }
            (None, None) if self.start.input.is_some() => {
                let mut u = self.start;
                u.output = None;
                Some(u)
            }
            (None, None) => None,
        };
        let usage = &mut acc.call.usage;
        if let Some(u) = raw {
            usage.input_tokens = u
                .input
                .map(|i| i + u.cache_read.unwrap_or(0) + u.cache_creation.unwrap_or(0));
            usage.output_tokens = u.output;
            usage.cache_read_input_tokens = u.cache_read;
            usage.cache_creation_input_tokens = u.cache_creation;
            usage.reasoning_output_tokens = u.thinking;
        }
        if let Some((i, o)) = self.bedrock_metrics {
            usage.input_tokens = usage.input_tokens.or(i);
            usage.output_tokens = usage.output_tokens.or(o);
        }
    }
}

/// A `content_block_delta` event read into borrowing structs instead of a `Value`: the same
/// reading as [`Anthropic::event`]'s, and anything it would read differently (a field of an
/// unexpected type, Bedrock's invocation metrics) fails here or in [`BlockDelta::plain`].
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    index: Option<Number>,
    #[serde(borrow)]
    delta: Option<DeltaBody<'a>>,
    #[serde(
        default,
        rename = "amazon-bedrock-invocationMetrics",
        deserialize_with = "present"
    )]
    bedrock_metrics: bool,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow)]
    text: Str<'a>,
    #[serde(borrow)]
    thinking: Str<'a>,
    #[serde(borrow)]
    partial_json: Str<'a>,
}

impl BlockDelta<'_> {
    fn plain(&self) -> bool {
        self.ty.as_deref() == Some("content_block_delta") && !self.bedrock_metrics
    }

    fn apply(&self, acc: &mut Acc) -> bool {
        let idx = count(&self.index).unwrap_or(0);
        if let (Some(o), Some(d)) = (acc.output.as_mut(), &self.delta) {
            fn s<'s>(t: &'s Str<'_>) -> &'s str {
                t.as_deref().unwrap_or("")
            }
            match d.ty.as_deref() {
                Some("text_delta") => o.text(0, s(&d.text)),
                Some("thinking_delta") => o.reasoning(0, s(&d.thinking)),
                Some("input_json_delta") => o.tool_call(0, idx, None, None, s(&d.partial_json)),
                _ => {}
            }
        }
        true
    }
}

impl Api for Anthropic {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        let r = &mut acc.call.request;
        r.model = self.url_model.clone();
        let Some(b) = req.body else { return };
        if let Some(m) = str_at(b, &["model"]) {
            r.model = Some(m);
        }
        r.max_tokens = u64_at(b, &["max_tokens"]);
        r.temperature = f64_at(b, &["temperature"]);
        r.top_p = f64_at(b, &["top_p"]);
        r.top_k = f64_at(b, &["top_k"]);
        r.stop_sequences = strings_at(b, &["stop_sequences"]);
        r.stream = bool_at(b, &["stream"]);
        if let Some(cap) = acc.content_cap {
            input_content(b, cap, acc);
        }
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        // the fast path for the most frequent event; the rest is read as a Value
        if let Some(d) = msg.typed::<BlockDelta>().filter(BlockDelta::plain) {
            return d.apply(acc);
        }
        match msg.json() {
            Some(v) => self.event(v, acc),
            None => false,
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        self.whole_message(v, acc);
    }

    fn end(&mut self, acc: &mut Acc) {
        self.settle_usage(acc);
    }
}

/// `system` and `messages` into content.
pub fn input_content(b: &Value, cap: usize, acc: &mut Acc) {
    let mut budget = Budget::new(cap);
    let system = match b.get("system") {
        Some(Value::String(s)) => Some(vec![content::text_part(&mut budget, s)]),
        Some(Value::Array(a)) => Some(blocks(a, &mut budget)),
        _ => None,
    };
    let msgs: Vec<Value> = b
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let parts = match m.get("content") {
                Some(Value::String(s)) => vec![content::text_part(&mut budget, s)],
                Some(Value::Array(a)) => blocks(a, &mut budget),
                _ => vec![],
            };
            content::message(role, parts)
        })
        .collect();
    let c = acc.content().expect("capture is on");
    c.input_messages = Some(Value::Array(msgs).to_string());
    c.system_instructions = system.map(|s| Value::Array(s).to_string());
    c.truncated |= budget.truncated;
}

fn blocks(a: &[Value], budget: &mut Budget) -> Vec<Value> {
    a.iter()
        .filter_map(|b| {
            let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
            Some(match b.get("type").and_then(Value::as_str)? {
                "text" => content::text_part(budget, s("text")),
                "thinking" => content::reasoning_part(budget, s("thinking")),
                "tool_use" => content::tool_call_part(
                    budget,
                    b.get("id").and_then(Value::as_str),
                    s("name"),
                    b.get("input"),
                ),
                "tool_result" => content::tool_response_part(
                    budget,
                    b.get("tool_use_id").and_then(Value::as_str),
                    b.get("content").unwrap_or(&Value::Null),
                ),
                "image" => content::generic_part("image"),
                "document" => content::generic_part("document"),
                other => content::generic_part(other),
            })
        })
        .collect()
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use crate::call::LlmCall;
    use crate::genai::content::Output;

    fn acc() -> Acc {
        Acc {
            call: LlmCall::default(),
            output: Some(Output::new(1 << 20)),
            content_cap: Some(1 << 20),
            terminal: false,
            stream_error: None,
        }
    }

    #[test]
    fn typed_block_deltas_read_like_values() {
        let same = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":2.0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"signature_delta","signature":"s"}}"#,
            r#"{"type":"content_block_delta","index":null,"delta":null}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta"}}"#,
        ];
        for d in same {
            let t: BlockDelta = serde_json::from_str(d).unwrap();
            assert!(t.plain(), "{d}");
            let v: Value = serde_json::from_str(d).unwrap();
            let (mut fast, mut slow) = (acc(), acc());
            let mut a = Anthropic::new(None);
            assert_eq!(t.apply(&mut fast), a.event(&v, &mut slow));
            assert_eq!(fast.call, slow.call);
            assert_eq!(
                format!("{:?}", fast.output),
                format!("{:?}", slow.output),
                "{d}"
            );
        }
        let declined = [
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#,
            r#"{"type":"content_block_delta","amazon-bedrock-invocationMetrics":null}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":5}}"#,
            r#"{"type":"content_block_delta","index":"0"}"#,
        ];
        for d in declined {
            let t = serde_json::from_str::<BlockDelta>(d).ok();
            assert!(!t.is_some_and(|t| t.plain()), "{d}");
        }
    }
}
