#!/usr/bin/env python3
"""A local HTTPS server that answers in the wire shapes of the big LLM APIs.

Used by the end-to-end tests, the demo and the benchmarks: real clients (official SDKs, curl, node) talk
to it over real TLS, so the tracer's uprobes see real library calls. Every answer is deterministic and
written to a "served" log (one JSON object per call) so a test can compare what the tracer reported
with what was really sent.

Shapes: OpenAI chat completions / responses / completions / embeddings (also under Azure deployment
paths), Anthropic messages, Gemini generateContent / streamGenerateContent (SSE and JSON array),
Ollama /api/chat and /api/generate (NDJSON). Streams are chunked transfer-encoded like the real APIs.

Per-request knobs (HTTP headers, so SDKs can send them with extra_headers):
  x-fake-chunks: N        output chunks (default 5); also the output token count
  x-fake-chunk-bytes: B   bytes of text per chunk (default 4)
  x-fake-delay-ms: D      sleep between streamed chunks (default 0)
  x-fake-status: S        answer with this HTTP error status and the provider's error body
  x-fake-gzip: 1          gzip the response body
  x-fake-abort-after: K   stream K chunks then close the connection (mid-stream death)
  x-fake-bad-header: 1    put a line without a colon after the response's headers (a broken head)
Response-side secrets: with FAKE_RESPONSE_HEADERS='[["Set-Cookie", "__cf_bm=..."], ...]' in its
environment, every answer carries those headers too (as the real APIs send Set-Cookie). They come
from the environment, not a flag or a request header, so the secret travels only in responses.
Input tokens are the number of whitespace-separated words in all strings of the request's messages.
"""

import argparse
import gzip
import json
import os
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

LOCK = threading.Lock()
SERVED = None  # file object of the served log
# Extra headers of every answer (see the module doc).
RESPONSE_HEADERS = [tuple(h) for h in json.loads(os.environ.get("FAKE_RESPONSE_HEADERS") or "[]")]


def words(value):
    """Counts whitespace-separated words in every string inside a JSON value."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(words(v) for v in value)
    if isinstance(value, dict):
        return sum(words(v) for k, v in value.items() if k not in ("model", "role", "type"))
    return 0


def log_served(entry):
    if SERVED is None:
        return
    with LOCK:
        SERVED.write(json.dumps(entry) + "\n")
        SERVED.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing -------------------------------------------------------------------------------
    def end_headers(self):
        for k, v in RESPONSE_HEADERS:
            self.send_header(k, v)
        if self.headers.get("x-fake-bad-header") == "1":
            self._headers_buffer.append(b"this header line has no colon\r\n")
        super().end_headers()

    def read_body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
        if self.headers.get("content-encoding", "") == "gzip":
            data = gzip.decompress(data)
        return data

    def knob(self, name, default):
        v = self.headers.get(name)
        return int(v) if v is not None else default

    def send_json(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if self.headers.get("x-fake-gzip") == "1":
            body = gzip.compress(body)
            self.send_header("content-encoding", "gzip")
        for k, v in extra_headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()

    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def pieces(self):
        n = self.knob("x-fake-chunks", 5)
        size = self.knob("x-fake-chunk-bytes", 4)
        return [("w%d" % i).ljust(size, "x")[:max(size, 1)] for i in range(n)]

    def pause(self):
        d = self.knob("x-fake-delay-ms", 0)
        if d:
            time.sleep(d / 1000.0)

    def aborted(self, i):
        k = self.headers.get("x-fake-abort-after")
        if k is not None and i >= int(k):
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        return False

    # ---- routing --------------------------------------------------------------------------------
    def do_GET(self):
        if self.path.startswith("/blob"):
            # A non-LLM download (`/blob?bytes=N`): what muting is for.
            n = int(self.path.partition("bytes=")[2] or 1048576)
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(n))
            self.end_headers()
            block = b"b" * 65536
            while n > 0:
                self.wfile.write(block[:min(n, len(block))])
                n -= len(block)
            self.wfile.flush()
            return
        self.send_json(200, {"ok": True, "path": self.path})

    def do_POST(self):
        raw = self.read_body()
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        path = self.path.split("?")[0]
        status = self.knob("x-fake-status", 200)
        entry = {"path": path, "pid_hint": self.headers.get("x-fake-tag"), "status": status}
        if path.endswith("/chat/completions"):
            self.openai_chat(req, status, entry)
        elif path.endswith("/responses"):
            self.openai_responses(req, status, entry)
        elif path.endswith("/embeddings"):
            self.openai_embeddings(req, status, entry)
        elif path.endswith("/completions"):
            self.openai_completions(req, status, entry)
        elif path.endswith("/messages"):
            self.anthropic(req, status, entry)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self.gemini(req, status, entry, path)
        elif path in ("/api/chat", "/api/generate"):
            self.ollama(req, status, entry, path)
        else:
            self.send_json(404, {"error": "not found"})
            return
        log_served(entry)

    # ---- OpenAI ---------------------------------------------------------------------------------
    def openai_error(self, status):
        code = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        self.send_json(status, {"error": {"message": "fake error", "type": "invalid_request_error",
                                          "param": None, "code": code}})
        return code

    def openai_chat(self, req, status, entry):
        model = req.get("model", "unknown")
        entry.update(model=model, stream=bool(req.get("stream")))
        if status != 200:
            entry["error"] = self.openai_error(status)
            return
        text = self.pieces()
        inp = words(req.get("messages", []))
        out = len(text)
        cid = "chatcmpl-fake%06d" % (raw_key(req))
        entry.update(id=cid, input_tokens=inp, output_tokens=out, finish_reason="stop")
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
                 "prompt_tokens_details": {"cached_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0}}
        base = {"id": cid, "created": 1700000000, "model": model, "system_fingerprint": "fp_fake",
                "service_tier": "default"}
        if not req.get("stream"):
            self.send_json(200, dict(base, object="chat.completion", choices=[
                {"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                 "finish_reason": "stop", "logprobs": None}], usage=usage))
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        if not include_usage:
            entry.update(input_tokens=None, output_tokens=None)
        self.start_stream("text/event-stream")

        def ev(obj):
            self.chunk("data: " + json.dumps(dict(base, object="chat.completion.chunk", **obj)) + "\n\n")

        ev({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            "usage": None})
        for i, t in enumerate(text):
            if self.aborted(i):
                entry["aborted"] = True
                return
            self.pause()
            ev({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}], "usage": None})
        ev({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
        if include_usage:
            ev({"choices": [], "usage": usage})
        self.chunk("data: [DONE]\n\n")
        self.end_stream()

    def openai_responses(self, req, status, entry):
        model = req.get("model", "unknown")
        entry.update(model=model, stream=bool(req.get("stream")))
        if status != 200:
            entry["error"] = self.openai_error(status)
            return
        text = self.pieces()
        inp = words(req.get("input", "")) + words(req.get("instructions", ""))
        out = len(text)
        rid = "resp_fake%06d" % (raw_key(req))
        entry.update(id=rid, input_tokens=inp, output_tokens=out, finish_reason="completed")
        usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}
        msg = {"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": "".join(text), "annotations": []}]}
        done = {"id": rid, "object": "response", "created_at": 1700000000, "status": "completed",
                "model": model, "output": [msg], "usage": usage, "service_tier": "default"}
        if not req.get("stream"):
            self.send_json(200, done)
            return
        self.start_stream("text/event-stream")
        seq = [0]

        def ev(kind, obj):
            obj = dict(obj, type=kind, sequence_number=seq[0])
            seq[0] += 1
            self.chunk("event: %s\ndata: %s\n\n" % (kind, json.dumps(obj)))

        created = dict(done, status="in_progress", output=[], usage=None)
        ev("response.created", {"response": created})
        ev("response.in_progress", {"response": created})
        ev("response.output_item.added", {"output_index": 0, "item": dict(msg, status="in_progress",
                                                                           content=[])})
        ev("response.content_part.added", {"item_id": "msg_fake", "output_index": 0, "content_index": 0,
                                           "part": {"type": "output_text", "text": "", "annotations": []}})
        for i, t in enumerate(text):
            if self.aborted(i):
                entry["aborted"] = True
                return
            self.pause()
            ev("response.output_text.delta", {"item_id": "msg_fake", "output_index": 0, "content_index": 0,
                                              "delta": t})
        ev("response.output_text.done", {"item_id": "msg_fake", "output_index": 0, "content_index": 0,
                                         "text": "".join(text)})
        ev("response.content_part.done", {"item_id": "msg_fake", "output_index": 0, "content_index": 0,
                                          "part": msg["content"][0]})
        ev("response.output_item.done", {"output_index": 0, "item": msg})
        ev("response.completed", {"response": done})
        self.end_stream()

    def openai_completions(self, req, status, entry):
        model = req.get("model", "unknown")
        entry.update(model=model, stream=False)
        if status != 200:
            entry["error"] = self.openai_error(status)
            return
        text = self.pieces()
        inp, out = words(req.get("prompt", "")), len(text)
        entry.update(id="cmpl-fake", input_tokens=inp, output_tokens=out, finish_reason="length")
        self.send_json(200, {"id": "cmpl-fake", "object": "text_completion", "created": 1700000000,
                             "model": model, "choices": [{"text": "".join(text), "index": 0,
                                                          "logprobs": None, "finish_reason": "length"}],
                             "usage": {"prompt_tokens": inp, "completion_tokens": out,
                                       "total_tokens": inp + out}})

    def openai_embeddings(self, req, status, entry):
        model = req.get("model", "unknown")
        entry.update(model=model, stream=False)
        if status != 200:
            entry["error"] = self.openai_error(status)
            return
        inputs = req.get("input", "")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        inp = words(inputs)
        entry.update(input_tokens=inp, output_tokens=None)
        data = [{"object": "embedding", "index": i, "embedding": [0.125, -0.5, 0.25]}
                for i in range(len(inputs))]
        self.send_json(200, {"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": inp, "total_tokens": inp}})

    # ---- Anthropic ------------------------------------------------------------------------------
    def anthropic(self, req, status, entry):
        model = req.get("model", "unknown")
        entry.update(model=model, stream=bool(req.get("stream")))
        if status != 200:
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            entry["error"] = kind
            self.send_json(status, {"type": "error", "error": {"type": kind, "message": "fake"}})
            return
        text = self.pieces()
        inp = words(req.get("messages", [])) + words(req.get("system", ""))
        cache_read, cache_write = 3, 2
        out = len(text)
        mid = "msg_fake%06d" % (raw_key(req))
        # OTel rule: input tokens include cached and cache-creation input.
        entry.update(id=mid, input_tokens=inp + cache_read + cache_write, output_tokens=out,
                     cache_read=cache_read, cache_creation=cache_write, finish_reason="end_turn")
        usage = {"input_tokens": inp, "cache_creation_input_tokens": cache_write,
                 "cache_read_input_tokens": cache_read, "output_tokens": out}
        if not req.get("stream"):
            self.send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                 "content": [{"type": "text", "text": "".join(text)}],
                                 "stop_reason": "end_turn", "stop_sequence": None, "usage": usage})
            return
        self.start_stream("text/event-stream")

        def ev(kind, obj):
            self.chunk("event: %s\ndata: %s\n\n" % (kind, json.dumps(dict(obj, type=kind))))

        ev("message_start", {"message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                                         "content": [], "stop_reason": None, "stop_sequence": None,
                                         "usage": dict(usage, output_tokens=1)}})
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        ev("ping", {})
        for i, t in enumerate(text):
            if self.aborted(i):
                entry["aborted"] = True
                return
            self.pause()
            ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
        ev("content_block_stop", {"index": 0})
        ev("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": out}})
        ev("message_stop", {})
        self.end_stream()

    # ---- Gemini ---------------------------------------------------------------------------------
    def gemini(self, req, status, entry, path):
        model = path.rsplit("/models/", 1)[-1].split(":")[0]
        stream = ":streamGenerateContent" in path
        entry.update(model=model, stream=stream)
        if status != 200:
            entry["error"] = "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"
            self.send_json(status, {"error": {"code": status, "message": "fake",
                                              "status": entry["error"]}})
            return
        text = self.pieces()
        inp, out = words(req.get("contents", [])), len(text)
        entry.update(input_tokens=inp, output_tokens=out, finish_reason="stop", id="resp-fake")

        def piece(i, t, last):
            obj = {"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}],
                   "modelVersion": model, "responseId": "resp-fake",
                   "usageMetadata": {"promptTokenCount": inp, "candidatesTokenCount": i + 1,
                                     "totalTokenCount": inp + i + 1}}
            if last:
                obj["candidates"][0]["finishReason"] = "STOP"
            return obj

        if not stream:
            self.send_json(200, piece(out - 1, "".join(text), True))
            return
        sse = "alt=sse" in self.path
        self.start_stream("text/event-stream" if sse else "application/json")
        if not sse:
            self.chunk("[")
        for i, t in enumerate(text):
            if self.aborted(i):
                entry["aborted"] = True
                return
            self.pause()
            obj = json.dumps(piece(i, t, i == len(text) - 1))
            self.chunk("data: %s\r\n\r\n" % obj if sse else ("," if i else "") + obj)
        if not sse:
            self.chunk("]")
        self.end_stream()

    # ---- Ollama ---------------------------------------------------------------------------------
    def ollama(self, req, status, entry, path):
        model = req.get("model", "unknown")
        stream = req.get("stream", True) is not False
        entry.update(model=model, stream=stream)
        if status != 200:
            entry["error"] = str(status)
            self.send_json(status, {"error": "fake error"})
            return
        text = self.pieces()
        inp = words(req.get("messages", [])) + words(req.get("prompt", ""))
        out = len(text)
        entry.update(input_tokens=inp, output_tokens=out, finish_reason="stop")
        chat = path == "/api/chat"

        def obj(t, done):
            o = {"model": model, "created_at": "2026-11-25T00:00:00Z", "done": done}
            if chat:
                o["message"] = {"role": "assistant", "content": t}
            else:
                o["response"] = t
            if done:
                o.update(done_reason="stop", prompt_eval_count=inp, eval_count=out,
                         total_duration=1000, eval_duration=500)
            return o

        if not stream:
            self.send_json(200, obj("".join(text), True))
            return
        self.start_stream("application/x-ndjson")
        for i, t in enumerate(text):
            if self.aborted(i):
                entry["aborted"] = True
                return
            self.pause()
            self.chunk(json.dumps(obj(t, False)) + "\n")
        self.chunk(json.dumps(obj("", True)) + "\n")
        self.end_stream()


COUNTER = [0]


def raw_key(req):
    """A fresh small number per call (ids must differ between calls, and be stable in the served log)."""
    with LOCK:
        COUNTER[0] += 1
        return COUNTER[0]


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global SERVED
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--served-log", help="append one JSON line per served call here")
    args = ap.parse_args()
    if args.served_log:
        SERVED = open(args.served_log, "a", buffering=1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv = Server((args.host, args.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
