#!/usr/bin/env python3
"""The fake LLM server of `llm_server.py`, over HTTP/2 (TLS with ALPN `h2`).

Same answers, knobs and served log as `llm_server.py` (its request handler builds every answer;
this file only carries them over HTTP/2 frames instead of HTTP/1.1 chunks): OpenAI, Anthropic,
Gemini and Ollama shapes, streamed answers as one DATA frame per chunk. Many streams may share a
connection; requests are answered one at a time per connection, in the order they complete.

Needs the `h2` package (pip install h2). Usage:
    llm_server_h2.py --cert CERT --key KEY [--port P] [--served-log FILE]
Prints "listening PORT" when ready.
"""

import argparse
import http.client
import io
import os
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llm_server  # noqa: E402  (the answers)

# Headers that mean something for HTTP/1.1 only (RFC 9113 §8.2.2).
HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection"}


class StreamAborted(Exception):
    pass


class H2Conn:
    """One client connection: reads frames, answers each complete request on its stream."""

    def __init__(self, sock):
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(cfg)
        self.requests = {}  # stream id -> [headers, body bytes]
        self.window_open = threading.Event()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        """Read one batch of frames and handle them; False when the connection is over."""
        data = self.sock.recv(65536)
        if not data:
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            return False
        ready = []
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.requests[ev.stream_id] = [ev.headers, b""]
                if ev.stream_ended:
                    ready.append(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                if ev.stream_id in self.requests:
                    self.requests[ev.stream_id][1] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ready.append(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.requests.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.flush()
                return False
        self.flush()
        for sid in ready:
            req = self.requests.pop(sid, None)
            if req is not None:
                self.answer(sid, *req)
        return True

    def send(self, sid, data, end=False):
        """DATA on a stream, waiting for flow-control window as needed."""
        while True:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room > 0 or not data:
                n = min(room, len(data))
                self.conn.send_data(sid, data[:n], end_stream=end and n == len(data))
                self.flush()
                data = data[n:]
                if not data:
                    return
            elif not self.pump():
                raise StreamAborted()

    def answer(self, sid, headers, body):
        h = Adapter(self, sid, headers, body)
        try:
            h.do_POST() if h.command == "POST" else h.do_GET()
            h.finish_stream()
        except (StreamAborted, h2.exceptions.StreamClosedError):
            pass

    def serve(self):
        self.conn.initiate_connection()
        self.flush()
        try:
            while self.pump():
                pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass


class Wfile:
    """What `llm_server.Handler` writes a body to: DATA frames on the stream."""

    def __init__(self, adapter):
        self.a = adapter

    def write(self, data):
        self.a.data(data)

    def flush(self):
        pass


class Adapter(llm_server.Handler):
    """`llm_server.Handler` answering one HTTP/2 request (no socket of its own)."""

    def __init__(self, conn, sid, headers, body):  # noqa: D401 (not BaseHTTPRequestHandler's)
        self.h2 = conn
        self.sid = sid
        pseudo = {k: v for k, v in headers if k.startswith(b":")}
        self.command = pseudo.get(b":method", b"GET").decode()
        self.path = pseudo.get(b":path", b"/").decode()
        msg = http.client.HTTPMessage()
        for k, v in headers:
            if not k.startswith(b":"):
                msg[k.decode()] = v.decode()
        # The body arrived whole: read_body reads it by its length.
        del msg["transfer-encoding"]
        del msg["content-length"]
        msg["content-length"] = str(len(body))
        self.headers = msg
        self.rfile = io.BytesIO(body)
        self.wfile = Wfile(self)
        self.status = 200
        self.out_headers = []
        self.head_sent = False
        self.ended = False

    # BaseHTTPRequestHandler's response plumbing, as HTTP/2.
    def send_response(self, code, message=None):
        self.status = code

    def send_header(self, keyword, value):
        if keyword.lower() not in HOP_BY_HOP:
            self.out_headers.append((keyword.lower().encode(), str(value).encode()))

    def end_headers(self):
        if not self.head_sent:
            self.head_sent = True
            hs = [(b":status", str(self.status).encode())] + self.out_headers
            self.h2.conn.send_headers(self.sid, hs)
            self.h2.flush()

    def data(self, data):
        self.end_headers()
        if data:
            self.h2.send(self.sid, data)

    # The chunked-stream helpers: one DATA frame per chunk, END_STREAM at the end.
    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.data(data)

    def end_stream(self):
        self.finish_stream()

    def finish_stream(self):
        if not self.ended:
            self.end_headers()
            self.ended = True
            self.h2.send(self.sid, b"", end=True)

    def aborted(self, i):
        k = self.headers.get("x-fake-abort-after")
        if k is not None and i >= int(k):
            # Mid-stream death on HTTP/2: the stream is reset, the connection lives on.
            self.ended = True
            self.h2.conn.reset_stream(self.sid, error_code=2)
            self.h2.flush()
            return True
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--served-log", help="append one JSON line per served call here")
    args = ap.parse_args()
    if args.served_log:
        llm_server.SERVED = open(args.served_log, "a", buffering=1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2"])
    lsock = socket.create_server((args.host, args.port))
    print("listening %d" % lsock.getsockname()[1], flush=True)
    try:
        while True:
            raw, _ = lsock.accept()
            try:
                sock = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            threading.Thread(target=H2Conn(sock).serve, daemon=True).start()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
