//! Command-line side of export: the output flags of `run`, the `spend` subcommand, and the
//! assembly of the configured sinks.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;
use tracer_core::spend::{GroupBy, Ledger, PriceTable};

use super::console::ConsoleSink;
use super::health::Health;
use super::jsonl::JsonlSink;
use super::metrics::MetricsSink;
use super::otlp::{self, OtlpProtocol, OtlpSettings, ResourceRegistry, Signal, SpanSink};
use super::otlp_delivery::CountedMetricExporter;
use super::resource::{ProcFs, ProcessCache};
use super::{Exporter, Sink, WallClock};

/// Output options of `run` (flatten into its arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExportArgs {
    /// Append one JSON object per call to PATH (read back by `llm-tracer spend`).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<PathBuf>,
    /// OTLP endpoint base URL, like OTEL_EXPORTER_OTLP_ENDPOINT (http://host:4318 for
    /// http/protobuf, http://host:4317 for grpc). OTLP is on when this or an
    /// OTEL_EXPORTER_OTLP_*ENDPOINT variable is set.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport; default: OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL, else http/protobuf.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Serve Prometheus metrics on ADDR (/metrics, plus /healthz and /readyz).
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<SocketAddr>,
    /// Print one line per call even when other outputs are configured (it is the default when
    /// none is).
    #[arg(long, conflicts_with = "no_console")]
    pub console: bool,
    /// Never print call lines.
    #[arg(long)]
    pub no_console: bool,
    /// Price file overriding or extending the built-in table (same JSON shape as
    /// tracer-core/data/prices.json).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
}

/// The built-in price table with `user` merged over it.
pub fn load_prices(user: Option<&Path>) -> anyhow::Result<PriceTable> {
    let mut table = PriceTable::builtin();
    if let Some(path) = user {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading price file {}", path.display()))?;
        let extra = PriceTable::from_json(&text)
            .with_context(|| format!("price file {}", path.display()))?;
        table.merge(extra);
    }
    Ok(table)
}

/// Everything export needs at run time; shut it down once, at the end.
pub struct ExportSetup {
    pub exporter: Exporter,
    meter_provider: Option<SdkMeterProvider>,
    prometheus: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl ExportSetup {
    /// Where the Prometheus endpoint listens (when enabled).
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|p| p.0)
    }

    /// Push out what is pending (spans and metrics) without stopping.
    pub fn flush(&mut self) {
        self.exporter.flush();
        if let Some(mp) = &self.meter_provider {
            if let Err(e) = mp.force_flush() {
                tracing::warn!(error = %e, "metrics flush failed");
            }
        }
    }

    /// Flush and stop every output. Blocking: from async code call it through
    /// `tokio::task::spawn_blocking` (the OTLP/gRPC transport needs the runtime meanwhile).
    /// Spans and metrics are shut down side by side, so that a slow or hanging endpoint holds
    /// the stop up by one wait (spans: 3 s, the metric reader: 5 s), not the sum of several.
    pub fn shutdown(&mut self) {
        let mp = self.meter_provider.take();
        std::thread::scope(|s| {
            if let Some(mp) = &mp {
                s.spawn(move || {
                    if let Err(e) = mp.shutdown() {
                        tracing::warn!(error = %e, "metrics shutdown failed");
                    }
                });
            }
            self.exporter.shutdown();
        });
        if let Some((_, task)) = self.prometheus.take() {
            task.abort();
        }
    }
}

impl ExportSetup {
    /// [`ExportSetup::shutdown`] from async code: runs it on a blocking thread so the runtime
    /// keeps driving the gRPC transport meanwhile.
    pub async fn close(mut self) {
        if let Err(e) = tokio::task::spawn_blocking(move || self.shutdown()).await {
            tracing::warn!(error = %e, "export shutdown did not finish");
        }
    }
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The agent's own resource (for metrics): `service.name` llm-tracer unless OTEL_SERVICE_NAME
/// says otherwise, host.name, and OTEL_RESOURCE_ATTRIBUTES.
fn agent_resource(host_name: Option<String>) -> Resource {
    let mut b = Resource::builder();
    if env_var("OTEL_SERVICE_NAME").is_none_or(|s| s.trim().is_empty()) {
        b = b.with_service_name("llm-tracer");
    }
    if let Some(h) = host_name {
        b = b.with_attribute(opentelemetry::KeyValue::new(super::semconv::HOST_NAME, h));
    }
    b.build()
}

/// Build the configured outputs. Must run inside a tokio runtime (the Prometheus endpoint and
/// OTLP/gRPC use it). `pods` (from `k8s::start`) adds `k8s.*` attributes to each process's
/// resource.
pub async fn setup(
    args: &ExportArgs,
    health: Arc<Health>,
    pods: Option<crate::k8s::PodLookup>,
) -> anyhow::Result<ExportSetup> {
    setup_with(args, health, pods, Source::Live).await
}

/// Where the calls come from: the live machine, or a recording (`replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Processes are read from `/proc`, capture times converted with this machine's clock.
    Live,
    /// A recording: its pids mean nothing here, so a process is what the capture says (pid and
    /// `comm`), never what `/proc` says about an unrelated process that has that pid now.
    Recording,
}

/// [`setup`] for calls from `source`.
pub async fn setup_with(
    args: &ExportArgs,
    health: Arc<Health>,
    pods: Option<crate::k8s::PodLookup>,
    source: Source,
) -> anyhow::Result<ExportSetup> {
    let prices = load_prices(args.prices.as_deref())?;
    let host = ProcFs::default();
    let host_name = host.host_name();
    let procfs = match source {
        Source::Live => host,
        // No /proc tree here: every read misses, and a process is built from the capture.
        Source::Recording => ProcFs::at("/nonexistent/llm-tracer-replay"),
    };
    let settings = OtlpSettings {
        endpoint: args.otlp_endpoint.clone(),
        protocol: args.otlp_protocol,
    };
    let traces = settings
        .target(Signal::Traces, &env_var)
        .map_err(anyhow::Error::msg)?;
    let metrics = settings
        .target(Signal::Metrics, &env_var)
        .map_err(anyhow::Error::msg)?;

    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let console = args.console
        || (!args.no_console
            && args.jsonl.is_none()
            && traces.is_none()
            && metrics.is_none()
            && args.prometheus.is_none());
    if console {
        sinks.push(Box::new(ConsoleSink::stdout()));
    }
    if let Some(path) = &args.jsonl {
        let sink = JsonlSink::create(path)
            .with_context(|| format!("opening --jsonl {}", path.display()))?;
        sinks.push(Box::new(sink));
    }
    if let Some(target) = &traces {
        let exporter = otlp::build_span_exporter(target)?;
        let registry = Arc::new(ResourceRegistry::new(
            host_name.clone(),
            &env_var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
        ));
        sinks.push(Box::new(SpanSink::with_config(
            exporter,
            registry,
            health.clone(),
            otlp::SpanSinkConfig::for_target(target),
        )));
        tracing::info!(protocol = ?target.protocol, endpoint = %otlp::endpoint_label(target, Signal::Traces), "OTLP spans on");
    }

    let mut meter_provider = None;
    let mut prometheus = None;
    if metrics.is_some() || args.prometheus.is_some() {
        let mut b = SdkMeterProvider::builder().with_resource(agent_resource(host_name));
        if let Some(target) = &metrics {
            // The periodic reader honours OTEL_METRIC_EXPORT_INTERVAL.
            b = b.with_periodic_exporter(CountedMetricExporter::new(
                otlp::build_metric_exporter(target)?,
                health.clone(),
                otlp::endpoint_label(target, Signal::Metrics),
            ));
            tracing::info!(protocol = ?target.protocol, endpoint = %otlp::endpoint_label(target, Signal::Metrics), "OTLP metrics on");
        }
        let mut registry = None;
        if args.prometheus.is_some() {
            let (reader, reg) = super::prometheus::reader().map_err(anyhow::Error::msg)?;
            b = b.with_reader(reader);
            registry = Some(reg);
        }
        let mp = b.build();
        let meter = mp.meter("llm-tracer");
        sinks.push(Box::new(MetricsSink::new(&meter)));
        health.register(&meter);
        if let (Some(addr), Some(reg)) = (args.prometheus, registry) {
            let served = super::prometheus::serve(addr, reg, health.clone())
                .await
                .with_context(|| format!("binding --prometheus {addr}"))?;
            tracing::info!(addr = %served.0, "Prometheus endpoint on");
            prometheus = Some(served);
        }
        meter_provider = Some(mp);
    }

    let mut processes = ProcessCache::new(procfs);
    if let Some(pods) = pods {
        processes.set_pod_lookup(pods);
    }
    let exporter = Exporter::new(sinks, processes, prices, WallClock::live(), health);
    Ok(ExportSetup {
        exporter,
        meter_provider,
        prometheus,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SpendBy {
    #[default]
    Process,
    Model,
    Provider,
}

/// `llm-tracer spend`: calls, tokens and cost from a JSONL file written by `--jsonl`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpendArgs {
    /// The JSONL file (`-` for standard input).
    #[arg(long, value_name = "PATH", default_value = "llm-tracer.jsonl")]
    pub jsonl: PathBuf,
    /// Only calls since this moment: a duration back from now (`1h`, `2days`, `30m`) or an
    /// RFC 3339 time / date (`2026-11-25T10:00:00Z`, `2026-11-25`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Group by process (service name), model or provider.
    #[arg(long, value_enum, default_value_t = SpendBy::Process)]
    pub by: SpendBy,
    /// Price file overriding or extending the built-in table.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
}

/// Unix ns of `--since`, relative to `now`.
pub fn parse_since(s: &str, now: SystemTime) -> anyhow::Result<u64> {
    let s = s.trim();
    let t = if let Ok(d) = humantime::parse_duration(s) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else if s.len() == 10 {
        humantime::parse_rfc3339_weak(&format!("{s}T00:00:00"))
            .with_context(|| format!("--since {s:?}: not a date"))?
    } else {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .with_context(|| format!("--since {s:?}: not a duration or an RFC 3339 time"))?
    };
    let ns = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    Ok(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Run `spend`, printing the report to `out`.
pub fn run_spend(args: &SpendArgs, now: SystemTime, out: &mut dyn Write) -> anyhow::Result<()> {
    let table = load_prices(args.prices.as_deref())?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    let by = match args.by {
        SpendBy::Process => GroupBy::Process,
        SpendBy::Model => GroupBy::Model,
        SpendBy::Provider => GroupBy::Provider,
    };
    let mut ledger = Ledger::new(by, since);
    let reader: Box<dyn BufRead> = if args.jsonl.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f =
            File::open(&args.jsonl).with_context(|| format!("opening {}", args.jsonl.display()))?;
        Box::new(BufReader::new(f))
    };
    for line in reader.split(b'\n') {
        let line = line.with_context(|| format!("reading {}", args.jsonl.display()))?;
        // A non-UTF-8 line is just an unreadable line.
        ledger.add_line(&String::from_utf8_lossy(&line), &table);
    }
    if ledger.total().calls == 0 && ledger.unpriced().is_empty() {
        writeln!(out, "no calls in {}", args.jsonl.display())?;
    }
    out.write_all(ledger.report(&table).as_bytes())?;
    Ok(())
}

/// Refuse flag combinations that cannot work, before anything starts.
pub fn validate(args: &ExportArgs) -> anyhow::Result<()> {
    if let Some(e) = &args.otlp_endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            bail!("--otlp-endpoint {e:?}: expected an http:// or https:// URL");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::jsonl::JsonlSink;
    use super::*;

    fn jsonl_file(tag: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "llm-tracer-spend-{tag}-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let mut sink = JsonlSink::create(&path).unwrap();
        for call in [
            openai_stream(),
            anthropic_429(),
            unknown_model_incomplete(),
            openai_stream(),
        ] {
            sink.export(&exported(&call)).unwrap();
        }
        sink.shutdown().unwrap();
        path
    }

    fn spend(args: &SpendArgs, now: SystemTime) -> String {
        let mut out = Vec::new();
        run_spend(args, now, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn spend_by_model_golden() {
        let path = jsonl_file("model");
        let args = SpendArgs {
            jsonl: path.clone(),
            since: None,
            by: SpendBy::Model,
            prices: None,
        };
        let out = spend(&args, SystemTime::now());
        let expected = "\
MODEL                                  CALLS  INPUT  CACHED  OUTPUT       COST
gpt-4o-mini-2024-07-18 (openai)            2   2400     400     700  $0.000750
claude-3-5-haiku-20241022 (anthropic)      1      0       0       0          -
gpt-9-experimental (openai)                1     10       0       0          -
TOTAL                                      4   2410     400     700  $0.000750
prices: USD per 1M tokens, as of 2025-10-01
no price for: openai/gpt-9-experimental (1 call)
usage unknown (no cost): 1 call
";
        assert_eq!(out, expected, "\n{out}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn spend_since_and_user_prices() {
        let path = jsonl_file("since");
        let prices = path.with_extension("prices.json");
        std::fs::write(
            &prices,
            r#"{"providers":{"openai":{"gpt-9-experimental":{"input":1000.0,"output":1.0}}}}"#,
        )
        .unwrap();
        // The calls started between 13:00:01 and 13:00:09 (fixture clock); "now" is 13:00:10.
        let now = UNIX_EPOCH + Duration::from_nanos((OFFSET_NS + 10_000_000_000) as u64);
        let args = SpendArgs {
            jsonl: path.clone(),
            since: Some("2s".into()),
            by: SpendBy::Provider,
            prices: Some(prices.clone()),
        };
        let out = spend(&args, now);
        // Only the curl call (13:00:09) is in the window; the user price file prices it (its
        // output is unknown, so the cost stays unknown: 10 input tokens, no output count).
        assert!(out.starts_with("PROVIDER  CALLS  INPUT  CACHED  OUTPUT  COST\nopenai        1     10       0       0     -\n"), "\n{out}");
        assert!(out.contains("outside the time window: 3 call(s)"), "{out}");
        assert!(out.contains("usage unknown (no cost): 1 call"), "{out}");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(prices);
    }

    #[test]
    fn since_accepts_durations_times_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_075_600);
        assert_eq!(
            parse_since("1h", now).unwrap(),
            (1_764_075_600 - 3600) * 1_000_000_000
        );
        assert_eq!(
            parse_since("2025-11-25T12:00:00Z", now).unwrap(),
            (1_764_075_600 - 3600) * 1_000_000_000
        );
        assert_eq!(
            parse_since("2025-11-25", now).unwrap(),
            (1_764_075_600 - 13 * 3600) * 1_000_000_000
        );
        assert!(parse_since("yesterday-ish", now).is_err());
    }

    /// The flags alone wire every output; the calling process here is this test process, read
    /// from the real /proc.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setup_wires_every_output_from_flags() {
        let (addr, store) = super::super::test_receiver::grpc().await;
        let jsonl =
            std::env::temp_dir().join(format!("llm-tracer-setup-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&jsonl);
        let args = ExportArgs {
            jsonl: Some(jsonl.clone()),
            otlp_endpoint: Some(format!("http://{addr}")),
            otlp_protocol: Some(OtlpProtocol::Grpc),
            prometheus: Some("127.0.0.1:0".parse().unwrap()),
            console: false,
            no_console: true,
            prices: None,
        };
        validate(&args).unwrap();
        let health = Health::new();
        let mut setup = setup(&args, health.clone(), None).await.unwrap();
        let prom = setup.prometheus_addr().unwrap();
        let mut call = openai_stream();
        call.origin.pid = std::process::id();
        call.origin.comm = "test".into();
        // Timestamps from the live monotonic clock.
        let now = WallClock::monotonic_now_ns();
        call.timing.request_start_ns = now - 2_000_000_000;
        call.timing.first_output_ns = Some(now - 1_000_000_000);
        call.timing.end_ns = now;
        setup.exporter.export(&call);

        let mut s = tokio::net::TcpStream::connect(prom).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut scraped = String::new();
        s.read_to_string(&mut scraped).await.unwrap();
        assert!(
            scraped.contains("gen_ai_client_token_usage_bucket{"),
            "{scraped}"
        );
        assert!(
            scraped.contains("llm_tracer_calls_total{otel_scope_name=\"llm-tracer\"} 1"),
            "{scraped}"
        );

        setup.close().await;
        let r = std::mem::take(&mut *store.lock().unwrap());
        let spans: Vec<_> = r
            .traces
            .iter()
            .flat_map(|t| t.resource_spans.iter())
            .collect();
        assert_eq!(spans.len(), 1);
        let res = &spans[0].resource.as_ref().unwrap().attributes;
        let get = |k: &str| {
            res.iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        use opentelemetry_proto::tonic::common::v1::any_value::Value as Pv;
        assert_eq!(
            get("process.pid"),
            Some(Pv::IntValue(i64::from(std::process::id())))
        );
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            get("process.executable.path"),
            Some(Pv::StringValue(exe.to_string_lossy().into_owned()))
        );
        let exe_name = exe.file_name().unwrap().to_string_lossy().into_owned();
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or(exe_name);
        assert_eq!(get("service.name"), Some(Pv::StringValue(service)));
        assert!(get("process.command_line").is_some());
        assert!(get("process.owner").is_some());
        // Span times are the live clock converted: within a second of now.
        let span = &spans[0].scope_spans[0].spans[0];
        let wall_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(wall_now.abs_diff(span.end_time_unix_nano) < 1_000_000_000);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            2_000_000_000
        );
        // Metrics arrived too (the final export at shutdown).
        assert!(!r.metrics.is_empty());
        let written = std::fs::read_to_string(&jsonl).unwrap();
        assert_eq!(written.lines().count(), 1);
        let _ = std::fs::remove_file(jsonl);
    }

    #[test]
    fn missing_file_and_bad_prices_are_errors() {
        let args = SpendArgs {
            jsonl: "/nonexistent/llm-tracer.jsonl".into(),
            since: None,
            by: SpendBy::Process,
            prices: None,
        };
        assert!(run_spend(&args, SystemTime::now(), &mut Vec::new()).is_err());
        assert!(load_prices(Some(Path::new("/nonexistent/prices.json"))).is_err());
    }
}
