//! A real OTLP receiver for tests: http/protobuf (hyper) and gRPC (tonic), decoding with the
//! official protobuf definitions (`opentelemetry-proto` + prost). It keeps every decoded request
//! and every raw byte received, so tests can also prove what never left the process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;

#[derive(Debug, Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Every request body (HTTP) or re-encoded message (gRPC), for byte-level checks.
    pub raw: Vec<u8>,
    /// Requests that could not be decoded.
    pub errors: Vec<String>,
}

pub type Shared = Arc<Mutex<Received>>;

async fn handle_http(req: Request<Incoming>, store: Shared) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            store.lock().unwrap().errors.push(format!("body: {e}"));
            return Response::new(Full::new(Bytes::new()));
        }
    };
    let mut s = store.lock().unwrap();
    s.raw.extend_from_slice(&body);
    let status = match path.as_str() {
        "/v1/traces" => match ExportTraceServiceRequest::decode(body) {
            Ok(r) => {
                s.traces.push(r);
                StatusCode::OK
            }
            Err(e) => {
                s.errors.push(format!("traces: {e}"));
                StatusCode::BAD_REQUEST
            }
        },
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
            Ok(r) => {
                s.metrics.push(r);
                StatusCode::OK
            }
            Err(e) => {
                s.errors.push(format!("metrics: {e}"));
                StatusCode::BAD_REQUEST
            }
        },
        other => {
            s.errors.push(format!("unexpected path {other}"));
            StatusCode::NOT_FOUND
        }
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}

/// Start an OTLP/HTTP receiver on 127.0.0.1 (a random port).
pub async fn http() -> (SocketAddr, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store: Shared = Arc::default();
    let s = store.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(handle_http(req, s).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, store)
}

#[derive(Clone)]
struct Grpc(Shared);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let r = request.into_inner();
        let mut s = self.0.lock().unwrap();
        s.raw.extend_from_slice(&r.encode_to_vec());
        s.traces.push(r);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let r = request.into_inner();
        let mut s = self.0.lock().unwrap();
        s.raw.extend_from_slice(&r.encode_to_vec());
        s.metrics.push(r);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Start an OTLP/gRPC receiver on 127.0.0.1 (a random port).
pub async fn grpc() -> (SocketAddr, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store: Shared = Arc::default();
    let svc = Grpc(store.clone());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(svc.clone()))
            .add_service(MetricsServiceServer::new(svc))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (addr, store)
}
