"""The Helm chart renders with Helm's own engine, every object is valid Kubernetes, and the
DaemonSet keeps the least-privilege contract."""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils
import pytest

from chart import CHART_DIR, MANIFESTS, objects, plain_manifests

CAPS = ["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_ADMIN"]
# Oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and every newer minor
# kubernetes-validate ships schemas for.
KUBE_VERSIONS = sorted(
    {v for v in kubernetes_validate.utils.all_versions() if int(v.split(".")[1]) >= 25},
    key=lambda v: int(v.split(".")[1]),
)


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def daemonset(values: dict | None = None) -> dict:
    [ds] = by_kind(objects(values), "DaemonSet")
    return ds


def agent(values: dict | None = None) -> dict:
    [c] = daemonset(values)["spec"]["template"]["spec"]["containers"]
    return c


def env(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_helm_lint_strict_is_clean():
    report = helm.lint(str(CHART_DIR), strict=True, kube_version="v1.25.0")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_renders_the_expected_objects():
    kinds = sorted(o["kind"] for o in objects())
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "Service", "ServiceAccount"]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_validates_against_kubernetes_schemas(kube_version):
    assert len(KUBE_VERSIONS) >= 10, KUBE_VERSIONS
    for values in (None, {"agent": {"podMetadata": "off"}, "service": {"enabled": False}}):
        for obj in objects(values):
            # strict: unknown fields are errors too (a typo in a template is caught)
            kubernetes_validate.validate(obj, kube_version, strict=True)


def test_daemonset_is_least_privilege():
    ds = daemonset()
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostIPC")
    sc = agent()["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": CAPS}
    assert "securityContext" not in pod or "privileged" not in pod["securityContext"]
    # No host filesystem: /proc of every process comes with hostPID, BTF with the sysfs the
    # runtime mounts; the only volume is a small scratch /tmp.
    for vol in pod.get("volumes", []):
        assert "hostPath" not in vol, vol
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_runs_on_every_node_with_bounded_resources_and_health_probes():
    pod = daemonset()["spec"]["template"]["spec"]
    # An empty key with operator Exists tolerates every taint.
    assert {"operator": "Exists"} in pod["tolerations"]
    c = agent()
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    [port] = c["ports"]
    assert port["name"] == "metrics"
    assert f"--prometheus=0.0.0.0:{port['containerPort']}" in c["args"]
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ]:
        assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe


def test_pod_metadata_needs_only_read_access_to_pods():
    objs = objects()
    [role] = by_kind(objs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    [binding] = by_kind(objs, "ClusterRoleBinding")
    [sa] = by_kind(objs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "llm-tracer"}
    ]
    assert daemonset()["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    e = env(agent())
    # Own node only: the agent filters its watch by this name.
    assert e["K8S_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert e["LLM_TRACER_K8S"] == "auto"


def test_pod_metadata_off_drops_rbac_and_token():
    objs = objects({"agent": {"podMetadata": "off"}})
    assert by_kind(objs, "ClusterRole") == [] and by_kind(objs, "ClusterRoleBinding") == []
    [sa] = by_kind(objs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    [ds] = by_kind(objs, "DaemonSet")
    assert ds["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert env(agent({"agent": {"podMetadata": "off"}}))["LLM_TRACER_K8S"] == "off"


def test_options_reach_the_agent():
    values = {
        "otlp": {
            "endpoint": "https://otlp.example.invalid:4318",
            "protocol": "http/protobuf",
            "headers": "x-tenant=team-a",
            "resourceAttributes": "deployment.environment=staging",
            "metricExportIntervalMs": 15000,
            "batchDelayMs": 1000,
        },
        "agent": {
            "captureContent": True,
            "logLevel": "debug",
            "metricsPort": 9900,
            "podLookupTimeoutMs": 500,
            "extraArgs": ["--comm", "python3"],
        },
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "image": {"repository": "registry.example/llm-tracer", "tag": "1.2.3"},
    }
    c = agent(values)
    e = env(c)
    assert e["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.example.invalid:4318"
    assert e["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert e["OTEL_EXPORTER_OTLP_HEADERS"] == "x-tenant=team-a"
    assert e["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=staging"
    assert e["OTEL_METRIC_EXPORT_INTERVAL"] == "15000"
    assert e["OTEL_BSP_SCHEDULE_DELAY"] == "1000"
    assert e["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "true"
    assert e["RUST_LOG"] == "debug"
    assert e["LLM_TRACER_K8S_LOOKUP_TIMEOUT_MS"] == "500"
    assert e["EXTRA"] == "1"
    assert c["args"] == ["run", "--prometheus=0.0.0.0:9900", "--comm", "python3"]
    assert c["ports"][0]["containerPort"] == 9900
    assert c["image"] == "registry.example/llm-tracer:1.2.3"


def test_no_endpoint_means_no_otlp_env_and_content_off_by_default():
    e = env(agent({"otlp": {"endpoint": ""}}))
    assert not any(k.startswith("OTEL_EXPORTER_OTLP") for k in e)
    assert env(agent())["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"


@pytest.mark.parametrize(
    "values",
    [
        {"securityContext": {"capabilities": ["NET_ADMIN"]}},
        {"securityContext": {"capabilities": ["ALL"]}},
        {"otlp": {"protocol": "udp"}},
        {"otlp": {"endpoint": "otel:4317"}},
        {"agent": {"podMetadata": "sometimes"}},
        {"agent": {"metricsPort": 70000}},
        {"privileged": True},
    ],
)
def test_schema_refuses_bad_values(values):
    with pytest.raises(helm.HelmValuesError):
        objects(values)


def test_committed_plain_manifests_match_the_chart():
    assert MANIFESTS.read_text() == plain_manifests(), (
        "deploy/kubernetes/llm-tracer.yaml is stale: run python tests/deploy/render_manifests.py"
    )


def test_plain_manifests_validate():
    import yaml

    docs = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    for d in docs:
        kubernetes_validate.validate(d, KUBE_VERSIONS[-1], strict=True)
