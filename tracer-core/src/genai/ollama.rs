//! Ollama native API: `/api/chat`, `/api/generate` (NDJSON streams, streaming unless
//! `"stream": false`), `/api/embed` and `/api/embeddings`. Its `/v1/*` OpenAI-compatible
//! endpoints are handled by [`super::openai`] (named `ollama` by port 11434 or the
//! `fp_ollama` fingerprint, see [`super::compat`]).
//!
//! The final line (`done: true`) carries `done_reason`, `prompt_eval_count` (input; omitted
//! when the prompt came from the KV cache: then unknown) and `eval_count` (output). An error
//! after streaming began is a `{"error": "…"}` line. No response id exists.

use serde_json::Value;

use super::body::Msg;
use super::common::{bool_at, f64_at, i64_at, str_at, strings_at, u64_at, RequestCtx};
use super::content::{self, Budget};
use super::detect::Detected;
use super::{Acc, Api, Framing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Generate,
    Embed,
}

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let kind = match req.path.trim_end_matches('/') {
        "/api/chat" => Kind::Chat,
        "/api/generate" => Kind::Generate,
        "/api/embed" | "/api/embeddings" => Kind::Embed,
        _ => return None,
    };
    if let Some(b) = req.body {
        b.get("model")?;
    }
    Some(Detected {
        provider: "ollama".into(),
        operation: match kind {
            Kind::Chat => "chat",
            Kind::Generate => "text_completion",
            Kind::Embed => "embeddings",
        },
        api_type: None,
        api: Box::new(Ollama { kind }),
    })
}

#[derive(Debug)]
pub struct Ollama {
    kind: Kind,
}

impl Api for Ollama {
    fn request(&mut self, req: &RequestCtx<'_>, acc: &mut Acc) {
        let r = &mut acc.call.request;
        let Some(b) = req.body else { return };
        r.model = str_at(b, &["model"]);
        if self.kind != Kind::Embed {
            // Ollama streams unless told not to.
            r.stream = Some(bool_at(b, &["stream"]).unwrap_or(true));
        }
        if let Some(o) = b.get("options") {
            r.max_tokens = u64_at(o, &["num_predict"]);
            r.temperature = f64_at(o, &["temperature"]);
            r.top_p = f64_at(o, &["top_p"]);
            r.top_k = f64_at(o, &["top_k"]);
            r.seed = i64_at(o, &["seed"]);
            r.stop_sequences = strings_at(o, &["stop"]);
            r.frequency_penalty = f64_at(o, &["frequency_penalty"]);
            r.presence_penalty = f64_at(o, &["presence_penalty"]);
        }
        if let Some(cap) = acc.content_cap {
            let mut budget = Budget::new(cap);
            let mut system = None;
            let msgs: Vec<Value> = match self.kind {
                Kind::Chat => b
                    .get("messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                        let mut parts = vec![content::text_part(
                            &mut budget,
                            m.get("content").and_then(Value::as_str).unwrap_or(""),
                        )];
                        if m.get("images").is_some_and(|i| i.is_array()) {
                            parts.push(content::generic_part("image"));
                        }
                        for tc in m
                            .get("tool_calls")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let f = tc.get("function");
                            parts.push(content::tool_call_part(
                                &mut budget,
                                None,
                                f.and_then(|f| f.get("name"))
                                    .and_then(Value::as_str)
                                    .unwrap_or(""),
                                f.and_then(|f| f.get("arguments")),
                            ));
                        }
                        content::message(role, parts)
                    })
                    .collect(),
                Kind::Generate => {
                    if let Some(s) = b.get("system").and_then(Value::as_str) {
                        system = Some(vec![content::text_part(&mut budget, s)]);
                    }
                    vec![content::message(
                        "user",
                        vec![content::text_part(
                            &mut budget,
                            b.get("prompt").and_then(Value::as_str).unwrap_or(""),
                        )],
                    )]
                }
                Kind::Embed => return,
            };
            let c = acc.content().expect("capture is on");
            c.input_messages = Some(Value::Array(msgs).to_string());
            c.system_instructions = system.map(|s| Value::Array(s).to_string());
            c.truncated |= budget.truncated;
        }
    }

    fn framing(&self, content_type: &str) -> Framing {
        let f = Framing::from_content_type(content_type);
        if f == Framing::Whole && unlabelled_stream(self.kind, content_type) {
            return Framing::Ndjson;
        }
        f
    }

    fn message(&mut self, msg: Msg<'_>, acc: &mut Acc) -> bool {
        match msg.json() {
            Some(v) => self.line(v, acc),
            None => false,
        }
    }

    fn whole(&mut self, v: &Value, acc: &mut Acc) {
        self.line(v, acc);
    }
}

/// Ollama labels its streams `application/x-ndjson`; a server that forgets the type and sends
/// nothing at all is read as NDJSON too (a single JSON object is a one-line NDJSON).
fn unlabelled_stream(kind: Kind, content_type: &str) -> bool {
    kind != Kind::Embed && content_type.is_empty()
}

impl Ollama {
    fn line(&mut self, v: &Value, acc: &mut Acc) -> bool {
        if let Some(e) = v.get("error") {
            if !e.is_null() {
                acc.error("error".into());
                return false;
            }
        }
        acc.set_response_model(str_at(v, &["model"]));
        let mut output = false;
        let nonempty = |x: Option<&Value>| x.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        match self.kind {
            Kind::Chat => {
                let m = v.get("message");
                let tools = m
                    .and_then(|m| m.get("tool_calls"))
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                output = nonempty(m.and_then(|m| m.get("content")))
                    || nonempty(m.and_then(|m| m.get("thinking")))
                    || tools;
                if let (Some(o), Some(m)) = (acc.output.as_mut(), m) {
                    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
                    o.reasoning(0, s("thinking"));
                    o.text(0, s("content"));
                    for (k, tc) in m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let f = tc.get("function");
                        o.tool_call(
                            0,
                            k as u64,
                            None,
                            f.and_then(|f| f.get("name")).and_then(Value::as_str),
                            &f.and_then(|f| f.get("arguments"))
                                .map(Value::to_string)
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            Kind::Generate => {
                output = nonempty(v.get("response")) || nonempty(v.get("thinking"));
                if let Some(o) = acc.out() {
                    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
                    o.reasoning(0, s("thinking"));
                    o.text(0, s("response"));
                }
            }
            Kind::Embed => {}
        }
        if self.kind == Kind::Embed || v.get("done").and_then(Value::as_bool) == Some(true) {
            acc.terminal = true;
            if let Some(r) = str_at(v, &["done_reason"]) {
                acc.finish_reason(0, &r);
            }
            let u = &mut acc.call.usage;
            u.input_tokens = u64_at(v, &["prompt_eval_count"]);
            if self.kind != Kind::Embed {
                u.output_tokens = u64_at(v, &["eval_count"]);
            }
        }
        output
    }
}
