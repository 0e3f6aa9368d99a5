#!/usr/bin/env python3
"""Steady LLM-shaped load for `cargo xtask bench`: OpenAI chat calls over keep-alive TLS connections.

Light on purpose (http.client, not the SDK), so the machine's CPU goes to the agent being measured,
not to the client. `--rate` calls per second in total (paced), or as fast as possible with
`--rate 0`, over `--clients` threads, each its own connection, for `--calls` calls in all.
Streaming calls of `--chunks` SSE events of `--chunk-bytes` bytes each. Prints one JSON line at the
end: calls made, errors, response bytes, elapsed seconds, pid.
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--chunk-bytes", type=int, default=16)
    ap.add_argument("--stream", type=int, default=1)
    args = ap.parse_args()

    ctx = ssl.create_default_context(cafile=args.ca)
    body = json.dumps({"model": "gpt-4o-mini", "stream": bool(args.stream),
                       "messages": [{"role": "user", "content": "Tell me about tracing overhead."}]})
    headers = {"content-type": "application/json", "authorization": "Bearer fake-bench-key-not-a-secret",
               "x-fake-chunks": str(args.chunks), "x-fake-chunk-bytes": str(args.chunk_bytes)}
    lock = threading.Lock()
    state = {"next": 0, "calls": 0, "errors": 0, "bytes": 0}
    start = time.monotonic()

    def worker():
        conn = None
        while True:
            with lock:
                i = state["next"]
                if i >= args.calls:
                    break
                state["next"] += 1
            if args.rate > 0:
                due = start + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("localhost", args.port, context=ctx, timeout=30)
                conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
                data = conn.getresponse().read()
                with lock:
                    state["calls"] += 1
                    state["bytes"] += len(data)
            except Exception:
                with lock:
                    state["errors"] += 1
                conn = None

    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state["elapsed"] = time.monotonic() - start
    state["pid"] = os.getpid()
    del state["next"]
    print(json.dumps(state), flush=True)


if __name__ == "__main__":
    main()
