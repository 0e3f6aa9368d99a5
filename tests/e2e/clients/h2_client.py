#!/usr/bin/env python3
"""An HTTP/2 LLM client on one long-lived connection, for the HTTP/2 and late-attach tests.

It speaks HTTP/2 with the `h2` package over Python's `ssl` (OpenSSL: the tracer's libssl probes
see its SSL_write/SSL_read), like an SDK with a keep-alive pool: one TLS connection, one stream
per call, HPACK state carried from call to call.

    h2_client.py HOST:PORT CA_FILE [--before N] [--after M] [--stream] [--dump FILE]

Makes N calls, then (if M > 0) prints `{"ready": true}` and waits for one line on stdin (the
test starts the tracer meanwhile: the connection, its preface and its HPACK table now predate
the tracer), then makes M more calls on the same connection. One JSON line per call on stdout
with what the client saw (stream id, status, model, usage, text), so a test can compare it with
what the tracer reported. `--dump` writes every plaintext write/read as records (the format of
tracer-core's tests/fixtures/h2/*.json) to build parser fixtures from a real exchange.

The API key is a canary: a test greps every tracer output for it.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

CANARY = os.environ.get("CANARY_OPENAI_KEY", "test-canary-openai-0000")


class Client:
    def __init__(self, host, port, ca, dump):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, port))
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        if self.sock.selected_alpn_protocol() != "h2":
            raise SystemExit("server did not pick h2")
        self.authority = "%s:%d" % (host, port)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(cfg)
        self.records = [] if dump else None
        self.conn.initiate_connection()
        self.flush()

    def record(self, direction, data):
        if self.records is not None:
            self.records.append({"dir": direction, "ts": time.monotonic_ns(), "hex": data.hex()})

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.record("write", data)
            self.sock.sendall(data)

    def call(self, path, body, stream):
        sid = self.conn.get_next_available_stream_id()
        payload = json.dumps(body).encode()
        self.conn.send_headers(sid, [
            (b":method", b"POST"), (b":scheme", b"https"), (b":path", path.encode()),
            (b":authority", self.authority.encode()),
            (b"content-type", b"application/json"), (b"accept", b"application/json"),
            (b"authorization", ("Bearer " + CANARY).encode()),
            (b"user-agent", b"h2-test-client/1"),
            (b"content-length", str(len(payload)).encode()),
        ])
        self.conn.send_data(sid, payload, end_stream=True)
        self.flush()
        status, headers, data = None, [], b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            self.record("read", chunk)
            done = False
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    headers = ev.headers
                    status = int(dict(headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id == sid:
                        data += ev.data
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and ev.stream_id == sid:
                    done = True
            self.flush()
            if done:
                return sid, status, data

    def close(self):
        self.conn.close_connection()
        self.flush()
        self.sock.close()


def summarise(sid, status, data, stream):
    out = {"stream_id": sid, "status": status}
    text = data.decode("utf-8", "replace")
    if stream:
        parts, usage, model = [], None, None
        for line in text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                obj = json.loads(line[6:])
                model = obj.get("model", model)
                usage = obj.get("usage") or usage
                for c in obj.get("choices", []):
                    parts.append((c.get("delta") or {}).get("content") or "")
        out.update(model=model, usage=usage, text="".join(parts))
    else:
        obj = json.loads(text or "{}")
        out.update(model=obj.get("model"), usage=obj.get("usage"),
                   text=((obj.get("choices") or [{}])[0].get("message") or {}).get("content"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", help="HOST:PORT")
    ap.add_argument("ca")
    ap.add_argument("--before", type=int, default=1)
    ap.add_argument("--after", type=int, default=0)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--dump")
    args = ap.parse_args()
    host, port = args.server.rsplit(":", 1)
    c = Client(host, int(port), args.ca, args.dump)

    def one(i):
        body = {"model": "gpt-4o-mini", "stream": args.stream,
                "messages": [{"role": "user", "content": "call number %d please" % i}]}
        if args.stream:
            body["stream_options"] = {"include_usage": True}
        sid, status, data = c.call("/v1/chat/completions", body, args.stream)
        print(json.dumps(summarise(sid, status, data, args.stream)), flush=True)

    for i in range(args.before):
        one(i)
    if args.after:
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()
        if c.records is not None:
            c.records.append({"dir": "attach", "ts": time.monotonic_ns(), "hex": ""})
        for i in range(args.before, args.before + args.after):
            one(i)
    c.close()
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump({"records": c.records}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
