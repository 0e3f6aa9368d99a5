//! OTLP end to end through a real receiver: the Exporter with every sink, over http/protobuf and
//! gRPC, decoded with the official protobuf definitions; exact span, resource and metric checks;
//! and a canary secret that must appear in no output byte.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Pv;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PKeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric};
use opentelemetry_proto::tonic::trace::v1::Span as PSpan;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;
use tracer_core::spend::PriceTable;

use super::console::ConsoleSink;
use super::fixtures::*;
use super::health::Health;
use super::jsonl::JsonlSink;
use super::metrics::MetricsSink;
use super::otlp::*;
use super::resource::{ProcFs, ProcessCache};
use super::semconv::{DURATION_BUCKETS, TOKEN_BUCKETS};
use super::test_receiver::{self, Received};
use super::{Exporter, Sink};

const CANARY: &str = "CANARY-fake-key-do-not-export-0042";

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A /proc with the chatbot (pid 4242, a secret in its environment and arguments) and node
/// (pid 777); curl (31337) has exited already.
fn fake_proc(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llm-tracer-otlp-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("sys/kernel")).unwrap();
    fs::write(d.join("sys/kernel/hostname"), "node-1\n").unwrap();
    let proc_ = |pid: u32, comm: &str, exe: &str, environ: String, cmdline: String| {
        let p = d.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        fs::write(
            p.join("stat"),
            format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1000 0 0"),
        )
        .unwrap();
        fs::write(p.join("status"), "Uid:\t0\t0\t0\t0\n").unwrap();
        fs::write(p.join("environ"), environ).unwrap();
        fs::write(p.join("cmdline"), cmdline).unwrap();
        fs::write(p.join("cgroup"), "0::/user.slice/session-1.scope\n").unwrap();
        std::os::unix::fs::symlink(exe, p.join("exe")).unwrap();
    };
    proc_(
        4242,
        "python3",
        "/usr/bin/python3.11",
        format!("OPENAI_API_KEY={CANARY}\0OTEL_SERVICE_NAME=chatbot\0OTEL_RESOURCE_ATTRIBUTES=deployment.environment=dev\0"),
        format!("python3\0agent.py\0--api-key\0{CANARY}\0-H\0Authorization: Bearer {CANARY}\0"),
    );
    proc_(
        777,
        "node",
        "/usr/local/bin/node",
        String::new(),
        format!("node\0app.js\0--token={CANARY}\0"),
    );
    d
}

/// Proto attributes as comparable strings: `s:..`, `i:..`, `d:..`, `b:..`, `a:[..]`.
fn repr(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Pv::StringValue(s)) => format!("s:{s}"),
        Some(Pv::IntValue(i)) => format!("i:{i}"),
        Some(Pv::DoubleValue(d)) => format!("d:{d}"),
        Some(Pv::BoolValue(b)) => format!("b:{b}"),
        Some(Pv::ArrayValue(a)) => format!(
            "a:[{}]",
            a.values
                .iter()
                .map(|v| repr(&Some(v.clone())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => format!("?{other:?}"),
    }
}

fn attrs(kvs: &[PKeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), repr(&kv.value)))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Outputs {
    received: Received,
    console: String,
    jsonl: String,
}

async fn run(protocol: OtlpProtocol, tag: &str) -> Outputs {
    let (addr, store) = match protocol {
        OtlpProtocol::HttpProtobuf => test_receiver::http().await,
        OtlpProtocol::Grpc => test_receiver::grpc().await,
    };
    let settings = OtlpSettings {
        endpoint: Some(format!("http://{addr}")),
        protocol: Some(protocol),
    };
    let no_env = |_: &str| None;
    let traces = settings.target(Signal::Traces, &no_env).unwrap().unwrap();
    let metrics = settings.target(Signal::Metrics, &no_env).unwrap().unwrap();

    let dir = fake_proc(tag);
    let procfs = ProcFs::at(&dir);
    let registry = Arc::new(ResourceRegistry::new(
        procfs.host_name(),
        "k8s.cluster.name=prod,service.name=not-for-processes",
    ));
    let health = Health::new();
    let mp = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name("llm-tracer")
                .build(),
        )
        .with_periodic_exporter(build_metric_exporter(&metrics).unwrap())
        .build();
    let meter = mp.meter("llm-tracer");
    health.register(&meter);
    health.set_events(12);
    health.set_drops("channel_full", 3);

    let console = SharedBuf::default();
    let jsonl = SharedBuf::default();
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(ConsoleSink::new(console.clone())),
        Box::new(JsonlSink::new(jsonl.clone())),
        Box::new(SpanSink::new(
            build_span_exporter(&traces).unwrap(),
            registry,
            health.clone(),
        )),
        Box::new(MetricsSink::new(&meter)),
    ];
    let mut exporter = Exporter::new(
        sinks,
        ProcessCache::new(procfs),
        PriceTable::builtin(),
        clock(),
        health,
    );
    let calls = [openai_stream(), anthropic_429(), unknown_model_incomplete()];
    for c in &calls {
        exporter.observe_process(&c.origin);
    }
    // The client exits before its call is exported: its identity was read at first sight.
    fs::remove_dir_all(dir.join("4242")).unwrap();
    for c in &calls {
        exporter.export(c);
    }
    // Flushing blocks on the export threads; the gRPC transport needs the runtime meanwhile.
    tokio::task::spawn_blocking(move || {
        exporter.shutdown();
        mp.shutdown().unwrap();
    })
    .await
    .unwrap();
    let _ = fs::remove_dir_all(&dir);
    let received = std::mem::take(&mut *store.lock().unwrap());
    let console = String::from_utf8(console.0.lock().unwrap().clone()).unwrap();
    let jsonl = String::from_utf8(jsonl.0.lock().unwrap().clone()).unwrap();
    Outputs {
        received,
        console,
        jsonl,
    }
}

/// Spans by the `process.pid` of their resource.
fn spans_by_pid(r: &Received) -> BTreeMap<i64, (BTreeMap<String, String>, Vec<PSpan>)> {
    let mut out: BTreeMap<i64, (BTreeMap<String, String>, Vec<PSpan>)> = BTreeMap::new();
    for req in &r.traces {
        for rs in &req.resource_spans {
            let res = attrs(&rs.resource.as_ref().unwrap().attributes);
            let pid: i64 = res["process.pid"].trim_start_matches("i:").parse().unwrap();
            let entry = out.entry(pid).or_insert_with(|| (res.clone(), Vec::new()));
            assert_eq!(entry.0, res, "one resource per process");
            for ss in &rs.scope_spans {
                entry.1.extend(ss.spans.iter().cloned());
            }
        }
    }
    out
}

fn check_spans(r: &Received) {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let by_pid = spans_by_pid(r);
    assert_eq!(
        by_pid.keys().copied().collect::<Vec<_>>(),
        [777, 4242, 31337]
    );
    let version = format!("s:{}", env!("CARGO_PKG_VERSION"));
    let base = [
        ("host.name", "s:node-1"),
        ("k8s.cluster.name", "s:prod"),
        ("telemetry.distro.name", "s:llm-tracer"),
        ("telemetry.distro.version", version.as_str()),
    ];

    // The streamed OpenAI call, in the caller's trace.
    let (res, spans) = &by_pid[&4242];
    let mut expected = map(&base);
    expected.extend(map(&[
        ("service.name", "s:chatbot"),
        ("process.pid", "i:4242"),
        ("process.executable.name", "s:python3.11"),
        ("process.executable.path", "s:/usr/bin/python3.11"),
        (
            "process.command_line",
            "s:python3 agent.py --api-key [REDACTED] -H Authorization: [REDACTED]",
        ),
        ("process.owner", "s:root"),
        ("deployment.environment", "s:dev"),
    ]));
    assert_eq!(res, &expected);
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s.name, "chat gpt-4o-mini");
    assert_eq!(s.kind, 3, "CLIENT");
    assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(s.span_id.len(), 8);
    assert_eq!(s.start_time_unix_nano, (OFFSET_NS + 1_000_000_000) as u64);
    assert_eq!(s.end_time_unix_nano, (OFFSET_NS + 2_204_000_000) as u64);
    assert_eq!(s.status.as_ref().map_or(0, |st| st.code), 0, "unset");
    assert_eq!(
        attrs(&s.attributes),
        map(&[
            ("gen_ai.operation.name", "s:chat"),
            ("gen_ai.provider.name", "s:openai"),
            ("gen_ai.request.model", "s:gpt-4o-mini"),
            ("server.address", "s:api.openai.com"),
            ("server.port", "i:443"),
            ("gen_ai.request.max_tokens", "i:256"),
            ("gen_ai.request.temperature", "d:0.7"),
            ("gen_ai.request.top_p", "d:0.9"),
            ("gen_ai.request.stop_sequences", "a:[s:END]"),
            ("gen_ai.request.seed", "i:42"),
            ("gen_ai.request.stream", "b:true"),
            ("gen_ai.response.model", "s:gpt-4o-mini-2024-07-18"),
            ("gen_ai.response.id", "s:chatcmpl-abc123"),
            ("gen_ai.response.finish_reasons", "a:[s:stop]"),
            ("openai.response.service_tier", "s:default"),
            ("openai.response.system_fingerprint", "s:fp_44709d6fcb"),
            ("openai.api.type", "s:chat_completions"),
            ("gen_ai.usage.input_tokens", "i:1200"),
            ("gen_ai.usage.output_tokens", "i:350"),
            ("gen_ai.usage.cache_read.input_tokens", "i:200"),
            ("gen_ai.response.time_to_first_chunk", "d:0.321"),
            ("http.request.method", "s:POST"),
            ("http.response.status_code", "i:200"),
            ("url.path", "s:/v1/chat/completions"),
            ("network.protocol.version", "s:1.1"),
            ("llm_tracer.usage.cost_usd", "d:0.000375"),
            ("llm_tracer.response.output_chunks", "i:41"),
        ])
    );

    // The rate-limited call: error status, no usage, its own trace.
    let (res, spans) = &by_pid[&777];
    assert_eq!(res["service.name"], "s:node");
    assert_eq!(
        res["process.command_line"],
        "s:node app.js --token=[REDACTED]"
    );
    let s = &spans[0];
    assert_eq!(s.name, "chat claude-3-5-haiku-20241022");
    assert!(s.parent_span_id.is_empty());
    assert_eq!(s.trace_id.len(), 16);
    let st = s.status.as_ref().unwrap();
    assert_eq!(
        (st.code, st.message.as_str()),
        (2, "HTTP 429: rate_limit_error")
    );
    assert_eq!(
        attrs(&s.attributes),
        map(&[
            ("gen_ai.operation.name", "s:chat"),
            ("gen_ai.provider.name", "s:anthropic"),
            ("gen_ai.request.model", "s:claude-3-5-haiku-20241022"),
            ("server.address", "s:api.anthropic.com"),
            ("server.port", "i:443"),
            ("gen_ai.request.max_tokens", "i:1024"),
            ("error.type", "s:rate_limit_error"),
            ("http.request.method", "s:POST"),
            ("http.response.status_code", "i:429"),
            ("url.path", "s:/v1/messages"),
            ("network.protocol.version", "s:2"),
        ])
    );

    // The process that exited before it was ever read: what the capture said.
    let (res, spans) = &by_pid[&31337];
    let mut expected = map(&base);
    expected.extend(map(&[
        ("service.name", "s:curl"),
        ("process.pid", "i:31337"),
    ]));
    assert_eq!(res, &expected);
    let a = attrs(&spans[0].attributes);
    assert_eq!(a["llm_tracer.capture.incomplete"], "b:true");
    assert_eq!(a["llm_tracer.capture.gap"], "b:true");
    assert!(!a.contains_key("llm_tracer.capture.truncated"));
    assert!(!a.contains_key("llm_tracer.usage.cost_usd"));
    assert!(!a.contains_key("llm_tracer.internal.resource_key"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The last export of each metric (cumulative, so the last one has everything).
fn metrics_by_name(r: &Received) -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    for req in &r.metrics {
        for rm in &req.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    out.insert(m.name.clone(), m.clone());
                }
            }
        }
    }
    out
}

fn histogram(m: &Metric) -> (&Vec<HistogramDataPoint>, i32) {
    match &m.data {
        Some(Data::Histogram(h)) => (&h.data_points, h.aggregation_temporality),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}

fn point<'a>(
    points: &'a [HistogramDataPoint],
    want: &BTreeMap<String, String>,
) -> &'a HistogramDataPoint {
    points
        .iter()
        .find(|p| &attrs(&p.attributes) == want)
        .unwrap_or_else(|| {
            let all: Vec<_> = points.iter().map(|p| attrs(&p.attributes)).collect();
            panic!("no point with {want:?} in {all:#?}")
        })
}

fn check_metrics(r: &Received) {
    let m = metrics_by_name(r);
    let openai = map(&[
        ("gen_ai.operation.name", "s:chat"),
        ("gen_ai.provider.name", "s:openai"),
        ("gen_ai.request.model", "s:gpt-4o-mini"),
        ("gen_ai.response.model", "s:gpt-4o-mini-2024-07-18"),
        ("server.address", "s:api.openai.com"),
        ("server.port", "i:443"),
        ("openai.response.service_tier", "s:default"),
        ("openai.response.system_fingerprint", "s:fp_44709d6fcb"),
        ("service.name", "s:chatbot"),
    ]);
    let with = |base: &BTreeMap<String, String>, k: &str, v: &str| {
        let mut b = base.clone();
        b.insert(k.into(), v.into());
        b
    };

    let tokens = &m["gen_ai.client.token.usage"];
    assert_eq!(tokens.unit, "{token}");
    let (points, temporality) = histogram(tokens);
    assert_eq!(temporality, 2, "cumulative");
    // Only calls that reported tokens: 1200 in + 350 out, and curl's 10 in.
    assert_eq!(points.len(), 3);
    for p in points {
        assert_eq!(p.explicit_bounds, TOKEN_BUCKETS.to_vec());
    }
    let p = point(points, &with(&openai, "gen_ai.token.type", "s:input"));
    assert_eq!((p.count, p.sum), (1, Some(1200.0)));
    let p = point(points, &with(&openai, "gen_ai.token.type", "s:output"));
    assert_eq!((p.count, p.sum), (1, Some(350.0)));

    let duration = &m["gen_ai.client.operation.duration"];
    assert_eq!(duration.unit, "s");
    let (points, _) = histogram(duration);
    assert_eq!(points.len(), 3);
    let p = point(points, &openai);
    assert_eq!(p.explicit_bounds, DURATION_BUCKETS.to_vec());
    assert_eq!((p.count, p.sum), (1, Some(1.204)));
    let anthropic = map(&[
        ("gen_ai.operation.name", "s:chat"),
        ("gen_ai.provider.name", "s:anthropic"),
        ("gen_ai.request.model", "s:claude-3-5-haiku-20241022"),
        ("server.address", "s:api.anthropic.com"),
        ("server.port", "i:443"),
        ("error.type", "s:rate_limit_error"),
        ("service.name", "s:node"),
    ]);
    let p = point(points, &anthropic);
    assert_eq!((p.count, p.sum), (1, Some(0.12)));

    let ttfc = &m["gen_ai.client.operation.time_to_first_chunk"];
    assert_eq!(ttfc.unit, "s");
    let (points, _) = histogram(ttfc);
    assert_eq!(points.len(), 1, "streaming calls only");
    let p = point(points, &openai);
    assert_eq!(p.explicit_bounds, DURATION_BUCKETS.to_vec());
    assert_eq!((p.count, p.sum), (1, Some(0.321)));

    let tpoc = &m["gen_ai.client.operation.time_per_output_chunk"];
    assert_eq!(tpoc.unit, "s");
    let (points, _) = histogram(tpoc);
    let p = point(points, &openai);
    assert_eq!(p.explicit_bounds, DURATION_BUCKETS.to_vec());
    // 41 chunks: 40 gaps over 2.204 - 1.321 = 0.883 s.
    assert_eq!(p.count, 40);
    assert!((p.sum.unwrap() - 0.883).abs() < 1e-9, "{:?}", p.sum);

    // Agent health.
    let sum_of = |name: &str| match &m[name].data {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| (attrs(&p.attributes), p.value))
            .collect::<Vec<_>>(),
        other => panic!("{name}: {other:?}"),
    };
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Nv;
    // Spend per service and model: only the priced call (the 429 and curl's call have no cost).
    let cost = sum_of("llm_tracer.usage.cost_usd");
    assert_eq!(m["llm_tracer.usage.cost_usd"].unit, "{USD}");
    assert_eq!(cost.len(), 1, "{cost:?}");
    assert_eq!(cost[0].0, openai);
    match cost[0].1 {
        Some(Nv::AsDouble(v)) => assert!((v - 0.000375).abs() < 1e-12, "{v}"),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(
        sum_of("llm_tracer.calls"),
        vec![(map(&[]), Some(Nv::AsInt(3)))]
    );
    assert_eq!(
        sum_of("llm_tracer.events"),
        vec![(map(&[]), Some(Nv::AsInt(12)))]
    );
    assert_eq!(
        sum_of("llm_tracer.drops"),
        vec![(
            map(&[("llm_tracer.drop.reason", "s:channel_full")]),
            Some(Nv::AsInt(3))
        )]
    );
    assert!(m.contains_key("llm_tracer.attached_targets"));
    assert!(m.contains_key("llm_tracer.ring_buffer.lost"));
}

fn check_no_secret(o: &Outputs) {
    assert!(!o.received.raw.is_empty());
    let raw = String::from_utf8_lossy(&o.received.raw);
    assert!(!raw.contains(CANARY), "canary in OTLP bytes");
    assert!(!o.console.contains(CANARY), "canary on the console");
    assert!(!o.jsonl.contains(CANARY), "canary in JSONL");
    // The outputs are not empty: the checks above looked at something.
    assert_eq!(o.console.lines().count(), 4);
    assert_eq!(o.jsonl.lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_end_to_end() {
    let o = run(OtlpProtocol::HttpProtobuf, "http").await;
    check_spans(&o.received);
    check_metrics(&o.received);
    check_no_secret(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_end_to_end() {
    let o = run(OtlpProtocol::Grpc, "grpc").await;
    check_spans(&o.received);
    check_metrics(&o.received);
    check_no_secret(&o);
}

#[test]
fn settings_follow_flags_then_environment() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let none = OtlpSettings::default();
    // Nothing configured: OTLP off.
    assert_eq!(none.target(Signal::Traces, &env(&[])).unwrap(), None);
    // The generic endpoint turns both signals on; the exporter reads the URL itself.
    let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
    assert_eq!(
        none.target(Signal::Metrics, &e).unwrap(),
        Some(SignalTarget {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: None
        })
    );
    // Per-signal endpoint and protocol.
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(
        none.target(Signal::Traces, &e).unwrap().unwrap().protocol,
        OtlpProtocol::Grpc
    );
    assert_eq!(none.target(Signal::Metrics, &e).unwrap(), None);
    // OTEL_TRACES_EXPORTER=none wins.
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    assert_eq!(none.target(Signal::Traces, &e).unwrap(), None);
    // Flags beat the environment; the HTTP base URL gets the signal path.
    let flags = OtlpSettings {
        endpoint: Some("http://x:4318/".into()),
        protocol: None,
    };
    let e = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
    assert_eq!(
        flags.target(Signal::Metrics, &e).unwrap().unwrap().endpoint,
        Some("http://x:4318/v1/metrics".into())
    );
    let grpc = OtlpSettings {
        endpoint: Some("http://x:4317".into()),
        protocol: Some(OtlpProtocol::Grpc),
    };
    assert_eq!(
        grpc.target(Signal::Traces, &e).unwrap().unwrap(),
        SignalTarget {
            protocol: OtlpProtocol::Grpc,
            endpoint: Some("http://x:4317".into())
        }
    );
    // An unsupported protocol is an error, not a silent fallback.
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]);
    assert!(none.target(Signal::Traces, &e).is_err());
}

#[test]
fn bad_traceparents_start_a_new_trace() {
    use opentelemetry::trace::TraceContextExt;
    use tracer_core::call::TraceParent;
    for (t, s) in [
        ("zz", "00f067aa0ba902b7"),
        ("00000000000000000000000000000000", "00f067aa0ba902b7"),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "0000000000000000"),
    ] {
        let tp = TraceParent {
            trace_id: t.into(),
            parent_span_id: s.into(),
            sampled: true,
        };
        assert!(!parent_context(Some(&tp)).has_active_span(), "{t} {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_span_exports_are_counted() {
    // A port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = OtlpSettings {
        endpoint: Some(format!("http://{addr}")),
        protocol: Some(OtlpProtocol::HttpProtobuf),
    }
    .target(Signal::Traces, &|_| None)
    .unwrap()
    .unwrap();
    let health = Health::new();
    let mut sink = SpanSink::new(
        build_span_exporter(&target).unwrap(),
        Arc::new(ResourceRegistry::new(None, "")),
        health.clone(),
    );
    let call = openai_stream();
    sink.export(&exported(&call)).unwrap();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        let _ = sink.shutdown();
    })
    .await
    .unwrap();
    assert_eq!(
        health.snapshot().export_errors.get("otlp-spans"),
        Some(&1),
        "after {:?}",
        started.elapsed()
    );
}
