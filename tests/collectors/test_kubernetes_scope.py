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
    template = objects.nodes[0]
    filler_nodes = []
    for n in range(nodes):
        node = copy.deepcopy(template)
        node["metadata"]["name"] = f"filler-{n}.internal"
        filler_nodes.append(node)
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
    return objects.model_copy(
        update={"pods": [*objects.pods, *extra], "nodes": [*objects.nodes, *filler_nodes]}
    )


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
    # Nodes too: read by name, the same ones, never the whole list.
    node_reads = [r for r in requests if r.split("?")[0] == "/api/v1/nodes"]
    assert "/api/v1/nodes" not in node_reads
    read = {parse_qs(urlsplit(r).query)["fieldSelector"][0] for r in node_reads}
    assert {n.removeprefix("metadata.name=") for n in read} == {
        n.removeprefix("spec.nodeName=") for n in nodes
    }


async def test_a_node_alert_without_a_namespace_reads_that_node():
    objects, _, window = case()
    sick = copy.deepcopy(objects.nodes[0])
    sick["metadata"]["name"] = "ip-10-0-99-1.internal"
    sick["status"]["conditions"] = [
        {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastTransitionTime": (window.onset - timedelta(minutes=3)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }
    ]
    objects = objects.model_copy(update={"nodes": [*objects.nodes, sick]})
    alert = firing({"alertname": "KubeNodeNotReady", "node": "ip-10-0-99-1.internal"}, window.onset)
    kube, _, _ = await collect(objects, alert, window)
    (found,) = [i for i in kube.items if i.kind == "node_condition"]
    assert found.subject == "ip-10-0-99-1.internal" and "Ready=Unknown" in found.summary


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
