//! `LlmCall`: one recognised LLM API call, normalised across providers.
//!
//! Every field the traffic does not carry is `None` (or empty): unknown is never a made-up 0.

use serde::{Deserialize, Serialize};

/// The process (and thread) that made the call, as captured. Resource details (executable path,
/// command line, container) are looked up at the export edge, not here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// The connection object address (pid-local).
    pub conn: u64,
}

/// Request parameters, as sent. Names follow `gen_ai.request.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestParams {
    pub model: Option<String>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub stop_sequences: Option<Vec<String>>,
    pub seed: Option<i64>,
    /// `n` / `candidateCount`, only when sent.
    pub choice_count: Option<u64>,
    /// Whether the request asked for a streamed response (only when the request says so or the
    /// endpoint implies it, e.g. `streamGenerateContent`).
    pub stream: Option<bool>,
    /// Embeddings: requested `encoding_format`s.
    pub encoding_formats: Option<Vec<String>>,
    /// OpenAI `service_tier` as requested.
    pub service_tier: Option<String>,
}

/// What the response says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseInfo {
    pub model: Option<String>,
    pub id: Option<String>,
    /// Raw finish reasons, one per choice/candidate, in order (e.g. `stop`, `length`,
    /// `tool_calls`, `end_turn`, `max_tokens`; Gemini's are lower-cased).
    pub finish_reasons: Vec<String>,
    pub service_tier: Option<String>,
    pub system_fingerprint: Option<String>,
}

/// Token usage. `input_tokens` follows the OTel rule: it includes cached and cache-creation input
/// (so for Anthropic it is `input + cache_read + cache_creation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub reasoning_output_tokens: Option<u64>,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// Monotonic timestamps (ns, the capture clock) of the call's milestones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// First byte of the request was written.
    pub request_start_ns: u64,
    /// Last byte of the request was written.
    pub request_end_ns: Option<u64>,
    /// First byte of the response head was read.
    pub response_start_ns: Option<u64>,
    /// First chunk carrying output (text, tool call, embedding...). Role-only deltas, `ping`,
    /// `message_start`, `response.created` and empty content-filter chunks do not count.
    pub first_output_ns: Option<u64>,
    /// Last byte of the response was read (or the moment the call was given up on).
    pub end_ns: u64,
}

/// How trustworthy the capture behind this call is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureQuality {
    /// Some bytes of the exchange exceeded a capture or buffer cap and were not seen.
    pub truncated: bool,
    /// Bytes were lost in transit (kernel ring buffer full, out-of-order gap).
    pub gap: bool,
    /// The connection was opened before the tracer attached (HTTP/2 state unknown, or the first
    /// captured bytes were mid-message).
    pub late_attach: bool,
    /// The response did not complete (connection closed or process exited mid-stream).
    pub incomplete: bool,
    /// A decompressed body hit the decompression output cap.
    pub decompression_capped: bool,
}

impl CaptureQuality {
    pub fn is_clean(&self) -> bool {
        *self == CaptureQuality::default()
    }
}

/// A W3C trace context carried by the captured request (`traceparent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceParent {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: the caller's span, parent of ours.
    pub parent_span_id: String,
    pub sampled: bool,
}

/// Message content, present only when the user opted in (`--capture-content`). JSON strings in
/// the OTel GenAI message shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub input_messages: Option<String>,
    pub output_messages: Option<String>,
    pub system_instructions: Option<String>,
    /// Content was cut at the content cap.
    pub truncated: bool,
}

/// One LLM API call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmCall {
    pub origin: Origin,
    /// `gen_ai.provider.name` value: `openai`, `anthropic`, `gcp.gemini`, `gcp.vertex_ai`,
    /// `aws.bedrock`, `azure.ai.openai`, `cohere`, `mistral_ai`, `groq`, `deepseek`, `ollama`, ...
    pub provider: String,
    /// `gen_ai.operation.name`: `chat`, `text_completion`, `embeddings`, `generate_content`.
    pub operation: String,
    /// `openai.api.type` for OpenAI-shaped APIs: `chat_completions`, `responses`, `completions`,
    /// `embeddings`.
    pub api_type: Option<String>,
    pub request: RequestParams,
    pub response: ResponseInfo,
    pub usage: Usage,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
    pub http_method: String,
    /// Request path without the query string (the query may hold secrets).
    pub http_path: String,
    pub http_status: Option<u16>,
    /// `error.type`: the provider's error code/type when the body has one, else the HTTP status
    /// code as a string, or `incomplete` / `connection_closed` for calls that never finished.
    pub error_type: Option<String>,
    /// Whether the response was streamed (SSE, NDJSON, event stream, streamed JSON array).
    pub streamed: bool,
    /// Output chunks seen (streaming only).
    pub output_chunks: u32,
    pub timing: Timing,
    pub quality: CaptureQuality,
    pub trace_parent: Option<TraceParent>,
    pub content: Option<Content>,
    /// HTTP protocol of the exchange: `1.1` or `2`.
    pub http_version: String,
}

impl LlmCall {
    /// The span name: `{gen_ai.operation.name} {gen_ai.request.model}` (the operation alone when
    /// the model is unknown).
    pub fn span_name(&self) -> String {
        match self
            .request
            .model
            .as_deref()
            .or(self.response.model.as_deref())
        {
            Some(m) => format!("{} {}", self.operation, m),
            None => self.operation.clone(),
        }
    }

    pub fn duration_ns(&self) -> u64 {
        self.timing
            .end_ns
            .saturating_sub(self.timing.request_start_ns)
    }

    pub fn is_error(&self) -> bool {
        self.error_type.is_some()
    }
}
