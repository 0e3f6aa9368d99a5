"""The product end to end: the official `openai` and `anthropic` Python SDKs call a local HTTPS server
(in the providers' real wire shapes, at the providers' real host names resolved to 127.0.0.1 inside
the client only); the tracer, attached by uprobes to the libssl the SDKs use, exports OTLP to a real
receiver that decodes it with the official protobuf definitions. Every span attribute, the resource,
the trace parent, the metrics and their buckets are checked against what the SDK itself saw.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otlp_receiver import OtlpReceiver

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SDK_CALLS = HERE / "clients" / "sdk_calls.py"
FAKE_SERVER = ROOT / "tests" / "fakes" / "llm_server.py"
CANARIES = {"CANARY_OPENAI_KEY": "test-canary-openai-7d1e", "CANARY_ANTHROPIC_KEY": "test-canary-anthropic-93fa"}

DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and a server certificate for the providers' host names and 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "1", "-subj", "/CN=llm-tracer test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,DNS:api.openai.com,DNS:api.anthropic.com,"
                               "IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class FakeLlm:
    def __init__(self, pki, served_log):
        self.served_log = served_log
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--cert", str(pki["cert"]), "--key", str(pki["key"]),
             "--served-log", str(served_log)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening"), "fake LLM server did not start: %r" % line
        self.port = int(line.split()[1])

    def served(self):
        return [json.loads(l) for l in self.served_log.read_text().splitlines() if l.strip()]

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def fake_llm(pki, tmp_path_factory):
    server = FakeLlm(pki, tmp_path_factory.mktemp("fake") / "served.jsonl")
    yield server
    server.close()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def run_sdk(fake_llm, pki, scenarios):
    """Runs the SDK client; returns (pid, {scenario: what the SDK saw})."""
    p = subprocess.run([sys.executable, str(SDK_CALLS), str(fake_llm.port), str(pki["ca"]), *scenarios],
                       capture_output=True, text=True, timeout=120, env={**os.environ, **CANARIES})
    assert p.returncode == 0, "SDK client failed:\n%s" % p.stderr
    seen = {}
    pid = None
    for line in p.stdout.splitlines():
        o = json.loads(line)
        seen[o["scenario"]] = o
        pid = o["pid"]
    assert sorted(seen) == sorted(scenarios)
    return pid, seen


def start_tracer(tracer, monkeypatch, otlp, protocol, tmp_path):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "500")
    endpoint = otlp.http_endpoint if protocol == "http/protobuf" else otlp.grpc_endpoint
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--otlp-endpoint", endpoint, "--otlp-protocol", protocol, "--jsonl", str(jsonl),
               "--console", command="run")
    return t, jsonl


def by_response_id(spans):
    return {s["attributes"].get("gen_ai.response.id"): s for s in spans}


SCENARIOS = ["openai-chat", "openai-chat-stream", "openai-chat-stream-nousage", "openai-responses-stream",
             "openai-embeddings", "openai-error", "anthropic", "anthropic-stream", "traced"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_sdk_calls_become_genai_spans_and_metrics(tracer, monkeypatch, otlp, fake_llm, pki, tmp_path, protocol):
    t, jsonl = start_tracer(tracer, monkeypatch, otlp, protocol, tmp_path)
    pid, seen = run_sdk(fake_llm, pki, SCENARIOS)
    spans = otlp.wait_spans(lambda s: len([x for x in s if x["resource"].get("process.pid") == pid])
                            >= len(SCENARIOS), timeout=30)
    spans = [s for s in spans if s["resource"].get("process.pid") == pid]
    stdout, stderr = t.stop()
    assert len(spans) == len(SCENARIOS), [s["name"] for s in spans]
    ids = by_response_id(spans)

    # Every span: a CLIENT span of this process, with the process resource.
    for s in spans:
        assert s["kind"] == "CLIENT"
        r = s["resource"]
        assert r["process.pid"] == pid
        assert r["process.executable.name"].startswith("python")
        assert r["service.name"]
        assert "host.name" in r
        assert s["end_ns"] >= s["start_ns"] > 1_600_000_000 * 10**9, "wall-clock times"
        assert abs(s["start_ns"] / 1e9 - time.time()) < 300

    # OpenAI chat, not streamed: every request parameter and the usage the SDK saw.
    sdk = seen["openai-chat"]
    a = ids[sdk["id"]]["attributes"]
    assert ids[sdk["id"]]["name"] == "chat gpt-4o-mini"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.response.model"] == sdk["model"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.input_tokens"] == sdk["input"]
    assert a["gen_ai.usage.output_tokens"] == sdk["output"]
    assert a["server.address"] == "api.openai.com"
    assert a["server.port"] == fake_llm.port
    assert a["openai.api.type"] == "chat_completions"
    assert a["openai.response.system_fingerprint"] == "fp_fake"
    assert a["openai.response.service_tier"] == "default"
    assert "gen_ai.request.stream" not in a or a["gen_ai.request.stream"] is False
    assert "gen_ai.response.time_to_first_chunk" not in a
    assert "error.type" not in a and ids[sdk["id"]]["status_code"] != 2

    # Streamed with include_usage: usage from the usage-only chunk, time to first chunk present.
    sdk = seen["openai-chat-stream"]
    a = ids[sdk["id"]]["attributes"]
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.input_tokens"] == sdk["input"]
    assert a["gen_ai.usage.output_tokens"] == sdk["output"] == 8
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    ttfc = a["gen_ai.response.time_to_first_chunk"]
    span = ids[sdk["id"]]
    assert 0 < ttfc <= (span["end_ns"] - span["start_ns"]) / 1e9

    # Streamed without include_usage: the stream carries no usage, so none is reported (not 0).
    sdk = seen["openai-chat-stream-nousage"]
    a = ids[sdk["id"]]["attributes"]
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.response.finish_reasons"] == ["stop"]

    # Responses API, streamed.
    sdk = seen["openai-responses-stream"]
    a = ids[sdk["id"]]["attributes"]
    assert ids[sdk["id"]]["name"] == "chat gpt-4.1-mini"
    assert a["openai.api.type"] == "responses"
    assert a["gen_ai.usage.input_tokens"] == sdk["input"]
    assert a["gen_ai.usage.output_tokens"] == sdk["output"]

    # Embeddings: no response id; found by operation.
    emb = [s for s in spans if s["attributes"]["gen_ai.operation.name"] == "embeddings"]
    assert len(emb) == 1
    a = emb[0]["attributes"]
    assert emb[0]["name"] == "embeddings text-embedding-3-small"
    assert a["gen_ai.usage.input_tokens"] == seen["openai-embeddings"]["input"]
    assert "gen_ai.usage.output_tokens" not in a

    # An API error: error.type is the provider's code, span status Error, HTTP status kept.
    err = [s for s in spans if s["attributes"].get("error.type")]
    assert len(err) == 1
    assert err[0]["attributes"]["error.type"] == seen["openai-error"]["error"] == "rate_limit_exceeded"
    assert err[0]["status_code"] == 2
    assert err[0]["attributes"]["http.response.status_code"] == 429

    # Anthropic: input tokens include cache read and cache creation (OTel rule), both also apart.
    for sc in ("anthropic", "anthropic-stream"):
        sdk = seen[sc]
        a = ids[sdk["id"]]["attributes"]
        assert a["gen_ai.provider.name"] == "anthropic"
        assert a["server.address"] == "api.anthropic.com"
        assert a["gen_ai.request.model"] == "claude-sonnet-4-5"
        assert a["gen_ai.request.max_tokens"] == 100
        assert a["gen_ai.usage.input_tokens"] == sdk["input"] + sdk["cache_read"] + sdk["cache_creation"]
        assert a["gen_ai.usage.cache_read.input_tokens"] == sdk["cache_read"]
        assert a["gen_ai.usage.cache_creation.input_tokens"] == sdk["cache_creation"]
        assert a["gen_ai.usage.output_tokens"] == sdk["output"]
        assert a["gen_ai.response.finish_reasons"] == [sdk["finish"]]
    a = ids[seen["anthropic"]["id"]]["attributes"]
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.top_k"] == 5
    assert ids[seen["anthropic-stream"]["id"]]["attributes"]["gen_ai.request.stream"] is True

    # W3C trace context: the span joins the caller's trace as a child of the caller's span.
    s = ids[seen["traced"]["id"]]
    _, trace_id, parent_id, _ = seen["traced"]["traceparent"].split("-")
    assert s["trace_id"] == trace_id
    assert s["parent_span_id"] == parent_id
    others = [x for x in spans if x is not s]
    assert all(x["trace_id"] != trace_id and x["parent_span_id"] == "" for x in others)

    # Metrics: names, units, attributes and the semconv buckets, exactly.
    dur = otlp.wait_metric("gen_ai.client.operation.duration")
    assert dur["unit"] == "s" and dur["kind"] == "histogram"
    assert all(p["bounds"] == DURATION_BUCKETS for p in dur["points"])
    tok = otlp.wait_metric("gen_ai.client.token.usage")
    assert tok["unit"] == "{token}"
    assert all(p["bounds"] == TOKEN_BUCKETS for p in tok["points"])
    types = {p["attributes"]["gen_ai.token.type"] for p in tok["points"]}
    assert types == {"input", "output"}
    for p in tok["points"] + dur["points"]:
        assert {"gen_ai.operation.name", "gen_ai.provider.name"} <= set(p["attributes"])
    # Per-service split: the SDK process's points carry its service.name (as on its spans).
    service = spans[0]["resource"]["service.name"]
    assert any(p["attributes"].get("service.name") == service for p in tok["points"]), tok
    cost = otlp.wait_metric("llm_tracer.usage.cost_usd")
    assert cost["unit"] == "{USD}"
    ttfc = otlp.wait_metric("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc["unit"] == "s"
    assert all(p["attributes"].get("gen_ai.request.stream", True) for p in ttfc["points"])
    otlp.wait_metric("gen_ai.client.operation.time_per_output_chunk")

    # JSONL has the same calls, and no output anywhere holds an API key.
    calls = [json.loads(l) for l in jsonl.read_text().splitlines() if l.strip()]
    assert len([c for c in calls if c.get("origin", c).get("pid", pid) == pid]) >= len(SCENARIOS)
    for canary in CANARIES.values():
        assert canary.encode() not in bytes(otlp.raw), "API key in OTLP export"
        assert canary not in jsonl.read_text(), "API key in JSONL"
        assert canary not in stdout and canary not in stderr, "API key on the console or in logs"
