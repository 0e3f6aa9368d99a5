"""Hardening, end to end, with the real agent, real uprobes and curl over real TLS (as root):

- least privilege: the agent traces as an unprivileged uid holding only the documented capabilities,
  and without CAP_SYS_ADMIN it stops with an error naming it;
- secrets: canary values in every secret header, in `key=`/`api_key=` query parameters and on the
  client's command line never reach any output (console, JSONL, OTLP raw bytes, Prometheus, logs);
  neither do response-side secrets (`Set-Cookie`, a token header) sent by the server;
- SIGTERM flushes and exits within a few seconds; SIGKILL leaves the traced application untouched.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from otlp_receiver import OtlpReceiver

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_SERVER = ROOT / "tests" / "fakes" / "llm_server.py"
BIN = os.environ.get("LLM_TRACER_BIN", str(ROOT / "target" / "release" / "llm-tracer"))
CAPS = "+bpf,+perfmon,+sys_admin,+sys_ptrace,+dac_read_search"

# Obviously fake values, one per place a secret can travel.
CANARY = {
    "authorization": "test-canary-authz-5f1c",
    "proxy-authorization": "test-canary-proxyauth-a2b9",
    "x-api-key": "test-canary-xapikey-77d0",
    "api-key": "test-canary-apikey-c3e8",
    "x-goog-api-key": "test-canary-googkey-19ab",
    "cookie": "test-canary-cookie-4e6d",
    "query-key": "test-canary-querykey-8c21",
    "query-api-key": "test-canary-queryapikey-d04f",
}
# Secrets a server sends back (the real APIs set cookies); they travel only in responses: the fake
# server reads them from its environment.
RESPONSE_CANARY = {
    "set-cookie-cf-bm": "test-canary-setcookie-cfbm-6a1e",
    "set-cookie-cfuvid": "test-canary-setcookie-uvid-b7f2",
    "x-subject-token": "test-canary-subjecttoken-3c5d",
}
# The header canaries also travel on curl's command line (`-H 'x-api-key: ...'`), so the process
# resource (`process.command_line`) is checked for secret-looking arguments as well.

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="NOT RUN: needs root (uprobes)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "1", "-subj", "/CN=llm-tracer hardening CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,DNS:api.openai.com,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    return d


def start_fake(pki, log, env=None):
    p = subprocess.Popen([sys.executable, str(FAKE_SERVER), "--cert", str(pki / "server.pem"),
                          "--key", str(pki / "server.key"), "--served-log", str(log)],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = p.stdout.readline()
    assert line.startswith("listening"), line
    return p, int(line.split()[1])


@pytest.fixture(scope="module")
def fake(pki, tmp_path_factory):
    p, port = start_fake(pki, tmp_path_factory.mktemp("served") / "served.jsonl")
    yield port
    p.kill()
    p.wait()


@pytest.fixture(scope="module")
def fake_setting_cookies(pki, tmp_path_factory):
    """A fake server whose every answer carries Set-Cookie (twice) and X-Subject-Token canaries."""
    headers = [["Set-Cookie", f"__cf_bm={RESPONSE_CANARY['set-cookie-cf-bm']}; path=/; HttpOnly; Secure"],
               ["Set-Cookie", f"_cfuvid={RESPONSE_CANARY['set-cookie-cfuvid']}; path=/; HttpOnly"],
               ["X-Subject-Token", RESPONSE_CANARY["x-subject-token"]]]
    p, port = start_fake(pki, tmp_path_factory.mktemp("served") / "served.jsonl",
                         env={"FAKE_RESPONSE_HEADERS": json.dumps(headers)})
    yield port
    p.kill()
    p.wait()


class Tracer:
    """The agent as a child process; its stdout and stderr are collected by reader threads."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.out, self.err = [], []
        self.lines = queue.Queue()
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream, sink):
        for line in stream:
            sink.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if "ready" in self.lines.get(timeout=0.5):
                    return True
            except queue.Empty:
                if self.proc.poll() is not None:
                    return False
        return False

    def text(self):
        time.sleep(0.3)  # let the reader threads take the last lines
        return "".join(self.out) + "".join(self.err)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        t0 = time.time()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"llm-tracer did not exit within {timeout} s of {sig!r}")
        return time.time() - t0


def curl_call(port, *extra, stream=False, query="", headers=None, timeout=30):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello"}]}
    if stream:
        body["stream"] = True
    argv = ["curl", "-sS", "--http1.1", "--fail-with-body", "--cacert", str(fake_ca()),
            "--resolve", f"api.openai.com:{port}:127.0.0.1",
            f"https://api.openai.com:{port}/v1/chat/completions{query}",
            "-H", "content-type: application/json", "-d", json.dumps(body)]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv += list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


_CA = {}


def fake_ca():
    return _CA["path"]


@pytest.fixture(autouse=True)
def _ca(pki):
    _CA["path"] = pki / "ca.pem"


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def jsonl_calls(path):
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def setpriv(caps):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", f"--inh-caps={caps}",
            f"--ambient-caps={caps}", f"--bounding-set=-all,{caps}"]


def test_traces_as_nobody_with_only_the_documented_capabilities(fake, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    jsonl = out / "calls.jsonl"
    t = Tracer(setpriv(CAPS) + [BIN, "run", "--jsonl", str(jsonl), "--console"])
    assert t.wait_ready(), "not ready as uid 65534 with %s:\n%s" % (CAPS, t.text())
    r = curl_call(fake)
    assert r.returncode == 0, r.stderr
    calls = wait_for(lambda: [c for c in jsonl_calls(jsonl) if c["origin"]["comm"] == "curl"])
    took = t.stop()
    assert calls, "no call traced with the bounded capability set:\n" + t.text()
    assert calls[0]["provider"] == "openai" and calls[0]["http_path"] == "/v1/chat/completions"
    assert took < 5, f"SIGTERM took {took:.1f} s"


def test_without_sys_admin_the_error_names_it(fake):
    caps = CAPS.replace(",+sys_admin", "")
    t = Tracer(setpriv(caps) + [BIN, "run"])
    try:
        t.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        t.stop()
        pytest.fail("the agent kept running without CAP_SYS_ADMIN:\n" + t.text())
    text = t.text()
    assert t.proc.returncode != 0
    assert "CAP_SYS_ADMIN" in text, text
    assert "ready" not in "".join(t.out), text


def test_secrets_reach_no_output(fake, tmp_path):
    jsonl = tmp_path / "calls.jsonl"
    otlp = OtlpReceiver()
    prom_port = 19000 + os.getpid() % 1000
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--console", "--otlp-endpoint", otlp.http_endpoint,
                "--prometheus", f"127.0.0.1:{prom_port}"],
               env={"RUST_LOG": "debug", "OTEL_BSP_SCHEDULE_DELAY": "100",
                    "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    try:
        assert t.wait_ready(), t.text()
        headers = {
            "Authorization": "Bearer " + CANARY["authorization"],
            "Proxy-Authorization": "Basic " + CANARY["proxy-authorization"],
            "x-api-key": CANARY["x-api-key"],
            "api-key": CANARY["api-key"],
            "x-goog-api-key": CANARY["x-goog-api-key"],
            "Cookie": "session=" + CANARY["cookie"],
        }
        query = f"?key={CANARY['query-key']}&api_key={CANARY['query-api-key']}"
        for stream in (False, True):
            r = curl_call(fake, stream=stream, query=query, headers=headers)
            assert r.returncode == 0, r.stderr
        calls = wait_for(lambda: len(jsonl_calls(jsonl)) >= 2 and jsonl_calls(jsonl))
        assert calls and len(calls) >= 2, "calls not traced:\n" + t.text()
        spans = otlp.wait_spans(lambda s: len(s) >= 2, timeout=30)
        assert len(spans) >= 2
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=10) as resp:
            scrape = resp.read().decode()
        assert "gen_ai" in scrape
    finally:
        t.stop()
        otlp.close()
    outputs = {
        "console+logs": t.text(),
        "jsonl": jsonl.read_text(),
        "otlp": bytes(otlp.raw).decode("latin-1"),
        "prometheus": scrape,
    }
    for where, text in outputs.items():
        for name, value in CANARY.items():
            assert value not in text, f"{name} canary leaked into {where}"
    # The calls were really seen (so the outputs above had something to leak).
    assert "gpt-4o-mini" in outputs["jsonl"] and "gpt-4o-mini" in outputs["otlp"]
    # curl's command line (with the secret headers and query) is exported, redacted.
    assert "process.command_line" in outputs["otlp"] and "[REDACTED]" in outputs["otlp"]


def test_response_side_secrets_reach_no_output(fake_setting_cookies, tmp_path):
    """Set-Cookie and a token header sent by the server, on plain, streamed, failed and broken
    answers, reach none of: console, logs (debug level, so every error message too), JSONL, OTLP
    (raw bytes and as decoded by the receiver), Prometheus and /healthz."""
    port = fake_setting_cookies
    jsonl = tmp_path / "calls.jsonl"
    otlp = OtlpReceiver()
    prom_port = 21000 + os.getpid() % 1000
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--console", "--capture-content",
                "--otlp-endpoint", otlp.http_endpoint, "--prometheus", f"127.0.0.1:{prom_port}"],
               env={"RUST_LOG": "debug", "OTEL_BSP_SCHEDULE_DELAY": "100",
                    "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    try:
        assert t.wait_ready(), t.text()
        wire = ""
        for stream, extra in ((False, []), (True, []), (False, ["-H", "x-fake-status: 401"])):
            r = curl_call(port, "-i", *extra, stream=stream)
            assert r.returncode == 0 or extra, r.stderr
            wire += r.stdout
        # A broken response head (a line without a colon after the cookies): whatever the agent
        # makes of it, its errors must not carry the cookie either.
        curl_call(port, "-i", "-H", "x-fake-bad-header: 1")
        for value in RESPONSE_CANARY.values():
            assert value in wire, f"the fake server did not send {value}"
        calls = wait_for(lambda: len(jsonl_calls(jsonl)) >= 3 and jsonl_calls(jsonl))
        assert calls and len(calls) >= 3, "calls not traced:\n" + t.text()
        spans = otlp.wait_spans(lambda s: len(s) >= 3, timeout=30)
        otlp.wait_metric("gen_ai.client.operation.duration")
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=10) as resp:
            scrape = resp.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/healthz", timeout=10) as resp:
            healthz = resp.read().decode()
    finally:
        t.stop()
        otlp.close()
    with otlp.lock:
        decoded = json.dumps({"spans": otlp.spans, "metrics": otlp.metrics})
    outputs = {
        "console+logs": t.text(),
        "jsonl": jsonl.read_text(),
        "otlp raw": bytes(otlp.raw).decode("latin-1"),
        "otlp decoded": decoded,
        "prometheus": scrape,
        "healthz": healthz,
    }
    for where, text in outputs.items():
        for name, value in RESPONSE_CANARY.items():
            assert value not in text, f"{name} canary leaked into {where}"
    # The answers were really seen (so the outputs above had something to leak).
    assert any(c["http_status"] == 401 for c in calls), [c["http_status"] for c in calls]
    assert "gpt-4o-mini" in outputs["otlp decoded"] and len(spans) >= 3


def test_sigkill_leaves_the_traced_application_untouched(fake, tmp_path):
    t = Tracer([BIN, "run", "--jsonl", str(tmp_path / "calls.jsonl")])
    assert t.wait_ready(), t.text()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count"}], "stream": True}
    client = subprocess.Popen(
        ["curl", "-sS", "--http1.1", "-N", "--cacert", str(fake_ca()), "--resolve",
         f"api.openai.com:{fake}:127.0.0.1", f"https://api.openai.com:{fake}/v1/chat/completions",
         "-H", "content-type: application/json", "-H", "x-fake-chunks: 20", "-H", "x-fake-delay-ms: 150",
         "-d", json.dumps(body)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # mid-stream
    t.proc.kill()
    t.proc.wait(timeout=10)
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0, err
    assert out.count("data: ") >= 20 and "[DONE]" in out, out[-500:]


def content_call(fake, tracer_args, tmp_path):
    """One chat call with a system and a user message; returns (jsonl calls, OTLP spans)."""
    jsonl = tmp_path / "calls.jsonl"
    otlp = OtlpReceiver()
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--otlp-endpoint", otlp.http_endpoint, *tracer_args],
               env={"OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        assert t.wait_ready(), t.text()
        body = {"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "say hello to the hardening test"}]}
        client = subprocess.Popen(["curl", "-sS", "--http1.1", "--fail-with-body", "--cacert",
                                   str(fake_ca()), "--resolve", f"api.openai.com:{fake}:127.0.0.1",
                                   f"https://api.openai.com:{fake}/v1/chat/completions",
                                   "-H", "content-type: application/json", "-d", json.dumps(body)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        pid = client.pid
        # The agent traces the whole host: keep only this client's call.
        calls = wait_for(lambda: [c for c in jsonl_calls(jsonl) if c["origin"]["pid"] == pid])
        spans = otlp.wait_spans(
            lambda s: [x for x in s if x["resource"].get("process.pid") == pid], timeout=30)
        spans = [x for x in spans if x["resource"].get("process.pid") == pid]
    finally:
        t.stop()
        otlp.close()
    assert calls and spans, t.text()
    return calls[0], spans[0], json.loads(out)


def test_content_is_not_exported_by_default(fake, tmp_path):
    call, span, _ = content_call(fake, [], tmp_path)
    assert call.get("content") is None
    for k in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
        assert k not in span["attributes"]
    # (the process resource is left out: curl's own command line holds the request body)
    assert "say hello to the hardening test" not in json.dumps({k: v for k, v in call.items()
                                                                if k != "process"})
    assert "say hello to the hardening test" not in json.dumps(span["attributes"])


def test_content_capture_opt_in_exports_semconv_messages(fake, tmp_path):
    call, span, answer = content_call(fake, ["--capture-content=4096"], tmp_path)
    content = call["content"]
    inp = json.loads(content["input_messages"])
    assert inp[-1]["role"] == "user"
    assert inp[-1]["parts"][0] == {"type": "text", "content": "say hello to the hardening test"}
    # OpenAI chat keeps the system message among the input messages (semconv: system
    # instructions apart only where the API takes them apart, e.g. Anthropic `system`).
    system = content.get("system_instructions")
    assert "You are a terse assistant." in (system or "") + content["input_messages"]
    out = json.loads(content["output_messages"])
    assert out[0]["role"] == "assistant"
    text = answer["choices"][0]["message"]["content"]
    assert out[0]["parts"][0]["content"] == text
    a = span["attributes"]
    assert json.loads(a["gen_ai.input.messages"]) == inp
    assert json.loads(a["gen_ai.output.messages"]) == out
    if system is not None:
        assert json.loads(a["gen_ai.system_instructions"]) == json.loads(system)


def test_a_client_killed_mid_stream_leaves_a_partial_call_with_an_error(fake, tmp_path):
    jsonl = tmp_path / "calls.jsonl"
    t = Tracer([BIN, "run", "--jsonl", str(jsonl)])
    assert t.wait_ready(), t.text()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count"}], "stream": True}
    client = subprocess.Popen(
        ["curl", "-sS", "--http1.1", "-N", "--cacert", str(fake_ca()), "--resolve",
         f"api.openai.com:{fake}:127.0.0.1", f"https://api.openai.com:{fake}/v1/chat/completions",
         "-H", "content-type: application/json", "-H", "x-fake-chunks: 40", "-H", "x-fake-delay-ms: 100",
         "-d", json.dumps(body)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    client.kill()
    client.wait()
    mine = lambda: [c for c in jsonl_calls(jsonl) if c["origin"]["pid"] == client.pid]
    calls = wait_for(mine, timeout=20)
    t.stop()
    assert len(calls) == 1, t.text()
    c = calls[0]
    assert c["quality"]["incomplete"] is True
    assert c["error_type"] in ("incomplete", "connection_closed")
    assert c["streamed"] is True
    assert c["timing"]["first_output_ns"] is not None


def test_otlp_endpoint_absent_tracing_goes_on_and_shutdown_is_prompt(fake, tmp_path):
    """Nothing listens at the OTLP endpoint: calls still reach the JSONL output, export failures
    are counted (Prometheus self-metrics), and SIGTERM still exits promptly."""
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    jsonl = tmp_path / "calls.jsonl"
    prom_port = 20000 + os.getpid() % 1000
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--otlp-endpoint", f"http://127.0.0.1:{dead}",
                "--prometheus", f"127.0.0.1:{prom_port}"],
               env={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    assert t.wait_ready(), t.text()
    pids = []
    for _ in range(3):
        client = subprocess.Popen(["curl", "-sS", "--http1.1", "--fail-with-body", "--cacert",
                                   str(fake_ca()), "--resolve", f"api.openai.com:{fake}:127.0.0.1",
                                   f"https://api.openai.com:{fake}/v1/chat/completions",
                                   "-H", "content-type: application/json", "-d",
                                   json.dumps({"model": "gpt-4o-mini",
                                               "messages": [{"role": "user", "content": "hi"}]})],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        pids.append(client.pid)
    mine = wait_for(lambda: [c for c in jsonl_calls(jsonl) if c["origin"]["pid"] in pids]
                    if len([c for c in jsonl_calls(jsonl) if c["origin"]["pid"] in pids]) == 3 else None)
    assert mine and len(mine) == 3, "calls lost while OTLP is down:\n" + t.text()
    assert t.proc.poll() is None, "the agent died with OTLP down:\n" + t.text()

    def export_errors():
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return [l for l in text.splitlines() if "export_errors" in l and not l.startswith("#")
                and float(l.rsplit(" ", 1)[1]) > 0]
    errs = wait_for(export_errors, timeout=30)
    took = t.stop()
    assert errs, "failed exports are not counted"
    assert took < 10, f"shutdown with an unreachable endpoint took {took:.1f} s"


LOAD_CLIENT = HERE / "clients" / "load_client.py"


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_load_every_call_exported_once_and_memory_flat(fake, tmp_path):
    """60 s of mixed providers, streamed and not, at ~50 calls/s from 16 concurrent keep-alive
    connections: every call the client completed is exported exactly once, none damaged, and the
    agent's resident memory stays flat."""
    jsonl = tmp_path / "calls.jsonl"
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--no-console"])
    assert t.wait_ready(), t.text()
    client = subprocess.Popen([sys.executable, str(LOAD_CLIENT), str(fake), str(fake_ca()), "16", "50",
                               "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    while client.poll() is None:
        samples.append(rss_kb(t.proc.pid))
        time.sleep(2)
    out, err = client.communicate()
    assert client.returncode == 0, err
    summary = json.loads(out)
    assert not summary["failed"], summary["failed"]
    assert summary["total"] >= 2400, summary  # ~50/s for 60 s
    pid = summary["pid"]
    mine = lambda: [c for c in jsonl_calls(jsonl) if c["origin"]["pid"] == pid]
    wait_for(lambda: len(mine()) >= summary["total"], timeout=30)
    took = t.stop()
    calls = mine()
    print(f"made {summary['total']} calls, exported {len(calls)}; RSS samples (kB) {samples}")
    assert len(calls) == summary["total"], f"made {summary['total']}, exported {len(calls)}"
    # exactly once: no two exported calls share a response id (the fake server numbers its
    # OpenAI and Anthropic answers; its Gemini and Ollama answers carry a fixed id or none)
    ids = [c["response"]["id"] for c in calls
           if (c["response"].get("id") or "").startswith(("chatcmpl-fake", "msg_fake"))]
    assert len(ids) >= summary["total"] // 2
    assert len(ids) == len(set(ids)), "a call was exported twice"
    damaged = [c for c in calls if c["quality"]["incomplete"] or c["quality"]["gap"] or c.get("error_type")]
    assert not damaged, damaged[:3]
    # memory flat: after the first 10 s, the last samples are not above the early ones by much
    early = max(samples[3:8])
    late = max(samples[-5:])
    assert late <= early * 1.3 + 16 * 1024, f"RSS grew from {early} kB to {late} kB"
    assert took < 10
