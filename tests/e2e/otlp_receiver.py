"""A real OTLP receiver for the end-to-end tests.

It accepts OTLP/HTTP (protobuf) on `/v1/traces` and `/v1/metrics`, and OTLP/gRPC (TraceService and
MetricsService), decodes every request with the official protobuf definitions (the
`opentelemetry-proto` package) and keeps the spans and metric points as plain dicts, plus every raw
byte it was sent (so a test can grep the wire for a secret).

Run alone (`python3 otlp_receiver.py`) it prints the endpoints and dumps what arrives as JSON lines.
"""

import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def any_value(v):
    """An OTLP AnyValue as a Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class OtlpReceiver:
    def __init__(self):
        self.lock = threading.Condition()
        self.spans = []
        self.metrics = []
        self.raw = bytearray()
        self.requests = {"http": 0, "grpc": 0}
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()

    @property
    def http_endpoint(self):
        return "http://127.0.0.1:%d" % self._http.server_address[1]

    @property
    def grpc_endpoint(self):
        return "http://127.0.0.1:%d" % self.grpc_port

    def close(self):
        self._http.shutdown()
        self._grpc.stop(0)

    # ---- decoding -------------------------------------------------------------------------------
    def add_traces(self, body, transport):
        req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        out = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append({
                        "name": s.name,
                        "kind": SPAN_KINDS.get(s.kind, str(s.kind)),
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                        "attributes": attrs(s.attributes),
                        "resource": resource,
                        "scope": ss.scope.name,
                    })
        with self.lock:
            self.raw += body
            self.requests[transport] += 1
            self.spans.extend(out)
            self.lock.notify_all()

    def add_metrics(self, body, transport):
        req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        out = []
        for rm in req.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    points = []
                    for p in data.data_points:
                        point = {"attributes": attrs(p.attributes)}
                        if kind in ("histogram",):
                            point.update(count=p.count, sum=p.sum, bounds=list(p.explicit_bounds),
                                         bucket_counts=list(p.bucket_counts))
                        else:
                            point["value"] = getattr(p, p.WhichOneof("value"))
                        points.append(point)
                    out.append({
                        "name": m.name,
                        "unit": m.unit,
                        "kind": kind,
                        "temporality": getattr(data, "aggregation_temporality", None),
                        "points": points,
                        "resource": resource,
                    })
        with self.lock:
            self.raw += body
            self.requests[transport] += 1
            self.metrics.extend(out)
            self.lock.notify_all()

    # ---- waiting --------------------------------------------------------------------------------
    def wait_spans(self, predicate=lambda spans: len(spans) > 0, timeout=20.0):
        """Waits until predicate(spans) is true; returns the spans (or raises with what arrived)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self.spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for spans; have %d: %s" % (
                        len(self.spans), json.dumps([s["name"] for s in self.spans])))
                self.lock.wait(left)
            return list(self.spans)

    def wait_metric(self, name, timeout=30.0, predicate=lambda m: True):
        """Waits for the newest export of metric `name` that satisfies predicate; returns it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = [m for m in self.metrics if m["name"] == name and predicate(m)]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for metric %s; have %s" % (
                        name, sorted({m["name"] for m in self.metrics})))
                self.lock.wait(left)

    def _http_handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    import gzip
                    body = gzip.decompress(body)
                try:
                    if self.path == "/v1/traces":
                        receiver.add_traces(body, "http")
                    elif self.path == "/v1/metrics":
                        receiver.add_metrics(body, "http")
                    else:
                        self.send_response(404)
                        self.send_header("content-length", "0")
                        self.end_headers()
                        return
                except Exception as exc:  # a decode failure is a test failure: answer 400 and keep it
                    receiver.requests.setdefault("errors", []).append(repr(exc))
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        return Handler


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        self.receiver.add_traces(request.SerializeToString(), "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        self.receiver.add_metrics(request.SerializeToString(), "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    r = OtlpReceiver()
    print("http %s grpc %s" % (r.http_endpoint, r.grpc_endpoint), flush=True)
    seen_s = seen_m = 0
    try:
        while True:
            time.sleep(0.5)
            with r.lock:
                for s in r.spans[seen_s:]:
                    print(json.dumps({"span": s}), flush=True)
                for m in r.metrics[seen_m:]:
                    print(json.dumps({"metric": m}), flush=True)
                seen_s, seen_m = len(r.spans), len(r.metrics)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
