"""What an investigation reads of the cluster's own namespace as the cluster grows: every pod
but the DaemonSets', and the DaemonSets' on the nodes in question, so a node's broken CNI agent
is still found among hundreds of healthy ones."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import kubernetes.client
import pytest
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.scenarios import KubeObjects, load_scenario

from collectors.contracts import Evidence, TimeWindow
from collectors.kubernetes import KubernetesCollector
from collectors.pod_logs import LogsCollector
from collectors.sources import ApiKubeSource
from tests.support.incidents import firing
from triage.errors import CollectorError
from triage.models import IncidentState

# A node's Cilium agent crash-loops; the pods it should wire up fail to get a sandbox.
CNI_CASE = Path(__file__).parents[2] / "scenarios" / "k8s-faults" / "k8s-039"
KUBE_SYSTEM_PODS = "/api/v1/namespaces/kube-system/pods"


def case() -> tuple[KubeObjects, IncidentState, TimeWindow]:
    scenario = load_scenario(CNI_CASE)
    alert = scenario.meta.webhooks[0].alerts[0]
    at = alert.startsAt
    incident = firing(dict(alert.labels), at)
    window = TimeWindow(start=at - timedelta(minutes=30), onset=at, end=at + timedelta(minutes=5))
    return scenario.kubernetes, incident, window


def grown(objects: KubeObjects, nodes: int) -> KubeObjects:
    """The same cluster with ``nodes`` more nodes, each running every DaemonSet's pod, healthy."""
    agents = [
        p
        for p in objects.pods
        if p["metadata"]["namespace"] == "kube-system"
        and "pod-template-generation" in (p["metadata"].get("labels") or {})
    ]
    extra = []
    for n in range(nodes):
        for agent in agents:
            pod = copy.deepcopy(agent)
            pod["metadata"]["name"] = f"{agent['metadata']['name']}-filler-{n}"
            pod["spec"]["nodeName"] = f"filler-{n}.internal"
            pod["status"] = {
                "phase": "Running",
                "containerStatuses": [
                    {"name": c["name"], "ready": True, "restartCount": 0, "state": {"running": {}}}
                    for c in pod["spec"]["containers"]
                ],
            }
            extra.append(pod)
    return objects.model_copy(update={"pods": [*objects.pods, *extra]})


async def collect(
    objects: KubeObjects, incident: IncidentState, window: TimeWindow
) -> tuple[Evidence, Evidence, list[str]]:
    fake = KubeApi(objects)
    with fake, kubernetes.client.ApiClient(fake.configuration()) as api:
        source = ApiKubeSource(api)
        kube = await KubernetesCollector(source).collect(incident, window)
        logs = await LogsCollector(source).collect(incident, window)
    return kube, logs, fake.requests


async def test_a_grown_cluster_reads_the_same_kube_system_and_names_the_same_agent():
    objects, incident, window = case()
    small, small_logs, _ = await collect(objects, incident, window)
    big, big_logs, requests = await collect(grown(objects, 300), incident, window)

    # Same evidence whatever the node count: the agent on the sandbox failures' node is named.
    assert [i.id for i in big.items] == [i.id for i in small.items]
    assert any(i.kind == "control_plane" and i.subject == "cilium" for i in big.items)
    assert [i.id for i in big_logs.items] == [i.id for i in small_logs.items]

    # kube-system's pods are never listed whole: the rest by a label selector, the DaemonSets'
    # per node, on a bounded number of nodes, none of the healthy filler ones.
    lists = [r for r in requests if r.split("?")[0] == KUBE_SYSTEM_PODS]
    assert KUBE_SYSTEM_PODS not in lists
    asked = [parse_qs(urlsplit(r).query) for r in lists]
    labels = {q["labelSelector"][0] for q in asked}
    assert labels == {"!pod-template-generation", "pod-template-generation"}
    nodes = {q["fieldSelector"][0] for q in asked if "fieldSelector" in q}
    assert 0 < len(nodes) <= 10
    assert not any("filler" in n for n in nodes)


async def test_the_fake_api_refuses_a_field_it_cannot_select_on_as_the_api_server_does():
    objects, _, _ = case()
    fake = KubeApi(objects)
    with fake, kubernetes.client.ApiClient(fake.configuration()) as api:
        source = ApiKubeSource(api)
        on_node = await source.list(
            "pods",
            "kube-system",
            field_selector="spec.nodeName=ip-10-0-19-120.ap-southeast-2.compute.internal",
        )
        assert {p["spec"]["nodeName"] for p in on_node} == {
            "ip-10-0-19-120.ap-southeast-2.compute.internal"
        }
        with pytest.raises(CollectorError, match="400"):
            await source.list("pods", "kube-system", field_selector="spec.containers=x")
