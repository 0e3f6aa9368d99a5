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
