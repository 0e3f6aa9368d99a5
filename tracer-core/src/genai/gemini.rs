//! Google Gemini API (`generativelanguage.googleapis.com`) and Vertex AI
//! (`{region}-aiplatform.googleapis.com`): `models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `alt=sse`, else a progressively streamed JSON array),
//! `:embedContent` / `:batchEmbedContents`; Vertex also serves Anthropic models at
//! `publishers/anthropic/models/{model}:rawPredict|streamRawPredict` (Anthropic format).
//!
//! The model is only in the URL; the stream flag is the method name. `usageMetadata` is
//! cumulative on every chunk: the last one wins. Output tokens = candidates + thoughts (thoughts
//! are not inside `candidatesTokenCount`); cached tokens are a subset of the prompt count.
//! Finish reasons are lower-cased (`STOP` -> `stop`), as the reference instrumentation does.

use serde_json::Value;

use super::anthropic;
use super::body::Msg;
use super::common::{error_code, get, is_error_body, percent_decode, str_at, u64_at, RequestCtx};
use super::content::{self, Budget};
use super::detect::Detected;
use super::{Acc, Api, Framing};

/// `…/models/{model}:{method}` -> (model, method).
fn model_and_method(path: &str) -> Option<(String, &str)> {
    let last = path.rsplit('/').next()?;
    let (model, method) = last.split_once(':')?;
    if model.is_empty() {
        return None;
    }
    Some((percent_decode(model), method))
}

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let (model, method) = model_and_method(req.path)?;
    let vertex = req.host_contains("aiplatform")
        || (req.path.contains("/projects/") && req.path.contains("/locations/"));
    let provider = if vertex {
        "gcp.vertex_ai"
    } else {
        "gcp.gemini"
    };
    let (operation, stream) = match method {
        "generateContent" => ("generate_content", false),
        "streamGenerateContent" => ("generate_content", true),
        "embedContent" | "batchEmbedContents" => ("embeddings", false),
        "rawPredict" | "streamRawPredict" if req.path.contains("/publishers/anthropic/") => {
            let mut d = anthropic::detect_any(req, Some(model))?;
            d.provider = provider.into();
            return Some(d);
        }
        _ => return None,
    };
    Some(Detected {
        provider: provider.into(),
        operation,
        api_type: None,
        api: Box::new(Gemini {
            model: Some(model),
            stream,
            embeddings: operation == "embeddings",
        }),
    })
}

/// A Gemini-shaped body (`contents` with `parts`) on an unknown path: the model (only ever in
/// the URL) stays unknown, and the provider is the generic Google one.
pub fn detect_body_only(_req: &RequestCtx<'_>) -> Option<Detected> {
    Some(Detected {
        provider: "gcp.gen_ai".into(),
        operation: "generate_content",
        api_type: None,
        api: Box::new(Gemini {
            model: None,
            stream: false,
            embeddings: false,
        }),
    })
}

#[derive(Debug)]
pub struct Gemini {
    model: Option<String>,
    stream: bool,
    embeddings: bool,
}

/// camelCase or snake_case (proto-JSON accepts both on requests).
fn either<'v>(v: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    v.get(camel).or_else(|| v.get(snake))
}

impl Api for Gemini {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        let r = &mut acc.call.request;
        r.model = self.model.clone();
        if !self.embeddings && self.model.is_some() {
            r.stream = Some(self.stream); // the method in the URL says it
        }
        let Some(b) = req.body else { return };
        if let Some(g) = either(b, "generationConfig", "generation_config") {
            let num = |c: &str, s: &str| either(g, c, s).and_then(Value::as_f64);
            let int = |c: &str, s: &str| either(g, c, s).and_then(Value::as_u64);
            r.max_tokens = int("maxOutputTokens", "max_output_tokens");
            r.temperature = num("temperature", "temperature");
            r.top_p = num("topP", "top_p");
            r.top_k = num("topK", "top_k");
            r.choice_count = int("candidateCount", "candidate_count");
            r.seed = either(g, "seed", "seed").and_then(Value::as_i64);
            r.presence_penalty = num("presencePenalty", "presence_penalty");
            r.frequency_penalty = num("frequencyPenalty", "frequency_penalty");
            r.stop_sequences = either(g, "stopSequences", "stop_sequences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                });
        }
        if let Some(cap) = acc.content_cap {
            if !self.embeddings {
                input_content(b, cap, acc);
            }
        }
    }

    fn framing(&self, content_type: &str) -> Framing {
        match Framing::from_content_type(content_type) {
            Framing::Whole if self.stream => Framing::JsonArray,
            f => f,
        }
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        match msg.json() {
            Some(v) => response(v, acc),
            None => false,
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        match v {
            // a streamed JSON array read whole (the method was not known)
            Value::Array(items) => items.iter().for_each(|i| {
                response(i, acc);
            }),
            _ => {
                response(v, acc);
            }
        }
    }
}

/// One `GenerateContentResponse` (a whole body or one stream chunk). Returns whether it
/// carried output (a candidate with parts).
fn response(v: &Value, acc: &mut Acc) -> bool {
    if is_error_body(v) {
        acc.error(error_code(v).unwrap_or_else(|| "error".into()));
        return false;
    }
    if let Some(m) = str_at(v, &["modelVersion"]) {
        acc.set_response_model(Some(m.strip_prefix("models/").unwrap_or(&m).to_string()));
    }
    acc.set_response_id(str_at(v, &["responseId"]));
    if let Some(u) = v.get("usageMetadata") {
        let candidates = u64_at(u, &["candidatesTokenCount"]);
        let thoughts = u64_at(u, &["thoughtsTokenCount"]);
        let usage = &mut acc.call.usage;
        usage.input_tokens = u64_at(u, &["promptTokenCount"]);
        usage.output_tokens = match (candidates, thoughts) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
        };
        usage.reasoning_output_tokens = thoughts;
        usage.cache_read_input_tokens = u64_at(u, &["cachedContentTokenCount"]);
    }
    if let Some(reason) = str_at(v, &["promptFeedback", "blockReason"]) {
        acc.finish_reason(0, &reason.to_ascii_lowercase());
        acc.terminal = true;
    }
    let mut output = false;
    for (n, c) in v
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let i = u64_at(c, &["index"]).unwrap_or(n as u64);
        let parts = get(c, &["content", "parts"]).and_then(Value::as_array);
        if parts.is_some_and(|p| !p.is_empty()) {
            output = true;
        }
        if let Some(o) = acc.out() {
            o.role(i, "assistant");
            for (k, p) in parts.into_iter().flatten().enumerate() {
                let text = p.get("text").and_then(Value::as_str).unwrap_or("");
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    o.reasoning(i, text);
                } else if let Some(fc) = p.get("functionCall") {
                    o.tool_call(
                        i,
                        1000 + k as u64,
                        fc.get("id").and_then(Value::as_str),
                        fc.get("name").and_then(Value::as_str),
                        &fc.get("args").map(Value::to_string).unwrap_or_default(),
                    );
                } else {
                    o.text(i, text);
                }
            }
        }
        if let Some(fr) = str_at(c, &["finishReason"]) {
            acc.finish_reason(i, &fr.to_ascii_lowercase());
            acc.terminal = true;
        }
    }
    output
}

fn input_content(b: &Value, cap: usize, acc: &mut Acc) {
    let mut budget = Budget::new(cap);
    let system = either(b, "systemInstruction", "system_instruction")
        .map(|s| parts(s.get("parts").unwrap_or(&Value::Null), &mut budget));
    let msgs: Vec<Value> = b
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let role = match c.get("role").and_then(Value::as_str) {
                Some("model") => "assistant",
                Some(r) => r,
                None => "user",
            };
            content::message(
                role,
                parts(c.get("parts").unwrap_or(&Value::Null), &mut budget),
            )
        })
        .collect();
    let c = acc.content().expect("capture is on");
    c.input_messages = Some(Value::Array(msgs).to_string());
    c.system_instructions = system.map(|s| Value::Array(s).to_string());
    c.truncated |= budget.truncated;
}

fn parts(p: &Value, budget: &mut Budget) -> Vec<Value> {
    p.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            if let Some(fc) = either(p, "functionCall", "function_call") {
                content::tool_call_part(
                    budget,
                    fc.get("id").and_then(Value::as_str),
                    fc.get("name").and_then(Value::as_str).unwrap_or(""),
                    fc.get("args"),
                )
            } else if let Some(fr) = either(p, "functionResponse", "function_response") {
                content::tool_response_part(
                    budget,
                    fr.get("id").and_then(Value::as_str),
                    fr.get("response").unwrap_or(&Value::Null),
                )
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    content::reasoning_part(budget, t)
                } else {
                    content::text_part(budget, t)
                }
            } else if either(p, "inlineData", "inline_data").is_some() {
                content::generic_part("blob")
            } else if either(p, "fileData", "file_data").is_some() {
                content::generic_part("file")
            } else {
                content::generic_part("generic")
            }
        })
        .collect()
}
