"""checkov's Kubernetes checks pass on every rendered overlay; each skipped check carries its
reason inline (a `checkov.io/skipN: CHECK=reason` annotation on the resource).

checkov lives in its own virtual environment (`make checkov`, .venv-checkov) because it pins
many packages; it runs once per session over all overlays, offline."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, ROOT, pod_templates, render, rendered_text

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@functools.cache
def report() -> dict[str, Any]:
    if not CHECKOV.exists():
        raise RuntimeError(f"{CHECKOV} missing: run `make checkov` (make test does)")
    with tempfile.TemporaryDirectory() as tmp:
        for overlay in OVERLAYS:
            (Path(tmp) / f"{overlay}.yaml").write_text(rendered_text(overlay))
        proc = subprocess.run(
            [
                str(CHECKOV),
                "--directory",
                tmp,
                "--framework",
                "kubernetes",
                "--output",
                "json",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
    # checkov exits 1 when a check fails; anything else without JSON is a crash.
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"checkov did not report (rc {proc.returncode}):\n{proc.stderr}"
        ) from exc
    return result


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing(overlay: str):
    results = report()["results"]
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']})"
        for c in results["failed_checks"]
        if c["file_path"].endswith(f"/{overlay}.yaml")
    ]
    assert failed == []
    passed = [c for c in results["passed_checks"] if c["file_path"].endswith(f"/{overlay}.yaml")]
    assert len(passed) > 400  # the checks really ran on this overlay's resources (no-gpu: ~480)
    # ... on every workload of it (checkov names them Kind.namespace.name).
    checked = {c["resource"] for c in passed}
    for workload, _ in pod_templates(render(overlay)):
        meta = workload["metadata"]
        assert f"{workload['kind']}.{meta['namespace']}.{meta['name']}" in checked, meta["name"]


def test_every_skip_is_justified_inline():
    skipped = report()["results"]["skipped_checks"]
    assert skipped, "the skips below are expected to be seen by checkov"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{check['check_id']} on {check['resource']}: {reason!r}"
    for overlay in OVERLAYS:
        for workload, _ in pod_templates(render(overlay)):
            for key, value in workload["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check.startswith("CKV") and len(reason) > 40, value
