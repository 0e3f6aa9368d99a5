#!/usr/bin/env bash
# Run the deployment tests (chart, manifests, Collector config, image): what `cargo xtask test`
# calls for tests/deploy. Installs what they need: a Python venv with requirements.txt, and, as
# root, podman + runc + gcc from apt for the image tests (they are skipped, loudly, without them).
#   VENV=path   the virtualenv to use (default tests/.venv)
#   LLM_TRACER_BIN=path   an llm-tracer binary built with --features k8s for the image test
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VENV:-$root/tests/.venv}"

if [ "$(id -u)" = 0 ] && ! { command -v podman && command -v runc && command -v gcc; } >/dev/null; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc gcc libc6-dev >/dev/null ||
        echo "run.sh: could not install podman/runc/gcc: the image tests will be skipped" >&2
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r "$here/requirements.txt"
cd "$here"
exec "$venv/bin/python" -m pytest -q -rs "$@"
