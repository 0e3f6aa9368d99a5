//! Opt-in message content in the OTel GenAI shape: `gen_ai.input.messages`,
//! `gen_ai.output.messages`, `gen_ai.system_instructions` as JSON strings.
//!
//! Messages are `{"role", "parts": [...]}`; parts are `{"type":"text","content"}`,
//! `{"type":"reasoning","content"}`, `{"type":"tool_call","id","name","arguments"}`,
//! `{"type":"tool_call_response","id","response"}`, or a generic `{"type": <kind>}` for media.
//! A shared [`Budget`] caps the text kept per call; what goes past it is cut (at a char
//! boundary) and `Content::truncated` says so. Output messages of a stream are assembled from
//! the deltas as they arrive, within the same budget.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Bytes of text still allowed.
#[derive(Debug, Clone)]
pub struct Budget {
    left: usize,
    pub truncated: bool,
}

impl Budget {
    pub fn new(cap: usize) -> Self {
        Budget {
            left: cap,
            truncated: false,
        }
    }

    /// The part of `s` that fits.
    pub fn take(&mut self, s: &str) -> String {
        if s.len() <= self.left {
            self.left -= s.len();
            return s.to_string();
        }
        self.truncated = true;
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.left -= end;
        s[..end].to_string()
    }

    /// A JSON value (tool arguments, tool results) kept whole when its text fits, else as a
    /// cut string.
    pub fn take_value(&mut self, v: &Value) -> Value {
        let text = match v {
            Value::String(s) => return Value::String(self.take(s)),
            other => other.to_string(),
        };
        if text.len() <= self.left {
            self.left -= text.len();
            v.clone()
        } else {
            Value::String(self.take(&text))
        }
    }
}

/// Part constructors.
pub fn text_part(b: &mut Budget, s: &str) -> Value {
    json!({"type": "text", "content": b.take(s)})
}

pub fn reasoning_part(b: &mut Budget, s: &str) -> Value {
    json!({"type": "reasoning", "content": b.take(s)})
}

pub fn tool_call_part(b: &mut Budget, id: Option<&str>, name: &str, args: Option<&Value>) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), "tool_call".into());
    if let Some(id) = id {
        p.insert("id".into(), id.into());
    }
    p.insert("name".into(), b.take(name).into());
    if let Some(a) = args {
        // OpenAI sends arguments as a JSON string: keep the object when it parses
        let parsed = a
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or_else(|| a.clone());
        p.insert("arguments".into(), b.take_value(&parsed));
    }
    Value::Object(p)
}

pub fn tool_response_part(b: &mut Budget, id: Option<&str>, response: &Value) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), "tool_call_response".into());
    if let Some(id) = id {
        p.insert("id".into(), id.into());
    }
    p.insert("response".into(), b.take_value(response));
    Value::Object(p)
}

pub fn generic_part(kind: &str) -> Value {
    json!({"type": kind})
}

pub fn message(role: &str, parts: Vec<Value>) -> Value {
    json!({"role": role, "parts": parts})
}

/// A part of a streamed output message being assembled.
#[derive(Debug, Clone)]
enum OutPart {
    Text(String),
    Reasoning(String),
    ToolCall {
        key: u64,
        id: Option<String>,
        name: String,
        args: String,
    },
}

#[derive(Debug, Clone, Default)]
struct OutMessage {
    role: Option<String>,
    parts: Vec<OutPart>,
    finish_reason: Option<String>,
}

/// Output messages assembled from a response (whole or streamed), one per choice/candidate
/// index.
#[derive(Debug, Clone)]
pub struct Output {
    budget: Budget,
    messages: BTreeMap<u64, OutMessage>,
    scratch: OutMessage,
}

/// Parts kept per output message.
const MAX_PARTS: usize = 256;

impl Output {
    pub fn new(cap: usize) -> Self {
        Output {
            budget: Budget::new(cap),
            messages: BTreeMap::new(),
            scratch: OutMessage::default(),
        }
    }

    /// The message of choice `index`; beyond the caps (choices, parts) a scratch message that is
    /// never exported, so hostile indices cannot grow memory.
    fn msg(&mut self, index: u64) -> &mut OutMessage {
        if (index as usize) < super::MAX_CHOICES {
            let m = self.messages.entry(index).or_default();
            if m.parts.len() < MAX_PARTS {
                return m;
            }
        }
        self.scratch = OutMessage::default();
        self.budget.truncated = true;
        &mut self.scratch
    }

    pub fn role(&mut self, index: u64, role: &str) {
        self.msg(index).role = Some(role.to_string());
    }

    pub fn text(&mut self, index: u64, s: &str) {
        if s.is_empty() {
            return;
        }
        let s = self.budget.take(s);
        let m = self.msg(index);
        match m.parts.last_mut() {
            Some(OutPart::Text(t)) => t.push_str(&s),
            _ => m.parts.push(OutPart::Text(s)),
        }
    }

    pub fn reasoning(&mut self, index: u64, s: &str) {
        if s.is_empty() {
            return;
        }
        let s = self.budget.take(s);
        let m = self.msg(index);
        match m.parts.last_mut() {
            Some(OutPart::Reasoning(t)) => t.push_str(&s),
            _ => m.parts.push(OutPart::Reasoning(s)),
        }
    }

    /// A tool call (or a fragment of one: `key` identifies the call within the message; `id`
    /// and `name` arrive once, `args` in pieces).
    pub fn tool_call(
        &mut self,
        index: u64,
        key: u64,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) {
        let name = name.map(|n| self.budget.take(n));
        let args = self.budget.take(args);
        let m = self.msg(index);
        let existing = m.parts.iter_mut().find_map(|p| match p {
            OutPart::ToolCall {
                key: k,
                id,
                name,
                args,
            } if *k == key => Some((id, name, args)),
            _ => None,
        });
        match existing {
            Some((pid, pname, pargs)) => {
                if pid.is_none() {
                    *pid = id.map(str::to_string);
                }
                if let Some(n) = name {
                    pname.push_str(&n);
                }
                pargs.push_str(&args);
            }
            None => m.parts.push(OutPart::ToolCall {
                key,
                id: id.map(str::to_string),
                name: name.unwrap_or_default(),
                args,
            }),
        }
    }

    pub fn finish_reason(&mut self, index: u64, reason: &str) {
        self.msg(index).finish_reason = Some(reason.to_string());
    }

    pub fn truncated(&self) -> bool {
        self.budget.truncated
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The `gen_ai.output.messages` JSON. A message without a finish reason (a cut stream)
    /// reports `error`, as the conventions ask.
    pub fn to_json(&self) -> String {
        let msgs: Vec<Value> = self
            .messages
            .values()
            .map(|m| {
                let parts: Vec<Value> = m
                    .parts
                    .iter()
                    .map(|p| match p {
                        OutPart::Text(t) => json!({"type": "text", "content": t}),
                        OutPart::Reasoning(t) => json!({"type": "reasoning", "content": t}),
                        OutPart::ToolCall { id, name, args, .. } => {
                            let mut o = Map::new();
                            o.insert("type".into(), "tool_call".into());
                            if let Some(id) = id {
                                o.insert("id".into(), id.clone().into());
                            }
                            o.insert("name".into(), name.clone().into());
                            if !args.is_empty() {
                                let a = serde_json::from_str::<Value>(args)
                                    .unwrap_or_else(|_| Value::String(args.clone()));
                                o.insert("arguments".into(), a);
                            }
                            Value::Object(o)
                        }
                    })
                    .collect();
                json!({
                    "role": m.role.as_deref().unwrap_or("assistant"),
                    "parts": parts,
                    "finish_reason": m.finish_reason.as_deref().unwrap_or("error"),
                })
            })
            .collect();
        Value::Array(msgs).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_cuts_at_char_boundary() {
        let mut b = Budget::new(5);
        assert_eq!(b.take("ab"), "ab");
        assert_eq!(b.take("cé€"), "cé"); // 'c' 1 + 'é' 2 = 3 fits, '€' does not
        assert!(b.truncated);
        assert_eq!(b.take("x"), "");
    }

    #[test]
    fn streamed_output_assembles_and_caps() {
        let mut o = Output::new(20);
        o.role(0, "assistant");
        o.text(0, "Hel");
        o.text(0, "lo");
        o.tool_call(0, 0, Some("call_1"), Some("get_weather"), "{\"city\":");
        o.tool_call(0, 0, None, None, "\"Paris\"}");
        o.finish_reason(0, "tool_calls");
        let v: Value = serde_json::from_str(&o.to_json()).unwrap();
        assert_eq!(v[0]["parts"][0]["content"], "Hello");
        assert_eq!(v[0]["parts"][1]["name"], "get_weather");
        // 5 + 11 = 16 bytes used: the arguments were cut to 4 bytes, kept as a string
        assert_eq!(v[0]["parts"][1]["arguments"], "{\"ci");
        assert_eq!(v[0]["finish_reason"], "tool_calls");
        assert!(o.truncated());
    }
}
