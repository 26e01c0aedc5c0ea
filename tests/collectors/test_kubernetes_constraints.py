"""Causes beyond workloads and nodes, through the Kubernetes API fake and the real client: a
namespace quota or limit that refuses pods, pods the scheduler cannot place, and Services with
nowhere to send traffic. Each names the cause and ranks it above the callers that suffer."""

from __future__ import annotations

import kubernetes.client
from triage_lab.fakes.kubernetes import KubeApi
from triage_lab.scenarios import KubeObjects

from tests.support.kube_collect import NS, Obj, of_kind, suffers
from tests.support.kube_objects import (
    collect,
    deployment,
    event,
    incident,
    meta,
    pending,
    pod,
    pvc,
    ranked,
)


def replicaset(deploy: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(
            f"{deploy}-7d9f",
            ownerReferences=[{"kind": "Deployment", "name": deploy, "apiVersion": "apps/v1"}],
        ),
        "spec": {"template": {"metadata": {"labels": {"app": deploy}}}},
    }


def quota(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta(name),
        "spec": {"hard": {"requests.cpu": "20", "pods": "50"}},
        "status": {
            "hard": {"requests.cpu": "20", "pods": "50"},
            "used": {"requests.cpu": "19500m", "pods": "31"},
        },
    }


def limit_range(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta(name),
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2", "memory": "4Gi"}}]},
    }


def service(name: str, selector: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def endpoint_slice(service_name: str, ready: list[bool]) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta(
            f"{service_name}-abcde", labels={"kubernetes.io/service-name": service_name}
        ),
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.0.0.{i}"], "conditions": {"ready": r}} for i, r in enumerate(ready)
        ],
        "ports": [{"port": 8080}],
    }


async def test_a_used_up_quota_is_the_cause_not_the_workload_it_blocks():
    message = (
        'Error creating: pods "search-7d9f-x2k4p" is forbidden: exceeded quota: compute-quota, '
        "requested: requests.cpu=1, used: requests.cpu=19500m, limited: requests.cpu=20"
    )
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=3, available=1)],
        replicasets=[replicaset("search")],
        events=[event("FailedCreate", "ReplicaSet", "search-7d9f", message, first=-1)],
        resourcequotas=[quota("compute-quota")],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "quota")
    assert item.subject == "compute-quota" and item.related == ["search"]
    assert "ResourceQuota compute-quota blocks new pods of search" in item.summary
    assert "requests.cpu used 19500m of hard 20" in item.summary
    assert "search: 1/3 replicas available" in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    assert [s.component for s in rca.suspects[:2]] == ["compute-quota", "search"]
    assert rca.suspects[0].kind == "quota"
    assert rca.suspects[0].evidence_ids[0] == item.id


async def test_a_limit_range_that_forbids_the_pods_requests_is_named():
    message = (
        'Error creating: pods "search-7d9f-x2k4p" is forbidden: maximum cpu usage per '
        "Container is 2, but limit is 4"
    )
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=2, available=0)],
        replicasets=[replicaset("search")],
        events=[event("FailedCreate", "ReplicaSet", "search-7d9f", message, first=-1)],
        limitranges=[limit_range("container-limits")],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "quota")
    assert item.subject == "container-limits"
    assert "maximum cpu per Container is 2, the pods ask for 4" in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "container-limits"
    assert rca.suspects[0].kind == "quota"
    # The refused workload's own trouble is the limit's doing: it ranks below it.
    assert rca.suspects[1].component == "search" and rca.suspects[1].score < rca.suspects[0].score


async def test_a_quota_the_collector_cannot_list_leaves_the_blocked_workload():
    message = 'pods "search-7d9f-x" is forbidden: exceeded quota: compute-quota, requested: x'
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=3, available=1)],
        replicasets=[replicaset("search")],
        events=[event("FailedCreate", "ReplicaSet", "search-7d9f", message, first=-1)],
    )
    evidence = await collect(objects)
    assert not of_kind(evidence, "quota")
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "search"


async def test_pods_short_of_cpu_make_the_pending_workload_the_cause():
    message = (
        "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {gpu: }."
    )
    big = {"resources": {"requests": {"cpu": "8", "memory": "2Gi"}}}
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=2, available=0)],
        pods=[
            pod("search-7d9f-a", "search", pending(message, since=-1)),
            pod("search-7d9f-b", "search", pending(message, since=-1)),
        ],
    )
    objects.pods[0]["spec"]["containers"][0].update(big)
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "unschedulable")
    assert item.subject == "search" and item.fault_hint == "scheduling"
    assert "2 pod(s) of search cannot be scheduled" in item.summary
    assert "not enough cpu on any node; node taints it does not tolerate" in item.summary
    assert "requests cpu=8, memory=2Gi" in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "search"
    assert rca.suspects[0].kind == "scheduling"
    assert "unschedulable" in rca.suspects[0].breakdown


async def test_an_unbound_claim_names_the_workload_its_claim_and_storage_class():
    message = "0/5 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-search-0"}}]
    objects = KubeObjects(
        deployments=[deployment("web")],
        pods=[pod("search-0", "search", pending(message, since=-2), volumes=volumes)],
        persistentvolumeclaims=[pvc("data-search-0", "fast-ssd")],
        events=[event("FailedScheduling", "Pod", "search-0", message, first=-2)],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "unschedulable")
    assert item.subject == "search"
    assert "PersistentVolumeClaim data-search-0 is Pending (StorageClass fast-ssd)" in item.summary
    assert "an unbound PersistentVolumeClaim" in item.summary
    assert item.fault_hint == "storage"
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "search"
    assert rca.suspects[0].kind == "storage"


async def test_a_claim_that_waits_for_its_pod_does_not_make_a_cpu_shortage_storage():
    """A WaitForFirstConsumer claim stays Pending until its pod is placed: the pod's own
    reason (no node has the cpu) is the fault's kind."""
    message = "0/5 nodes are available: 5 Insufficient cpu."
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-search-0"}}]
    objects = KubeObjects(
        pods=[pod("search-0", "search", pending(message, since=-1), volumes=volumes)],
        persistentvolumeclaims=[pvc("data-search-0", "gp3")],
    )
    (item,) = of_kind(await collect(objects), "unschedulable")
    assert "PersistentVolumeClaim data-search-0 is Pending" in item.summary
    assert item.fault_hint == "scheduling"


async def test_a_pod_that_went_pending_long_after_the_onset_explains_little():
    message = "0/5 nodes are available: 5 Insufficient memory."
    objects = KubeObjects(pods=[pod("report-1-x", "report", pending(message, since=8))])
    (item,) = of_kind(await collect(objects), "unschedulable")
    assert item.score < 0.3


async def test_a_service_with_no_ready_endpoints_names_the_workload_it_selects():
    not_ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", available=0)],
        pods=[pod("search-7d9f-a", "search", not_ready), pod("web-1-a", "web")],
        services=[service("search", {"app": "search"}), service("web", {"app": "web"})],
        endpointslices=[endpoint_slice("search", [False, False]), endpoint_slice("web", [True])],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "no_endpoints")
    assert item.subject == "search"
    assert item.summary.startswith("Service search has no ready endpoints (selector app=search")
    assert "none ready (2 not ready)" in item.summary and "targetPort 8080" in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "search"


async def test_a_deployment_scaled_to_zero_leaves_its_service_empty():
    objects = KubeObjects(
        deployments=[deployment("web"), deployment("search", replicas=0, available=0, changed=-3)],
        pods=[pod("web-1-a", "web")],
        services=[service("search-svc", {"app": "search"}), service("web", {"app": "web"})],
    )
    evidence = await collect(objects)
    (item,) = of_kind(evidence, "no_endpoints")
    assert item.subject == "search" and item.change == "deployment/search"
    assert "selector app=search matches no pod" in item.summary
    assert "Deployment search is scaled to 0 replicas 3 min before the onset" in item.summary
    rca = await ranked(evidence, suffers("web", "search"))
    assert rca.suspects[0].component == "search"


async def test_kube_prometheus_labels_name_the_pending_deployment():
    """kube-state-metrics alerts (KubeDeploymentReplicasMismatch) say ``deployment=`` and
    ``namespace=``, not ``service=``: identity still finds the pending workload."""
    alert = incident(alertname="KubeDeploymentReplicasMismatch", deployment="search")
    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    objects = KubeObjects(
        deployments=[deployment("search", replicas=2, available=0)],
        pods=[pod("search-7d9f-a", "search", pending(message, since=-1), nodeSelector={"x": "y"})],
    )
    evidence = await collect(objects, alert)
    (item,) = of_kind(evidence, "unschedulable")
    assert "no node matches its affinity" in item.summary and "nodeSelector x=y" in item.summary
    rca = await ranked(evidence, suffers("web", "search"), alert=alert)
    assert rca.suspects[0].component == "search"


def test_the_fake_serves_the_new_kinds_to_the_real_client():
    objects = [quota("q"), limit_range("l"), pvc("c", "fast"), endpoint_slice("s", [True])]
    with KubeApi(objects) as kube, kubernetes.client.ApiClient(kube.configuration()) as api:
        core = kubernetes.client.CoreV1Api(api)
        assert core.list_namespaced_resource_quota(NS).items[0].status.used["pods"] == "31"
        assert core.list_namespaced_limit_range(NS).items[0].metadata.name == "l"
        assert core.list_namespaced_persistent_volume_claim(NS).items[0].status.phase == "Pending"
        slices = kubernetes.client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(NS)
        assert slices.items[0].endpoints[0].conditions.ready is True
