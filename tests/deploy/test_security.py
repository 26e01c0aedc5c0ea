"""Safe by default: restricted Pod Security everywhere, requests and limits everywhere,
read-only RBAC with exactly the collectors' verbs, and network policies that only open what
each component needs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from triage_lab.evaluation import incident_of, investigated_at
from triage_lab.fakes.asgi import serve_asgi
from triage_lab.fakes.kubernetes import kube_api_app
from triage_lab.scenarios import load_scenario

from collectors.kubernetes import KubernetesCollector
from collectors.pod_logs import LogsCollector
from collectors.sources import ApiKubeSource
from tests.deploy.manifests import (
    DEPLOY,
    GPU_OVERLAYS,
    OVERLAYS,
    containers,
    find,
    one,
    peers,
    pod_templates,
    render,
)
from triage.investigate.investigation import Investigator
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

CORPUS = Path(__file__).parents[2] / "scenarios" / "k8s-faults"

# Renders the overlays with kubectl (and runs other tools) in subprocesses.
pytestmark = pytest.mark.slow

Obj = dict[str, Any]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(overlay: str):
    objs = render(overlay)
    namespace = one(objs, "Namespace", "triage")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload, pod in pod_templates(objs):
        name = workload["metadata"]["name"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] >= 10000, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert sc.get("privileged", False) is False, name
        for volume in pod.get("volumes", []):
            assert "hostPath" not in volume, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_probes(overlay: str):
    for workload, pod in pod_templates(render(overlay)):
        for c in pod["containers"]:
            where = f"{workload['metadata']['name']}/{c['name']}"
            res = c["resources"]
            for key in ("cpu", "memory"):
                assert key in res["requests"] and key in res["limits"], where
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, f"{where} lacks {probe}"
            assert ":" in c["image"] and not c["image"].endswith(":latest"), where


def rules(role: Obj) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def api_requests_of_one_investigation() -> set[tuple[str, str, str]]:
    """Runs the workers' collectors through the real kubernetes client against recorded API
    objects, and turns every request the server saw into (API group, resource, verb)."""
    scenario = load_scenario(CORPUS / "k8s-004")
    app = kube_api_app(scenario.kubernetes, scenario.logs)
    with serve_asgi(app) as url:
        config = kubernetes.client.Configuration()
        config.host = url
        with kubernetes.client.ApiClient(config) as api:
            source = ApiKubeSource(api)
            incident = incident_of(scenario)
            window = Investigator([], InvestigationSettings(), Metrics()).window(
                incident, investigated_at(scenario)
            )
            for collector in (KubernetesCollector(source), LogsCollector(source)):
                assert asyncio.run(collector.collect(incident, window)).status == "ok"
    used = set()
    for path in app.state.requests:
        parts = path.split("?")[0].strip("/").split("/")
        group = "" if parts[0] == "api" else parts[1]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if rest[0] == "namespaces" and len(rest) > 2:
            rest = rest[2:]
        if len(rest) == 3 and rest[2] == "log":
            used.add((group, f"{rest[0]}/log", "get"))
        else:
            used.add((group, rest[0], "list" if len(rest) == 1 else "get"))
    return used


def test_cluster_roles_are_read_only_with_exactly_the_verbs_used():
    objs = render("production")
    collectors = rules(one(objs, "ClusterRole", "triage-collectors"))
    used = api_requests_of_one_investigation()
    assert ("networking.k8s.io", "networkpolicies", "list") in used  # the run did look
    assert collectors == used
    ownership = rules(one(objs, "ClusterRole", "triage-ownership"))
    assert ownership == {("", "namespaces", "get")} | {
        ("apps", r, "get") for r in ("deployments", "statefulsets", "daemonsets")
    }
    for role in find(objs, "ClusterRole") + find(objs, "Role"):
        for group, resource, verb in rules(role):
            assert verb in {"get", "list", "watch"}
            assert "*" not in (group, resource, verb)
            assert resource != "secrets", "RBAC cannot grant Secret metadata without their data"
    bindings = {b["metadata"]["name"]: b for b in find(objs, "ClusterRoleBinding")}
    assert bindings["triage-collectors"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "triage-worker", "namespace": "triage"}
    ]
    assert bindings["triage-ownership"]["subjects"][0]["name"] == "triage-notify"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_processes_that_call_the_api_server_get_a_token(overlay: str):
    objs = render(overlay)
    with_token = {
        w["metadata"]["name"]
        for w, pod in pod_templates(objs)
        if pod["automountServiceAccountToken"]
    }
    assert with_token == {"triage-worker", "triage-notify"}


def policy(objs: list[Obj], name: str) -> Obj:
    spec: Obj = one(objs, "NetworkPolicy", name)["spec"]
    return spec


def test_network_policies_open_only_what_each_component_needs():
    objs = render("production")
    deny = policy(objs, "default-deny")
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    ingest = policy(objs, "triage-ingest")
    assert set(peers(ingest["ingress"])) == {
        ("monitoring", "alertmanager", 9095),
        ("monitoring", "prometheus", 9095),  # /metrics shares the port; posting needs the token
    }
    assert peers(ingest["egress"]) == [("triage", "nats", 4222)]

    worker = set(peers(policy(objs, "triage-worker")["egress"]))
    assert {
        ("triage", "nats", 4222),
        ("triage", "litellm", 4000),
        ("monitoring", "prometheus", 9090),
        ("logging", "*", 3100),
        ("triage", "0.0.0.0/0", 443),  # the API server
    } <= worker

    notify = set(peers(policy(objs, "triage-notify")["egress"]))
    assert notify == {
        ("triage", "nats", 4222),
        ("triage", "0.0.0.0/0", 443),
        ("triage", "0.0.0.0/0", 6443),
    }

    assert peers(policy(objs, "litellm")["ingress"]) == [("triage", "triage-worker", 4000)]
    vllm = policy(objs, "vllm")
    assert vllm["egress"] == [], "model servers never reach the internet: weights are local"
    assert set(peers(vllm["ingress"])) == {
        ("triage", "litellm", 8000),
        ("monitoring", "prometheus", 8000),
    }
    nats_in = set(peers(policy(objs, "nats")["ingress"]))
    assert ("keda", "*", 8222) in nats_in
    assert ("triage", "triage-ingest|triage-worker|triage-notify", 4222) in nats_in


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_by_the_names_the_readme_documents(overlay: str):
    readme = (DEPLOY / "README.md").read_text()
    names = set()
    for _, pod in pod_templates(render(overlay)):
        names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for c in containers(pod):
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
    expected = {"triage-ingest", "triage-slack", "triage-llm", "litellm"}
    if overlay not in GPU_OVERLAYS:
        expected.add("llm-provider")  # the external provider's API key, for the gateway
    assert names == expected
    for name in names:
        assert f"`{name}`" in readme
