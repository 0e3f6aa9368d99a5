//! Cohere v2: `POST /v2/chat` (SSE stream with typed events when `"stream": true`) and
//! `POST /v2/embed`. The response has no model echo (left unknown). Usage: the billed units
//! when present (what the account pays, as the GenAI conventions' development branch asks),
//! else the raw `tokens`. Finish reasons are lower-cased (`COMPLETE` -> `complete`).

use serde_json::Value;

use super::body::Msg;
use super::common::{bool_at, f64_at, get, i64_at, str_at, strings_at, u64_at, RequestCtx};
use super::content::Budget;
use super::detect::Detected;
use super::{Acc, Api};

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let p = req.path.trim_end_matches('/');
    let embed = p.ends_with("/v2/embed");
    if !(p.ends_with("/v2/chat") || embed) {
        return None;
    }
    if !req.host_contains("cohere") {
        // Without the host, insist on the shape.
        let b = req.body?;
        b.get("model")?;
        if !embed {
            b.get("messages")?;
        }
    }
    Some(Detected {
        provider: "cohere".into(),
        operation: if embed { "embeddings" } else { "chat" },
        api_type: None,
        api: Box::new(Cohere { embed }),
    })
}

#[derive(Debug)]
pub struct Cohere {
    embed: bool,
}

fn usage(u: &Value, acc: &mut Acc) {
    let pick = |k: &str| u64_at(u, &["billed_units", k]).or_else(|| u64_at(u, &["tokens", k]));
    acc.call.usage.input_tokens = pick("input_tokens");
    acc.call.usage.output_tokens = pick("output_tokens");
    acc.call.usage.cache_read_input_tokens = u64_at(u, &["cached_tokens"]);
}

impl Api for Cohere {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        let r = &mut acc.call.request;
        let Some(b) = req.body else { return };
        r.model = str_at(b, &["model"]);
        if self.embed {
            r.encoding_formats = strings_at(b, &["embedding_types"]);
            return;
        }
        r.max_tokens = u64_at(b, &["max_tokens"]);
        r.temperature = f64_at(b, &["temperature"]);
        r.top_p = f64_at(b, &["p"]);
        r.top_k = f64_at(b, &["k"]);
        r.stop_sequences = strings_at(b, &["stop_sequences"]);
        r.seed = i64_at(b, &["seed"]);
        r.frequency_penalty = f64_at(b, &["frequency_penalty"]);
        r.presence_penalty = f64_at(b, &["presence_penalty"]);
        r.stream = bool_at(b, &["stream"]);
        if let Some(cap) = acc.content_cap {
            let mut budget = Budget::new(cap);
            let msgs: Vec<Value> = b
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| super::openai::chat_message(m, &mut budget))
                .collect();
            let c = acc.content().expect("capture is on");
            c.input_messages = Some(Value::Array(msgs).to_string());
            c.truncated |= budget.truncated;
        }
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        if msg.is_done() {
            acc.terminal = true;
            return false;
        }
        let Some(v) = msg.json() else { return false };
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message-start" => {
                acc.set_response_id(str_at(v, &["id"]));
                false
            }
            "content-delta" | "tool-plan-delta" | "tool-call-start" | "tool-call-delta" => {
                if let Some(o) = acc.output.as_mut() {
                    if let Some(t) = str_at(v, &["delta", "message", "content", "text"]) {
                        o.text(0, &t);
                    }
                    if let Some(t) = str_at(v, &["delta", "message", "tool_plan"]) {
                        o.reasoning(0, &t);
                    }
                    if let Some(tc) = get(v, &["delta", "message", "tool_calls"]) {
                        let key = u64_at(v, &["index"]).unwrap_or(0);
                        o.tool_call(
                            0,
                            key,
                            tc.get("id").and_then(Value::as_str),
                            get(tc, &["function", "name"]).and_then(Value::as_str),
                            get(tc, &["function", "arguments"])
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                }
                true
            }
            "message-end" => {
                acc.terminal = true;
                if let Some(r) = str_at(v, &["delta", "finish_reason"]) {
                    acc.finish_reason(0, &r.to_ascii_lowercase());
                }
                if let Some(u) = get(v, &["delta", "usage"]) {
                    usage(u, acc);
                }
                if get(v, &["delta", "error"]).is_some_and(|e| !e.is_null()) {
                    acc.error("error".into());
                }
                false
            }
            _ => false,
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        acc.set_response_id(str_at(v, &["id"]));
        if self.embed {
            acc.call.usage.input_tokens = u64_at(v, &["meta", "billed_units", "input_tokens"]);
            return;
        }
        if let Some(r) = str_at(v, &["finish_reason"]) {
            acc.finish_reason(0, &r.to_ascii_lowercase());
        }
        if let Some(u) = v.get("usage") {
            usage(u, acc);
        }
        if let Some(o) = acc.output.as_mut() {
            for c in get(v, &["message", "content"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                o.text(0, c.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            if let Some(p) = str_at(v, &["message", "tool_plan"]) {
                o.reasoning(0, &p);
            }
            for (k, tc) in get(v, &["message", "tool_calls"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                o.tool_call(
                    0,
                    k as u64,
                    tc.get("id").and_then(Value::as_str),
                    get(tc, &["function", "name"]).and_then(Value::as_str),
                    get(tc, &["function", "arguments"])
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
            }
        }
    }
}
