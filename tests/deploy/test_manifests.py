"""Every overlay renders, and every object in it is valid: built-in kinds against the
Kubernetes 1.34 OpenAPI schemas (kubernetes-validate, offline), KEDA / Prometheus Operator / DRA
objects against the schemas in deploy/schemas/, written from their documentation."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from pydantic import BaseModel

from tests.deploy.manifests import (
    DEPLOY,
    NAMESPACE,
    OVERLAYS,
    containers,
    find,
    pod_templates,
    settings_env,
)
from tests.deploy.manifests import render as render_overlay
from triage.deliver.routing import parse_routing
from triage.settings import Settings, settings_reference

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

K8S_VERSION = "1.34.0"
OWN_SCHEMAS = {
    "ScaledObject": "scaledobject",
    "ServiceMonitor": "servicemonitor",
    "PrometheusRule": "prometheusrule",
    "ResourceClaimTemplate": "resourceclaimtemplate",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def schema(kind: str) -> dict[str, Any]:
    path = DEPLOY / "schemas" / f"{OWN_SCHEMAS[kind]}.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def own_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema(obj["kind"]))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(overlay: str):
    objs = render_overlay(overlay)
    problems = []
    for obj in objs:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in OWN_SCHEMAS:
            problems += [f"{where}: {e}" for e in own_errors(obj)]
        if obj["kind"] in OWN_SCHEMAS and obj["apiVersion"].startswith(("keda.sh", "monitoring")):
            continue  # CRDs: no Kubernetes schema; checked above only
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_triage_namespace_and_no_secret_is_inlined(overlay: str):
    objs = render_overlay(overlay)
    assert not find(objs, "Secret"), "Secrets are referenced, never shipped"
    for obj in objs:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "triage"
    for _, pod in pod_templates(objs):
        for c in containers(pod):
            for env in c.get("env", []):
                # A literal value that looks like a credential would be an inlined secret.
                name = env["name"].upper()
                if any(w in name for w in ("TOKEN", "SECRET", "PASSWORD", "API_KEY")):
                    assert "value" not in env or name.endswith("_FILE"), env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_configmap_exists(overlay: str):
    objs = render_overlay(overlay)
    maps = {o["metadata"]["name"] for o in find(objs, "ConfigMap")}
    for workload, pod in pod_templates(objs):
        refs = [v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v]
        for c in containers(pod):
            refs += [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        # Generated names carry a content hash, so a config change rolls the pods.
        assert set(refs) <= maps, workload["metadata"]["name"]


def test_own_schemas_catch_what_kubernetes_would_not():
    so = find(render_overlay("production"), "ScaledObject", "triage-worker")[0]
    assert own_errors(so) == []
    typo = copy.deepcopy(so)
    typo["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "4"
    assert any("lagTreshold" in e for e in own_errors(typo))
    unnamed = copy.deepcopy(so)
    unnamed["spec"]["fallback"] = {"replicas": 2}
    assert any("failureThreshold" in e for e in own_errors(unnamed))
    bad_policy = copy.deepcopy(so)
    scale_up = bad_policy["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
        "scaleUp"
    ]
    scale_up["policies"][0]["type"] = "Replicas"
    assert own_errors(bad_policy)
    rule = find(render_overlay("production"), "PrometheusRule")[0]
    broken = copy.deepcopy(rule)
    broken["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    assert own_errors(broken)


def test_kubernetes_schemas_catch_a_typo():
    deployment = copy.deepcopy(find(render_overlay("dev"), "Deployment", "triage-ingest")[0])
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# Settings the manifests may pass before triage reads them (none today); deploy/README.md lists them.
EXPECTED_SETTINGS: set[str] = set()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_the_manifests_pass_is_one_triage_reads(overlay: str):
    known = {var for var, _, _ in settings_reference()}
    objs = render_overlay(overlay)
    passed = set(settings_env(objs))
    for _, pod in pod_templates(objs):
        for c in containers(pod):
            passed |= {e["name"] for e in c.get("env", []) if e["name"].startswith("TRIAGE_")}
    assert passed - known == EXPECTED_SETTINGS
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in EXPECTED_SETTINGS)
    # Settings parse: what the processes would do with this ConfigMap on start.
    env = {k: v for k, v in settings_env(objs).items() if k not in EXPECTED_SETTINGS}
    settings = Settings.model_validate(_nested(env))
    assert settings.nats.replicas == int(env["TRIAGE_NATS_REPLICAS"])


def _nested(env: dict[str, str]) -> dict[str, Any]:
    """TRIAGE_SECTION_FIELD=value as Settings' nested input (what pydantic-settings builds)."""
    sections = {
        n
        for n, f in Settings.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }
    out: dict[str, Any] = {}
    for key, value in env.items():
        name = key.removeprefix("TRIAGE_").lower()
        section, _, field = name.partition("_")
        if section in sections and field:
            out.setdefault(section, {})[field] = value
        else:
            out[name] = value
    return out


def test_the_shipped_routing_file_is_valid():
    (routing,) = [
        o
        for o in render_overlay("production")
        if o["metadata"]["name"].startswith("triage-routing-")
    ]
    rules, default = parse_routing(routing["data"]["routing.yaml"], "routing.yaml")
    assert rules and default is not None
