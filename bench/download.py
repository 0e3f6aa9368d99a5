#!/usr/bin/env python3
"""Unrelated TLS traffic for `cargo xtask bench`: a keep-alive client downloading a non-LLM
resource (`GET /blob?bytes=N` of the fake server) in a loop, paced to `--mbps` MB/s (0: as fast as
it can), for `--secs` seconds. Optionally one LLM call on the same connection at the end
(`--llm-call`), to show a muted download does not hide it. Prints one JSON line: bytes downloaded,
requests, elapsed seconds, pid.
"""

import argparse
import http.client
import json
import os
import ssl
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--mbps", type=float, default=0.0)
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--bytes", type=int, default=1048576)
    ap.add_argument("--count", type=int, default=0, help="stop after this many downloads (0: --secs)")
    ap.add_argument("--llm-call", action="store_true")
    args = ap.parse_args()

    ctx = ssl.create_default_context(cafile=args.ca)
    conn = http.client.HTTPSConnection("localhost", args.port, context=ctx, timeout=30)
    start = time.monotonic()
    got = requests = 0
    while True:
        now = time.monotonic()
        if args.count and requests >= args.count:
            break
        if not args.count and now - start >= args.secs:
            break
        if args.mbps > 0:
            due = start + got / (args.mbps * 1e6)
            if due > now:
                time.sleep(min(due - now, 0.2))
                continue
        conn.request("GET", "/blob?bytes=%d" % args.bytes)
        resp = conn.getresponse()
        while True:
            b = resp.read(65536)
            if not b:
                break
            got += len(b)
        requests += 1
    out = {"bytes": got, "requests": requests, "elapsed": time.monotonic() - start, "pid": os.getpid()}
    if args.llm_call:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "after the download"}]})
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"content-type": "application/json", "authorization": "Bearer fake-bench-key-not-a-secret"})
        resp = conn.getresponse()
        out["llm_status"] = resp.status
        out["llm_body"] = json.loads(resp.read())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
