//! GenAI client metrics (semconv v1.41.1): token usage, operation duration, time to first chunk
//! and time per output chunk, with the specified explicit buckets and attributes, plus the priced
//! cost as a counter. Recorded into one `SdkMeterProvider`, whose readers (OTLP periodic,
//! Prometheus) decide where they go.
//!
//! The provider's resource is the agent's, so each point also carries who made the call:
//! `service.name` of the traced process (and `k8s.namespace.name` when known), so tokens and
//! spend can be split per service. Not the pid: it would make a series per process run.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use super::semconv::*;
use super::{ExportedCall, Sink, SinkError};

pub struct GenAiMetrics {
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    time_per_output_chunk: Histogram<f64>,
    cost_usd: Counter<f64>,
}

impl GenAiMetrics {
    pub fn new(meter: &Meter) -> Self {
        GenAiMetrics {
            token_usage: meter
                .u64_histogram(METRIC_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram(METRIC_OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            time_to_first_chunk: meter
                .f64_histogram(METRIC_TIME_TO_FIRST_CHUNK)
                .with_unit("s")
                .with_description("Time to receive the first chunk of a streamed response")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            time_per_output_chunk: meter
                .f64_histogram(METRIC_TIME_PER_OUTPUT_CHUNK)
                .with_unit("s")
                .with_description("Time between output chunks of a streamed response")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            cost_usd: meter
                .f64_counter(METRIC_COST_USD)
                .with_unit("{USD}")
                .with_description("Cost of the calls priced by the price table, in US dollars")
                .build(),
        }
    }

    pub fn record(&self, c: &ExportedCall<'_>) {
        let call = c.call;
        let attrs = metric_attributes(c);
        let with = |extra: KeyValue| {
            let mut a = attrs.clone();
            a.push(extra);
            a
        };
        if let Some(n) = call.usage.input_tokens {
            self.token_usage
                .record(n, &with(KeyValue::new(GEN_AI_TOKEN_TYPE, "input")));
        }
        if let Some(n) = call.usage.output_tokens {
            self.token_usage
                .record(n, &with(KeyValue::new(GEN_AI_TOKEN_TYPE, "output")));
        }
        match &call.error_type {
            Some(e) => self
                .duration
                .record(c.duration_s(), &with(KeyValue::new(ERROR_TYPE, e.clone()))),
            None => self.duration.record(c.duration_s(), &attrs),
        }
        if let Some(cost) = c.cost_usd {
            self.cost_usd.add(cost, &attrs);
        }
        if let Some(t) = c.time_to_first_chunk_s() {
            self.time_to_first_chunk.record(t, &attrs);
        }
        // One measurement per chunk after the first (the spec's definition); the call carries
        // only the first and last chunk times, so each is the mean gap.
        if let Some((mean, gaps)) = c.mean_time_per_output_chunk_s() {
            for _ in 0..gaps {
                self.time_per_output_chunk.record(mean, &attrs);
            }
        }
    }
}

/// The common GenAI metric attributes, plus the OpenAI refinements and the calling service.
pub fn metric_attributes(c: &ExportedCall<'_>) -> Vec<KeyValue> {
    let call = c.call;
    let mut a = vec![
        KeyValue::new(GEN_AI_OPERATION_NAME, call.operation.clone()),
        KeyValue::new(GEN_AI_PROVIDER_NAME, call.provider.clone()),
        KeyValue::new(SERVICE_NAME, c.process.service_name.clone()),
    ];
    if let Some((_, ns)) = c
        .process
        .attributes
        .iter()
        .find(|(k, _)| k == K8S_NAMESPACE_NAME)
    {
        a.push(KeyValue::new(K8S_NAMESPACE_NAME, ns.clone()));
    }
    if let Some(m) = &call.request.model {
        a.push(KeyValue::new(GEN_AI_REQUEST_MODEL, m.clone()));
    }
    if let Some(m) = &call.response.model {
        a.push(KeyValue::new(GEN_AI_RESPONSE_MODEL, m.clone()));
    }
    if let Some(s) = &call.server_address {
        a.push(KeyValue::new(SERVER_ADDRESS, s.clone()));
    }
    if let Some(p) = call.server_port {
        a.push(KeyValue::new(SERVER_PORT, i64::from(p)));
    }
    if call.provider == "openai" {
        if let Some(t) = &call.response.service_tier {
            a.push(KeyValue::new(OPENAI_RESPONSE_SERVICE_TIER, t.clone()));
        }
        if let Some(f) = &call.response.system_fingerprint {
            a.push(KeyValue::new(OPENAI_RESPONSE_SYSTEM_FINGERPRINT, f.clone()));
        }
    }
    a
}

/// Records every call into the GenAI histograms.
pub struct MetricsSink {
    metrics: GenAiMetrics,
}

impl MetricsSink {
    pub fn new(meter: &Meter) -> Self {
        MetricsSink {
            metrics: GenAiMetrics::new(meter),
        }
    }
}

impl Sink for MetricsSink {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn export(&mut self, call: &ExportedCall<'_>) -> Result<(), SinkError> {
        self.metrics.record(call);
        Ok(())
    }
}
