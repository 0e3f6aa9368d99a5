"""OTLP endpoint faults, end to end, with the real agent, real uprobes and real clients over TLS (root):

- the endpoint goes away mid-run (its process killed) while clients keep calling, then comes back on
  the same ports: every call still reaches the JSONL output, the agent's memory stays flat, the spans
  it could not deliver are counted as drops with a reason, one log line says what happens and how to
  fix it, and calls made after the return arrive at the endpoint (OTLP/HTTP and OTLP/gRPC);
- a slow endpoint (each export answered seconds late) does not slow the traced clients, and spans
  that find the export queue full are counted;
- an endpoint answering errors (HTTP 500/503/429, gRPC UNAVAILABLE/RESOURCE_EXHAUSTED): the same,
  and export resumes when it answers OK again.

Set FAULTS_OUTAGE_SECONDS to make the outage of the first test longer (a by-hand run of minutes).
The agent traces the whole host, so every check keeps only the calls of the client processes the
test started (by pid).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime

import pytest

from otlp_receiver import OtlpReceiver
from test_hardening import (BIN, HERE, LOAD_CLIENT, Tracer, _ca, fake, fake_ca, jsonl_calls, pki,  # noqa: F401
                            rss_kb, wait_for)

RECEIVER = HERE / "otlp_receiver.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="NOT RUN: needs root (uprobes)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReceiverProcess:
    """tests/e2e/otlp_receiver.py in its own process on fixed ports; its spans read from stdout.
    kill() is the collector going away; a new ReceiverProcess on the same ports is it coming back."""

    def __init__(self, http_port, grpc_port):
        self.spans = []
        self.lock = threading.Lock()
        for _ in range(20):  # the ports of a killed receiver can take a moment to free
            self.proc = subprocess.Popen([sys.executable, str(RECEIVER), "--http-port", str(http_port),
                                          "--grpc-port", str(grpc_port)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("http "):
                break
            self.proc.wait()
            time.sleep(0.5)
        else:
            pytest.fail(f"receiver did not start on {http_port}/{grpc_port}: {self.proc.stderr.read()}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "span" in obj:
                with self.lock:
                    self.spans.append(obj["span"])

    def spans_of(self, pid):
        with self.lock:
            return [s for s in self.spans if s["resource"].get("process.pid") == pid]

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def run_load(port, threads, rate, seconds):
    """The load client (its own process, keep-alive connections, mixed providers); its summary."""
    p = subprocess.run([sys.executable, str(LOAD_CLIENT), str(port), str(fake_ca()), str(threads),
                        str(rate), str(seconds)], capture_output=True, text=True, timeout=seconds + 60)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert not summary["failed"], summary["failed"]
    assert summary["total"] > 0, summary
    return summary


def scrape(prom_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=10) as r:
        return r.read().decode()


def counters(text, metric, label):
    """{label value: sample value} of one Prometheus counter."""
    out = {}
    for m in re.finditer(r"^%s\{([^}]*)\} (\S+)$" % re.escape(metric), text, re.M):
        lab = re.search(r'%s="([^"]*)"' % re.escape(label), m.group(1))
        if lab:
            out[lab.group(1)] = float(m.group(2))
    return out


def drops(prom_port):
    return counters(scrape(prom_port), "llm_tracer_drops_total", "llm_tracer_drop_reason")


def export_errors(prom_port):
    return counters(scrape(prom_port), "llm_tracer_export_errors_total", "llm_tracer_sink")


def traced(jsonl, pid):
    return [c for c in jsonl_calls(jsonl) if c["origin"]["pid"] == pid]


def assert_all_traced(jsonl, summary):
    """Every call the client made is in the JSONL output, once."""
    pid, n = summary["pid"], summary["total"]
    calls = wait_for(lambda: len(traced(jsonl, pid)) >= n and traced(jsonl, pid), timeout=30) or []
    assert len(calls) == n, f"client {pid} made {n} calls, JSONL has {len(calls)}"


def stop(t):
    """SIGTERM the agent; returns how long it took to close its outputs (from its own log), or
    fails with its logs when it hung. Exiting takes longer: the kernel detaches each uprobe link
    at a cost (an RCU grace period each, about 0.1 s side by side here), which depends on how
    many libraries the host has, not on the endpoint; the total is printed."""
    t0 = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    try:
        t.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        t.proc.kill()
        t.proc.wait()
        pytest.fail("llm-tracer did not exit within 60 s of SIGTERM:\n" + t.text())
    total = time.monotonic() - t0
    logs = t.text()
    stamp = lambda what: [datetime.fromisoformat(m.group(1)) for m in re.finditer(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})\d*Z.*%s" % what, logs)]
    began, closed = stamp("stopping: flushing the outputs"), stamp("outputs closed")
    assert began and closed, "no stop log lines:\n" + logs
    closing = (closed[-1] - began[-1]).total_seconds()
    detach = re.findall(r"detached \d+ probe link\(s\) in [\d.]+ s", logs)
    print(f"SIGTERM: outputs closed in {closing:.1f} s, exit after {total:.1f} s ({detach})")
    return closing


def start_agent(jsonl, endpoint, protocol, prom_port, **env):
    t = Tracer([BIN, "run", "--jsonl", str(jsonl), "--no-console", "--otlp-endpoint", endpoint,
                "--otlp-protocol", protocol, "--prometheus", f"127.0.0.1:{prom_port}"],
               env={"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "1000", **env})
    assert t.wait_ready(), t.text()
    return t


# FAULTS_OUTAGE_SECONDS=300 makes the outage last that long (by hand; CI keeps it short).
OUTAGE_S = os.environ.get("FAULTS_OUTAGE_SECONDS")


@pytest.mark.parametrize("protocol,outage_s", [("http/protobuf", int(OUTAGE_S or 30)),
                                               ("grpc", int(OUTAGE_S or 12))])
def test_endpoint_goes_away_mid_run_and_comes_back(fake, tmp_path, protocol, outage_s):
    http_port, grpc_port, prom_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{http_port if protocol == 'http/protobuf' else grpc_port}"
    receiver = ReceiverProcess(http_port, grpc_port)
    jsonl = tmp_path / "calls.jsonl"
    t = start_agent(jsonl, endpoint, protocol, prom_port)
    try:
        # Before: calls reach the endpoint.
        before = run_load(fake, 2, 10, 3)
        assert_all_traced(jsonl, before)
        got = wait_for(lambda: len(receiver.spans_of(before["pid"])) >= before["total"], timeout=30)
        assert got, f"spans before the outage: {len(receiver.spans_of(before['pid']))}/{before['total']}"

        # The endpoint goes away while clients keep calling.
        receiver.kill()
        rss = []
        sampler_stop = threading.Event()

        def sample():
            while not sampler_stop.is_set():
                rss.append(rss_kb(t.proc.pid))
                sampler_stop.wait(1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        during = run_load(fake, 4, 20, outage_s)
        sampler_stop.set()
        sampler.join()
        assert t.proc.poll() is None, "the agent died while the endpoint was away:\n" + t.text()
        assert_all_traced(jsonl, during)
        # Every span of the outage is accounted for: dropped with a reason (other processes of the
        # host may add to the counts, so at least the client's).
        d = wait_for(lambda: (lambda d: d if d.get("otlp_export_failed", 0) + d.get("otlp_queue_full", 0)
                              >= during["total"] else None)(drops(prom_port)), timeout=30)
        assert d, f"dropped spans not counted: drops {drops(prom_port)}, the client made {during['total']}"
        errs = export_errors(prom_port)
        assert errs.get("otlp-spans", 0) > 0 and errs.get("otlp-metrics", 0) > 0, errs

        # Memory: bounded, and not growing with the outage's length.
        half = max(1, len(rss) // 2)
        early, late = max(rss[:half]), max(rss[half:] or rss)
        print(f"{protocol}: outage {outage_s} s, {during['total']} calls, RSS samples (kB) {rss}, "
              f"drops {d}, export errors {errs}")
        assert max(rss) < 200 * 1024, f"agent RSS {max(rss)} kB"
        assert late <= early + 8 * 1024, f"RSS grew during the outage: {early} kB -> {late} kB"

        # The endpoint comes back on the same port: calls made after that arrive.
        receiver = ReceiverProcess(http_port, grpc_port)
        after = run_load(fake, 2, 10, 3)
        assert_all_traced(jsonl, after)
        got = wait_for(lambda: len(receiver.spans_of(after["pid"])) >= after["total"], timeout=40)
        assert got, (f"export did not resume: {len(receiver.spans_of(after['pid']))}/{after['total']} "
                     f"spans after the endpoint came back\n" + t.text())
    finally:
        try:
            took = stop(t)
        finally:
            receiver.kill()
    logs = t.text()
    # Once per outage: what happens and how to fix it; and once when it works again.
    failed = [l for l in logs.splitlines() if "OTLP span export to" in l and "failed:" in l]
    assert len(failed) == 1, "\n".join(failed) or logs
    assert "Check that an OTLP collector is reachable" in failed[0] and "otlp_export_failed" in failed[0]
    assert len([l for l in logs.splitlines() if "OTLP span export to" in l and "works again" in l]) == 1, logs
    assert len([l for l in logs.splitlines() if "OTLP metric export to" in l and "failed:" in l]) == 1, logs
    assert took < 6, f"closing the outputs after SIGTERM took {took:.1f} s"


def test_slow_endpoint_does_not_slow_the_clients(fake, tmp_path):
    receiver = OtlpReceiver()
    prom_port = free_port()
    jsonl = tmp_path / "calls.jsonl"
    # A small queue and batches, so that a slow endpoint fills it within seconds.
    t = start_agent(jsonl, receiver.http_endpoint, "http/protobuf", prom_port,
                    OTEL_BSP_MAX_QUEUE_SIZE="64", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="16")
    ok_lat, slow_lat = [], []
    try:
        # Interleaved rounds (the VM's speed drifts): endpoint fine, then 3 s late on every export.
        for _ in range(2):
            receiver.set_fault("ok")
            s = run_load(fake, 4, 30, 5)
            assert_all_traced(jsonl, s)
            ok_lat.append(s["latency_ms"])
            receiver.set_fault("delay", seconds=3)
            s = run_load(fake, 4, 30, 5)
            assert_all_traced(jsonl, s)
            slow_lat.append(s["latency_ms"])
        d = wait_for(lambda: drops(prom_port).get("otlp_queue_full", 0) > 0, timeout=20)
        assert d, f"a full queue was not counted: {drops(prom_port)}"
        # Back to normal: once the backlog is through, new calls arrive again.
        receiver.set_fault("ok")
        time.sleep(4)
        after = run_load(fake, 2, 10, 2)
        assert_all_traced(jsonl, after)
        mine = lambda: [s for s in receiver.spans if s["resource"].get("process.pid") == after["pid"]]
        got = wait_for(lambda: len(mine()) >= after["total"], timeout=30)
        assert got, f"{len(mine())}/{after['total']} spans after the endpoint was fast again"
        queue_full = drops(prom_port).get("otlp_queue_full")
        # Stopping while the endpoint hangs (8 s per answer) with spans queued is still prompt.
        receiver.set_fault("delay", seconds=8)
        run_load(fake, 2, 10, 2)
        time.sleep(0.5)
    finally:
        try:
            took = stop(t)
        finally:
            receiver.close()
    print(f"client latency (ms), endpoint fine: {ok_lat}; endpoint 3 s late: {slow_lat}; "
          f"otlp_queue_full drops {queue_full}; outputs closed {took:.1f} s after SIGTERM")
    # Spans wait at most 3 s for the endpoint, side by side with the metric reader's 5 s.
    assert took < 6, f"closing the outputs with a hanging endpoint took {took:.1f} s"
    ok50 = sorted(x["p50"] for x in ok_lat)[-1]
    slow50 = sorted(x["p50"] for x in slow_lat)[0]
    ok90 = max(x["p90"] for x in ok_lat)
    slow90 = min(x["p90"] for x in slow_lat)
    # Within noise: a slow endpoint would show as seconds, not milliseconds.
    assert slow50 <= ok50 * 1.5 + 5, f"p50 {slow50} ms with a slow endpoint vs {ok50} ms"
    assert slow90 <= ok90 * 2 + 20, f"p90 {slow90} ms with a slow endpoint vs {ok90} ms"


ERRORS = {
    "http/protobuf": [dict(http_status=500), dict(http_status=503), dict(http_status=429, retry_after=1)],
    "grpc": [dict(grpc_code="UNAVAILABLE"), dict(grpc_code="RESOURCE_EXHAUSTED")],
}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_endpoint_answering_errors_then_ok(fake, tmp_path, protocol):
    receiver = OtlpReceiver()
    prom_port = free_port()
    jsonl = tmp_path / "calls.jsonl"
    endpoint = receiver.http_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint
    t = start_agent(jsonl, endpoint, protocol, prom_port)
    seen = []
    try:
        failed_before = 0
        for fault in ERRORS[protocol]:
            receiver.set_fault("error", **fault)
            s = run_load(fake, 2, 10, 3)
            assert_all_traced(jsonl, s)
            # The spans of this phase are refused, dropped and counted.
            n = wait_for(lambda: (lambda v: v if v >= failed_before + s["total"] else None)(
                drops(prom_port).get("otlp_export_failed", 0)), timeout=30)
            assert n, f"{fault}: drops {drops(prom_port)}, phase made {s['total']} calls"
            assert not [x for x in receiver.spans if x["resource"].get("process.pid") == s["pid"]]
            seen.append((fault, s["total"], n))
            failed_before = n
        assert receiver.requests["rejected"] > 0
        receiver.set_fault("ok")
        after = run_load(fake, 2, 10, 3)
        assert_all_traced(jsonl, after)
        mine = lambda: [x for x in receiver.spans if x["resource"].get("process.pid") == after["pid"]]
        got = wait_for(lambda: len(mine()) >= after["total"], timeout=30)
        assert got, f"{len(mine())}/{after['total']} spans once the endpoint answered OK again"
    finally:
        try:
            stop(t)
        finally:
            receiver.close()
    print(f"{protocol}: (fault, calls, otlp_export_failed total) {seen}")
    logs = t.text()
    assert len([l for l in logs.splitlines() if "OTLP span export to" in l and "failed:" in l]) == 1, logs
    assert len([l for l in logs.splitlines() if "OTLP span export to" in l and "works again" in l]) == 1, logs
