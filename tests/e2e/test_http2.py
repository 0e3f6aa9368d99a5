"""HTTP/2 end to end: real clients speaking h2 over OpenSSL (Python's ssl), real uprobes.

- The official `openai` SDK on httpx with `http2=True` (ALPN h2) against the fake LLM server's
  HTTP/2 front: calls recognised with model, usage and finish reason, on HTTP/2.
- Late attach: a client opens its h2 connection and makes a call BEFORE the tracer starts (so the
  preface, SETTINGS and the HPACK dynamic table predate the tracer), then more calls after: the
  later calls are recovered from what is recoverable (static-table and literal fields, the bodies)
  and flagged `late_attach`; the call made before the tracer is not reported; nothing is
  attributed wrongly.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
H2_SERVER = ROOT / "tests" / "fakes" / "llm_server_h2.py"
H2_CLIENT = HERE / "clients" / "h2_client.py"
CANARY = "test-canary-h2-5b1c"


@pytest.fixture(scope="module")
def h2_server(tls_cert, tmp_path_factory):
    cert, key = tls_cert
    served = tmp_path_factory.mktemp("h2") / "served.jsonl"
    proc = subprocess.Popen([sys.executable, str(H2_SERVER), "--cert", str(cert), "--key", str(key),
                             "--served-log", str(served)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening"), "h2 fake server did not start: %r" % line
    yield int(line.split()[1])
    proc.kill()
    proc.wait()


def calls_of(jsonl, pid):
    if not jsonl.exists():
        return []
    calls = [json.loads(l) for l in jsonl.read_text().splitlines() if l.strip()]
    return [c for c in calls if c["origin"]["pid"] == pid]


def wait_calls(jsonl, pid, n, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = calls_of(jsonl, pid)
        if len(got) >= n:
            return got
        time.sleep(0.2)
    return calls_of(jsonl, pid)


SDK_H2 = r"""
import json, os, sys
import openai
port, ca = sys.argv[1], sys.argv[2]
oa = openai.OpenAI(base_url="https://127.0.0.1:%s/v1" % port, api_key=os.environ["KEY"], max_retries=0,
                   http_client=openai.DefaultHttpxClient(verify=ca, http2=True))
r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}],
                               max_tokens=20)
s = oa.chat.completions.create(model="gpt-4.1-nano", messages=[{"role": "user", "content": "stream it"}],
                               stream=True, stream_options={"include_usage": True})
usage = None
for ch in s:
    usage = ch.usage or usage
print(json.dumps({"pid": os.getpid(), "id": r.id, "input": r.usage.prompt_tokens,
                  "output": r.usage.completion_tokens, "stream_input": usage.prompt_tokens,
                  "stream_output": usage.completion_tokens}))
"""


def test_openai_sdk_over_http2(tracer, tls_cert, h2_server, tmp_path):
    jsonl = tmp_path / "calls.jsonl"
    t = tracer("--jsonl", str(jsonl), "--console", command="run")
    p = subprocess.run([sys.executable, "-c", SDK_H2, str(h2_server), str(tls_cert[0])],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "KEY": CANARY})
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    calls = wait_calls(jsonl, seen["pid"], 2)
    out, err = t.stop()
    calls = calls_of(jsonl, seen["pid"])
    assert len(calls) == 2, calls
    by_model = {c["request"]["model"]: c for c in calls}
    plain, streamed = by_model["gpt-4o-mini"], by_model["gpt-4.1-nano"]
    for c in calls:
        assert c["http_version"] == "2"
        assert c["http_status"] == 200
        assert c["operation"] == "chat"
        assert not c["quality"]["late_attach"]
        assert c["error_type"] is None
    assert plain["response"]["id"] == seen["id"]
    assert plain["request"]["max_tokens"] == 20
    assert plain["usage"]["input_tokens"] == seen["input"]
    assert plain["usage"]["output_tokens"] == seen["output"]
    assert plain["response"]["finish_reasons"] == ["stop"]
    assert streamed["streamed"] is True
    assert streamed["usage"]["input_tokens"] == seen["stream_input"]
    assert streamed["usage"]["output_tokens"] == seen["stream_output"]
    assert CANARY not in jsonl.read_text() and CANARY not in out and CANARY not in err


def test_http2_connection_opened_before_the_tracer(tracer, tls_cert, h2_server, tmp_path):
    client = subprocess.Popen(
        [sys.executable, str(H2_CLIENT), "127.0.0.1:%d" % h2_server, str(tls_cert[0]), "--before", "1",
         "--after", "3", "--stream"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CANARY_OPENAI_KEY": CANARY})
    try:
        before = [json.loads(client.stdout.readline())]
        assert json.loads(client.stdout.readline()) == {"ready": True}
        jsonl = tmp_path / "calls.jsonl"
        t = tracer("--jsonl", str(jsonl), command="run")
        time.sleep(0.5)
        client.stdin.write("go\n")
        client.stdin.flush()
        after = [json.loads(client.stdout.readline()) for _ in range(3)]
        assert client.wait(30) == 0, client.stderr.read()
    finally:
        if client.poll() is None:
            client.kill()
    calls = wait_calls(jsonl, client.pid, 3)
    out, err = t.stop()
    calls = calls_of(jsonl, client.pid)
    # Exactly the three calls made after attach; the one before is not invented.
    assert len(calls) == 3, calls
    assert before[0]["usage"] is not None
    for c in calls:
        assert c["http_version"] == "2"
        assert c["quality"]["late_attach"] is True
        # Recovered from the bodies: model, usage, finish reason.
        assert c["response"]["model"] == "gpt-4o-mini"
        assert c["response"]["finish_reasons"] == ["stop"]
        assert c["streamed"] is True
    got_usage = sorted((c["usage"]["input_tokens"], c["usage"]["output_tokens"]) for c in calls)
    want_usage = sorted((a["usage"]["prompt_tokens"], a["usage"]["completion_tokens"]) for a in after)
    assert got_usage == want_usage
    # Never attributed from a stale table: a header value the tracer reports must be one the
    # client really sent (the authority it knows, the path it called) or be absent.
    for c in calls:
        assert c["server_address"] in (None, "127.0.0.1")
        assert c["http_path"] in ("", "/v1/chat/completions")
    assert CANARY not in jsonl.read_text() and CANARY not in out and CANARY not in err
