//! The fast path for OpenAI Chat/Completions stream chunks: a chunk deserialized into small
//! borrowing structs instead of a `serde_json::Value` (the Value's maps and strings were most of
//! the pipeline's cost on SSE streams). It reads exactly what [`super::openai`]'s `Value` path
//! reads, with the same meaning; anything whose meaning could differ (a field of an unexpected
//! type, a duplicate key, an error, Groq's `x_groq`, llama.cpp's `timings`) fails the typed read
//! or is refused by [`Chunk::plain`], and the caller takes the `Value` path.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Number;

use super::typed::{count, nonempty, present, Str};

use super::content::Output;
use super::Acc;

#[derive(Deserialize)]
pub struct Chunk<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    model: Str<'a>,
    #[serde(borrow)]
    system_fingerprint: Str<'a>,
    #[serde(borrow)]
    service_tier: Str<'a>,
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    /// A non-null `error`, `x_groq` or `timings`: left to the `Value` path.
    error: Option<IgnoredAny>,
    x_groq: Option<IgnoredAny>,
    timings: Option<IgnoredAny>,
    usage: Option<Usage>,
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<Number>,
    completion_tokens: Option<Number>,
    prompt_cache_hit_tokens: Option<Number>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<Number>,
    cache_write_tokens: Option<Number>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<Number>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    index: Option<Number>,
    #[serde(borrow)]
    text: Str<'a>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    finish_reason: Str<'a>,
    /// vLLM's marker: present at all (even null) refines the provider.
    #[serde(default, deserialize_with = "present")]
    stop_reason: bool,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: Str<'a>,
    #[serde(borrow)]
    refusal: Str<'a>,
    #[serde(borrow)]
    reasoning_content: Str<'a>,
    #[serde(borrow)]
    reasoning: Str<'a>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    index: Option<Number>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    arguments: Str<'a>,
}

impl Chunk<'_> {
    /// Nothing in it that only the `Value` path handles.
    pub fn plain(&self) -> bool {
        self.error.is_none()
            && self.x_groq.is_none()
            && self.timings.is_none()
            && self.ty.as_deref() != Some("error")
    }

    /// What `openai::chunk` does with the same chunk read as a `Value`. `completions`: the
    /// legacy Completions API (`text` per choice) rather than Chat (`delta`).
    pub fn apply(&self, completions: bool, acc: &mut Acc) -> bool {
        // common_fields
        acc.set_response_id_str(self.id.as_deref().unwrap_or(""));
        acc.set_response_model_str(self.model.as_deref().unwrap_or(""));
        if let Some(f) = nonempty(&self.system_fingerprint) {
            acc.call.response.system_fingerprint = Some(f.to_string());
        }
        if let Some(t) = nonempty(&self.service_tier) {
            acc.call.response.service_tier = Some(t.to_string());
        }
        // compat::refine (`timings` was refused by `plain`)
        let provider = &mut acc.call.provider;
        if provider == "openai_compatible" {
            if self.system_fingerprint.as_deref() == Some("fp_ollama") {
                *provider = "ollama".into();
            } else if self.choices.iter().flatten().any(|c| c.stop_reason) {
                *provider = "vllm".into();
            }
        }
        // chat_usage (`x_groq` was refused by `plain`)
        if let Some(u) = &self.usage {
            let usage = &mut acc.call.usage;
            let pd = u.prompt_tokens_details.as_ref();
            usage.input_tokens = count(&u.prompt_tokens);
            usage.output_tokens = count(&u.completion_tokens);
            usage.cache_read_input_tokens = pd
                .and_then(|d| count(&d.cached_tokens))
                .or_else(|| count(&u.prompt_cache_hit_tokens));
            usage.cache_creation_input_tokens = pd.and_then(|d| count(&d.cache_write_tokens));
            usage.reasoning_output_tokens = u
                .completion_tokens_details
                .as_ref()
                .and_then(|d| count(&d.reasoning_tokens));
        }
        let mut output = false;
        for (n, c) in self.choices.iter().flatten().enumerate() {
            let i = count(&c.index).unwrap_or(n as u64);
            if completions {
                let t = c.text.as_deref().unwrap_or("");
                if !t.is_empty() {
                    output = true;
                    if let Some(o) = acc.out() {
                        o.text(i, t);
                    }
                }
            } else if let Some(d) = &c.delta {
                if d.is_output() {
                    output = true;
                }
                if let Some(o) = acc.out() {
                    d.content(o, i);
                }
            }
            if let Some(fr) = nonempty(&c.finish_reason) {
                acc.finish_reason(i, fr);
            }
        }
        output
    }
}

impl Delta<'_> {
    fn is_output(&self) -> bool {
        [
            &self.content,
            &self.refusal,
            &self.reasoning_content,
            &self.reasoning,
        ]
        .iter()
        .any(|s| nonempty(s).is_some())
            || self.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// As `openai::delta_content`.
    fn content(&self, o: &mut Output, i: u64) {
        if let Some(r) = &self.role {
            o.role(i, r);
        }
        for t in [&self.reasoning_content, &self.reasoning]
            .into_iter()
            .flatten()
        {
            o.reasoning(i, t);
        }
        for t in [&self.content, &self.refusal].into_iter().flatten() {
            o.text(i, t);
        }
        for (n, tc) in self.tool_calls.iter().flatten().enumerate() {
            let f = tc.function.as_ref();
            o.tool_call(
                i,
                count(&tc.index).unwrap_or(n as u64),
                tc.id.as_deref(),
                f.and_then(|f| f.name.as_deref()),
                f.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::LlmCall;
    use crate::genai::openai::{self, Kind};

    fn acc() -> Acc {
        Acc {
            call: LlmCall {
                provider: "openai_compatible".into(),
                ..Default::default()
            },
            output: Some(Output::new(1 << 20)),
            content_cap: Some(1 << 20),
            terminal: false,
            stream_error: None,
        }
    }

    /// The typed reading of `data` against the `Value` reading of the same chunk, applied twice
    /// (a stream repeats fields). None when the fast path declines it.
    fn compare(data: &str, kind: Kind) -> Option<()> {
        let c: Chunk = serde_json::from_str(data).ok().filter(Chunk::plain)?;
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        let (mut fast, mut slow) = (acc(), acc());
        for _ in 0..2 {
            let a = c.apply(kind == Kind::Completions, &mut fast);
            let b = openai::chunk(kind, &v, &mut slow);
            assert_eq!(a, b, "output flag for {data}");
        }
        assert_eq!(fast.call, slow.call, "{data}");
        assert_eq!(
            format!("{:?}", fast.output),
            format!("{:?}", slow.output),
            "{data}"
        );
        assert_eq!(fast.stream_error, slow.stream_error);
        Some(())
    }

    #[test]
    fn typed_chunks_read_like_values() {
        let same = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","model":"m","system_fingerprint":"fp_1","service_tier":"default","choices":[{"index":0,"delta":{"content":"h\u00e9\n\"x\""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"","model":"","choices":[],"prompt_filter_results":[{"prompt_index":0}]}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12.0,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1.5,"prompt_cache_hit_tokens":4,"prompt_tokens_details":null}}"#,
            r#"{"id":"c","choices":[],"usage":null}"#,
            r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}},{"delta":{"tool_calls":[{"function":{"arguments":"{\"a\":1}"}},{"function":null}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","reasoning":"r","refusal":"no"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[]},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":null}]}"#,
            r#"{"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"stop_reason":null}]}"#,
            r#"{"error":null,"type":"chunk","choices":[{"index":0,"text":"legacy"}]}"#,
            r#"{"choices":[{"index":70000,"delta":{"content":"far"},"finish_reason":"length"}]}"#,
        ];
        for d in same {
            compare(d, Kind::Chat).unwrap_or_else(|| panic!("declined {d}"));
            compare(d, Kind::Completions).unwrap_or_else(|| panic!("declined {d}"));
        }
        // Declined: left to the Value path, which reads them its own way.
        let declined = [
            r#"{"id":5,"choices":[]}"#,
            r#"{"choices":{"0":{}}}"#,
            r#"{"choices":[{"delta":{"content":["part"]}}]}"#,
            r#"{"choices":[{"index":"0","delta":{}}]}"#,
            r#"{"choices":[], "choices":[]}"#,
            r#"{"usage":{"prompt_tokens":"9"}}"#,
            r#"{"usage":7}"#,
            r#"{"error":{"message":"m","code":"rate_limit"}}"#,
            r#"{"type":"error","code":"x"}"#,
            r#"{"x_groq":{"usage":{"prompt_tokens":1}},"choices":[]}"#,
            r#"{"timings":{"predicted_n":3},"choices":[]}"#,
        ];
        for d in declined {
            assert!(compare(d, Kind::Chat).is_none(), "{d}");
        }
    }
}
