//! How long the export edge takes per call: process lookup, pricing, console line, JSONL line,
//! GenAI metrics and an OTLP span handed to the batch processor (to a closed port: the network is not
//! measured; the batch queue drops what it cannot hold). `cargo run --release -p tracer-user --example export_throughput`

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tracer_core::call::LlmCall;
use tracer_core::spend::PriceTable;
use tracer_user::export::console::ConsoleSink;
use tracer_user::export::jsonl::JsonlSink;
use tracer_user::export::metrics::MetricsSink;
use tracer_user::export::otlp::{
    build_metric_exporter, build_span_exporter, OtlpProtocol, OtlpSettings, ResourceRegistry,
    Signal, SpanSink,
};
use tracer_user::export::resource::ProcessCache;
use tracer_user::export::{Exporter, Health, Sink, WallClock};

fn call() -> LlmCall {
    let mut c: LlmCall = serde_json::from_str(
        r#"{"origin":{"pid":1,"tid":1,"comm":"init","conn":7},"provider":"openai","operation":"chat",
        "api_type":"chat_completions","request":{"model":"gpt-4o-mini","max_tokens":256,"temperature":0.7,
        "stream":true},"response":{"model":"gpt-4o-mini-2024-07-18","id":"chatcmpl-1",
        "finish_reasons":["stop"],"system_fingerprint":"fp_1"},"usage":{"input_tokens":1200,
        "output_tokens":350,"cache_read_input_tokens":200},"server_address":"api.openai.com",
        "server_port":443,"http_method":"POST","http_path":"/v1/chat/completions","http_status":200,
        "streamed":true,"output_chunks":41,"timing":{"request_start_ns":1000000000,
        "first_output_ns":1321000000,"end_ns":2204000000},"quality":{"truncated":false,"gap":false,
        "late_attach":false,"incomplete":false,"decompression_capped":false},"http_version":"1.1"}"#,
    )
    .expect("valid call");
    c.origin.pid = std::process::id();
    c
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = runtime.enter();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let settings = OtlpSettings {
        endpoint: Some(format!("http://{closed}")),
        protocol: Some(OtlpProtocol::HttpProtobuf),
    };
    let target = |s| {
        settings
            .target(s, &|_| None)
            .expect("settings")
            .expect("target")
    };
    let target_traces = target(Signal::Traces);
    let target_metrics = target(Signal::Metrics);
    let health = Health::new();
    let mp = SdkMeterProvider::builder()
        .with_periodic_exporter(build_metric_exporter(&target_metrics).expect("exporter"))
        .build();
    let meter = mp.meter("bench");
    // Second argument: the sinks to use, e.g. `console,jsonl,metrics,spans` (the default).
    let which = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "console,jsonl,metrics,spans".into());
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for name in which.split(',') {
        match name {
            "console" => sinks.push(Box::new(ConsoleSink::new(std::io::sink()))),
            "jsonl" => sinks.push(Box::new(JsonlSink::new(std::io::sink()))),
            "metrics" => sinks.push(Box::new(MetricsSink::new(&meter))),
            "spans" => sinks.push(Box::new(SpanSink::new(
                build_span_exporter(&target_traces).expect("exporter"),
                Arc::new(ResourceRegistry::new(None, "")),
                health.clone(),
            ))),
            _ => {}
        }
    }
    let mut exporter = Exporter::new(
        sinks,
        ProcessCache::default(),
        PriceTable::builtin(),
        WallClock::live(),
        health,
    );
    let c = call();
    let start = Instant::now();
    for _ in 0..n {
        exporter.export(&c);
    }
    let elapsed = start.elapsed();
    println!(
        "{which}: {n} calls in {elapsed:?}: {:.1} us per call",
        elapsed.as_secs_f64() * 1e6 / f64::from(n)
    );
    drop(exporter);
    let _ = mp.shutdown();
}
