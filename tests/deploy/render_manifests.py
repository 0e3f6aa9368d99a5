"""Regenerate deploy/kubernetes/llm-tracer.yaml from the Helm chart."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart import MANIFESTS, plain_manifests  # noqa: E402

MANIFESTS.parent.mkdir(parents=True, exist_ok=True)
MANIFESTS.write_text(plain_manifests())
print(f"wrote {MANIFESTS}")
