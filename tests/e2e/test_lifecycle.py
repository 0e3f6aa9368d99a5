"""Connection lifecycle and per-exchange muting, end to end (real agent, real uprobes, as root):

- muting (on by default): a keep-alive client downloads a big non-LLM resource, then makes an LLM
  call on the same connection: the call is exported whole, and the download's bytes never reached
  userspace (the agent's `muted_bytes` self-metric counts them, its captured bytes do not);
- `--no-mute-non-llm` copies everything again;
- SSL_free: a client opening many short connections (freed `SSL*` addresses are often reused by
  the next one) has each call exported exactly once, and the agent's open-connection count
  returns to 0 promptly (the kernel reports each freed connection).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_SERVER = ROOT / "tests" / "fakes" / "llm_server.py"
BIN = os.environ.get("LLM_TRACER_BIN", str(ROOT / "target" / "release" / "llm-tracer"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="NOT RUN: needs root (uprobes)")

BLOB = 8 * 1024 * 1024

# The client: a download then an LLM call on one keep-alive connection, or N short connections.
CLIENT = r'''
import http.client, json, os, ssl, sys, time
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
body = lambda i: json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "call %d" % i}]})
hdrs = {"content-type": "application/json", "authorization": "Bearer fake-test-key-not-a-secret"}
ids = []
if mode == "download":
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
    conn.request("GET", "/blob?bytes=%d" % int(sys.argv[4]))
    resp = conn.getresponse()
    # The agent mutes the response once it has seen the request head (it reads the ring every
    # 20 ms): give it that time before the body is read, so the assertion below is not a race.
    time.sleep(0.5)
    got = len(resp.read())
    conn.request("POST", "/v1/chat/completions", body=body(0), headers=hdrs)
    ids.append(json.loads(conn.getresponse().read())["id"])
    conn.close()
    print(json.dumps({"pid": os.getpid(), "downloaded": got, "ids": ids}))
else:
    for i in range(int(sys.argv[4])):
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
        conn.request("POST", "/v1/chat/completions", body=body(i), headers=hdrs)
        resp = conn.getresponse()
        ids.append(json.loads(resp.read())["id"])
        conn.close()
        del conn, resp  # the last reference: the SSL object is freed (SSL_free)
    print(json.dumps({"pid": os.getpid(), "ids": ids}), flush=True)
    # Stay alive: the connections must close on SSL_free, not on this process's exit.
    sys.stdin.read()
'''


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "1", "-subj", "/CN=llm-tracer lifecycle CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    return d


def system_lib(name):
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if (Path(d) / name).exists():
            return Path(d) / name
    pytest.fail(f"{name} not found")


@pytest.fixture(scope="module")
def untraced(tmp_path_factory):
    """A private copy of libssl/libcrypto the agent is told not to attach to (--exclude-path): the
    fake server plays the remote API, so its own TLS must not be counted with the client's."""
    d = tmp_path_factory.mktemp("untraced-ssl")
    for name in ("libssl.so.3", "libcrypto.so.3"):
        shutil.copy(system_lib(name), d / name)
    return d


@pytest.fixture(scope="module")
def fake(pki, untraced, tmp_path_factory):
    log = tmp_path_factory.mktemp("served") / "served.jsonl"
    p = subprocess.Popen([sys.executable, str(FAKE_SERVER), "--cert", str(pki / "server.pem"),
                          "--key", str(pki / "server.key"), "--served-log", str(log)],
                         stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": str(untraced)})
    line = p.stdout.readline()
    assert line.startswith("listening"), line
    yield int(line.split()[1])
    p.kill()
    p.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, tmp_path, untraced, *extra):
        self.jsonl = tmp_path / "calls.jsonl"
        self.port = free_port()
        self.err = tmp_path / "agent.log"
        self.proc = subprocess.Popen(
            [BIN, "run", "--jsonl", str(self.jsonl), "--no-console", "--prometheus",
             f"127.0.0.1:{self.port}", "--exclude-path", str(untraced), *extra],
            stdout=subprocess.PIPE, stderr=open(self.err, "w"), text=True)
        line = ""
        end = time.time() + 60
        while time.time() < end and "ready" not in line:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
        assert "ready" in line, self.err.read_text()

    def health(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
            return json.loads(r.read())

    def calls(self, pid):
        if not self.jsonl.exists():
            return []
        return [c for c in (json.loads(l) for l in self.jsonl.read_text().splitlines() if l.strip())
                if c["origin"]["pid"] == pid]

    def stop(self):
        self.proc.send_signal(2)
        # Detaching uprobes costs the kernel a grace period each: slow on a loaded machine.
        self.proc.wait(120)
        return self.err.read_text()


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def client(fake, pki, *args):
    out = subprocess.run([sys.executable, "-c", CLIENT, str(fake), str(pki / "ca.pem"), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("mute", [True, False], ids=["muted-by-default", "no-mute"])
def test_download_then_llm_call_on_one_connection(fake, pki, untraced, tmp_path, mute):
    agent = Agent(tmp_path, untraced, *([] if mute else ["--no-mute-non-llm"]))
    try:
        before = agent.health()
        r = client(fake, pki, "download", str(BLOB))
        assert r["downloaded"] == BLOB
        calls = wait_for(lambda: agent.calls(r["pid"]))
        time.sleep(1.5)  # a tick for the self-metrics, and any duplicate would show
        after = agent.health()
        calls = agent.calls(r["pid"])
    finally:
        log = agent.stop()
    assert len(calls) == 1, (calls, log[-2000:])
    call = calls[0]
    if call["response"]["id"] != r["ids"][0]:
        Path("/tmp/pp_fail.json").write_text(json.dumps(call, indent=1) + "\n" + log)
    assert call["response"]["id"] == r["ids"][0], (call, log[-3000:])
    assert call["http_status"] == 200
    assert not call["quality"]["gap"] and not call["quality"]["incomplete"], call["quality"]
    assert call["usage"]["input_tokens"] is not None
    skipped = after["muted_bytes"] - before["muted_bytes"]
    captured = after["bytes"] - before["bytes"]
    print(f"mute={mute}: skipped {skipped} bytes in the kernel, captured {captured}")
    if mute:
        # Everything the client read after the head (after the agent's decision) was skipped.
        # (The agent traces the whole machine, so its captured-bytes total also counts other
        # processes' traffic: the skipped bytes are the figure that speaks for this client.)
        assert skipped >= BLOB * 0.9, (skipped, log[-2000:])
    else:
        assert skipped == 0
        assert captured >= BLOB


def test_short_connections_each_call_once_and_connections_freed(fake, pki, untraced, tmp_path):
    agent = Agent(tmp_path, untraced)
    n = 40
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(fake), str(pki / "ca.pem"), "short", str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = agent.health()
        r = json.loads(proc.stdout.readline() or "{}")
        assert r.get("ids"), proc.stderr.read() if proc.poll() is not None else "no output"
        wait_for(lambda: len(agent.calls(r["pid"])) >= n)
        # The client is still alive: its connections must have closed on SSL_free (at once), not
        # on its exit nor at idle expiry (15 min). The agent traces the whole machine, so the
        # open count also holds other processes' connections: it must come back to what it was
        # before the client, where 40 connections left open would stand out.
        health = wait_for(lambda: (lambda h: h if h["connections_open"] <= before["connections_open"]
                                   else None)(agent.health()), timeout=15) or agent.health()
        assert proc.poll() is None, "the client exited early"
        time.sleep(0.5)
        calls = agent.calls(r["pid"])
    finally:
        proc.stdin.close()
        proc.wait(30)
        log = agent.stop()
    ids = [c["response"]["id"] for c in calls]
    assert sorted(ids) == sorted(r["ids"]), f"exported {len(ids)} of {n}: {log[-2000:]}"
    damaged = [c for c in calls if c["quality"]["gap"] or c["quality"]["incomplete"] or c.get("error_type")]
    assert not damaged, damaged[:2]
    assert health["connections_open"] < before["connections_open"] + n // 2, (before, health)
    assert health["connections_freed"] - before["connections_freed"] >= n, (before, health)
