"""The container image and the DaemonSet's privilege set, run for real with podman.

- capcheck (deploy/image/capcheck.c) performs the kernel operations the agent performs at
  start-up (open a library through /proc/PID/root, BPF ring buffer, uprobe program, uprobe perf
  event, attach, BTF) inside a FROM-scratch container with --pid=host, a read-only root and
  exactly the chart's capabilities and seccomp choice; then with each capability taken away.
- The agent image (deploy/image/build.sh) is built without any registry and run the same way,
  and must report an OpenAI-shaped call that a host process (curl) makes over TLS.

Needs root and podman (`apt-get install podman runc`); without them every test here is skipped
with a reason saying so (never counted as passed).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chart import ROOT, objects

PODMAN = shutil.which("podman")
pytestmark = pytest.mark.skipif(
    PODMAN is None or os.geteuid() != 0,
    reason="NOT RUN: the image tests need root and podman (apt-get install podman runc)",
)

IMAGE_DIR = ROOT / "deploy" / "image"


def podman_run(*args: str) -> list[str]:
    """`podman run` as the DaemonSet runs the agent: host PID namespace, read-only root, no
    network, all capabilities dropped (the caller adds back what it tests)."""
    cmd = [PODMAN]
    # crun refuses hybrid cgroup v1/v2 hosts (like this project's CI VMs); runc copes.
    if shutil.which("runc"):
        cmd += ["--runtime", "runc"]
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    cmd += ["run", "--rm", "--network=none", "--pid=host", "--read-only", "--cap-drop=all"]
    # podman's default rlimits exceed what an unprivileged-for-rlimits root may set here.
    cmd += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]
    return cmd + list(args)


def chart_privileges() -> tuple[list[str], list[str]]:
    """(capabilities, podman security options) of the chart's DaemonSet with default values."""
    [ds] = [o for o in objects() if o["kind"] == "DaemonSet"]
    [c] = ds["spec"]["template"]["spec"]["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    opts = []
    seccomp = sc.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        opts = ["--security-opt", "seccomp=unconfined"]
    else:
        assert seccomp == "RuntimeDefault", seccomp  # podman's default profile
    return sc["capabilities"]["add"], opts


@pytest.fixture(scope="module")
def capcheck_image() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("NOT RUN: no C compiler to build capcheck (apt-get install gcc)")
    with tempfile.TemporaryDirectory() as ctx:
        subprocess.run(
            [cc, "-static", "-O2", "-o", f"{ctx}/capcheck", str(IMAGE_DIR / "capcheck.c")],
            check=True,
        )
        Path(ctx, "Containerfile").write_text(
            'FROM scratch\nCOPY capcheck /capcheck\nENTRYPOINT ["/capcheck"]\n'
        )
        tag = "localhost/llm-tracer-capcheck:test"
        subprocess.run(
            [PODMAN, "build", "-q", "--network=none", "--pull=never", "-t", tag, ctx],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return tag


@pytest.fixture(scope="module")
def host_target():
    """A binary of a host process, in a directory only its owner (uid 1000) may enter, seen the
    way the agent sees a container's library: /proc/PID/root/... of a running process."""
    d = Path(tempfile.mkdtemp(prefix="llm-tracer-target-"))
    shutil.copy("/usr/bin/true", d / "true")
    os.chown(d / "true", 1000, 1000)
    os.chown(d, 1000, 1000)
    d.chmod(0o700)
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield f"/proc/{proc.pid}/root{d}/true"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d)


def run_capcheck(image: str, target: str, caps: list[str], opts: list[str], *mode: str):
    cmd = podman_run(*opts, "--cap-add", ",".join(f"CAP_{c}" for c in caps), image, target, *mode)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_chart_privileges_suffice_for_the_agents_kernel_operations(capcheck_image, host_target):
    caps, opts = chart_privileges()
    r = run_capcheck(capcheck_image, host_target, caps, opts)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all steps ok" in r.stdout


# Exit code = first failing step (see capcheck.c). Without SYS_ADMIN the runtime's default
# seccomp profile already refuses bpf() (step 2); unconfined, the uprobe perf event is (step 4).
@pytest.mark.parametrize(
    "cap,failing_step",
    [("SYS_PTRACE", 1), ("DAC_READ_SEARCH", 1), ("SYS_ADMIN", None)],
)
def test_each_chart_capability_is_needed(capcheck_image, host_target, cap, failing_step):
    caps, opts = chart_privileges()
    assert cap in caps
    if failing_step is None:
        failing_step = 4 if opts else 2
    r = run_capcheck(capcheck_image, host_target, [c for c in caps if c != cap], opts)
    print(r.stdout, r.stderr)
    assert r.returncode == failing_step, r.stdout + r.stderr


def test_uprobe_multi_links_would_not_need_sys_admin(capcheck_image, host_target):
    """The way to drop CAP_SYS_ADMIN: attach through uprobe_multi links (Linux >= 6.6).
    The runtime's default seccomp profile blocks bpf() without CAP_SYS_ADMIN, hence unconfined."""
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    if (major, minor) < (6, 6):
        pytest.skip(f"NOT RUN: uprobe_multi needs Linux >= 6.6, this is {platform.release()}")
    caps = ["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"]
    opts = ["--security-opt", "seccomp=unconfined"]
    r = run_capcheck(capcheck_image, host_target, caps, opts, "multi")
    assert r.returncode == 0, r.stdout + r.stderr
    # ... while a perf-event uprobe with the same set is refused.
    r = run_capcheck(capcheck_image, host_target, caps, opts)
    assert r.returncode == 4, r.stdout + r.stderr


@pytest.fixture(scope="module")
def agent_image() -> str:
    binary = os.environ.get("LLM_TRACER_BIN")
    if not binary:
        subprocess.run(
            ["cargo", "build", "-p", "tracer-user", "--features", "k8s", "--bin", "llm-tracer"],
            cwd=ROOT,
            check=True,
        )
        binary = str(ROOT / "target" / "debug" / "llm-tracer")
    tag = "localhost/llm-tracer:test"
    subprocess.run(
        [str(IMAGE_DIR / "build.sh"), "--binary", binary, "--image", tag], check=True
    )
    return tag


def test_image_has_the_binary_and_no_shell(agent_image):
    listing = subprocess.run(
        [PODMAN, "image", "inspect", "--format", "{{.Config.Entrypoint}} {{.Config.User}}", agent_image],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "/usr/bin/llm-tracer" in listing and "0:0" in listing
    r = subprocess.run(
        podman_run("--entrypoint", "/bin/sh", agent_image, "-c", "true"),
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0, "the image must not contain a shell"


def test_agent_runs_in_the_image_with_the_chart_privileges(agent_image):
    caps, opts = chart_privileges()
    cap_args = ["--cap-add", ",".join(f"CAP_{c}" for c in caps)]
    r = subprocess.run(
        podman_run(*opts, *cap_args, agent_image, "--version"),
        capture_output=True, text=True, timeout=120,
    )
    # The binary and every library it links load inside the scratch image.
    assert "error while loading shared libraries" not in r.stderr
    assert r.returncode == 0 and r.stdout.strip() == "llm-tracer 0.1.0", r


@pytest.fixture
def fake_llm_server(tmp_path):
    """tests/fakes/llm_server.py on the host (a python process: it maps libssl, so the agent
    finds the library at start-up through /proc/PID/root)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "llm_server.py"),
         "--cert", cert, "--key", key],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening "), line
        yield int(line.split()[1])
    finally:
        server.kill()
        server.wait()


def chart_agent_container() -> dict:
    [ds] = [o for o in objects() if o["kind"] == "DaemonSet"]
    [c] = ds["spec"]["template"]["spec"]["containers"]
    return c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def test_agent_in_the_image_traces_a_host_process_llm_call(agent_image, fake_llm_server):
    """The DaemonSet's container on one machine: the image, the chart's arguments and
    environment, --pid=host, read-only root, exactly the chart's capabilities; a host process
    (curl) makes an OpenAI-shaped call over TLS. Differences from the cluster, on purpose: no
    OTLP endpoint (no Collector here), `--console` to read the calls from the log, and the host
    network so the health endpoints can be reached from the test."""
    caps, opts = chart_privileges()
    c = chart_agent_container()
    port = free_port()
    args = [a.replace("0.0.0.0:9464", f"127.0.0.1:{port}") for a in c["args"]] + ["--console"]
    assert args[0] == "run" and f"--prometheus=127.0.0.1:{port}" in args
    env = []
    for e in c["env"]:
        if "value" in e and not e["name"].startswith("OTEL_EXPORTER_OTLP"):
            env += ["--env", f"{e['name']}={e['value']}"]
    name = f"llm-tracer-image-test-{os.getpid()}"
    cmd = podman_run(*opts, "--cap-add", ",".join(f"CAP_{c}" for c in caps), "--network=host",
                     *env, "-d", "--name", name, agent_image, *args)
    cmd.remove("--network=none")
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def logs() -> str:
        r = subprocess.run([PODMAN, "logs", name], capture_output=True, text=True)
        return r.stdout + r.stderr

    try:
        deadline = time.monotonic() + 60
        # The chart's probes: readiness on /readyz once the probes are attached, liveness /healthz.
        while http_get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, logs()
            time.sleep(0.5)
        assert http_get(port, "/healthz")[0] == 200
        body = json.dumps({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "say hello to the image test"}],
        })
        subprocess.run(
            ["curl", "-sk", "--fail", f"https://127.0.0.1:{fake_llm_server}/v1/chat/completions",
             "-H", "content-type: application/json",
             "-H", "authorization: Bearer test-key-not-a-real-one", "-d", body],
            check=True, capture_output=True, timeout=30,
        )
        deadline = time.monotonic() + 20
        while not any("gpt-4o-mini" in l and "curl" in l for l in logs().splitlines()):
            assert time.monotonic() < deadline, "no call reported:\n" + logs()
            time.sleep(0.5)
        assert "test-key-not-a-real-one" not in logs()
        status, metrics = http_get(port, "/metrics")
        assert status == 200 and "gen_ai_client_operation_duration" in metrics, metrics[:2000]
    finally:
        subprocess.run([PODMAN, "stop", "-t", "5", name], capture_output=True)
        subprocess.run([PODMAN, "rm", "-f", name], capture_output=True)
