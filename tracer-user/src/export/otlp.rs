//! OTLP export: one CLIENT span per call, with a resource per traced process, and the metric
//! exporter. Transport (http/protobuf or gRPC), endpoint, headers, timeouts, batch delay and
//! metric interval follow the standard `OTEL_*` variables; `--otlp-endpoint` and
//! `--otlp-protocol` override them.
//!
//! The SDK has one resource per provider, so spans go through one `SdkTracerProvider` with a
//! `BatchSpanProcessor` whose exporter ([`PerProcessExporter`]) splits every batch by process and
//! exports each group under that process's resource.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::Span as _;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};
use opentelemetry_sdk::Resource;
use tracer_core::call::{LlmCall, TraceParent};

use super::health::Health;
use super::otlp_delivery::{self, BoundedQueue, OutageLog, QueueDepth, DROP_EXPORT_FAILED};
use super::resource::{parse_resource_attributes, ProcessInfo};
use super::semconv::*;
use super::{ExportedCall, Sink, SinkError};

const SPAN_SINK: &str = "otlp-spans";

/// Internal span attribute naming the resource of a span's process; removed before export.
const RESOURCE_KEY: &str = "llm_tracer.internal.resource_key";
/// How long stopping waits for the span endpoint to take what is queued.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);
/// Process resources remembered at most (spans still queued find theirs).
const RESOURCE_CAP: usize = 8192;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "grpc")]
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn env_name(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where and how one signal is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    pub protocol: OtlpProtocol,
    /// Full URL to pass to the exporter (`None`: the exporter reads its `OTEL_*` variables).
    pub endpoint: Option<String>,
}

/// The OTLP settings: the flags, resolved against the environment.
#[derive(Debug, Clone, Default)]
pub struct OtlpSettings {
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
}

impl OtlpSettings {
    /// The target of `signal`, or `None` when no endpoint is configured for it (OTLP off), or
    /// `OTEL_{TRACES,METRICS}_EXPORTER=none`. `env` reads a variable (the process environment
    /// outside tests).
    pub fn target(
        &self,
        signal: Signal,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SignalTarget>, String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let s = signal.env_name();
        if get(&format!("OTEL_{s}_EXPORTER")).is_some_and(|v| v.trim() == "none") {
            return Ok(None);
        }
        let configured = self.endpoint.is_some()
            || get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || get(&format!("OTEL_EXPORTER_OTLP_{s}_ENDPOINT")).is_some();
        if !configured {
            return Ok(None);
        }
        let protocol = match self.protocol {
            Some(p) => p,
            None => match get(&format!("OTEL_EXPORTER_OTLP_{s}_PROTOCOL"))
                .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            {
                Some(v) => OtlpProtocol::parse(&v).ok_or_else(|| {
                    format!("unsupported OTLP protocol {v:?} (use grpc or http/protobuf)")
                })?,
                None => OtlpProtocol::HttpProtobuf,
            },
        };
        // The flag is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT: HTTP gets the signal path.
        let endpoint = self.endpoint.as_ref().map(|base| match protocol {
            OtlpProtocol::HttpProtobuf => {
                format!("{}{}", base.trim_end_matches('/'), signal.http_path())
            }
            OtlpProtocol::Grpc => base.clone(),
        });
        Ok(Some(SignalTarget { protocol, endpoint }))
    }
}

/// The endpoint of `target` for log lines (credentials in the URL redacted).
pub fn endpoint_label(target: &SignalTarget, signal: Signal) -> String {
    match &target.endpoint {
        Some(e) => tracer_core::redact::redact_target(e),
        None => format!(
            "the endpoint of OTEL_EXPORTER_OTLP_[{}_]ENDPOINT",
            signal.env_name()
        ),
    }
}

fn need_runtime(protocol: OtlpProtocol) -> Result<(), SinkError> {
    if protocol == OtlpProtocol::Grpc && tokio::runtime::Handle::try_current().is_err() {
        return Err(SinkError::Otel(
            "OTLP over gRPC must be set up inside a tokio runtime".into(),
        ));
    }
    Ok(())
}

pub fn build_span_exporter(
    target: &SignalTarget,
) -> Result<opentelemetry_otlp::SpanExporter, SinkError> {
    need_runtime(target.protocol)?;
    let b = opentelemetry_otlp::SpanExporter::builder();
    let built = match (target.protocol, &target.endpoint) {
        (OtlpProtocol::Grpc, Some(e)) => b
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(e)
            .build(),
        (OtlpProtocol::Grpc, None) => b.with_tonic().with_protocol(Protocol::Grpc).build(),
        (OtlpProtocol::HttpProtobuf, Some(e)) => b
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(e)
            .build(),
        (OtlpProtocol::HttpProtobuf, None) => {
            b.with_http().with_protocol(Protocol::HttpBinary).build()
        }
    };
    built.map_err(|e| SinkError::Otel(format!("OTLP span exporter: {e}")))
}

pub fn build_metric_exporter(
    target: &SignalTarget,
) -> Result<opentelemetry_otlp::MetricExporter, SinkError> {
    need_runtime(target.protocol)?;
    let b = opentelemetry_otlp::MetricExporter::builder();
    let built = match (target.protocol, &target.endpoint) {
        (OtlpProtocol::Grpc, Some(e)) => b
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(e)
            .build(),
        (OtlpProtocol::Grpc, None) => b.with_tonic().with_protocol(Protocol::Grpc).build(),
        (OtlpProtocol::HttpProtobuf, Some(e)) => b
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(e)
            .build(),
        (OtlpProtocol::HttpProtobuf, None) => {
            b.with_http().with_protocol(Protocol::HttpBinary).build()
        }
    };
    built.map_err(|e| SinkError::Otel(format!("OTLP metric exporter: {e}")))
}

/// Resources of traced processes, by key, plus the attributes every resource carries.
#[derive(Debug)]
pub struct ResourceRegistry {
    /// host.name, telemetry.distro.*, then the agent's own `OTEL_RESOURCE_ATTRIBUTES`.
    base: Vec<(String, Value)>,
    entries: Mutex<(HashMap<u64, Resource>, VecDeque<u64>)>,
}

impl ResourceRegistry {
    /// `host_name`: the machine; `agent_attributes`: the agent's `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn new(host_name: Option<String>, agent_attributes: &str) -> Self {
        let mut base: Vec<(String, Value)> = Vec::new();
        if let Some(h) = host_name {
            base.push((HOST_NAME.into(), h.into()));
        }
        base.push((TELEMETRY_DISTRO_NAME.into(), "llm-tracer".into()));
        base.push((
            TELEMETRY_DISTRO_VERSION.into(),
            env!("CARGO_PKG_VERSION").into(),
        ));
        for (k, v) in parse_resource_attributes(agent_attributes) {
            if k != SERVICE_NAME {
                base.push((k, v.into()));
            }
        }
        ResourceRegistry {
            base,
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The resource attributes of `p`, later entries overriding earlier ones: the base, the
    /// process's own `OTEL_RESOURCE_ATTRIBUTES`, what `/proc` says, and `service.name`.
    pub fn attributes(&self, p: &ProcessInfo) -> Vec<KeyValue> {
        let mut m: BTreeMap<String, Value> = self.base.iter().cloned().collect();
        for (k, v) in &p.attributes {
            if k != SERVICE_NAME {
                m.insert(k.clone(), v.clone().into());
            }
        }
        m.insert(PROCESS_PID.into(), i64::from(p.pid).into());
        let opt = [
            (PROCESS_EXECUTABLE_NAME, &p.executable_name),
            (PROCESS_EXECUTABLE_PATH, &p.executable_path),
            (PROCESS_COMMAND_LINE, &p.command_line),
            (PROCESS_OWNER, &p.owner),
            (CONTAINER_ID, &p.container_id),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        m.insert(SERVICE_NAME.into(), p.service_name.clone().into());
        m.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
    }

    /// Remember `p`'s resource; returns the key its spans carry.
    pub fn register(&self, p: &ProcessInfo) -> u64 {
        let key = p.key();
        let Ok(mut guard) = self.entries.lock() else {
            return key;
        };
        let (map, order) = &mut *guard;
        if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(key) {
            slot.insert(
                Resource::builder_empty()
                    .with_attributes(self.attributes(p))
                    .build(),
            );
            order.push_back(key);
            while map.len() > RESOURCE_CAP {
                match order.pop_front() {
                    Some(old) => {
                        map.remove(&old);
                    }
                    None => break,
                }
            }
        }
        key
    }

    /// The resource for `key`; the base alone when it is unknown (evicted).
    pub fn resource(&self, key: Option<u64>) -> Resource {
        if let Some(r) =
            key.and_then(|k| self.entries.lock().ok().and_then(|g| g.0.get(&k).cloned()))
        {
            return r;
        }
        let mut attrs: Vec<KeyValue> = self
            .base
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        if let Some(k) = key {
            attrs.push(KeyValue::new(PROCESS_PID, (k >> 32) as i64));
        }
        Resource::builder_empty().with_attributes(attrs).build()
    }
}

/// Wraps an exporter: splits each batch by process and exports each group with that process's
/// resource. The BSP calls export, flush and shutdown from one worker, one at a time; the async
/// mutex is held across the inner export (the inner exporter needs `&mut` for `set_resource`).
/// Spans of a group the endpoint did not take are counted as dropped (`otlp_export_failed`).
#[derive(Debug)]
pub struct PerProcessExporter<E: SpanExporter> {
    inner: tokio::sync::Mutex<E>,
    resources: Arc<ResourceRegistry>,
    /// Failed exports are counted here (`llm_tracer.export.errors{sink="otlp-spans"}`), and
    /// the spans they held in `llm_tracer.drops`.
    health: Arc<Health>,
    /// Spans waiting in the batch processor; a batch leaves it when it reaches `export`.
    depth: QueueDepth,
    outage: OutageLog,
}

impl<E: SpanExporter> PerProcessExporter<E> {
    pub fn new(inner: E, resources: Arc<ResourceRegistry>, health: Arc<Health>) -> Self {
        Self::with_delivery(
            inner,
            resources,
            health,
            QueueDepth::default(),
            SpanSinkConfig::default(),
        )
    }

    fn with_delivery(
        inner: E,
        resources: Arc<ResourceRegistry>,
        health: Arc<Health>,
        depth: QueueDepth,
        config: SpanSinkConfig,
    ) -> Self {
        let consequence = format!(
            "Tracing goes on and calls still reach the other outputs; spans that cannot be delivered are dropped and counted in llm_tracer.drops{{llm_tracer.drop.reason=\"{DROP_EXPORT_FAILED}\"}}, at most {} (OTEL_BSP_MAX_QUEUE_SIZE) plus the batch being sent wait in memory, and export resumes by itself when the endpoint answers again.",
            config.max_queue_size
        );
        PerProcessExporter {
            inner: tokio::sync::Mutex::new(inner),
            resources,
            health,
            depth,
            outage: OutageLog::new("span", config.endpoint, consequence),
        }
    }
}

fn take_resource_key(span: &mut SpanData) -> Option<u64> {
    let i = span
        .attributes
        .iter()
        .position(|kv| kv.key.as_str() == RESOURCE_KEY)?;
    match span.attributes.remove(i).value {
        Value::I64(k) => Some(k as u64),
        _ => None,
    }
}

impl<E: SpanExporter> SpanExporter for PerProcessExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.depth.taken(batch.len());
        // Group, keeping the order of first appearance.
        let mut groups: Vec<(Option<u64>, Vec<SpanData>)> = Vec::new();
        for mut span in batch {
            let key = take_resource_key(&mut span);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(span),
                None => groups.push((key, vec![span])),
            }
        }
        let mut inner = self.inner.lock().await;
        let mut result = Ok(());
        for (key, spans) in groups {
            inner.set_resource(&self.resources.resource(key));
            let n = spans.len();
            match inner.export(spans).await {
                Ok(()) => self.outage.succeeded(),
                Err(e) => {
                    self.health.record_export_error(SPAN_SINK);
                    self.health.count_drops(DROP_EXPORT_FAILED, n as u64);
                    self.outage.failed(&e, n as u64);
                    // Keep exporting the other processes' spans; report the first failure.
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self.inner.try_lock() {
            Ok(inner) => inner.shutdown_with_timeout(timeout),
            Err(_) => Err(OTelSdkError::InternalFailure(
                "span export in progress at shutdown".into(),
            )),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self.inner.try_lock() {
            Ok(inner) => inner.force_flush(),
            Err(_) => Ok(()),
        }
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // The provider's resource is not used: every group gets its process's resource.
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn string_array(v: &[String]) -> Value {
    Value::Array(Array::String(
        v.iter().map(|s| StringValue::from(s.clone())).collect(),
    ))
}

/// Attributes known when the call started (sampling-relevant, given at span creation).
pub fn start_attributes(call: &LlmCall) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new(GEN_AI_OPERATION_NAME, call.operation.clone()),
        KeyValue::new(GEN_AI_PROVIDER_NAME, call.provider.clone()),
    ];
    if let Some(m) = &call.request.model {
        a.push(KeyValue::new(GEN_AI_REQUEST_MODEL, m.clone()));
    }
    if let Some(s) = &call.server_address {
        a.push(KeyValue::new(SERVER_ADDRESS, s.clone()));
    }
    if let Some(p) = call.server_port {
        a.push(KeyValue::new(SERVER_PORT, i64::from(p)));
    }
    a
}

/// Every other span attribute. Absent data stays absent.
pub fn end_attributes(c: &ExportedCall<'_>) -> Vec<KeyValue> {
    let call = c.call;
    let r = &call.request;
    let mut a = Vec::new();
    let mut push = |k: &'static str, v: Option<Value>| {
        if let Some(v) = v {
            a.push(KeyValue::new(k, v));
        }
    };
    push(
        GEN_AI_REQUEST_MAX_TOKENS,
        r.max_tokens.map(|v| i64_of(v).into()),
    );
    push(GEN_AI_REQUEST_TEMPERATURE, r.temperature.map(Value::from));
    push(GEN_AI_REQUEST_TOP_P, r.top_p.map(Value::from));
    push(GEN_AI_REQUEST_TOP_K, r.top_k.map(Value::from));
    push(
        GEN_AI_REQUEST_FREQUENCY_PENALTY,
        r.frequency_penalty.map(Value::from),
    );
    push(
        GEN_AI_REQUEST_PRESENCE_PENALTY,
        r.presence_penalty.map(Value::from),
    );
    push(
        GEN_AI_REQUEST_STOP_SEQUENCES,
        r.stop_sequences.as_deref().map(string_array),
    );
    push(GEN_AI_REQUEST_SEED, r.seed.map(Value::from));
    push(
        GEN_AI_REQUEST_CHOICE_COUNT,
        r.choice_count.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_REQUEST_STREAM,
        r.stream.or(call.streamed.then_some(true)).map(Value::from),
    );
    push(
        GEN_AI_REQUEST_ENCODING_FORMATS,
        r.encoding_formats.as_deref().map(string_array),
    );
    push(
        OPENAI_REQUEST_SERVICE_TIER,
        r.service_tier
            .clone()
            .filter(|t| t != "auto")
            .map(Value::from),
    );
    let resp = &call.response;
    push(GEN_AI_RESPONSE_MODEL, resp.model.clone().map(Value::from));
    push(GEN_AI_RESPONSE_ID, resp.id.clone().map(Value::from));
    push(
        GEN_AI_RESPONSE_FINISH_REASONS,
        (!resp.finish_reasons.is_empty()).then(|| string_array(&resp.finish_reasons)),
    );
    push(
        OPENAI_RESPONSE_SERVICE_TIER,
        resp.service_tier.clone().map(Value::from),
    );
    push(
        OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
        resp.system_fingerprint.clone().map(Value::from),
    );
    push(OPENAI_API_TYPE, call.api_type.clone().map(Value::from));
    let u = &call.usage;
    push(
        GEN_AI_USAGE_INPUT_TOKENS,
        u.input_tokens.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_USAGE_OUTPUT_TOKENS,
        u.output_tokens.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        u.cache_read_input_tokens.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        u.cache_creation_input_tokens.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        u.reasoning_output_tokens.map(|v| i64_of(v).into()),
    );
    push(
        GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        c.time_to_first_chunk_s().map(Value::from),
    );
    push(ERROR_TYPE, call.error_type.clone().map(Value::from));
    push(
        HTTP_REQUEST_METHOD,
        (!call.http_method.is_empty()).then(|| call.http_method.clone().into()),
    );
    push(
        HTTP_RESPONSE_STATUS_CODE,
        call.http_status.map(|s| i64::from(s).into()),
    );
    push(
        URL_PATH,
        (!call.http_path.is_empty()).then(|| call.http_path.clone().into()),
    );
    push(
        NETWORK_PROTOCOL_VERSION,
        (!call.http_version.is_empty()).then(|| call.http_version.clone().into()),
    );
    push(LLM_TRACER_COST_USD, c.cost_usd.map(Value::from));
    push(
        LLM_TRACER_OUTPUT_CHUNKS,
        (call.streamed && call.output_chunks > 0).then(|| i64::from(call.output_chunks).into()),
    );
    let q = &call.quality;
    for (on, k) in [
        (q.truncated, LLM_TRACER_CAPTURE_TRUNCATED),
        (q.gap, LLM_TRACER_CAPTURE_GAP),
        (q.late_attach, LLM_TRACER_CAPTURE_LATE_ATTACH),
        (q.incomplete, LLM_TRACER_CAPTURE_INCOMPLETE),
        (
            q.decompression_capped,
            LLM_TRACER_CAPTURE_DECOMPRESSION_CAPPED,
        ),
    ] {
        // Flags are only set when true: a clean capture carries none.
        push(k, on.then_some(Value::Bool(true)));
    }
    if let Some(content) = &call.content {
        push(
            GEN_AI_INPUT_MESSAGES,
            content.input_messages.clone().map(Value::from),
        );
        push(
            GEN_AI_OUTPUT_MESSAGES,
            content.output_messages.clone().map(Value::from),
        );
        push(
            GEN_AI_SYSTEM_INSTRUCTIONS,
            content.system_instructions.clone().map(Value::from),
        );
        push(
            LLM_TRACER_CONTENT_TRUNCATED,
            content.truncated.then_some(Value::Bool(true)),
        );
    }
    a
}

/// The caller's span from a captured `traceparent`, as a remote parent context.
pub fn parent_context(tp: Option<&TraceParent>) -> Context {
    let Some(tp) = tp else {
        return Context::new();
    };
    let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(&tp.trace_id),
        SpanId::from_hex(&tp.parent_span_id),
    ) else {
        return Context::new();
    };
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return Context::new();
    }
    let flags = if tp.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

/// The span status description for a failed call.
fn error_description(call: &LlmCall) -> Option<String> {
    let e = call.error_type.as_ref()?;
    Some(match call.http_status {
        Some(s) if e != &s.to_string() => format!("HTTP {s}: {e}"),
        Some(s) => format!("HTTP {s}"),
        None => e.clone(),
    })
}

/// How the span sink queues and names its endpoint.
#[derive(Debug, Clone)]
pub struct SpanSinkConfig {
    /// Spans waiting for export at most (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Where spans go, for the logs.
    pub endpoint: String,
}

impl Default for SpanSinkConfig {
    fn default() -> Self {
        SpanSinkConfig {
            max_queue_size: otlp_delivery::max_queue_size(&|k| std::env::var(k).ok()),
            endpoint: "the OTLP endpoint".into(),
        }
    }
}

impl SpanSinkConfig {
    /// The queue size from the environment, the endpoint from `target`.
    pub fn for_target(target: &SignalTarget) -> Self {
        SpanSinkConfig {
            endpoint: endpoint_label(target, Signal::Traces),
            ..Default::default()
        }
    }
}

/// OTLP spans.
pub struct SpanSink {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    resources: Arc<ResourceRegistry>,
}

impl SpanSink {
    /// Spans through a batch processor into `exporter`, with a resource per process.
    /// `OTEL_BSP_*` variables tune the batching.
    pub fn new<E: SpanExporter + 'static>(
        exporter: E,
        resources: Arc<ResourceRegistry>,
        health: Arc<Health>,
    ) -> Self {
        Self::with_config(exporter, resources, health, SpanSinkConfig::default())
    }

    /// [`SpanSink::new`] with the queue size and endpoint name given.
    pub fn with_config<E: SpanExporter + 'static>(
        exporter: E,
        resources: Arc<ResourceRegistry>,
        health: Arc<Health>,
        config: SpanSinkConfig,
    ) -> Self {
        let depth = QueueDepth::default();
        let cap = config.max_queue_size;
        // The SDK's queue gets the same size, so it never fills before ours (which counts).
        let batch = BatchSpanProcessor::builder(PerProcessExporter::with_delivery(
            exporter,
            resources.clone(),
            health.clone(),
            depth.clone(),
            config,
        ))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(cap)
                .build(),
        )
        .build();
        let provider = SdkTracerProvider::builder()
            // Every call is recorded: the agent exists to see all of them, whatever the
            // caller's own sampling decided (an unsampled parent still gives the trace id).
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(Resource::builder_empty().build())
            .with_span_processor(BoundedQueue::new(batch, depth, cap, health))
            .build();
        let tracer = provider.tracer("llm-tracer");
        SpanSink {
            provider,
            tracer,
            resources,
        }
    }

    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Sink for SpanSink {
    fn name(&self) -> &'static str {
        SPAN_SINK
    }

    fn export(&mut self, c: &ExportedCall<'_>) -> Result<(), SinkError> {
        let call = c.call;
        let key = self.resources.register(&c.process);
        let builder = self
            .tracer
            .span_builder(call.span_name())
            .with_kind(SpanKind::Client)
            .with_start_time(c.start())
            .with_attributes(start_attributes(call));
        let mut span = self
            .tracer
            .build_with_context(builder, &parent_context(call.trace_parent.as_ref()));
        span.set_attributes(end_attributes(c));
        // Resource keys are u64 bit patterns; the cast round-trips in take_resource_key.
        span.set_attribute(KeyValue::new(RESOURCE_KEY, key as i64));
        if let Some(d) = error_description(call) {
            span.set_status(Status::error(d));
        }
        span.end_with_timestamp(c.end());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.provider
            .force_flush()
            .map_err(|e| SinkError::Otel(e.to_string()))
    }

    /// Sends what is queued, waiting for the endpoint at most [`SHUTDOWN_WAIT`]: a slow or
    /// hanging endpoint must not hold SIGTERM up.
    fn shutdown(&mut self) -> Result<(), SinkError> {
        self.provider
            .shutdown_with_timeout(SHUTDOWN_WAIT)
            .map_err(|e| SinkError::Otel(e.to_string()))
    }
}
