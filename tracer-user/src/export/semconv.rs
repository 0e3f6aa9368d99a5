//! OpenTelemetry names used by the exporters: GenAI semantic conventions v1.41.1 (the last
//! released GenAI set; see shared/reference/otel-genai-semconv.md) and the project's own
//! `llm_tracer.*` names. Local constants rather than `opentelemetry-semantic-conventions`, where
//! every GenAI name is deprecated (moved to the GenAI repository) and behind a feature.

pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str =
    "gen_ai.usage.cache_creation.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

pub const OPENAI_API_TYPE: &str = "openai.api.type";
pub const OPENAI_REQUEST_SERVICE_TIER: &str = "openai.request.service_tier";
pub const OPENAI_RESPONSE_SERVICE_TIER: &str = "openai.response.service_tier";
pub const OPENAI_RESPONSE_SYSTEM_FINGERPRINT: &str = "openai.response.system_fingerprint";

pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const URL_PATH: &str = "url.path";
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";

pub const LLM_TRACER_COST_USD: &str = "llm_tracer.usage.cost_usd";
pub const LLM_TRACER_OUTPUT_CHUNKS: &str = "llm_tracer.response.output_chunks";
pub const LLM_TRACER_CAPTURE_TRUNCATED: &str = "llm_tracer.capture.truncated";
pub const LLM_TRACER_CAPTURE_GAP: &str = "llm_tracer.capture.gap";
pub const LLM_TRACER_CAPTURE_LATE_ATTACH: &str = "llm_tracer.capture.late_attach";
pub const LLM_TRACER_CAPTURE_INCOMPLETE: &str = "llm_tracer.capture.incomplete";
pub const LLM_TRACER_CAPTURE_DECOMPRESSION_CAPPED: &str = "llm_tracer.capture.decompression_capped";
pub const LLM_TRACER_CONTENT_TRUNCATED: &str = "llm_tracer.content.truncated";

// Resource.
pub const SERVICE_NAME: &str = "service.name";
pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
pub const PROCESS_OWNER: &str = "process.owner";
pub const CONTAINER_ID: &str = "container.id";
pub const HOST_NAME: &str = "host.name";
pub const TELEMETRY_DISTRO_NAME: &str = "telemetry.distro.name";
pub const TELEMETRY_DISTRO_VERSION: &str = "telemetry.distro.version";

// Metrics.
pub const METRIC_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const METRIC_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
pub const METRIC_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
pub const METRIC_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
/// Project metric: the priced cost of calls (a counter in USD; calls without a known cost are
/// not counted).
pub const METRIC_COST_USD: &str = "llm_tracer.usage.cost_usd";
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";

/// `gen_ai.client.token.usage` buckets (semconv v1.41.1, ExplicitBucketBoundaries).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Buckets of the duration, time-to-first-chunk and time-per-output-chunk histograms.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
