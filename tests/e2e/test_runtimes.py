"""Issue 7: Go crypto/tls (plain and stripped builds, HTTP/1.1 and HTTP/2), GnuTLS, NSS,
`llm-tracer check` and the per-process coverage metric, with real binaries and real uprobes.

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
# request body, H2=1 lets net/http negotiate HTTP/2 by ALPN (with a custom TLS config it only
# does when asked: ForceAttemptHTTP2).
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
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: os.Getenv("H2") == "1"}
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


STATIC_OPENSSL_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
int main(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    printf("%s %d\n", OpenSSL_version(OPENSSL_VERSION), ctx != NULL);
    fflush(stdout);
    sleep(120);
    return 0;
}
"""


@pytest.fixture(scope="module")
def static_openssl(tmp_path_factory):
    """{'symbols': path, 'stripped': path}: a program with OpenSSL linked in statically (gcc
    -static against libssl.a), as built and with its symbol table stripped. The stripped one is
    the real "cannot be covered" case: OpenSSL's code is there, but nothing says where SSL_read
    and SSL_write are."""
    for tool in ("gcc", "strip"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed: run `cargo xtask setup --tests`")
    d = tmp_path_factory.mktemp("static")
    (d / "s.c").write_text(STATIC_OPENSSL_C)
    built = subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "static_ssl"), str(d / "s.c"),
                            "-lssl", "-lcrypto", "-lpthread"], capture_output=True, text=True)
    assert built.returncode == 0, "static OpenSSL build failed (libssl-dev, libc6-dev):\n" + built.stderr
    subprocess.run(["strip", "-s", "-o", str(d / "static_ssl_stripped"), str(d / "static_ssl")],
                   check=True)
    return {"symbols": d / "static_ssl", "stripped": d / "static_ssl_stripped"}


STRIPPED_REASON = "OpenSSL (static) without SSL_read/SSL_write symbols (stripped)"


def nss_lib_user():
    return [PYTHON, "-c", "import ctypes, time; ctypes.CDLL('libnspr4.so');"
            " ctypes.CDLL('libssl3.so'); time.sleep(60)"]


def test_check_reports_runtimes_and_reasons(go_clients, static_openssl, tmp_path):
    """`llm-tracer check` on python3, curl, node, a Go binary, a stripped Go binary, gnutls-cli,
    an NSS user, a static OpenSSL program, and an unsupported one (the same program stripped)."""
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
        "nss": nss_lib_user(),
        "static": [str(static_openssl["symbols"])],
        "static_stripped": [str(static_openssl["stripped"])],
    }
    procs = {k: subprocess.Popen(v, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for k, v in kids.items()}
    try:
        deadline = time.monotonic() + 20
        want = {"python3": "openssl_dynamic", "curl": "openssl_dynamic",
                "node": "openssl_static", "go": "go_crypto_tls",
                "go_stripped": "go_crypto_tls", "gnutls": "gnutls", "nss": "nss",
                "static": "openssl_static", "static_stripped": "openssl_static"}
        while True:
            report = check_json([p.pid for p in procs.values()])
            seen = {k: [s["stack"] for s in report.get(p.pid, {}).get("stacks", [])]
                    for k, p in procs.items()}
            if all(want[k] in seen[k] for k in want) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        for k, stack in want.items():
            assert stack in seen[k], f"{k}: {report.get(procs[k].pid)}"
        for k in ["python3", "curl", "node", "go", "go_stripped", "gnutls", "nss", "static"]:
            assert report[procs[k].pid]["covered"] is True, report[procs[k].pid]
        go_version = subprocess.run([GO, "env", "GOVERSION"], capture_output=True, text=True,
                                    env=go_env(tmp_path)).stdout.strip()
        for k in ["go", "go_stripped"]:
            s = report[procs[k].pid]["stacks"][0]
            assert s["version"] == go_version
        stripped = report[procs["static_stripped"].pid]
        assert stripped["covered"] is False
        assert stripped["stacks"][0]["reason"] == STRIPPED_REASON

        # The table names the reason too.
        table = subprocess.run([str(TRACER_BIN), "check", "--pid",
                                str(procs["static_stripped"].pid)],
                               check=True, capture_output=True, text=True).stdout
        assert STRIPPED_REASON in table and " NO " in table, table
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        silent.close()


# ---------------------------------------------------------------------------------------------
# NSS: a C client compiled here against the system's NSS (pkg-config nss).

NSS_CLIENT_SRC = ROOT / "tests/e2e/clients/nss_client.c"


@pytest.fixture(scope="module")
def nss_client(tmp_path_factory):
    if not shutil.which("gcc") or not shutil.which("pkg-config"):
        pytest.fail("gcc / pkg-config missing: run `cargo xtask setup --tests`")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "nss"], capture_output=True,
                           text=True)
    assert flags.returncode == 0, "NSS development files missing (libnss3-dev): " + flags.stderr
    out = tmp_path_factory.mktemp("nss") / "nss_client"
    built = subprocess.run(["gcc", "-O1", "-Wall", "-o", str(out), str(NSS_CLIENT_SRC),
                            *flags.stdout.split()], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return out


def run_nss_client(exe, url, path, body, file):
    host, port = url.removeprefix("https://").rsplit(":", 1)
    # The agent attaches to NSS when a process maps it (not ahead): the client waits as the
    # Go clients exec'd after the tracer do.
    delay_ms = str(int(float(EXEC_DELAY.removesuffix("s")) * 1000))
    pid, out = run_client([str(exe), host, port, path, str(file)],
                          env={"BODY": body, "DELAY_MS": delay_ms})
    lines = out.decode().splitlines()
    addrs = {"ssl": [l.split()[-1] for l in lines if l.startswith("ssl fd ")],
             "file": [l.split()[-1] for l in lines if l.startswith("file fd ")]}
    rest = [l for l in lines if not l.startswith(("ssl fd ", "file fd "))]
    return pid, rest, addrs


def test_nss_client_is_captured_and_its_files_are_not(tracer, fake_llm, nss_client, tmp_path):
    """Request and answer of an NSS client are captured whole, on the SSL descriptor; the bytes
    it writes to a file through the same NSPR calls (before and after the SSL socket, which may
    reuse the socket's address) are not captured at all."""
    url, _ = fake_llm
    req, _ = markers()
    body = json.dumps({"model": "gpt-4o-mini", "note": req,
                       "messages": [{"role": "user", "content": "hello over nss"}]})
    t = tracer()
    pid, lines, addrs = run_nss_client(nss_client, url, "/v1/chat/completions", body,
                                       tmp_path / "nspr-file.txt")
    assert lines[0] == "HTTP/1.1 200 OK", lines
    assert '"object": "chat.completion"' in lines[1], "the client's output is intact"
    assert "NSPR-FILE-SECRET-after" in (tmp_path / "nspr-file.txt").read_text()
    time.sleep(SETTLE)
    _, log = t.stop()
    records = t.records()
    everything = b"".join(r["data"] for r in records)
    assert b"NSPR-FILE-SECRET" not in everything, "a file written through PR_Write was captured"
    s = streams(records, pid)
    hits = [c for (c, d), data in s.items() if d == "write" and body.encode() in data]
    assert hits, f"NSS exchange not captured; streams: { {k: v[:100] for k, v in s.items()} }\n{log[-3000:]}"
    conn = hits[0]
    assert s[(conn, "write")].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    read = s.get((conn, "read"), b"")
    assert read.startswith(b"HTTP/1.1 200 OK") and b'"chat.completion"' in read, read[:200]
    # Keyed by the PRFileDesc the program used, and nothing else of this process was copied.
    assert hex(conn) == addrs["ssl"][0], (hex(conn), addrs)
    assert set(c for c, _ in s) == {conn}, list(s)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_nss_llm_call_is_recognised(tracer, fake_llm, nss_client, tmp_path, stream):
    url, _ = fake_llm
    req = {"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": "hello over nss please"}]}
    if stream:
        req["stream_options"] = {"include_usage": True}
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--jsonl", str(jsonl), command="run")
    pid, lines, _ = run_nss_client(nss_client, url, "/v1/chat/completions", json.dumps(req),
                                   tmp_path / "f.txt")
    assert lines[0] == "HTTP/1.1 200 OK", lines
    time.sleep(SETTLE + 0.5)
    stdout, stderr = t.stop()
    calls = calls_of(jsonl, pid)
    assert len(calls) == 1, f"{stdout}\n{stderr[-3000:]}"
    call = calls[0]
    assert call["provider"] == "openai_compatible"  # a local server, OpenAI-shaped
    assert call["request"]["model"] == "gpt-4o-mini"
    assert call["response"]["model"] == "gpt-4o-mini"
    assert call["streamed"] == stream
    assert call["usage"]["input_tokens"] == 4
    assert call["usage"]["output_tokens"] == 5
    assert call["response"]["finish_reasons"] == ["stop"]
    assert call["http_status"] == 200
    assert "test-fake-key-not-real" not in stdout + jsonl.read_text(), "the key never leaves"


# ---------------------------------------------------------------------------------------------
# Go over HTTP/2: net/http negotiates h2 by ALPN with the fake server's HTTP/2 front.

FAKE_LLM_H2 = ROOT / "tests/fakes/llm_server_h2.py"


@pytest.fixture(scope="module")
def fake_llm_h2(tls_cert):
    cert, key = tls_cert
    p = subprocess.Popen([PYTHON, str(FAKE_LLM_H2), "--cert", str(cert), "--key", str(key),
                          "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening"), line + p.stderr.read()
    yield f"https://127.0.0.1:{int(line.split()[-1])}"
    p.terminate()
    p.wait(10)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("build", ["plain", "stripped"])
def test_go_http2_llm_call_is_recognised(tracer, fake_llm_h2, go_clients, tmp_path, build, stream):
    """A Go program (running before the tracer: hooked by the start-up scan) calls an
    OpenAI-shaped endpoint over HTTP/2: the call is recognised whole, the program unharmed."""
    req = {"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": "say hello from go over h2"}]}
    if stream:
        req["stream_options"] = {"include_usage": True}
    body = json.dumps(req)
    exe = fresh_copy(go_clients[build], tmp_path)
    p = subprocess.Popen([str(exe), f"{fake_llm_h2}/v1/chat/completions"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "WAIT_STDIN": "1", "BODY": body, "H2": "1"})
    assert p.stdout.readline().strip() == b"waiting"
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--jsonl", str(jsonl), command="run")
    out, err = p.communicate(b"go\n", timeout=60)
    assert p.returncode == 0, err
    lines = out.decode().splitlines()
    proto, status, size = lines[0].split()
    assert (proto, status) == ("HTTP/2.0", "200"), lines
    first = "data: {" if stream else '{"id": "chatcmpl-'
    assert lines[1].startswith(first), "the Go program's output is intact"
    assert int(size) > 200
    time.sleep(SETTLE + 0.5)
    stdout, stderr = t.stop()
    calls = calls_of(jsonl, p.pid)
    assert len(calls) == 1, f"{stdout}\n{stderr[-3000:]}"
    call = calls[0]
    assert call["http_version"] == "2"
    assert call["provider"] == "openai_compatible"  # a local server, OpenAI-shaped
    assert call["request"]["model"] == "gpt-4o-mini"
    assert call["response"]["model"] == "gpt-4o-mini"
    assert call["streamed"] == stream
    assert call["usage"]["input_tokens"] == 6
    assert call["usage"]["output_tokens"] == 5
    assert call["response"]["finish_reasons"] == ["stop"]
    assert call["http_status"] == 200
    assert not call["quality"]["late_attach"], "the connection was opened after the tracer"
    assert "test-fake-key-not-real" not in stdout + jsonl.read_text(), "the key never leaves"


# ---------------------------------------------------------------------------------------------
# Coverage as a self-metric: llm_tracer.process.coverage on the Prometheus endpoint.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def coverage_series(port):
    """{pid: {stack: (value, labels)}} of the llm_tracer_process_coverage gauge."""
    import re
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if not line.startswith("llm_tracer_process_coverage{"):
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line[:line.rindex("}")]))
        out.setdefault(int(labels["process_pid"]), {})[labels["llm_tracer_tls_stack"]] = (
            float(line.rsplit(" ", 1)[1]), labels)
    return out


def test_coverage_metric_shows_covered_and_uncovered_processes(tracer, static_openssl):
    port = free_port()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    url = f"https://127.0.0.1:{silent.getsockname()[1]}/"
    kids = {
        "python3": [PYTHON, "-c", "import ssl, time; time.sleep(60)"],
        "curl": ["curl", "-sk", "--max-time", "60", url],
        "nss": nss_lib_user(),
        "stripped": [str(static_openssl["stripped"])],
    }
    procs = {k: subprocess.Popen(v, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for k, v in kids.items()}
    try:
        t = tracer("--prometheus", f"127.0.0.1:{port}", "--coverage-secs", "0.5", "--no-console",
                   command="run")
        deadline = time.monotonic() + 20
        while True:
            series = coverage_series(port)
            if all(p.pid in series for p in procs.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        for k, p in procs.items():
            assert p.pid in series, f"{k} (pid {p.pid}) missing from {series}"
        want = {"python3": (1.0, "openssl_dynamic"), "curl": (1.0, "openssl_dynamic"),
                "nss": (1.0, "nss"), "stripped": (0.0, "openssl_static")}
        for k, (value, stack) in want.items():
            got = series[procs[k].pid]
            assert stack in got and got[stack][0] == value, (k, got)
        assert series[procs["curl"].pid]["openssl_dynamic"][1]["process_executable_name"] == "curl"
        bad = series[procs["stripped"].pid]["openssl_static"][1]
        assert bad["llm_tracer_coverage_reason"] == STRIPPED_REASON
        assert bad["process_executable_name"] == static_openssl["stripped"].name
        assert "llm_tracer_coverage_reason" not in series[procs["python3"].pid]["openssl_dynamic"][1]

        # The uncovered process exits: its series goes away (bounded cardinality).
        procs["stripped"].kill()
        procs["stripped"].wait()
        gone = procs["stripped"].pid
        deadline = time.monotonic() + 10
        while gone in coverage_series(port) and time.monotonic() < deadline:
            time.sleep(0.3)
        series = coverage_series(port)
        assert gone not in series, series[gone]
        assert procs["python3"].pid in series
        _, log = t.stop()
        # Logged once when it appeared.
        lines = [l for l in log.splitlines() if f"pid {gone} " in l and "TLS not covered" in l]
        assert len(lines) == 1, log[-3000:]
        assert STRIPPED_REASON in lines[0]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        silent.close()
