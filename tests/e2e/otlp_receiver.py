"""A real OTLP receiver for the end-to-end tests.

It accepts OTLP/HTTP (protobuf) on `/v1/traces` and `/v1/metrics`, and OTLP/gRPC (TraceService and
MetricsService), decodes every request with the official protobuf definitions (the
`opentelemetry-proto` package) and keeps the spans and metric points as plain dicts, plus every raw
byte it was sent (so a test can grep the wire for a secret).

Faults, for the tests of what the agent does when its endpoint misbehaves (`set_fault`, or
`POST /control` with the same fields as JSON when the receiver runs in another process):
  ok                      answer every export (the default)
  delay    seconds=S      wait S seconds, then take the export and answer OK (a slow collector)
  error    http_status=N  answer HTTP N (with `Retry-After: R` when retry_after=R is given) and
           grpc_code=C    gRPC status C (a grpc.StatusCode name, e.g. UNAVAILABLE), keeping nothing
Rejected exports are counted in `requests["rejected"]`; `GET /stats` gives the counts as JSON.

Run alone (`python3 otlp_receiver.py [--http-port P] [--grpc-port G]`) it prints the endpoints and
dumps what arrives as JSON lines; killing that process is an endpoint going away, and starting it
again on the same ports is the endpoint coming back.
"""

import argparse

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
    def __init__(self, http_port=0, grpc_port=0):
        self.lock = threading.Condition()
        self.spans = []
        self.metrics = []
        self.raw = bytearray()
        self.requests = {"http": 0, "grpc": 0, "rejected": 0}
        self.fault = {"mode": "ok"}
        self._http = ThreadingHTTPServer(("127.0.0.1", http_port), self._http_handler())
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:%d" % grpc_port)
        if not self.grpc_port:
            raise OSError("gRPC port %d is taken" % grpc_port)
        self._grpc.start()

    # ---- faults ---------------------------------------------------------------------------------
    def set_fault(self, mode="ok", **params):
        """ok | delay(seconds) | error(http_status, grpc_code, retry_after); see the module doc."""
        if mode not in ("ok", "delay", "error"):
            raise ValueError("unknown fault mode %r" % mode)
        if mode == "error" and not (params.get("http_status") or params.get("grpc_code")):
            raise ValueError("error needs http_status and/or grpc_code")
        with self.lock:
            self.fault = {"mode": mode, **params}

    def _apply_fault(self):
        """Runs the current fault for one export; returns None (take it) or the fault (reject)."""
        with self.lock:
            fault = dict(self.fault)
        if fault["mode"] == "delay":
            time.sleep(float(fault.get("seconds", 1)))
            return None
        if fault["mode"] == "error":
            with self.lock:
                self.requests["rejected"] += 1
            return fault
        return None

    def stats(self):
        with self.lock:
            return {"spans": len(self.spans), "metrics": len(self.metrics), "fault": self.fault,
                    **{k: v for k, v in self.requests.items() if k != "errors"}}

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

            def _empty(self, status, headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self):
                if self.path != "/stats":
                    return self._empty(404)
                body = json.dumps(receiver.stats()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/control":
                    try:
                        receiver.set_fault(**json.loads(body or b"{}"))
                    except (ValueError, TypeError) as exc:
                        return self._empty(400, [("x-error", str(exc)[:200])])
                    return self._empty(204)
                fault = receiver._apply_fault()
                if fault is not None and fault.get("http_status"):
                    extra = []
                    if fault.get("retry_after") is not None:
                        extra.append(("retry-after", str(fault["retry_after"])))
                    return self._empty(int(fault["http_status"]), extra)
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


def _grpc_fault(receiver, context):
    """Applies the receiver's fault to a gRPC export (aborts the call when it is an error)."""
    fault = receiver._apply_fault()
    if fault is not None:
        code = getattr(grpc.StatusCode, fault.get("grpc_code") or "UNAVAILABLE")
        context.abort(code, "fault injected by the test receiver")


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        _grpc_fault(self.receiver, context)
        self.receiver.add_traces(request.SerializeToString(), "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        _grpc_fault(self.receiver, context)
        self.receiver.add_metrics(request.SerializeToString(), "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--grpc-port", type=int, default=0)
    args = ap.parse_args()
    r = OtlpReceiver(args.http_port, args.grpc_port)
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
