"""Faults below or around the workloads: a node that dies or evicts, pods that cannot be
placed, an autoscaler that has run out of room."""

from __future__ import annotations

from datetime import datetime

from triage_lab.corpus.changes import created_events, rollout, started_events
from triage_lab.corpus.cluster_apps import new_pod
from triage_lab.corpus.faults._common import (
    at_capacity,
    caller_logs,
    fewer_pods,
    symptoms,
    timeouts,
)
from triage_lab.corpus.model import Pod
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import MIN, World, sec
from triage_lab.fakes.kubernetes_objects import ts

APP_ROLES = ("entry", "mid", "leaf")


def _pods_on(w: World, node: str, t: datetime, roles: tuple[str, ...]) -> list[Pod]:
    return [
        p
        for wl in w.workloads.values()
        if wl.role in roles and wl.kind == "Deployment"
        for p in wl.pods
        if p.node == node and p.alive(t)
    ]


def node_failure(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("notready", "memory", "disk")[variant % 3]
    t0 = w.onset
    stores = {p.node for s in (w.db, w.cache) for p in w.workloads[s].pods}
    candidates = [n for n in w.nodes if n.name not in stores] or list(w.nodes)
    best = max(len(_pods_on(w, n.name, t0, ("mid", "leaf"))) for n in candidates)
    node = rng.choice(
        [n for n in candidates if len(_pods_on(w, n.name, t0, ("mid", "leaf"))) == best]
    )
    victims = _pods_on(w, node.name, t0, APP_ROLES)
    if not any(w.workloads[p.workload].role != "entry" for p in victims):
        # make sure the node carries a backend pod: move one there, as the scheduler might have
        p = rng.choice([p for m in w.mids for p in w.workloads[m].pods if p.alive(t0)])
        p.node = node.name
        p.ip = f"10.{100 + node.index}.0.{rng.randrange(100, 250)}"
        victims = _pods_on(w, node.name, t0, APP_ROLES)
    counts: dict[str, int] = {}
    for p in victims:
        counts[p.workload] = counts.get(p.workload, 0) + 1
    backends = [s for s in counts if w.workloads[s].role != "entry"]
    primary = max(backends, key=lambda s: (counts[s], s))
    others = [n.name for n in w.nodes if n.name != node.name]
    if mode == "notready":
        gone = t0 + sec(40)  # node-monitor-grace-period
        node.ready, node.not_ready_since = False, gone
        node.taints = [
            {
                "key": "node.kubernetes.io/unreachable",
                "effect": "NoSchedule",
                "timeAdded": ts(gone),
            },
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": ts(gone)},
        ]
        w.ev(
            "Node",
            node.name,
            "NodeNotReady",
            f"Node {node.name} status is now: NodeNotReady",
            gone,
            component="node-controller",
            ns="default",
        )
        for wl in w.workloads.values():
            for p in [p for p in wl.pods if p.node == node.name and p.alive(t0)]:
                p.ready, p.ready_changed, p.dark_since, p.unreachable = False, gone, t0, True
                p.terminating = gone + sec(300)
                w.ev(
                    "Pod",
                    p.name,
                    "NodeNotReady",
                    "Node is not ready",
                    gone,
                    warning=True,
                    component="node-controller",
                    ns=wl.namespace,
                )
                w.ev(
                    "Pod",
                    p.name,
                    "TaintManagerEviction",
                    f"Marking for deletion Pod {wl.namespace}/{p.name}",
                    gone + sec(300),
                    component="taint-eviction-controller",
                    ns=wl.namespace,
                )
                if wl.kind == "Deployment":
                    _replace(w, p, gone + sec(301), others)
        dip = (gone, gone + sec(rng.uniform(330, 420)))
    else:
        resource = "memory" if mode == "memory" else "ephemeral-storage"
        node.pressure = "MemoryPressure" if mode == "memory" else "DiskPressure"
        node.pressure_since = t0
        taint = "memory-pressure" if mode == "memory" else "disk-pressure"
        node.taints = [
            {"key": f"node.kubernetes.io/{taint}", "effect": "NoSchedule", "timeAdded": ts(t0)}
        ]
        status = "NodeHasInsufficientMemory" if mode == "memory" else "NodeHasDiskPressure"
        w.ev(
            "Node",
            node.name,
            status,
            f"Node {node.name} status is now: {status}",
            t0,
            host=node.name,
            ns="default",
        )
        w.ev(
            "Node",
            node.name,
            "EvictionThresholdMet",
            f"Attempting to reclaim {resource}",
            t0 + sec(2),
            last=t0 + sec(len(victims) * 40),
            count=len(victims),
            warning=True,
            host=node.name,
            ns="default",
        )
        rng.shuffle(victims)
        victims.sort(key=lambda p: p.workload != primary)
        t = t0 + sec(rng.uniform(3, 15))
        for p in victims[: rng.randint(3, 5)]:
            wl = w.workloads[p.workload]
            rev = wl.revision(p.revision)
            if mode == "memory":
                used = int(w.workloads[p.workload].base["mem"] * rng.uniform(1.3, 1.8) / 1024)
                msg = (
                    f"The node was low on resource: memory. Threshold quantity: 100Mi, "
                    f"available: {rng.randint(40000, 98000)}Ki. Container {wl.name} was using "
                    f"{used}Ki, request is {rev.mem_request}, has larger consumption of memory."
                )
            else:
                msg = (
                    f"The node was low on resource: ephemeral-storage. Threshold quantity: "
                    f"10%, available: {rng.randint(2000, 9000)}Mi. Container {wl.name} was using "
                    f"{rng.randint(6, 30)}Gi, request is 0, has larger consumption of "
                    "ephemeral-storage."
                )
            p.phase, p.reason, p.message = "Failed", "Evicted", msg
            p.ready, p.ready_changed, p.dark_since, p.unreachable = False, t, t, True
            p.last = {
                "reason": "Error",
                "exitCode": 137,
                "startedAt": p.started or p.created,
                "finishedAt": t + sec(2),
            }
            w.ev("Pod", p.name, "Evicted", msg, t, warning=True, host=node.name, ns=wl.namespace)
            w.ev(
                "Pod",
                p.name,
                "Killing",
                f"Stopping container {wl.name}",
                t + sec(0.5),
                host=node.name,
                ns=wl.namespace,
            )
            _replace(w, p, t + sec(1), others, slow=True)
            t += sec(rng.uniform(20, 70))
        dip = (t0, t + sec(rng.uniform(150, 300)))
    # Lost pods mean timeouts until endpoints and replacements catch up; warm-up after that.
    err = rng.uniform(0.15, 0.25)
    for svc, n in counts.items():
        share = n / max(1, w.workloads[svc].replicas)
        level = err * min(1.0, share * 1.5)
        w.shift(svc, "err", dip[0], add=level, until=dip[1], ramp=30)
        w.shift(svc, "err", dip[1], add=level * 0.3, ramp=0)
        w.shift(svc, "p99", dip[0], mul=1 + 2 * share, ramp=30)
    path = w.path_to_entry(primary)
    when = w.propagate(path, dip[0], err=err * 0.9, lat=2.0, hops=(20, 60))
    caller_logs(
        w,
        path,
        when,
        [
            *timeouts(w, primary, rng.choice((1000, 2000))),
            f"call to {primary} failed: context deadline exceeded (Client.Timeout exceeded while "
            "awaiting headers)",
        ],
    )
    symptoms(w, path, when, "errors")
    w.set_truth(
        "Node",
        node.name,
        primary,
        "node_failure",
        mode,
        namespace="",
        propagation=path,
        aliases=[node.ip],
    )


def _replace(w: World, old: Pod, at: datetime, nodes: list[str], *, slow: bool = False) -> None:
    wl = w.workloads[old.workload]
    rev = wl.revision(old.revision)
    p = new_pod(w, wl, rev, at, w.rng.choice(nodes))
    if slow and p.started is not None:
        p.started += sec(w.rng.uniform(10, 40))  # image pull on a cold node
        p.ready_changed = p.started + sec(w.rng.uniform(10, 30))
    created_events(w, wl, f"{wl.name}-{rev.hash}", p, at, 0.4)
    started_events(w, wl, p, rev)


def scheduling(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("taints", "resources", "selector")[variant % 3]
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    old = wl.current
    t0 = w.onset
    n = len(w.nodes)
    tag = bump(old.tag, rng)
    if mode == "taints":
        # The namespace's nodes are its team's, tainted for it; every workload tolerates that
        # (cluster add-ons tolerate any taint) until a rollout drops the toleration.
        taint = {"key": "dedicated", "value": w.team, "effect": "NoSchedule"}
        for node in w.nodes:
            node.taints = [*node.taints, taint]
        own = [{"key": "dedicated", "operator": "Equal", "value": w.team, "effect": "NoSchedule"}]
        for other in w.workloads.values():
            for r in other.revisions:
                r.tolerations = own if other.namespace == w.ns else [{"operator": "Exists"}]
        pending = (
            f"0/{n} nodes are available: {n} node(s) had untolerated taint {{dedicated: "
            f"{w.team}}}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful "
            "for scheduling."
        )
        rev, pods = rollout(w, wl, t0, healthy=False, tag=tag, pending=pending, tolerations=[])
    elif mode == "resources":
        cpu = rng.choice(("6", "8", "12"))
        pending = (
            f"0/{n} nodes are available: {n} Insufficient cpu. preemption: 0/{n} nodes are "
            f"available: {n} No preemption victims found for incoming pod."
        )
        rev, pods = rollout(
            w, wl, t0, healthy=False, tag=tag, pending=pending, cpu_request=cpu, cpu_limit=cpu
        )
    else:
        selector = rng.choice(
            (
                {"node.kubernetes.io/instance-type": "m7i.2xlarge"},
                {"workload-class": "memory-optimized"},
                {"topology.kubernetes.io/zone": "eu-central-1c"},
            )
        )
        pending = (
            f"0/{n} nodes are available: {n} node(s) didn't match Pod's node "
            f"affinity/selector. preemption: 0/{n} nodes are available: {n} Preemption is "
            "not helpful for scheduling."
        )
        rev, pods = rollout(
            w, wl, t0, healthy=False, tag=tag, pending=pending, node_selector=selector
        )
    for p in pods:
        w.ev(
            "Pod",
            p.name,
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 max node group size reached",
            p.created + sec(12),
            last=w.now - sec(rng.uniform(5, 60)),
            count=rng.randint(5, 30),
            component="cluster-autoscaler",
            ns=wl.namespace,
        )
    start = t0 + sec(rng.uniform(20, 60))
    path = fewer_pods(w, svc, start)
    w.set_truth(
        "Deployment", svc, svc, "scheduling", mode, propagation=path, aliases=[f"{svc}-{rev.hash}"]
    )


def capacity(w: World, variant: int) -> None:
    """A traffic surge the HorizontalPodAutoscaler follows until maxReplicas; then latency."""
    rng = w.rng
    target = (w.mids[0], w.entry, w.mids[0])[variant % 3]
    wl = w.workloads[target]
    h = wl.hpa
    assert h is not None
    h.max_replicas = wl.replicas + rng.randint(2, 5)
    t0 = w.onset
    surge = t0 - sec(rng.uniform(360, 660))
    load = rng.uniform(2.2, 3.2)
    up = w.path_to_entry(target)
    for svc in dict.fromkeys([*up, *w.callees(target)]):
        w.shift(svc, "rps", surge, mul=load, ramp=240)
    w.shift(target, "cpu", surge, mul=1.9, ramp=240)
    steps = list(range(wl.replicas + 1, h.max_replicas + 1))
    span = (t0 - surge - MIN).total_seconds()
    nodes = [n.name for n in w.nodes]
    rs = f"{wl.name}-{wl.current.hash}"
    for k, size in enumerate(steps):
        at = surge + MIN + sec(span * (k + 1) / len(steps)) if k < len(steps) - 1 else t0
        before = size - 1
        h.history.append((at, size))
        w.ev(
            "HorizontalPodAutoscaler",
            target,
            "SuccessfulRescale",
            f"New size: {size}; reason: cpu resource utilization (percentage of request) above "
            "target",
            at,
            component="horizontal-pod-autoscaler",
        )
        w.ev(
            "Deployment",
            target,
            "ScalingReplicaSet",
            f"Scaled up replica set {rs} to {size} from {before}",
            at,
            component="deployment-controller",
        )
        p = new_pod(w, wl, wl.current, at + sec(0.3), rng.choice(nodes))
        w.ev(
            "ReplicaSet",
            rs,
            "SuccessfulCreate",
            f"Created pod: {p.name}",
            at + sec(0.3),
            component="replicaset-controller",
        )
        started_events(w, wl, p, wl.current)
    wl.replicas = h.max_replicas
    h.current, h.limited, h.last_scale = h.max_replicas, True, t0
    h.utilization = int(h.target_cpu * rng.uniform(1.6, 2.1))
    start = t0 + sec(rng.uniform(20, 60))
    lat, err = rng.uniform(3.0, 5.0), rng.uniform(0.02, 0.05)
    at_capacity(w, target, up, start, lat, err)
    w.set_truth(
        "HorizontalPodAutoscaler",
        target,
        target,
        "capacity",
        f"max-{h.max_replicas}",
        propagation=up,
        aliases=[target],
    )
