"""The no-gpu overlay (components/external-llm): no model server, no GPU request, no
model-server autoscaling; triage still calls the in-cluster gateway for `triage-rca`, and the
gateway (only it) reaches the external provider over HTTPS with the key from a Secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    Obj,
    containers,
    find,
    gateway_config,
    kustomize,
    one,
    peers,
    pod_templates,
    render,
    rendered_text,
    settings_env,
)
from triage.settings import LLMSettings

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

OVERLAY = "no-gpu"


def gpu_free(objs: list[Obj]) -> None:
    for workload, pod in pod_templates(objs):
        name = workload["metadata"]["name"]
        assert not name.startswith("vllm"), name
        assert "resourceClaims" not in pod, name
        assert not any("gpu" in key for key in pod.get("nodeSelector", {})), name
        assert not any("gpu" in t.get("key", "") for t in pod.get("tolerations", [])), name
        for c in containers(pod):
            assert "vllm" not in c["image"], name
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                assert not any("gpu" in key for key in res.get(section, {})), (name, section)
            assert "claims" not in res, name


def no_model_server_autoscaling(objs: list[Obj]) -> None:
    for so in find(objs, "ScaledObject"):
        assert so["spec"]["scaleTargetRef"]["name"].startswith("triage-"), so["metadata"]["name"]
        for trigger in so["spec"]["triggers"]:
            assert "vllm" not in yaml.safe_dump(trigger), trigger
        assert "scalingModifiers" not in so["spec"].get("advanced", {})


def test_no_gpu_request_no_model_server_no_model_server_autoscaling():
    objs = render(OVERLAY)
    assert "nvidia.com/gpu" not in rendered_text(OVERLAY)
    gpu_free(objs)
    no_model_server_autoscaling(objs)
    for kind in ("Deployment", "Service", "ScaledObject", "ServiceMonitor", "NetworkPolicy"):
        assert not [o for o in find(objs, kind) if o["metadata"]["name"].startswith("vllm")], kind
    assert not find(objs, "PersistentVolumeClaim", "models")
    assert not find(objs, "ResourceClaimTemplate")
    (rule,) = find(objs, "PrometheusRule")
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "TriageGPUCapacityLost" not in alerts and "TriageLLMGatewayDown" in alerts
    # The workers still scale, on the investigation backlog.
    (worker,) = find(objs, "ScaledObject")
    assert [t["type"] for t in worker["spec"]["triggers"]] == ["nats-jetstream"]


def test_triage_calls_the_gateway_alias_which_routes_to_the_external_provider():
    objs = render(OVERLAY)
    env = settings_env(objs)
    # triage is configured exactly as with GPUs: the gateway's Service and the alias.
    assert env["TRIAGE_LLM_BASE_URL"] == "http://litellm:4000/v1"
    assert env["TRIAGE_LLM_MODEL"] == LLMSettings().model == "triage-rca"
    service = one(objs, "Service", "litellm")
    assert [p["port"] for p in service["spec"]["ports"]] == [4000]
    gateway = gateway_config(objs)
    routes = {m["model_name"]: m["litellm_params"] for m in gateway["model_list"]}
    assert env["TRIAGE_LLM_MODEL"] in routes
    pod = one(objs, "Deployment", "litellm")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    from_secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert from_secrets["OPENAI_API_KEY"] == {"name": "llm-provider", "key": "api-key"}
    for name, params in routes.items():
        provider = params["model"].split("/")[0]
        assert provider not in ("hosted_vllm", "vllm"), name
        # The provider's public endpoint (no api_base) or an https one; never an in-cluster server.
        assert params.get("api_base", "https://").startswith("https://"), name
        # The key is read from the environment, which a Secret fills: never written in the config.
        key = params["api_key"]
        assert key.startswith("os.environ/") and key.removeprefix("os.environ/") in from_secrets
    assert "`llm-provider`" in (DEPLOY / "README.md").read_text()


def test_only_the_gateway_reaches_the_provider_over_https():
    objs = render(OVERLAY)
    policy = one(objs, "NetworkPolicy", "litellm")["spec"]
    assert peers(policy["egress"]) == [("triage", "0.0.0.0/0", 443)]
    assert peers(policy["ingress"]) == [("triage", "triage-worker", 4000)]
    # Workers reach the gateway, as in the other overlays.
    worker = set(peers(one(objs, "NetworkPolicy", "triage-worker")["spec"]["egress"]))
    assert ("triage", "litellm", 4000) in worker


def test_the_component_also_turns_production_into_a_gpu_free_deployment(tmp_path: Path):
    """deploy/README.md: production's sizing with an external provider = production + the
    component, as a user's own overlay would write it."""
    up = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{up}/overlays/production]\n"
        f"components: [{up}/components/external-llm]\n"
    )
    text = kustomize(tmp_path)
    objs = [doc for doc in yaml.safe_load_all(text) if doc]
    assert "nvidia.com/gpu" not in text
    gpu_free(objs)
    no_model_server_autoscaling(objs)
    assert one(objs, "StatefulSet", "nats")["spec"]["replicas"] == 3
