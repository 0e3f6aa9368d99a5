"""Fixtures of the end-to-end suite: a self-signed certificate, a local TLS HTTP/1.1 server, and the
tracer itself (the release binary, as root), plus helpers to read recordings.

Other suites' test files in tests/e2e/ use these fixtures as they are:
  tls_cert     -> (cert_path, key_path), made by `openssl req` for this run
  tls_server   -> TlsServer: https://127.0.0.1:PORT, keep-alive, Content-Length or chunked answers
  tracer       -> factory: tracer("record", "--max-capture-bytes", "1048576") starts it and waits for
                  its `ready` line; .stop() ends it (SIGINT) and returns its output
  read_recording(path) / streams(records, pid) -> parsed records / byte streams per connection
"""

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACER_BIN = Path(os.environ.get("LLM_TRACER_BIN", ROOT / "target/release/llm-tracer"))
READY_TIMEOUT = 60


def response_body(marker: str, size: int) -> bytes:
    """The deterministic answer body: the marker, then filler up to `size` bytes."""
    head = f"<<{marker}>>".encode()
    filler = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    need = max(0, size - len(head))
    return head + (filler * (need // len(filler) + 1))[:need]


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, *args):
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _answer(self):
        q = parse_qs(urlparse(self.path).query)
        body = self._read_body() if self.command == "POST" else b""
        self.server.received.append((self.path, body))
        marker = q.get("resp", ["RESPONSE"])[0]
        payload = response_body(marker, int(q.get("size", ["0"])[0]))
        chunked = q.get("chunked", ["0"])[0] == "1"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = 4096
            for i in range(0, len(payload), step):
                part = payload[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        self.wfile.flush()

    do_POST = _answer
    do_GET = _answer


class TlsServer:
    """A threaded HTTPS server on 127.0.0.1. Query parameters of a request choose the answer:
    resp=MARKER (body starts with <<MARKER>>), size=N (body length), chunked=1."""

    def __init__(self, cert, key):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.received = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def received(self):
        return self.httpd.received

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_server(tls_cert):
    server = TlsServer(*tls_cert)
    yield server
    server.close()


class Tracer:
    def __init__(self, args, out):
        self.out = out
        self.proc = subprocess.Popen([str(TRACER_BIN), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stdout_lines = []
        self.stderr_text = ""
        self._err_thread = threading.Thread(target=self._drain_err, daemon=True)
        self._err_thread.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.stdout_lines.append(line)
            if "ready" in line:
                self._out_thread = threading.Thread(target=self._drain_out, daemon=True)
                self._out_thread.start()
                return
        self.proc.kill()
        self.proc.wait()
        self._err_thread.join(5)
        pytest.fail(f"tracer never printed ready: rc={self.proc.returncode}\n"
                    f"stdout: {''.join(self.stdout_lines)}\nstderr: {self.stderr_text}")

    def _drain_err(self):
        for line in self.proc.stderr:
            self.stderr_text += line

    def _drain_out(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def stop(self):
        """SIGINT, wait, and return (stdout, stderr); fails the test on a non-zero exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("tracer did not stop within 30 s of SIGINT")
        self._err_thread.join(5)
        if hasattr(self, "_out_thread"):
            self._out_thread.join(5)
        out = "".join(self.stdout_lines)
        assert self.proc.returncode == 0, f"tracer exit {self.proc.returncode}\n{out}\n{self.stderr_text}"
        return out, self.stderr_text

    def records(self):
        return read_recording(self.out)


@pytest.fixture
def tracer(tmp_path):
    """Factory: tracer(*extra_args, command="record") -> started Tracer (ready)."""
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (eBPF): run `sudo -E cargo xtask test`")
    if not TRACER_BIN.exists():
        pytest.fail(f"{TRACER_BIN} is missing: run `cargo xtask build` (or cargo xtask test)")
    started = []

    def start(*args, command="record"):
        out = tmp_path / f"recording-{len(started)}.jsonl"
        full = [command, "--out", str(out), *args] if command == "record" else [command, *args]
        t = Tracer(full, out)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()


def read_recording(path):
    """Records of a recording, with `data` decoded."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                r["data"] = base64.b64decode(r["data_b64"])
                out.append(r)
    return out


def streams(records, pid):
    """{(conn, direction): bytes} of one process, assembled in offset order. Fails on a gap or an
    overlap that no flag explains."""
    by = {}
    for r in records:
        # 8 = PROCESS_EXIT, 16 = CONN_CLOSED (SSL_free): markers without data.
        if r["pid"] != pid or r["flags"] & (8 | 16):
            continue
        by.setdefault((r["conn"], r["direction"]), []).append(r)
    out = {}
    for key, recs in by.items():
        recs.sort(key=lambda r: r["offset"])
        data = bytearray()
        pos = recs[0]["offset"]
        for r in recs:
            assert r["offset"] == pos, (
                f"gap/overlap in {key}: expected offset {pos}, got {r['offset']} (flags {r['flags']})")
            data += r["data"]
            pos += len(r["data"])
            if r["flags"] & 1:  # TRUNCATED: the rest of the call was not captured
                break
        out[key] = bytes(data)
    return out


def run_client(args, env=None, timeout=60, stdin=None):
    """Runs a client to completion; returns (pid, stdout)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE if stdin is not None else None,
                         env={**os.environ, **(env or {})})
    out, err = p.communicate(stdin, timeout=timeout)
    assert p.returncode == 0, f"{args[0]} failed ({p.returncode}): {err.decode(errors='replace')}"
    return p.pid, out


PYTHON = sys.executable
