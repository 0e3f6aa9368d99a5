#!/usr/bin/env python3
"""App-visible cost for `cargo xtask bench`: one long-lived worker per variant, driven over stdin.

The worker makes calls with the official `openai` SDK to the local fake server and times each one,
next to a short fixed CPU-bound loop timed right after it (the VM's clock speed drifts; the caller
divides each call's time by its loop's time). Which TLS library the process uses (traced or an
untraced copy) is chosen by the caller with LD_LIBRARY_PATH; `--instrument` turns on the official
in-process instrumentation (opentelemetry-instrumentation-openai-v2) exporting OTLP/HTTP.

Commands (one per line): `stream K` / `nonstream K` -> one JSON line {"calls": [[wall_s, probe_s], ...]};
`quit`. Prints `ready` once warmed up.
"""

import argparse
import json
import sys
import time


def probe():
    """A fixed amount of pure-Python CPU work; its time tracks the VM's current speed (the fastest
    of three runs, so a run that was preempted does not count)."""
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        x = 0
        for i in range(20000):
            x = (x * 31 + i) & 0xFFFFFFFF
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--chunks", type=int, default=300)
    ap.add_argument("--chunk-bytes", type=int, default=16)
    ap.add_argument("--nonstream-bytes", type=int, default=2000)
    ap.add_argument("--instrument", help="OTLP/HTTP endpoint: turn on the in-process instrumentation")
    args = ap.parse_args()

    if args.instrument:
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.instrument + "/v1/traces")))
        trace.set_tracer_provider(tp)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=args.instrument + "/v1/metrics"),
                                               export_interval_millis=5000)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        OpenAIInstrumentor().instrument()

    import httpx
    import openai

    client = openai.OpenAI(api_key="fake-bench-key-not-a-secret", base_url=args.base_url,
                           http_client=httpx.Client(verify=args.ca), max_retries=0)
    stream_headers = {"x-fake-chunks": str(args.chunks), "x-fake-chunk-bytes": str(args.chunk_bytes)}
    # A non-streaming answer of about --nonstream-bytes: one chunk of that many bytes of text.
    plain_headers = {"x-fake-chunks": "1", "x-fake-chunk-bytes": str(args.nonstream_bytes)}
    messages = [{"role": "user", "content": "Say a few hundred words about benchmarks."}]

    def stream_call():
        s = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                           stream_options={"include_usage": True},
                                           extra_headers=stream_headers)
        n = 0
        for _ in s:
            n += 1
        if n < args.chunks:
            raise RuntimeError("short stream: %d events" % n)

    def plain_call():
        r = client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=plain_headers)
        if not r.choices:
            raise RuntimeError("no choices")

    for _ in range(3):
        stream_call()
        plain_call()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        fn = stream_call if cmd[0] == "stream" else plain_call
        out = []
        for _ in range(int(cmd[1])):
            # The probe runs before the call, after a pause: timed right after a call, it would
            # compete with the agent still digesting that call and make traced calls look faster.
            time.sleep(0.05)
            p = probe()
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
            out.append([wall, p])
        print(json.dumps({"calls": out}), flush=True)


if __name__ == "__main__":
    main()
