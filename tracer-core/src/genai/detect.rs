//! The ordered detector chain: each provider module looks at the request (host, path, body
//! shape) and claims it or not. Order matters: the specific shapes (Bedrock and Gemini URLs,
//! Azure deployments, Ollama native paths, Cohere, Anthropic `/v1/messages`) come before the
//! generic OpenAI-shaped paths, and a body-shape fallback comes last for custom base URLs.

use super::{anthropic, azure, bedrock, cohere, gemini, ollama, openai, Api};
use crate::genai::common::RequestCtx;
use crate::http::RequestHead;

/// A claimed request.
#[derive(Debug)]
pub struct Detected {
    pub provider: String,
    pub operation: &'static str,
    pub api_type: Option<&'static str>,
    pub api: Box<dyn Api>,
}

/// Path pieces of every API the chain knows.
const KNOWN_PATHS: &[&str] = &[
    "/completions",
    "/embeddings",
    "/responses",
    "/messages",
    ":generateContent",
    ":streamGenerateContent",
    ":embedContent",
    ":batchEmbedContents",
    ":rawPredict",
    ":streamRawPredict",
    "/model/",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/v2/chat",
    "/v2/embed",
];

/// Only `POST` requests with a JSON object body, on a known path or with a chat-shaped body
/// (the body-shape fallback), are worth a JSON parse: other traffic is dropped cheaply.
pub fn worth_parsing(head: &RequestHead, body: &[u8]) -> bool {
    maybe_post(&head.method)
        && body.trim_ascii_start().first() == Some(&b'{')
        && (KNOWN_PATHS.iter().any(|p| head.target.contains(p))
            || super::common::find(body, b"\"messages\"").is_some()
            || super::common::find(body, b"\"contents\"").is_some())
}

/// `POST`, or unknown (HTTP/2 attached late reports an unknown `:method` as "").
fn maybe_post(method: &str) -> bool {
    method.is_empty() || method.eq_ignore_ascii_case("POST")
}

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    if !maybe_post(req.method) {
        return None;
    }
    bedrock::detect(req)
        .or_else(|| gemini::detect(req))
        .or_else(|| azure::detect(req))
        .or_else(|| ollama::detect(req))
        .or_else(|| cohere::detect(req))
        .or_else(|| anthropic::detect(req))
        .or_else(|| openai::detect(req))
        .or_else(|| body_shape(req))
}

/// Custom paths (gateways, proxies) and unknown paths (HTTP/2 attached late): recognise the wire
/// format from the body alone, strictly.
fn body_shape(req: &RequestCtx<'_>) -> Option<Detected> {
    let body = req.body?;
    let model = body.get("model").and_then(|m| m.as_str()).is_some();
    let messages = body
        .get("messages")
        .and_then(|m| m.as_array())
        .is_some_and(|a| a.first().is_some_and(|m| m.get("role").is_some()));
    if body.get("anthropic_version").is_some() && messages {
        return anthropic::detect_any(req, None);
    }
    if model && messages && body.get("max_tokens").is_some() && body.get("system").is_some() {
        return anthropic::detect_any(req, None);
    }
    if model && messages {
        return openai::detect_kind(req, openai::Kind::Chat);
    }
    let contents = body
        .get("contents")
        .and_then(|c| c.as_array())
        .is_some_and(|a| a.first().is_some_and(|c| c.get("parts").is_some()));
    if contents {
        return gemini::detect_body_only(req);
    }
    None
}
