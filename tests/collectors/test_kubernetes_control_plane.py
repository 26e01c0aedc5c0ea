"""The cluster's own components as causes, through the Kubernetes API fake and the real client: a
scheduler or controller-manager that stopped (stale leader Lease, crash-looping static pod) and
what it left undone, a CNI agent down on one node. Each is named, ranked above the workloads
that merely wait on it, and a healthy control plane names nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from collectors.contracts import Evidence, EvidenceItem
from tests.support.incidents import firing
from tests.support.kube_collect import NS, ONSET, Obj, collect_kube, suffers, top_suspect
from triage.models import IncidentState

SYSTEM = "kube-system"


def at(minutes: float, micro: bool = False) -> str:
    t = ONSET + timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, ns: str = NS, created: float = -10_000, **more: Any) -> Obj:
    return {"name": name, "namespace": ns, "creationTimestamp": at(created), **more}


def lease(name: str, renewed: float) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta(name, SYSTEM),
        "spec": {
            "holderIdentity": f"cp-01_{name}",
            "leaseDurationSeconds": 15,
            "renewTime": at(renewed, micro=True),
        },
    }


def deployment(name: str, generation: int = 3, observed: int = 3) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, labels={"app": name}, generation=generation),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}},
        "status": {"observedGeneration": observed, "replicas": 2, "readyReplicas": 2},
    }


def replicaset(deploy: str, want: int = 2, counted: int = 2) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(
            f"{deploy}-7d9f",
            labels={"app": deploy},
            ownerReferences=[{"kind": "Deployment", "name": deploy, "apiVersion": "apps/v1"}],
        ),
        "spec": {"replicas": want},
        "status": {"replicas": counted, "readyReplicas": counted},
    }


def pod(name: str, app: str, ns: str = NS, status: Obj | None = None, **spec: Any) -> Obj:
    owner = [{"kind": "ReplicaSet", "name": f"{app}-7d9f", "apiVersion": "apps/v1"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, ns, -5, labels={"app": app}, ownerReferences=owner),
        "spec": {"containers": [{"name": app, "image": f"{app}:1"}], **spec},
        "status": status or {"phase": "Running"},
    }


def crash_looping(since: float) -> Obj:
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": at(since)}],
        "containerStatuses": [
            {"name": "c", "restartCount": 6, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ],
    }


def static_pod(component: str, status: Obj) -> Obj:
    labels = {"component": component, "tier": "control-plane"}
    owner = [{"kind": "Node", "name": "cp-01", "apiVersion": "v1", "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(f"{component}-cp-01", SYSTEM, labels=labels, ownerReferences=owner),
        "spec": {"nodeName": "cp-01", "containers": [{"name": component, "image": "k8s"}]},
        "status": status,
    }


def agent(ds: str, node: str, status: Obj | None = None) -> Obj:
    owner = [{"kind": "DaemonSet", "name": ds, "apiVersion": "apps/v1", "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(f"{ds}-{node}", SYSTEM, labels={"k8s-app": ds}, ownerReferences=owner),
        "spec": {"nodeName": node, "containers": [{"name": ds, "image": ds}]},
        "status": status or {"phase": "Running"},
    }


def daemonset(name: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(name, SYSTEM, labels={"k8s-app": name}),
        "spec": {"selector": {"matchLabels": {"k8s-app": name}}},
    }


def event(reason: str, kind: str, name: str, message: str, first: float = 0, **more: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta(f"{name}.{reason.lower()}", created=first),
        "involvedObject": {"kind": kind, "name": name, "namespace": NS},
        "reason": reason,
        "message": message,
        "type": "Warning" if reason.startswith("Failed") else "Normal",
        "firstTimestamp": at(first),
        "lastTimestamp": at(first + 5),
        "count": 9,
        **more,
    }


SANDBOX = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for "
    'sandbox "9f3c": plugin type="calico" failed (add): stat /var/lib/calico/nodename: no such '
    "file or directory: check that the calico/node container is running"
)


def incident() -> IncidentState:
    return firing({"alertname": "HighErrorRate", "namespace": NS, "service": "web"}, ONSET)


async def collect(objects: list[Obj]) -> Evidence:
    evidence = await collect_kube(objects, incident())
    assert evidence.status != "error", evidence.error
    return evidence


def control_plane_items(evidence: Evidence) -> dict[str, EvidenceItem]:
    return {i.subject: i for i in evidence.items if i.kind == "control_plane"}


async def first_suspect(evidence: Evidence, *extra: EvidenceItem) -> tuple[str, str]:
    top = await top_suspect(incident(), evidence, *extra, call_graph=[("web", "search")])
    return top.component, top.kind


HEALTHY = [
    lease("kube-scheduler", 9.9),
    lease("kube-controller-manager", 9.95),
    deployment("search"),
    replicaset("search"),
    pod("search-7d9f-a", "search", nodeName="n1"),
    pod("search-7d9f-b", "search", nodeName="n2"),
    daemonset("calico-node"),
    agent("calico-node", "n1"),
    agent("calico-node", "n2"),
]


async def test_a_healthy_control_plane_names_nothing() -> None:
    # A pod the scheduler did look at (and could not place) is the scheduling family's.
    waiting = pod(
        "search-7d9f-c",
        "search",
        status={
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                }
            ],
        },
    )
    evidence = await collect([*HEALTHY, waiting])
    assert control_plane_items(evidence) == {}


async def test_a_stale_scheduler_lease_with_pods_nobody_scheduled_names_the_scheduler() -> None:
    objects = [o for o in HEALTHY if o["metadata"]["name"] != "kube-scheduler"]
    objects += [
        lease("kube-scheduler", -1),
        pod("search-7d9f-c", "search", status={"phase": "Pending"}),
    ]
    evidence = await collect(objects)
    item = control_plane_items(evidence)["kube-scheduler"]
    assert item.fault_hint == "control_plane" and item.related == ["search"]
    assert "last renewed at 11:59:00" in item.summary and "search-7d9f-c" in item.summary
    assert await first_suspect(evidence, suffers("search"), suffers("web", "search")) == (
        "kube-scheduler",
        "control_plane",
    )


async def test_a_pod_just_created_is_not_yet_a_footprint() -> None:
    fresh = pod("search-7d9f-c", "search", status={"phase": "Pending"})
    fresh["metadata"]["creationTimestamp"] = at(9.5)  # 30 s before the window ends
    evidence = await collect([*HEALTHY, fresh])
    assert control_plane_items(evidence) == {}


async def test_a_crash_looping_controller_manager_and_replicas_never_replaced() -> None:
    objects = [
        o for o in HEALTHY if o["kind"] != "ReplicaSet" and o["metadata"]["name"] != "search-7d9f-b"
    ]
    objects += [
        replicaset("search", want=2, counted=2),  # one pod is gone, the status never noticed
        static_pod("kube-controller-manager", crash_looping(-2)),
        static_pod(
            "kube-scheduler",
            {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        ),
        event("Killing", "Pod", "search-7d9f-b", "Stopping container search", 1),
    ]
    evidence = await collect(objects)
    items = control_plane_items(evidence)
    assert set(items) == {"kube-controller-manager"}
    item = items["kube-controller-manager"]
    assert "CrashLoopBackOff" in item.summary and item.related == ["search"]
    assert "its status still counts 2" in item.detail
    assert await first_suspect(evidence, suffers("search"), suffers("web", "search")) == (
        "kube-controller-manager",
        "control_plane",
    )


async def test_a_deployment_spec_never_observed_is_a_weaker_footprint() -> None:
    objects = [o for o in HEALTHY if o["kind"] != "Deployment"]
    evidence = await collect([*objects, deployment("search", generation=4, observed=3)])
    item = control_plane_items(evidence)["kube-controller-manager"]
    assert "generation 4 never observed" in item.detail
    down = await collect(
        [*objects, deployment("search", 4, 3), lease("kube-controller-manager", -3)]
    )
    assert control_plane_items(down)["kube-controller-manager"].score > item.score


async def test_sandbox_failures_on_one_node_name_that_nodes_cni_agent() -> None:
    objects = [o for o in HEALTHY if o["metadata"]["name"] != "calico-node-n2"]
    objects += [
        agent("calico-node", "n2", crash_looping(-1)),
        pod(
            "search-7d9f-c",
            "search",
            nodeName="n2",
            status={
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "search", "state": {"waiting": {"reason": "ContainerCreating"}}}
                ],
            },
        ),
        event(
            "FailedCreatePodSandBox",
            "Pod",
            "search-7d9f-c",
            SANDBOX,
            1,
            source={"component": "kubelet", "host": "n2"},
        ),
    ]
    evidence = await collect(objects)
    items = control_plane_items(evidence)
    assert set(items) == {"calico-node"}
    item = items["calico-node"]
    assert "calico-node on n2 is down" in item.summary and item.related == ["search"]
    assert await first_suspect(evidence, suffers("search"), suffers("web", "search")) == (
        "calico-node",
        "control_plane",
    )
