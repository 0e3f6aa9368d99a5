//! `--prometheus ADDR`: a scrape endpoint for the same metrics the OTLP reader exports, plus
//! health endpoints for orchestrators.
//!
//! - `GET /metrics`: Prometheus text format (GenAI histograms and `llm_tracer_*` health).
//! - `GET /healthz`: 200 while the agent runs (liveness), with the health counters as JSON.
//! - `GET /readyz`: 200 once probes are attached, else 503 (readiness).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

use super::health::Health;

/// A reader to add to the meter provider, and the registry it fills.
pub fn reader() -> Result<(opentelemetry_prometheus::PrometheusExporter, Registry), String> {
    let registry = Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|e| format!("prometheus exporter: {e}"))?;
    Ok((exporter, registry))
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(req: &Request<Incoming>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"GET only\n".to_vec(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let encoder = TextEncoder::new();
            let mut buf = Vec::new();
            match encoder.encode(&registry.gather(), &mut buf) {
                Ok(()) => respond(StatusCode::OK, encoder.format_type(), buf),
                Err(e) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("encoding failed: {e}\n").into_bytes(),
                ),
            }
        }
        "/healthz" => {
            let body = serde_json::to_vec(&health.snapshot()).unwrap_or_default();
            respond(StatusCode::OK, "application/json", body)
        }
        "/readyz" => {
            if health.snapshot().ready {
                respond(StatusCode::OK, "text/plain", b"ready\n".to_vec())
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    b"not ready\n".to_vec(),
                )
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

/// Bind `addr` now (so a bad address fails at start-up) and serve in the background on the
/// current tokio runtime. Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "prometheus endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let r = route(&req, &registry, &health);
                    async move { Ok::<_, Infallible>(r) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "prometheus endpoint: connection error");
                }
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::metrics::MetricsSink;
    use super::super::semconv::{DURATION_BUCKETS, TOKEN_BUCKETS};
    use super::super::Sink;
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrape_metrics_and_health() {
        let (reader, registry) = reader().unwrap();
        let mp = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = mp.meter("llm-tracer");
        let health = Health::new();
        health.register(&meter);
        health.set_lost_records(5);
        let mut sink = MetricsSink::new(&meter);
        let call = openai_stream();
        sink.export(&exported(&call)).unwrap();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), registry, health.clone())
            .await
            .unwrap();

        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        let has = |needle: &str| {
            assert!(
                body.lines().any(|l| l.starts_with(needle)),
                "no line starting {needle:?} in:\n{body}"
            )
        };
        let pre = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o-mini\",gen_ai_response_model=\"gpt-4o-mini-2024-07-18\"";
        let post = "openai_response_service_tier=\"default\",openai_response_system_fingerprint=\"fp_44709d6fcb\",server_address=\"api.openai.com\",server_port=\"443\",service_name=\"chatbot\",otel_scope_name=\"llm-tracer\"";
        // Cumulative buckets: 1200 input tokens count from le=4096 on.
        for b in TOKEN_BUCKETS {
            let n = if b < 1200.0 { 0 } else { 1 };
            has(&format!(
                "gen_ai_client_token_usage_bucket{{{pre},gen_ai_token_type=\"input\",{post},le=\"{b}\"}} {n}"
            ));
        }
        has(&format!(
            "gen_ai_client_token_usage_bucket{{{pre},gen_ai_token_type=\"input\",{post},le=\"+Inf\"}} 1"
        ));
        has(&format!(
            "gen_ai_client_token_usage_sum{{{pre},gen_ai_token_type=\"output\",{post}}} 350"
        ));
        for b in DURATION_BUCKETS {
            has(&format!(
                "gen_ai_client_operation_duration_seconds_bucket{{{pre},{post},le=\"{b}\"}}"
            ));
        }
        has("gen_ai_client_operation_time_to_first_chunk_seconds_count{");
        has("gen_ai_client_operation_time_per_output_chunk_seconds_count{");
        has("llm_tracer_ring_buffer_lost_total{otel_scope_name=\"llm-tracer\"} 5");
        has(&format!(
            "llm_tracer_usage_cost_usd_total{{{pre},{post}}} 0.000375"
        ));

        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lost_records"], 5);
        assert_eq!(v["ready"], false);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/nope").await.0, 404);
        task.abort();
        mp.shutdown().unwrap();
    }
}
