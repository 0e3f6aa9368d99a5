#!/usr/bin/env python3
"""Load generator for the tracer's load test: N threads, each with its own keep-alive HTTPS
connection to the fake LLM server, making a mix of provider calls (streamed and not) at a total
target rate for a fixed time. Prints one JSON summary line: pid, calls made per kind, failures, and
the call latency (ms, request sent to response read: p50, p90, max)."""

import http.client
import json
import os
import ssl
import sys
import threading
import time

KINDS = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True,
                              "stream_options": {"include_usage": True},
                              "messages": [{"role": "user", "content": "stream please"}]}),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hello claude"}]}),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                      "messages": [{"role": "user", "content": "stream claude"}]}),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}),
    ("/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": "hello ollama"}]}),
]


def main():
    port, ca, threads, rate, seconds = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                        float(sys.argv[4]), float(sys.argv[5]))
    ctx = ssl.create_default_context(cafile=ca)
    made = [0] * len(KINDS)
    failed = []
    latency = []
    lock = threading.Lock()
    end = time.time() + seconds
    interval = threads / rate  # each thread's pace

    def worker(i):
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
        n = i
        next_t = time.time() + (i / threads) * interval
        while True:
            now = time.time()
            if now >= end:
                break
            if next_t > now:
                time.sleep(next_t - now)
            next_t += interval
            k = n % len(KINDS)
            n += threads
            path, body = KINDS[k]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=json.dumps(body),
                             headers={"content-type": "application/json", "x-fake-chunks": "5"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                took = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                ok = False
                conn.close()
                conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
                with lock:
                    failed.append(repr(e))
            with lock:
                if ok:
                    made[k] += 1
                    latency.append(took * 1000)
                elif len(failed) < 20:
                    failed.append(f"status on {path}")
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    latency.sort()
    pct = lambda q: round(latency[min(len(latency) - 1, int(q * len(latency)))], 2) if latency else None
    print(json.dumps({"pid": os.getpid(), "made": made, "total": sum(made), "failed": failed,
                      "latency_ms": {"p50": pct(0.5), "p90": pct(0.9),
                                     "max": round(latency[-1], 2) if latency else None}}))


if __name__ == "__main__":
    main()
