"""The Collector pipeline example: its shape is checked here, since no otelcol binary can be
installed offline (no registry package ships one). What is checked is what the Collector itself
checks at start-up (every referenced component is defined, every pipeline has receivers and
exporters) plus the sampling contract: errors and slow calls always kept, a sample of the rest."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

COLLECTOR = Path(__file__).resolve().parents[2] / "deploy" / "collector"
CONFIG = COLLECTOR / "config.yaml"

# Components of opentelemetry-collector-contrib that the example uses (type part of `type/name`).
KNOWN = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "tail_sampling", "batch"},
    "exporters": {"otlp", "otlphttp", "prometheus", "debug"},
    "extensions": {"health_check"},
}


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_every_referenced_component_is_defined_and_known(config):
    service = config["service"]
    for ext in service.get("extensions", []):
        assert ext in config["extensions"], ext
    defined_and_used = set()
    for name, pipeline in service["pipelines"].items():
        assert name.split("/")[0] in {"traces", "metrics", "logs"}, name
        assert pipeline["receivers"] and pipeline["exporters"], name
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipeline.get(kind, []):
                assert comp in (config.get(kind) or {}), f"{name}: {kind} {comp} is not defined"
                assert comp.split("/")[0] in KNOWN[kind], comp
                defined_and_used.add((kind, comp))
    # Nothing defined and left unused (the Collector accepts it, but it is a mistake here).
    for kind in ("receivers", "processors", "exporters"):
        for comp in config.get(kind) or {}:
            assert (kind, comp) in defined_and_used, f"{kind} {comp} is unused"


def test_memory_limiter_first_and_batch_last(config):
    for name, pipeline in config["service"]["pipelines"].items():
        procs = pipeline["processors"]
        assert procs[0] == "memory_limiter", name
        assert procs[-1] == "batch", name


def test_traces_keep_all_errors_and_slow_calls_and_sample_the_rest(config):
    traces = config["service"]["pipelines"]["traces"]
    assert "tail_sampling" in traces["processors"]
    ts = config["processors"]["tail_sampling"]
    by_type = {p["type"]: p for p in ts["policies"]}
    # Top-level policies are OR-ed: a trace matched by any one is kept.
    assert by_type["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    attr = by_type["string_attribute"]["string_attribute"]
    assert attr["key"] == "error.type" and attr["enabled_regex_matching"] is True
    assert re.fullmatch(attr["values"][0], "rate_limit_error")
    assert re.search(r"\$\{env:SLOW_CALL_MS:-\d+\}", str(by_type["latency"]["latency"]["threshold_ms"]))
    assert re.search(
        r"\$\{env:SAMPLE_PERCENT:-\d+\}",
        str(by_type["probabilistic"]["probabilistic"]["sampling_percentage"]),
    )
    assert set(by_type) == {"status_code", "string_attribute", "latency", "probabilistic"}
    # Only traces are sampled: metrics are exact counts of every call.
    assert "tail_sampling" not in config["service"]["pipelines"]["metrics"]["processors"]


def test_exports_to_an_otlp_backend_and_prometheus(config):
    pipes = config["service"]["pipelines"]
    assert "otlp/backend" in pipes["traces"]["exporters"]
    assert {"otlp/backend", "prometheus"} <= set(pipes["metrics"]["exporters"])
    assert config["exporters"]["otlp/backend"]["endpoint"] == "${env:OTLP_BACKEND_ENDPOINT}"
    assert config["exporters"]["prometheus"]["endpoint"].endswith(":8889")
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc.endswith(":4317")


def test_collector_manifests_validate_and_match_the_chart_default():
    docs = [d for d in yaml.safe_load_all((COLLECTOR / "kubernetes.yaml").read_text()) if d]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Service"]
    for d in docs:
        kubernetes_validate.validate(d, "1.37.0", strict=True)
    [svc] = [d for d in docs if d["kind"] == "Service"]
    # The chart's default otlp.endpoint points here.
    values = yaml.safe_load(
        (COLLECTOR.parent / "helm" / "llm-tracer" / "values.yaml").read_text()
    )
    name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
    ports = {p["port"] for p in svc["spec"]["ports"]}
    assert values["otlp"]["endpoint"] == f"http://{name}.{ns}.svc:4317" and 4317 in ports
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1  # tail sampling needs whole traces in one Collector
