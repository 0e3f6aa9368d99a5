//! OpenAI-compatible (and Anthropic-compatible) hosts: which `gen_ai.provider.name` a host or
//! the traffic itself stands for. vLLM, llama.cpp, Groq, Mistral, DeepSeek, OpenRouter, Together
//! all speak the OpenAI wire format (parsed by [`super::openai`]); their extras (Groq
//! `x_groq.usage`, DeepSeek `prompt_cache_hit_tokens`, usage on the finish chunk) are read there.

use serde_json::Value;

use super::common::RequestCtx;

/// The name for a host speaking the OpenAI wire format.
pub fn openai_provider(req: &RequestCtx<'_>) -> String {
    known_host(req).unwrap_or("openai_compatible").to_string()
}

/// The name for a host speaking the Anthropic Messages wire format.
pub fn anthropic_provider(req: &RequestCtx<'_>) -> String {
    if req.host_is("api.anthropic.com") {
        return "anthropic".into();
    }
    known_host(req)
        .unwrap_or("anthropic_compatible")
        .to_string()
}

fn known_host(req: &RequestCtx<'_>) -> Option<&'static str> {
    let host = req.host.as_deref().unwrap_or("");
    let by_host = match host {
        "api.openai.com" => Some("openai"),
        "api.groq.com" => Some("groq"),
        "api.mistral.ai" | "codestral.mistral.ai" => Some("mistral_ai"),
        "api.deepseek.com" => Some("deepseek"),
        "openrouter.ai" => Some("openrouter"),
        "api.together.xyz" | "api.together.ai" => Some("together_ai"),
        "api.x.ai" => Some("x_ai"),
        "api.perplexity.ai" => Some("perplexity"),
        "api.anthropic.com" => Some("anthropic"),
        "api.cohere.com" | "api.cohere.ai" => Some("cohere"),
        "generativelanguage.googleapis.com" => Some("gcp.gemini"),
        _ => None,
    };
    if by_host.is_some() {
        return by_host;
    }
    if host.ends_with(".openai.com") {
        return Some("openai"); // data-residency hosts (eu.api.openai.com)
    }
    if host.starts_with("bedrock-mantle.") || host.starts_with("bedrock-runtime.") {
        return Some("aws.bedrock");
    }
    if req.port == Some(11434) {
        return Some("ollama"); // Ollama's port: its /v1 OpenAI-compatible endpoints
    }
    None
}

/// Refine `openai_compatible` from what the server answers: Ollama's `fp_ollama` fingerprint,
/// llama.cpp's `timings`, vLLM's per-choice `stop_reason`.
pub fn refine(provider: &mut String, v: &Value) {
    if provider != "openai_compatible" {
        return;
    }
    if v.get("system_fingerprint").and_then(Value::as_str) == Some("fp_ollama") {
        *provider = "ollama".into();
    } else if v.get("timings").is_some_and(Value::is_object) {
        *provider = "llama_cpp".into();
    } else if v
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c.get("stop_reason").is_some()))
    {
        *provider = "vllm".into();
    }
}
