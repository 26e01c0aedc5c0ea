"""The Kubernetes collector through the real `kubernetes` client, against recorded API objects
served over HTTP: what it reports about changes, pods, events and nodes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from triage_lab.scenarios import KubeObjects

from collectors.contracts import Evidence, EvidenceItem, TimeWindow
from tests.support.incidents import firing
from tests.support.kube_collect import NS, ONSET, Obj, analysed, collect_kube, stamp
from triage.models import IncidentState

WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=1)
)


def meta(name: str, created: float = -10_000, **more: Any) -> Obj:
    return {"name": name, "namespace": NS, "creationTimestamp": stamp(created), **more}


def deployment(name: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, labels={"app": name}),
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
    }


def replicaset(deploy: str, revision: int, created: float, image: str, restarted: str = "") -> Obj:
    annotations = {"kubectl.kubernetes.io/restartedAt": restarted} if restarted else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(
            f"{deploy}-{revision}",
            created,
            annotations={"deployment.kubernetes.io/revision": str(revision)},
            ownerReferences=[{"kind": "Deployment", "name": deploy, "apiVersion": "apps/v1"}],
        ),
        "spec": {
            "template": {
                "metadata": {"labels": {"app": deploy}, "annotations": annotations},
                "spec": {"containers": [{"name": deploy, "image": image}]},
            }
        },
    }


def pod(name: str, app: str, node: str = "node-a", status: Obj | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, -60, labels={"app": app}),
        "spec": {"nodeName": node, "containers": [{"name": app, "image": f"{app}:1"}]},
        "status": status or {"phase": "Running"},
    }


def policy(name: str, selector: Obj, changed: float) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(
            name,
            managedFields=[
                {"manager": "kustomize-controller", "operation": "Apply", "time": stamp(changed)}
            ],
        ),
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": []},
    }


def node(name: str, ready: str, since: float) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": stamp(-100_000)},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "NodeStatusUnknown" if ready == "Unknown" else "KubeletReady",
                    "lastTransitionTime": stamp(since),
                }
            ]
        },
    }


def event(reason: str, pod_name: str, first: float, last: float, count: int = 1) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta(f"{pod_name}.{reason.lower()}", first),
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NS},
        "reason": reason,
        "message": f"{reason} happened",
        "type": "Warning",
        "firstTimestamp": stamp(first),
        "lastTimestamp": stamp(last),
        "count": count,
    }


def incident() -> IncidentState:
    return firing({"alertname": "HighErrorRate", "namespace": NS, "service": "cart"}, ONSET)


async def collect(objects: KubeObjects) -> list[EvidenceItem]:
    """Serves the given objects and runs the collector over them through the real client."""
    evidence = await collect_kube(objects, incident(), WINDOW)
    assert evidence.status in ("ok", "no_data"), evidence.error
    return evidence.items


def by_id(items: list[EvidenceItem], prefix: str) -> list[EvidenceItem]:
    return [i for i in items if i.id.startswith(prefix)]


async def test_a_new_network_policy_is_a_change_of_the_workloads_it_selects():
    objects = KubeObjects(
        deployments=[deployment("cart"), deployment("redis"), deployment("web")],
        networkpolicies=[
            policy("redis-ingress", {"matchLabels": {"app": "redis"}}, changed=-4),
            policy(
                "web-and-cart",
                {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "cart"]}]},
                changed=-5,
            ),
            policy("allow-same-namespace", {}, changed=-3),
            policy("old-policy", {"matchLabels": {"app": "redis"}}, changed=-60 * 24 * 30),
        ],
    )
    items = by_id(await collect(objects), "netpol-")
    found = {(i.subject, i.change) for i in items}
    assert found == {
        ("redis", "networkpolicy/redis-ingress"),
        ("web", "networkpolicy/web-and-cart"),
        ("cart", "networkpolicy/web-and-cart"),
        ("networkpolicy/allow-same-namespace", "networkpolicy/allow-same-namespace"),
    }
    assert all(i.fault_hint == "network_policy" and i.kind == "config_change" for i in items)
    scores = {i.subject: i.score for i in items}
    # Namespace-wide: it concerns everyone and explains nobody in particular.
    assert scores["networkpolicy/allow-same-namespace"] < scores["redis"] / 1.5


async def test_a_restart_weighs_less_than_a_new_image_at_the_same_moment():
    objects = KubeObjects(
        deployments=[deployment("cart"), deployment("web")],
        replicasets=[
            replicaset("cart", 1, -600, "cart:1"),
            replicaset("cart", 2, -5, "cart:2"),
            replicaset("web", 1, -600, "web:1"),
            replicaset("web", 2, -5, "web:1", restarted=stamp(-5)),
        ],
    )
    rollouts = {i.subject: i for i in by_id(await collect(objects), "rollout-")}
    assert "image cart:1 -> cart:2" in rollouts["cart"].summary
    assert "no pod template change" in rollouts["web"].summary
    assert rollouts["web"].score == pytest.approx(rollouts["cart"].score / 2, rel=0.01)


async def test_unschedulable_pods_are_a_scheduling_problem():
    pending = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }
        ],
    }
    objects = KubeObjects(
        deployments=[deployment("cart")],
        pods=[pod("cart-1", "cart", node="", status=pending), pod("cart-2", "cart")],
    )
    (item,) = by_id(await collect(objects), "podstate-")
    assert item.subject == "cart" and item.fault_hint == "scheduling"
    assert "1 pod(s) of cart in Unschedulable" in item.summary


async def test_a_node_that_stopped_reporting_is_named_by_its_pods_events():
    objects = KubeObjects(
        nodes=[node("node-a", "True", -9000), node("node-b", "Unknown", -3)],
        pods=[pod("cart-1", "cart", node="node-b")],
        events=[
            event("NodeNotReady", "cart-1", -3, -3),
            # Its pod is gone already: the node that is unwell now is the one meant.
            event("NodeNotReady", "web-7f9c-xk2p", -3, -3),
        ],
    )
    items = await collect(objects)
    (cond,) = by_id(items, "node-")
    assert cond.subject == "node-b" and cond.fault_hint == "node_failure"
    assert "Ready=Unknown" in cond.summary
    events = {i.subject: i for i in by_id(items, "event-")}
    assert events["cart"].detail == "node node-b"
    assert events["web"].detail == "node node-b"


async def test_a_repeating_event_counts_when_its_run_overlaps_the_window():
    objects = KubeObjects(
        pods=[pod("cart-1", "cart"), pod("web-1", "web")],
        events=[
            # Began before the window closed, still repeating when the objects were read.
            event("FailedScheduling", "cart-1", -2, 25, count=20),
            # Over well before the window.
            event("FailedScheduling", "web-1", -200, -190),
        ],
    )
    events = by_id(await collect(objects), "event-")
    assert [(i.subject, i.fault_hint) for i in events] == [("cart", "scheduling")]
    assert "20x FailedScheduling" in events[0].summary


async def test_a_rollout_says_what_kind_of_change_it_was():
    def revision(deploy: str, number: int, created: float, container: Obj) -> Obj:
        rs = replicaset(deploy, number, created, "x:1")
        rs["spec"]["template"]["spec"]["containers"] = [container]
        return rs

    base = {"name": "c", "image": "x:1"}
    changes = {
        "image": ({**base, "image": "x:2"}, "bad_rollout"),
        "probe": (
            {**base, "readinessProbe": {"httpGet": {"path": "/ready"}}},
            "probe_misconfiguration",
        ),
        "env": ({**base, "env": [{"name": "LOG_LEVEL", "value": "debug"}]}, "config_change"),
        "secret": (
            {**base, "env": [{"name": "DB_PASSWORD_SECRET", "value": "v2"}]},
            "secret_change",
        ),
    }
    objects = KubeObjects(
        deployments=[deployment(name) for name in changes],
        replicasets=[
            rs
            for name, (container, _) in changes.items()
            for rs in (revision(name, 1, -600, base), revision(name, 2, -5, container))
        ],
    )
    hints = {i.subject: i.fault_hint for i in by_id(await collect(objects), "rollout-")}
    assert hints == {name: hint for name, (_, hint) in changes.items()}


async def test_event_hints_follow_what_the_message_says():
    timeout = event("Unhealthy", "cart-1", -3, -1, count=5)
    timeout["message"] = (
        'Readiness probe failed: Get "http://10.0.0.1/ready": context deadline exceeded'
    )
    refused = event("Unhealthy", "web-1", -3, -1, count=5)
    refused["message"] = "Readiness probe failed: HTTP probe failed with statuscode: 404"
    missing = event("Failed", "pay-1", -3, -1)
    missing["message"] = 'Error: secret "pay-db-credentials" not found'
    quota = event("FailedCreate", "search-index-7c9f8d", -3, -1)
    quota["involvedObject"] = {"kind": "ReplicaSet", "name": "search-index-7c9f8d", "namespace": NS}
    quota["message"] = 'pods "search-index-7c9f8d-x2" is forbidden: exceeded quota: team-quota'
    db = event("BackOff", "orders-db-0", -3, -1)
    objects = KubeObjects(events=[timeout, refused, missing, quota, db])
    hints = {i.subject: i.fault_hint for i in by_id(await collect(objects), "event-")}
    assert hints == {
        "cart": None,  # a probe that times out says the app is slow, not that the probe is wrong
        "web": "probe_misconfiguration",
        "pay": "secret_change",
        "search-index": "scheduling",  # the ReplicaSet's Deployment, not a mangled name
        "orders-db": "crash_loop",  # a StatefulSet's pod: <name>-<ordinal>
    }


# Time-aware evidence: every signal knows when it began; what began long before the window is
# background and weighs little beside what began at the onset.


def crashing(restarts: int, finished: float, waiting: str | None = "CrashLoopBackOff") -> Obj:
    container: Obj = {
        "name": "main",
        "restartCount": restarts,
        "lastState": {
            "terminated": {
                "reason": "Error",
                "exitCode": 1,
                "startedAt": stamp(finished - 0.5),
                "finishedAt": stamp(finished),
            }
        },
        "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}},
    }
    return {"phase": "Running", "containerStatuses": [container]}


def new_errors(subject: str) -> EvidenceItem:
    return EvidenceItem(
        id=f"logs-{subject}-new",
        kind="log_pattern",
        summary=f"new error template in {subject}: upstream connect error",
        subject=subject,
        score=0.6,
    )


async def top_suspect(items: list[EvidenceItem]) -> str:
    rca = await analysed(incident(), Evidence(collector="kubernetes", status="ok", items=items))
    return rca.root_cause.component


def fresh_rollout_of_web() -> tuple[list[Obj], list[Obj]]:
    return [deployment("web")], [
        replicaset("web", 1, -600, "web:1"),
        replicaset("web", 2, -4, "web:2"),
    ]


async def test_a_restart_from_weeks_ago_is_history_not_a_current_failure():
    deployments, replicasets = fresh_rollout_of_web()
    weeks = -60 * 24 * 21
    objects = KubeObjects(
        deployments=[deployment("cart"), *deployments],
        replicasets=replicasets,
        pods=[
            # The alerting service's pod restarted once, three weeks ago, and runs since.
            pod("cart-1", "cart", status=crashing(1, weeks, waiting=None)),
            # The new revision's pod fails now.
            pod("web-2-abcde", "web", status=crashing(1, 2, waiting=None)),
        ],
    )
    items = await collect(objects)
    states = {i.subject: i for i in by_id(items, "podstate-")}
    assert "cart" not in states  # a termination before the window is no current failure
    assert states["web"].timestamp is not None
    assert states["web"].timestamp >= WINDOW.start and states["web"].score >= 0.6
    assert await top_suspect([*items, new_errors("web")]) == "web"


async def test_a_crash_loop_going_on_for_hours_is_background_to_a_fresh_change():
    deployments, replicasets = fresh_rollout_of_web()
    looping = pod("cart-1", "cart", status=crashing(40, -2))
    looping["metadata"]["creationTimestamp"] = stamp(-60 * 24)
    objects = KubeObjects(
        deployments=[deployment("cart"), *deployments],
        replicasets=replicasets,
        pods=[looping],
        events=[event("BackOff", "cart-1", -180, -1, count=40)],
    )
    items = await collect(objects)
    states = by_id(items, "podstate-")  # the waiting loop and its last termination
    assert {i.id for i in states} == {
        "podstate-shop-cart-CrashLoopBackOff",
        "podstate-shop-cart-Error",
    }
    (backoff,) = by_id(items, "event-")
    for item in (*states, backoff):
        assert item.subject == "cart"
        assert item.timestamp is not None and item.timestamp <= ONSET - timedelta(hours=2)
        assert "background" in item.summary
        assert item.score < 0.2
    (rollout,) = by_id(items, "rollout-")
    assert rollout.score > 0.8
    assert await top_suspect([*items, new_errors("web")]) == "web"


async def test_a_crash_loop_that_began_at_the_onset_weighs_fully():
    objects = KubeObjects(
        deployments=[deployment("cart")],
        pods=[pod("cart-1", "cart", status=crashing(6, 8))],
        events=[event("BackOff", "cart-1", 1, 8, count=12)],
    )
    items = await collect(objects)
    state, _ = sorted(by_id(items, "podstate-"), key=lambda i: -i.score)
    (backoff,) = by_id(items, "event-")
    assert state.id.endswith("CrashLoopBackOff")
    assert state.score >= 0.8 and "background" not in state.summary
    assert state.timestamp is not None and state.timestamp >= WINDOW.start
    assert backoff.timestamp == ONSET + timedelta(minutes=1) and backoff.score >= 0.6


async def test_an_ongoing_event_series_is_background_unless_new_series_join():
    objects = KubeObjects(
        pods=[pod("cart-1", "cart"), pod("web-1", "web"), pod("web-2", "web")],
        events=[
            event("Unhealthy", "cart-1", -300, 0, count=300),
            event("Unhealthy", "web-1", -300, 0, count=300),
            event("Unhealthy", "web-2", -2, 0, count=3),  # a new series at the onset
        ],
    )
    events = {i.subject: i for i in by_id(await collect(objects), "event-")}
    assert events["cart"].score < 0.2 and "background" in events["cart"].summary
    assert events["web"].score >= 0.6 and events["web"].timestamp == ONSET - timedelta(minutes=2)
    assert "3x Unhealthy" in events["web"].summary


async def test_a_network_policy_a_gitops_controller_created_at_the_onset_names_it():
    created = policy("deny-cart", {"matchLabels": {"app": "cart"}}, changed=-1)
    created["metadata"]["creationTimestamp"] = stamp(-1)
    created["metadata"]["managedFields"] = [
        {"manager": "argocd-controller", "operation": "Apply", "time": stamp(-1)}
    ]
    # No managedFields at all: its creation is its change.
    bare = policy("deny-web", {"matchLabels": {"app": "web"}}, changed=0)
    bare["metadata"]["creationTimestamp"] = stamp(-2)
    del bare["metadata"]["managedFields"]
    objects = KubeObjects(
        deployments=[deployment("cart"), deployment("web")], networkpolicies=[created, bare]
    )
    items = {i.subject: i for i in by_id(await collect(objects), "netpol-")}
    cart = items["cart"]
    assert cart.change == "networkpolicy/deny-cart" and cart.kind == "config_change"
    assert "created by argocd-controller at 11:59:00" in cart.summary
    assert "argocd-controller" in cart.detail
    assert cart.timestamp == ONSET - timedelta(minutes=1) and cart.score > 0.9
    assert items["web"].timestamp == ONSET - timedelta(minutes=2)


async def test_a_change_names_who_made_it():
    cart = deployment("cart")
    cart["metadata"]["managedFields"] = [
        {"manager": "helm", "operation": "Update", "time": stamp(-600)},
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "time": stamp(-3),
            "subresource": "status",
        },
        {"manager": "kubectl-edit", "operation": "Update", "time": stamp(-5)},
    ]
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            "cart-config",
            managedFields=[
                {"manager": "kustomize-controller", "operation": "Apply", "time": stamp(-6)}
            ],
        ),
    }
    cart["spec"]["template"]["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cart-config"}}
    ]
    objects = KubeObjects(
        deployments=[cart],
        replicasets=[replicaset("cart", 1, -600, "cart:1"), replicaset("cart", 2, -5, "cart:2")],
        configmaps=[config],
    )
    items = await collect(objects)
    (rollout,) = by_id(items, "rollout-")
    assert "changed by kubectl-edit at 11:55:00" in rollout.summary
    (changed,) = by_id(items, "config-")
    assert "changed by kustomize-controller at 11:54:00" in changed.summary


async def test_a_statefulset_pods_failure_is_the_statefulsets():
    owner = [
        {"kind": "StatefulSet", "name": "orders-db", "apiVersion": "apps/v1", "controller": True}
    ]
    db = pod("orders-db-0", "orders-db", status=crashing(5, 3))
    db["metadata"]["labels"] = {}  # nothing but its owner says what it belongs to
    db["metadata"]["ownerReferences"] = owner
    objects = KubeObjects(
        pods=[db],
        events=[event("BackOff", "orders-db-0", 0, 3, count=5)],
    )
    items = await collect(objects)
    found = by_id(items, "podstate-") + by_id(items, "event-")
    assert found and {i.subject for i in found} == {"orders-db"}
    assert all("orders-db-0" not in i.id for i in found)
