"""Issue 7: Go crypto/tls (plain and stripped builds), GnuTLS, and `llm-tracer check`, with real
binaries and real uprobes.

Go clients are built here with Debian's golang-go (`cargo xtask setup --tests` installs it). A Go
process is hooked either when the tracer starts (it is already running) or ~100 ms after its exec
(discovery analyses the new executable); the tests cover both ways.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, TRACER_BIN, response_body, run_client, streams

GO = shutil.which("go") or "/usr/bin/go"
# Seconds to wait after a client is done before stopping the tracer: the records are drained
# from the ring buffer, and the tracer's signal handler is in place (it is installed when its
# main loop first runs, a moment after the `ready` line).
SETTLE = 1.0
# How long a Go client exec'd after the tracer waits before its first call. Hooking a new binary
# takes ~100 ms on an idle machine; discovery is one thread, so on a machine busy exec'ing many
# other programs (parallel builds) it can take seconds.
EXEC_DELAY = "3s"
FAKE_LLM = ROOT / "tests/fakes/llm_server.py"

# A Go HTTPS client (net/http over crypto/tls). Env: WAIT_STDIN=1 waits for a line on stdin
# before the request (so the tracer can start meanwhile), DELAY=300ms sleeps first, BODY is the
# request body, STREAM=1 asks an LLM endpoint for a stream.
GO_CLIENT = r"""package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if os.Getenv("WAIT_STDIN") == "1" {
		fmt.Println("waiting")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	if d, err := time.ParseDuration(os.Getenv("DELAY")); err == nil {
		time.Sleep(d)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	c := &http.Client{Transport: tr}
	req, _ := http.NewRequest("POST", os.Args[1], bytes.NewBufferString(os.Getenv("BODY")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test-fake-key-not-real")
	resp, err := c.Do(req)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %d %d\n", resp.Proto, resp.StatusCode, len(b))
	if len(b) > 64 {
		b = b[:64]
	}
	fmt.Printf("%s\n", b)
}
"""


def go_env(tmp):
    return {**os.environ, "GOCACHE": "/tmp/llm-tracer-test-gocache", "HOME": str(tmp),
            "GOPATH": str(tmp / "gopath"), "GO111MODULE": "off", "CGO_ENABLED": "0"}


@pytest.fixture(scope="module")
def go_clients(tmp_path_factory):
    """{'plain': path, 'stripped': path} of the Go client, built with the system's Go."""
    if not Path(GO).exists():
        pytest.fail("golang-go is not installed: run `cargo xtask setup --tests`")
    d = tmp_path_factory.mktemp("go")
    (d / "client.go").write_text(GO_CLIENT)
    out = {}
    for name, flags in [("plain", []), ("stripped", ["-ldflags=-s -w"])]:
        subprocess.run([GO, "build", *flags, "-o", str(d / f"goclient_{name}"), "client.go"],
                       cwd=d, env=go_env(d), check=True, capture_output=True)
        out[name] = d / f"goclient_{name}"
    return out


def fresh_copy(path, tmp_path):
    """A copy with a new inode: uprobes are per file, so a binary hooked by an earlier test would
    otherwise be seen from its very first instruction."""
    dst = tmp_path / f"{path.name}_{uuid.uuid4().hex[:6]}"
    shutil.copy2(path, dst)
    return dst


def markers():
    tag = uuid.uuid4().hex[:12]
    return f"REQMARK-{tag}", f"RESPMARK-{tag}"


def dechunk(read):
    """The body of an HTTP/1.1 response stream, chunked transfer-encoding undone."""
    head, _, rest = read.partition(b"\r\n\r\n")
    if b"chunked" not in head.lower():
        return rest
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        body, rest = body + rest[:n], rest[n + 2:]
    return body


def assert_go_exchange(records, pid, body, resp_marker, size, log=""):
    s = streams(records, pid)
    want = response_body(resp_marker, size)
    hits = [c for (c, d), data in s.items() if d == "write" and body.encode() in data
            and dechunk(s.get((c, "read"), b"")) == want]
    assert hits, (f"pid {pid}: exchange not captured whole; streams: "
                  f"{ {k: v[:100] for k, v in s.items()} }\ntracer log: {log[-4000:]}")
    w = s[(hits[0], "write")]
    assert w.startswith(b"POST /"), w[:80]
    assert b"Go-http-client/1.1" in w


@pytest.mark.parametrize("build", ["plain", "stripped"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_go_client_running_before_the_tracer(tracer, tls_server, go_clients, tmp_path, build, chunked):
    """A Go process that is already running when the tracer starts: hooked by the start-up scan."""
    req, resp = markers()
    size = 30000 if chunked else 300
    body = json.dumps({"model": "gpt-4o-mini", "note": req})
    exe = fresh_copy(go_clients[build], tmp_path)
    p = subprocess.Popen([str(exe), f"{tls_server.url}/v1/chat?resp={resp}&size={size}"
                          f"&chunked={int(chunked)}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "WAIT_STDIN": "1", "BODY": body})
    assert p.stdout.readline().strip() == b"waiting"
    t = tracer()
    out, err = p.communicate(b"go\n", timeout=60)
    assert p.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[0] == f"HTTP/1.1 200 {size}", lines
    assert lines[1].startswith(f"<<{resp}>>"), "the Go program's output is intact"
    time.sleep(SETTLE)
    _, log = t.stop()
    assert_go_exchange(t.records(), p.pid, body, resp, size, log)


def test_go_client_started_after_the_tracer(tracer, tls_server, go_clients, tmp_path):
    """A Go binary never seen before, exec'd while the tracer runs: discovery hooks it after the
    exec; the client sleeps EXEC_DELAY first."""
    req, resp = markers()
    body = json.dumps({"model": "gpt-4o-mini", "note": req})
    exe = fresh_copy(go_clients["stripped"], tmp_path)
    t = tracer()
    pid, out = run_client([str(exe), f"{tls_server.url}/v1/chat?resp={resp}&size=500"],
                          env={"DELAY": EXEC_DELAY, "BODY": body})
    assert out.decode().splitlines()[0] == "HTTP/1.1 200 500"
    time.sleep(SETTLE)
    _, log = t.stop()
    assert_go_exchange(t.records(), pid, body, resp, 500, log)


@pytest.fixture
def fake_llm(tls_cert, tmp_path):
    """The fake LLM API server (OpenAI/Anthropic/... shapes) on a free port."""
    cert, key = tls_cert
    served = tmp_path / "served.jsonl"
    p = subprocess.Popen([PYTHON, str(FAKE_LLM), "--cert", str(cert), "--key", str(key),
                          "--port", "0", "--served-log", str(served)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening"), line + p.stderr.read()
    port = int(line.split()[-1])
    yield f"https://127.0.0.1:{port}", served
    p.terminate()
    p.wait(10)


def calls_of(jsonl, pid):
    """The calls of one process in a `--jsonl` export."""
    out = []
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            call = json.loads(line)
            if call["origin"]["pid"] == pid:
                out.append(call)
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_go_llm_call_is_recognised(tracer, fake_llm, go_clients, tmp_path, stream):
    url, _ = fake_llm
    exe = fresh_copy(go_clients["stripped"], tmp_path)
    req = {"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": "say hello from go please"}]}
    if stream:
        req["stream_options"] = {"include_usage": True}  # usage is in the stream only then
    body = json.dumps(req)
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--jsonl", str(jsonl), command="run")
    pid, out = run_client([str(exe), f"{url}/v1/chat/completions"],
                          env={"DELAY": EXEC_DELAY, "BODY": body})
    assert out.decode().startswith("HTTP/1.1 200")
    time.sleep(SETTLE + 0.5)
    stdout, stderr = t.stop()
    calls = calls_of(jsonl, pid)
    assert len(calls) == 1, f"{stdout}\n{stderr[-3000:]}"
    call = calls[0]
    assert call["request"]["model"] == "gpt-4o-mini"
    assert call["streamed"] == stream
    assert call["usage"]["output_tokens"] == 5
    assert call["usage"]["input_tokens"] == 5
    assert "test-fake-key-not-real" not in stdout + jsonl.read_text(), "the key never leaves"


def gnutls_request(host, port, path, body):
    req = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
    p = subprocess.Popen(["gnutls-cli", "--insecure", "-p", str(port), host],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(req, timeout=30)
    assert p.returncode == 0, err.decode(errors="replace")
    return p.pid, out


def test_gnutls_cli_is_captured(tracer, tls_server):
    if not shutil.which("gnutls-cli"):
        pytest.fail("gnutls-cli is not installed: run `cargo xtask setup --tests`")
    req, resp = markers()
    body = json.dumps({"model": "gpt-4o-mini", "note": req})
    t = tracer()
    pid, out = gnutls_request("127.0.0.1", tls_server.port, f"/v1/chat?resp={resp}&size=400", body)
    assert f"<<{resp}>>".encode() in out
    time.sleep(SETTLE)
    t.stop()
    s = streams(t.records(), pid)
    want = response_body(resp, 400)
    hits = [c for (c, d), data in s.items() if d == "write" and body.encode() in data
            and want in s.get((c, "read"), b"")]
    assert hits, f"gnutls-cli exchange not captured; streams: { {k: v[:100] for k, v in s.items()} }"


def test_gnutls_llm_call_is_recognised(tracer, fake_llm, tmp_path):
    if not shutil.which("gnutls-cli"):
        pytest.fail("gnutls-cli is not installed: run `cargo xtask setup --tests`")
    url, _ = fake_llm
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"model": "gpt-4o-mini",
                       "messages": [{"role": "user", "content": "hello over gnutls"}]})
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--jsonl", str(jsonl), command="run")
    pid, out = gnutls_request("127.0.0.1", port, "/v1/chat/completions", body)
    assert b"chat.completion" in out
    time.sleep(SETTLE + 0.5)
    stdout, stderr = t.stop()
    calls = calls_of(jsonl, pid)
    assert len(calls) == 1, f"{stdout}\n{stderr[-3000:]}"
    assert calls[0]["request"]["model"] == "gpt-4o-mini"
    assert calls[0]["usage"]["input_tokens"] == 3


def check_json(pids):
    args = [str(TRACER_BIN), "check", "--json"]
    for p in pids:
        args += ["--pid", str(p)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout
    return {p["pid"]: p for p in json.loads(out)}


def test_check_reports_runtimes_and_reasons(go_clients, tmp_path):
    """`llm-tracer check` on python3, curl, node, a Go binary, a stripped Go binary, gnutls-cli
    and an unsupported one (a process using NSS)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    url = f"https://127.0.0.1:{port}/"
    kids = {
        "python3": [PYTHON, "-c", "import ssl, time; time.sleep(60)"],
        "curl": ["curl", "-sk", "--max-time", "60", url],
        "node": ["node", "-e", "setTimeout(() => {}, 60000)"],
        "go": [str(go_clients["plain"]), url],
        "go_stripped": [str(go_clients["stripped"]), url],
        "gnutls": ["gnutls-cli", "--insecure", "-p", str(port), "127.0.0.1"],
        "nss": [PYTHON, "-c", "import ctypes, time; ctypes.CDLL('libnspr4.so');"
                " ctypes.CDLL('libssl3.so'); time.sleep(60)"],
    }
    procs = {k: subprocess.Popen(v, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for k, v in kids.items()}
    try:
        deadline = time.monotonic() + 20
        want = {"python3": "openssl_dynamic", "curl": "openssl_dynamic",
                "node": "openssl_static", "go": "go_crypto_tls",
                "go_stripped": "go_crypto_tls", "gnutls": "gnutls", "nss": "nss"}
        while True:
            report = check_json([p.pid for p in procs.values()])
            seen = {k: [s["stack"] for s in report.get(p.pid, {}).get("stacks", [])]
                    for k, p in procs.items()}
            if all(want[k] in seen[k] for k in want) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        for k, stack in want.items():
            assert stack in seen[k], f"{k}: {report.get(procs[k].pid)}"
        for k in ["python3", "curl", "node", "go", "go_stripped", "gnutls"]:
            assert report[procs[k].pid]["covered"] is True, report[procs[k].pid]
        go_version = subprocess.run([GO, "env", "GOVERSION"], capture_output=True, text=True,
                                    env=go_env(tmp_path)).stdout.strip()
        for k in ["go", "go_stripped"]:
            s = report[procs[k].pid]["stacks"][0]
            assert s["version"] == go_version
        nss = report[procs["nss"].pid]
        assert nss["covered"] is False
        assert nss["stacks"][0]["reason"] == "NSS: not supported"

        # The table names the reason too.
        table = subprocess.run([str(TRACER_BIN), "check", "--pid", str(procs["nss"].pid)],
                               check=True, capture_output=True, text=True).stdout
        assert "NSS: not supported" in table and " NO " in table, table
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        silent.close()
