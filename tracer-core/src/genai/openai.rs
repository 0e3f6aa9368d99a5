//! OpenAI wire format: Chat Completions, Responses, legacy Completions, Embeddings. Also used for
//! Azure OpenAI ([`super::azure`]) and every OpenAI-compatible host ([`super::compat`]).
//!
//! Streams: Chat/Completions are `data:`-only SSE ending in `[DONE]`; usage comes in a trailing
//! chunk with `choices: []` only with `stream_options.include_usage` (else it stays unknown),
//! or on the finish chunk (Mistral, Together, old llama.cpp), or in `x_groq.usage` (Groq).
//! Responses streams carry `type` on every event; usage and status only in the terminal
//! `response.completed | incomplete | failed`.

use serde_json::Value;

use super::body::Msg;
use super::common::{
    bool_at, error_code, f64_at, i64_at, is_error_body, nonempty_str_at, str_at, strings_at,
    u64_at, RequestCtx,
};
use super::compat;
use super::content::{self, Budget};
use super::detect::Detected;
use super::openai_chunk;
use super::{Acc, Api};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Responses,
    Completions,
    Embeddings,
}

impl Kind {
    pub fn operation(self) -> &'static str {
        match self {
            Kind::Chat | Kind::Responses => "chat",
            Kind::Completions => "text_completion",
            Kind::Embeddings => "embeddings",
        }
    }

    pub fn api_type(self) -> &'static str {
        match self {
            Kind::Chat => "chat_completions",
            Kind::Responses => "responses",
            Kind::Completions => "completions",
            Kind::Embeddings => "embeddings",
        }
    }

    /// The kind an OpenAI-style path ends with.
    pub fn from_path(path: &str) -> Option<Kind> {
        let p = path.trim_end_matches('/');
        if p.ends_with("/chat/completions") {
            Some(Kind::Chat)
        } else if p.ends_with("/completions") {
            Some(Kind::Completions) // also Mistral /fim/completions, DeepSeek /beta/completions
        } else if p.ends_with("/embeddings") {
            Some(Kind::Embeddings)
        } else if p.ends_with("/responses") {
            Some(Kind::Responses)
        } else {
            None
        }
    }
}

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let kind = Kind::from_path(req.path)?;
    // When the body parsed, it must look like the kind (a `/completions` path of some other
    // API is not claimed); a body that did not parse (cut, compressed oddly) gets the benefit.
    if let Some(b) = req.body {
        let ok = match kind {
            Kind::Chat => b.get("messages").is_some(),
            Kind::Completions => b.get("prompt").is_some(),
            Kind::Embeddings => b.get("input").is_some(),
            Kind::Responses => b.get("input").is_some() || b.get("model").is_some(),
        };
        if !ok {
            return None;
        }
    }
    detect_kind(req, kind)
}

pub fn detect_kind(req: &RequestCtx<'_>, kind: Kind) -> Option<Detected> {
    Some(Detected {
        provider: compat::openai_provider(req),
        operation: kind.operation(),
        api_type: Some(kind.api_type()),
        api: Box::new(OpenAi::new(kind, None)),
    })
}

/// The OpenAI-format handler.
#[derive(Debug)]
pub struct OpenAi {
    kind: Kind,
    /// Request model when the body has none (Azure: the deployment name).
    model_fallback: Option<String>,
    stream_requested: bool,
}

impl OpenAi {
    pub fn new(kind: Kind, model_fallback: Option<String>) -> Self {
        OpenAi {
            kind,
            model_fallback,
            stream_requested: false,
        }
    }
}

impl Api for OpenAi {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        let r = &mut acc.call.request;
        r.model = self.model_fallback.clone();
        let Some(b) = req.body else { return };
        if let Some(m) = str_at(b, &["model"]) {
            r.model = Some(m);
        }
        r.max_tokens = u64_at(b, &["max_completion_tokens"])
            .or_else(|| u64_at(b, &["max_tokens"]))
            .or_else(|| u64_at(b, &["max_output_tokens"]));
        r.temperature = f64_at(b, &["temperature"]);
        r.top_p = f64_at(b, &["top_p"]);
        r.top_k = f64_at(b, &["top_k"]); // vLLM / llama.cpp extension
        r.frequency_penalty = f64_at(b, &["frequency_penalty"]);
        r.presence_penalty = f64_at(b, &["presence_penalty"]);
        r.stop_sequences = strings_at(b, &["stop"]);
        r.seed = i64_at(b, &["seed"]).or_else(|| i64_at(b, &["random_seed"]));
        r.choice_count = u64_at(b, &["n"]);
        r.stream = bool_at(b, &["stream"]);
        r.service_tier = str_at(b, &["service_tier"]);
        if self.kind == Kind::Embeddings {
            r.encoding_formats = str_at(b, &["encoding_format"]).map(|f| vec![f]);
        }
        self.stream_requested = r.stream == Some(true);
        if let Some(cap) = acc.content_cap {
            input_content(self.kind, b, cap, acc);
        }
    }

    fn framing(&self, content_type: &str) -> super::Framing {
        let f = super::Framing::from_content_type(content_type);
        if f == super::Framing::Whole && content_type.is_empty() && self.stream_requested {
            return super::Framing::Sse;
        }
        f
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        if msg.is_done() {
            acc.terminal = true;
            return false;
        }
        if matches!(self.kind, Kind::Chat | Kind::Completions) {
            // the fast path; anything it does not cover is read as a Value below
            if let Some(c) = msg.typed::<openai_chunk::Chunk>().filter(|c| c.plain()) {
                return c.apply(self.kind == Kind::Completions, acc);
            }
        }
        let Some(v) = msg.json() else { return false };
        if is_error_body(v) {
            acc.error(error_code(v).unwrap_or_else(|| "error".into()));
            return false;
        }
        match self.kind {
            Kind::Responses => responses_event(v, acc),
            _ => chunk(self.kind, v, acc),
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        match self.kind {
            Kind::Responses => response_object(v, acc, true),
            Kind::Embeddings => {
                acc.set_response_model(str_at(v, &["model"]));
                acc.call.usage.input_tokens = u64_at(v, &["usage", "prompt_tokens"]);
            }
            _ => {
                common_fields(v, acc);
                chat_usage(v, acc);
                let text_key = if self.kind == Kind::Chat {
                    "message"
                } else {
                    "text"
                };
                for (i, c) in choices(v) {
                    if let Some(fr) = nonempty_str_at(c, &["finish_reason"]) {
                        acc.finish_reason(i, &fr);
                    }
                    if let Some(o) = acc.out() {
                        if text_key == "text" {
                            o.text(i, c.get("text").and_then(Value::as_str).unwrap_or(""));
                        } else if let Some(m) = c.get("message") {
                            delta_content(o, i, m);
                        }
                    }
                }
            }
        }
    }
}

fn choices(v: &Value) -> impl Iterator<Item = (u64, &Value)> {
    v.get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(n, c)| (u64_at(c, &["index"]).unwrap_or(n as u64), c))
}

/// id / model / fingerprint / tier, skipping the empty values of Azure's filter chunk.
fn common_fields(v: &Value, acc: &mut Acc) {
    acc.set_response_id(str_at(v, &["id"]));
    acc.set_response_model(str_at(v, &["model"]));
    if let Some(f) = nonempty_str_at(v, &["system_fingerprint"]) {
        acc.call.response.system_fingerprint = Some(f);
    }
    if let Some(t) = nonempty_str_at(v, &["service_tier"]) {
        acc.call.response.service_tier = Some(t);
    }
    compat::refine(&mut acc.call.provider, v);
}

/// Chat/Completions usage: top-level `usage`, or Groq's `x_groq.usage`.
fn chat_usage(v: &Value, acc: &mut Acc) {
    let u = v.get("usage").filter(|u| u.is_object()).or_else(|| {
        v.get("x_groq")
            .and_then(|x| x.get("usage"))
            .filter(|u| u.is_object())
    });
    let Some(u) = u else { return };
    let usage = &mut acc.call.usage;
    usage.input_tokens = u64_at(u, &["prompt_tokens"]);
    usage.output_tokens = u64_at(u, &["completion_tokens"]);
    usage.cache_read_input_tokens = u64_at(u, &["prompt_tokens_details", "cached_tokens"])
        .or_else(|| u64_at(u, &["prompt_cache_hit_tokens"]));
    usage.cache_creation_input_tokens = u64_at(u, &["prompt_tokens_details", "cache_write_tokens"]);
    usage.reasoning_output_tokens = u64_at(u, &["completion_tokens_details", "reasoning_tokens"]);
}

/// One Chat/Completions stream chunk. Output = a non-empty content, refusal, reasoning or tool
/// call delta (role-only deltas and Azure's filter chunks are not output).
pub(super) fn chunk(kind: Kind, v: &Value, acc: &mut Acc) -> bool {
    common_fields(v, acc);
    chat_usage(v, acc);
    if v.get("x_groq")
        .and_then(|x| x.get("error"))
        .is_some_and(|e| !e.is_null())
    {
        acc.error("groq_error".into());
    }
    let mut output = false;
    for (i, c) in choices(v) {
        if kind == Kind::Completions {
            let t = c.get("text").and_then(Value::as_str).unwrap_or("");
            if !t.is_empty() {
                output = true;
                if let Some(o) = acc.out() {
                    o.text(i, t);
                }
            }
        } else if let Some(d) = c.get("delta") {
            let nonempty = |k: &str| {
                d.get(k).is_some_and(|x| match x {
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    Value::Null => false,
                    _ => true,
                })
            };
            if [
                "content",
                "refusal",
                "tool_calls",
                "reasoning_content",
                "reasoning",
            ]
            .iter()
            .any(|k| nonempty(k))
            {
                output = true;
            }
            if let Some(o) = acc.out() {
                delta_content(o, i, d);
            }
        }
        if let Some(fr) = nonempty_str_at(c, &["finish_reason"]) {
            acc.finish_reason(i, &fr);
        }
    }
    output
}

/// Content of a chat `message` or stream `delta` into the output being assembled.
fn delta_content(o: &mut content::Output, i: u64, d: &Value) {
    if let Some(r) = d.get("role").and_then(Value::as_str) {
        o.role(i, r);
    }
    for k in ["reasoning_content", "reasoning"] {
        if let Some(t) = d.get(k).and_then(Value::as_str) {
            o.reasoning(i, t);
        }
    }
    for k in ["content", "refusal"] {
        if let Some(t) = d.get(k).and_then(Value::as_str) {
            o.text(i, t);
        }
    }
    for (n, tc) in d
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = u64_at(tc, &["index"]).unwrap_or(n as u64);
        o.tool_call(
            i,
            key,
            tc.get("id").and_then(Value::as_str),
            tc.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str),
            tc.get("function")
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
    }
}

/// One Responses API stream event.
fn responses_event(v: &Value, acc: &mut Acc) -> bool {
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "response.created" | "response.in_progress" | "response.queued" => {
            if let Some(r) = v.get("response") {
                response_object(r, acc, false);
            }
            false
        }
        "response.completed" | "response.incomplete" | "response.failed" => {
            acc.terminal = true;
            if let Some(r) = v.get("response") {
                response_object(r, acc, acc.output.as_ref().is_some_and(|o| o.is_empty()));
            }
            false
        }
        "error" => {
            acc.error(
                nonempty_str_at(v, &["code"])
                    .or_else(|| error_code(v))
                    .unwrap_or_else(|| "error".into()),
            );
            false
        }
        "response.output_item.added" => {
            let idx = u64_at(v, &["output_index"]).unwrap_or(0);
            if let (Some(o), Some(item)) = (acc.output.as_mut(), v.get("item")) {
                if item.get("type").and_then(Value::as_str) == Some("function_call") {
                    o.tool_call(
                        0,
                        idx,
                        item.get("call_id").and_then(Value::as_str),
                        item.get("name").and_then(Value::as_str),
                        "",
                    );
                }
            }
            false
        }
        "response.output_text.delta"
        | "response.refusal.delta"
        | "response.function_call_arguments.delta"
        | "response.reasoning_summary_text.delta"
        | "response.reasoning_text.delta" => {
            let d = v.get("delta").and_then(Value::as_str).unwrap_or("");
            if let Some(o) = acc.out() {
                match ty {
                    "response.function_call_arguments.delta" => {
                        let idx = u64_at(v, &["output_index"]).unwrap_or(0);
                        o.tool_call(0, idx, None, None, d);
                    }
                    "response.output_text.delta" | "response.refusal.delta" => o.text(0, d),
                    _ => o.reasoning(0, d),
                }
            }
            true
        }
        _ => false,
    }
}

/// A Responses `response` object (whole body, or inside a stream event). `with_output`: read
/// the output items into content (whole bodies; streams assemble them from deltas).
fn response_object(r: &Value, acc: &mut Acc, with_output: bool) {
    acc.set_response_id(str_at(r, &["id"]));
    acc.set_response_model(str_at(r, &["model"]));
    if let Some(t) = nonempty_str_at(r, &["service_tier"]) {
        acc.call.response.service_tier = Some(t);
    }
    if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
        let usage = &mut acc.call.usage;
        usage.input_tokens = u64_at(u, &["input_tokens"]);
        usage.output_tokens = u64_at(u, &["output_tokens"]);
        usage.cache_read_input_tokens = u64_at(u, &["input_tokens_details", "cached_tokens"]);
        usage.cache_creation_input_tokens =
            u64_at(u, &["input_tokens_details", "cache_write_tokens"]);
        usage.reasoning_output_tokens = u64_at(u, &["output_tokens_details", "reasoning_tokens"]);
    }
    let items: &[Value] = r
        .get("output")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let tool_call = items
        .iter()
        .any(|i| i.get("type").and_then(Value::as_str) == Some("function_call"));
    // No finish_reason in this API: map the status like the reference instrumentation does.
    let reason = match r.get("status").and_then(Value::as_str) {
        Some("completed") if tool_call => Some("tool_calls".to_string()),
        Some("completed") => Some("stop".to_string()),
        Some("incomplete") => Some(
            nonempty_str_at(r, &["incomplete_details", "reason"])
                .unwrap_or_else(|| "incomplete".into()),
        ),
        Some(s @ ("failed" | "cancelled")) => Some(s.to_string()),
        _ => None,
    };
    if let Some(reason) = reason {
        acc.finish_reason(0, &reason);
    }
    if r.get("status").and_then(Value::as_str) == Some("failed") {
        acc.error(nonempty_str_at(r, &["error", "code"]).unwrap_or_else(|| "failed".into()));
    }
    if with_output {
        if let Some(o) = acc.output.as_mut() {
            for (n, item) in items.iter().enumerate() {
                match item.get("type").and_then(Value::as_str) {
                    Some("message") => {
                        for part in item
                            .get("content")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let t = part
                                .get("text")
                                .or_else(|| part.get("refusal"))
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            o.text(0, t);
                        }
                    }
                    Some("function_call") => o.tool_call(
                        0,
                        n as u64,
                        item.get("call_id").and_then(Value::as_str),
                        item.get("name").and_then(Value::as_str),
                        item.get("arguments").and_then(Value::as_str).unwrap_or(""),
                    ),
                    Some("reasoning") => {
                        for s in item
                            .get("summary")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            o.reasoning(0, s.get("text").and_then(Value::as_str).unwrap_or(""));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Input messages (and Responses `instructions`) into content.
fn input_content(kind: Kind, b: &Value, cap: usize, acc: &mut Acc) {
    let mut budget = Budget::new(cap);
    let mut msgs = Vec::new();
    let mut system = None;
    match kind {
        Kind::Chat => {
            for m in b
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                msgs.push(chat_message(m, &mut budget));
            }
        }
        Kind::Completions => {
            let parts: Vec<Value> = match b.get("prompt") {
                Some(Value::String(s)) => vec![content::text_part(&mut budget, s)],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| content::text_part(&mut budget, s))
                    .collect(),
                _ => vec![],
            };
            msgs.push(content::message("user", parts));
        }
        Kind::Responses => {
            if let Some(i) = b.get("instructions").and_then(Value::as_str) {
                system = Some(Value::Array(vec![content::text_part(&mut budget, i)]));
            }
            match b.get("input") {
                Some(Value::String(s)) => msgs.push(content::message(
                    "user",
                    vec![content::text_part(&mut budget, s)],
                )),
                Some(Value::Array(items)) => {
                    for it in items {
                        msgs.push(responses_item(it, &mut budget));
                    }
                }
                _ => {}
            }
        }
        Kind::Embeddings => return,
    }
    let c = acc.content().expect("capture is on");
    c.input_messages = Some(Value::Array(msgs).to_string());
    c.system_instructions = system.map(|s| s.to_string());
    c.truncated |= budget.truncated;
}

/// A chat message: string or parts content, tool calls, tool results.
pub fn chat_message(m: &Value, budget: &mut Budget) -> Value {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    let mut parts = Vec::new();
    if role == "tool" {
        let id = m.get("tool_call_id").and_then(Value::as_str);
        let resp = m.get("content").cloned().unwrap_or(Value::Null);
        parts.push(content::tool_response_part(budget, id, &resp));
        return content::message(role, parts);
    }
    match m.get("content") {
        Some(Value::String(s)) => parts.push(content::text_part(budget, s)),
        Some(Value::Array(a)) => {
            for p in a {
                match p.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text") => parts.push(content::text_part(
                        budget,
                        p.get("text").and_then(Value::as_str).unwrap_or(""),
                    )),
                    Some("image_url" | "input_image") => parts.push(content::generic_part("image")),
                    Some("input_audio") => parts.push(content::generic_part("audio")),
                    Some(other) => parts.push(content::generic_part(other)),
                    None => {}
                }
            }
        }
        _ => {}
    }
    for tc in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = tc.get("function");
        parts.push(content::tool_call_part(
            budget,
            tc.get("id").and_then(Value::as_str),
            f.and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(""),
            f.and_then(|f| f.get("arguments")),
        ));
    }
    content::message(role, parts)
}

fn responses_item(it: &Value, budget: &mut Budget) -> Value {
    match it.get("type").and_then(Value::as_str) {
        Some("function_call") => content::message(
            "assistant",
            vec![content::tool_call_part(
                budget,
                it.get("call_id").and_then(Value::as_str),
                it.get("name").and_then(Value::as_str).unwrap_or(""),
                it.get("arguments"),
            )],
        ),
        Some("function_call_output") => content::message(
            "tool",
            vec![content::tool_response_part(
                budget,
                it.get("call_id").and_then(Value::as_str),
                it.get("output").unwrap_or(&Value::Null),
            )],
        ),
        _ => chat_message(it, budget),
    }
}
