//! AWS Bedrock Runtime: `POST /model/{modelId}/converse | converse-stream | invoke |
//! invoke-with-response-stream` (model id percent-encoded in the path: decoded here).
//!
//! - Converse: JSON with `output.message`, `stopReason`, `usage` (no model, no id: the id is
//!   the `x-amzn-RequestId` header; the response model stays unknown rather than copied from
//!   the request).
//! - ConverseStream: AWS event stream; `contentBlockDelta` is output, `messageStop` has the
//!   stop reason, `metadata` the usage; exceptions arrive as `:message-type = exception` frames
//!   after HTTP 200.
//! - InvokeModel(WithResponseStream): the model's native body. Anthropic bodies (with
//!   `anthropic_version`) are read by [`super::anthropic`], stream `chunk` frames carry the
//!   native events base64-encoded in `{"bytes": …}`. Usage also comes in the
//!   `x-amzn-bedrock-{input,output}-token-count` response headers and in
//!   `amazon-bedrock-invocationMetrics` on the last chunk.
//!
//! Token rule: Converse reports cache reads/writes beside `inputTokens` (Anthropic semantics),
//! so OTel input = inputTokens + cacheReadInputTokens + cacheWriteInputTokens.

use base64::Engine;
use serde_json::Value;

use super::anthropic::Anthropic;
use super::body::Msg;
use super::common::{f64_at, get, percent_decode, str_at, strings_at, u64_at, RequestCtx};
use super::content::{self, Budget};
use super::detect::Detected;
use super::{Acc, Api};
use crate::http::ResponseHead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let rest = req.path.strip_prefix("/model/")?;
    let (id, op) = rest.rsplit_once('/')?;
    let op = match op {
        "converse" => Op::Converse,
        "converse-stream" => Op::ConverseStream,
        "invoke" => Op::Invoke,
        "invoke-with-response-stream" => Op::InvokeStream,
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    // `/model/x/invoke` is generic enough to need the host; Converse paths are distinctive.
    if matches!(op, Op::Invoke | Op::InvokeStream) && !req.host_contains("bedrock") {
        return None;
    }
    let model = percent_decode(id);
    let body = req.body;
    let anthropic = body.is_some_and(|b| b.get("anthropic_version").is_some());
    let chat = matches!(op, Op::Converse | Op::ConverseStream)
        || body.is_some_and(|b| b.get("messages").is_some());
    Some(Detected {
        provider: "aws.bedrock".into(),
        operation: if chat { "chat" } else { "text_completion" },
        api_type: None,
        api: Box::new(Bedrock {
            op,
            model: model.clone(),
            anthropic: anthropic.then(|| Anthropic::new(Some(model))),
            header_usage: (None, None),
        }),
    })
}

#[derive(Debug)]
pub struct Bedrock {
    op: Op,
    model: String,
    /// InvokeModel with an Anthropic body: the Anthropic reader does the work.
    anthropic: Option<Anthropic>,
    header_usage: (Option<u64>, Option<u64>),
}

impl Api for Bedrock {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        if let Some(a) = &mut self.anthropic {
            a.request(req, acc);
            acc.call.request.stream = Some(self.op == Op::InvokeStream);
            return;
        }
        let r = &mut acc.call.request;
        r.model = Some(self.model.clone());
        r.stream = Some(matches!(self.op, Op::ConverseStream | Op::InvokeStream));
        let Some(b) = req.body else { return };
        match self.op {
            Op::Converse | Op::ConverseStream => {
                if let Some(c) = b.get("inferenceConfig") {
                    r.max_tokens = u64_at(c, &["maxTokens"]);
                    r.temperature = f64_at(c, &["temperature"]);
                    r.top_p = f64_at(c, &["topP"]);
                    r.stop_sequences = strings_at(c, &["stopSequences"]);
                }
                r.top_k = f64_at(b, &["additionalModelRequestFields", "top_k"]);
                if let Some(cap) = acc.content_cap {
                    converse_input(b, cap, acc);
                }
            }
            Op::Invoke | Op::InvokeStream => {
                // Native bodies: Llama, Mistral, Cohere, Titan, Nova.
                r.max_tokens = u64_at(b, &["max_tokens"])
                    .or_else(|| u64_at(b, &["max_gen_len"]))
                    .or_else(|| u64_at(b, &["textGenerationConfig", "maxTokenCount"]))
                    .or_else(|| u64_at(b, &["inferenceConfig", "max_new_tokens"]))
                    .or_else(|| u64_at(b, &["inferenceConfig", "maxTokens"]));
                r.temperature = f64_at(b, &["temperature"])
                    .or_else(|| f64_at(b, &["textGenerationConfig", "temperature"]))
                    .or_else(|| f64_at(b, &["inferenceConfig", "temperature"]));
                r.top_p = f64_at(b, &["top_p"])
                    .or_else(|| f64_at(b, &["textGenerationConfig", "topP"]))
                    .or_else(|| f64_at(b, &["inferenceConfig", "topP"]));
                r.top_k = f64_at(b, &["top_k"]).or_else(|| f64_at(b, &["inferenceConfig", "topK"]));
                r.stop_sequences = strings_at(b, &["stop"])
                    .or_else(|| strings_at(b, &["textGenerationConfig", "stopSequences"]))
                    .or_else(|| strings_at(b, &["inferenceConfig", "stopSequences"]));
                if let Some(cap) = acc.content_cap {
                    if b.get("messages").is_some() {
                        converse_input(b, cap, acc); // Nova's native shape
                    } else if let Some(p) =
                        str_at(b, &["prompt"]).or_else(|| str_at(b, &["inputText"]))
                    {
                        let mut budget = Budget::new(cap);
                        let msg =
                            content::message("user", vec![content::text_part(&mut budget, &p)]);
                        let c = acc.content().expect("capture is on");
                        c.input_messages = Some(Value::Array(vec![msg]).to_string());
                        c.truncated |= budget.truncated;
                    }
                }
            }
        }
    }

    fn response_head(&mut self, head: &ResponseHead, acc: &mut Acc) {
        let h = &head.headers;
        acc.set_response_id(h.get("x-amzn-requestid").map(str::to_string));
        let n = |k: &str| h.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        self.header_usage = (
            n("x-amzn-bedrock-input-token-count"),
            n("x-amzn-bedrock-output-token-count"),
        );
        if head.status >= 400 {
            // `x-amzn-ErrorType: ThrottlingException:http://internal.amazon.com/...`
            if let Some(t) = h.get("x-amzn-errortype") {
                let t = t.split(':').next().unwrap_or(t).trim();
                if !t.is_empty() {
                    acc.call.error_type = Some(t.to_string());
                }
            }
        }
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        let Msg::Aws { msg: m, json } = msg else {
            // Not an event stream (a mislabelled body): read as JSON events.
            return match (msg.json(), &mut self.anthropic) {
                (Some(v), Some(a)) => a.event(v, acc),
                _ => false,
            };
        };
        match m.message_type.as_deref() {
            Some("exception") => {
                acc.error(
                    m.exception_type
                        .clone()
                        .unwrap_or_else(|| "exception".into()),
                );
                return false;
            }
            Some("error") => {
                acc.error(m.error_code.clone().unwrap_or_else(|| "error".into()));
                return false;
            }
            _ => {}
        }
        let Some(v) = json else { return false };
        match m.event_type.as_deref().unwrap_or("") {
            "chunk" => {
                let Some(inner) = v
                    .get("bytes")
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                else {
                    return false;
                };
                if inner.get("type").is_some() {
                    // Anthropic event (also when the request body was not seen)
                    let a = self
                        .anthropic
                        .get_or_insert_with(|| Anthropic::new(Some(self.model.clone())));
                    return a.event(&inner, acc);
                }
                native_chunk(&inner, acc)
            }
            "messageStart" => false,
            "contentBlockStart" => {
                let idx = u64_at(v, &["contentBlockIndex"]).unwrap_or(0);
                if let (Some(o), Some(t)) = (acc.output.as_mut(), get(v, &["start", "toolUse"])) {
                    o.tool_call(
                        0,
                        idx,
                        t.get("toolUseId").and_then(Value::as_str),
                        t.get("name").and_then(Value::as_str),
                        "",
                    );
                }
                false
            }
            "contentBlockDelta" => {
                let idx = u64_at(v, &["contentBlockIndex"]).unwrap_or(0);
                if let (Some(o), Some(d)) = (acc.output.as_mut(), v.get("delta")) {
                    if let Some(t) = d.get("text").and_then(Value::as_str) {
                        o.text(0, t);
                    }
                    if let Some(t) = str_at(d, &["reasoningContent", "text"]) {
                        o.reasoning(0, &t);
                    }
                    if let Some(t) = str_at(d, &["toolUse", "input"]) {
                        o.tool_call(0, idx, None, None, &t);
                    }
                }
                true
            }
            "messageStop" => {
                if let Some(r) = str_at(v, &["stopReason"]) {
                    acc.finish_reason(0, &r);
                }
                false
            }
            "metadata" => {
                acc.terminal = true;
                converse_usage(v.get("usage"), acc);
                false
            }
            _ => false,
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        if v.get("type").and_then(Value::as_str) == Some("message") || self.anthropic.is_some() {
            let a = self
                .anthropic
                .get_or_insert_with(|| Anthropic::new(Some(self.model.clone())));
            a.whole(v, acc);
            return;
        }
        match self.op {
            Op::Converse | Op::ConverseStream => converse_whole(v, acc),
            _ => {
                if get(v, &["output", "message"]).is_some() {
                    converse_whole(v, acc); // Amazon Nova's native shape is Converse-like
                } else {
                    native_chunk(v, acc);
                }
            }
        }
    }

    fn end(&mut self, acc: &mut Acc) {
        if let Some(a) = &mut self.anthropic {
            a.settle_usage(acc);
        }
        let u = &mut acc.call.usage;
        u.input_tokens = u.input_tokens.or(self.header_usage.0);
        u.output_tokens = u.output_tokens.or(self.header_usage.1);
    }
}

fn converse_usage(u: Option<&Value>, acc: &mut Acc) {
    let Some(u) = u.filter(|u| u.is_object()) else {
        return;
    };
    let input = u64_at(u, &["inputTokens"]);
    let read = u64_at(u, &["cacheReadInputTokens"]);
    let write = u64_at(u, &["cacheWriteInputTokens"]);
    let usage = &mut acc.call.usage;
    usage.input_tokens = input.map(|i| i + read.unwrap_or(0) + write.unwrap_or(0));
    usage.output_tokens = u64_at(u, &["outputTokens"]);
    usage.cache_read_input_tokens = read;
    usage.cache_creation_input_tokens = write;
}

fn converse_whole(v: &Value, acc: &mut Acc) {
    if let Some(r) = str_at(v, &["stopReason"]) {
        acc.finish_reason(0, &r);
    }
    converse_usage(v.get("usage"), acc);
    if let Some(o) = acc.output.as_mut() {
        for (n, c) in get(v, &["output", "message", "content"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                o.text(0, t);
            } else if let Some(t) = str_at(c, &["reasoningContent", "reasoningText", "text"]) {
                o.reasoning(0, &t);
            } else if let Some(t) = c.get("toolUse") {
                o.tool_call(
                    0,
                    n as u64,
                    t.get("toolUseId").and_then(Value::as_str),
                    t.get("name").and_then(Value::as_str),
                    &t.get("input").map(Value::to_string).unwrap_or_default(),
                );
            }
        }
    }
}

/// A native (non-Anthropic) InvokeModel body or stream chunk: Llama `generation`, Titan
/// `outputText`, Mistral `outputs[].text`, Cohere `text`; stop reasons; invocation metrics.
fn native_chunk(v: &Value, acc: &mut Acc) -> bool {
    if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
        let u = &mut acc.call.usage;
        u.input_tokens = u.input_tokens.or(u64_at(m, &["inputTokenCount"]));
        u.output_tokens = u.output_tokens.or(u64_at(m, &["outputTokenCount"]));
        acc.terminal = true;
    }
    let text = str_at(v, &["generation"])
        .or_else(|| str_at(v, &["outputText"]))
        .or_else(|| {
            v.get("outputs")
                .and_then(|o| o.get(0))
                .and_then(|o| str_at(o, &["text"]))
        })
        .or_else(|| str_at(v, &["text"]))
        .or_else(|| str_at(v, &["completion"]));
    let reason = str_at(v, &["stop_reason"])
        .or_else(|| str_at(v, &["completionReason"]))
        .or_else(|| {
            v.get("results")
                .and_then(|r| r.get(0))
                .and_then(|r| str_at(r, &["completionReason"]))
        })
        .or_else(|| {
            v.get("outputs")
                .and_then(|o| o.get(0))
                .and_then(|o| str_at(o, &["stop_reason"]))
        })
        .or_else(|| str_at(v, &["finish_reason"]));
    if let Some(r) = reason {
        acc.finish_reason(0, &r);
    }
    let u = &mut acc.call.usage;
    u.input_tokens = u
        .input_tokens
        .or(u64_at(v, &["prompt_token_count"]))
        .or(u64_at(v, &["inputTextTokenCount"]));
    u.output_tokens = u.output_tokens.or(u64_at(v, &["generation_token_count"]));
    match text {
        Some(t) if !t.is_empty() => {
            if let Some(o) = acc.out() {
                o.text(0, &t);
            }
            true
        }
        _ => false,
    }
}

fn converse_input(b: &Value, cap: usize, acc: &mut Acc) {
    let mut budget = Budget::new(cap);
    let system = b.get("system").and_then(Value::as_array).map(|s| {
        s.iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| content::text_part(&mut budget, t))
            .collect::<Vec<_>>()
    });
    let msgs: Vec<Value> = b
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let parts = m
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    if let Some(t) = c.get("text").and_then(Value::as_str) {
                        content::text_part(&mut budget, t)
                    } else if let Some(t) = c.get("toolUse") {
                        content::tool_call_part(
                            &mut budget,
                            t.get("toolUseId").and_then(Value::as_str),
                            t.get("name").and_then(Value::as_str).unwrap_or(""),
                            t.get("input"),
                        )
                    } else if let Some(t) = c.get("toolResult") {
                        content::tool_response_part(
                            &mut budget,
                            t.get("toolUseId").and_then(Value::as_str),
                            t.get("content").unwrap_or(&Value::Null),
                        )
                    } else if c.get("image").is_some() {
                        content::generic_part("image")
                    } else {
                        content::generic_part("generic")
                    }
                })
                .collect();
            content::message(role, parts)
        })
        .collect();
    let c = acc.content().expect("capture is on");
    c.input_messages = Some(Value::Array(msgs).to_string());
    c.system_instructions = system.map(|s| Value::Array(s).to_string());
    c.truncated |= budget.truncated;
}
