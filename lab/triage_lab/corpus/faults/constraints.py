"""Faults in what the namespace allows and what the pods store: a ResourceQuota or LimitRange
that refuses new pods, and volumes that never bind, attach or mount."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from triage_lab.corpus.changes import rollout
from triage_lab.corpus.faults._common import (
    at_capacity,
    fewer_pods,
)
from triage_lab.corpus.kube import SAFE
from triage_lab.corpus.kube_workloads import replicas_of
from triage_lab.corpus.model import LimitRangeObj, QuotaObj
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import World, cores, mib, sec

GI = 1024**3


def _mem(b: float) -> str:
    """Bytes as the API server prints a quantity: the largest binary suffix that is exact."""
    for suffix, f in (("Ti", 1024**4), ("Gi", GI), ("Mi", 1024**2), ("Ki", 1024)):
        if b >= f and b % f == 0:
            return f"{int(b // f)}{suffix}"
    return str(int(b))


def _cpu(m: float) -> str:
    return str(int(m // 1000)) if m % 1000 == 0 else f"{int(m)}m"


def _milli(q: str) -> int:
    return round(cores(q) * 1000)


def _usage(w: World) -> dict[str, float]:
    """What the namespace's non-terminated pods count against a ResourceQuota."""
    u = {"requests.cpu": 0.0, "requests.memory": 0.0, "limits.memory": 0.0, "pods": 0.0}
    for wl in w.workloads.values():
        if wl.namespace != w.ns:
            continue
        for p in wl.pods:
            if p.deleted is not None or p.phase in ("Failed", "Succeeded"):
                continue
            r = wl.revision(p.revision)
            u["requests.cpu"] += _milli(r.cpu_request)
            u["requests.memory"] += mib(r.mem_request)
            u["limits.memory"] += mib(r.mem_limit)
            u["pods"] += 1
    return u


def _show(key: str, v: float) -> str:
    return _cpu(v) if key == "requests.cpu" else str(int(v)) if key == "pods" else _mem(v)


def _roomy(key: str, v: float, rng_extra: float) -> float:
    """A hard limit well above what is used."""
    step = {"requests.cpu": 1000.0, "pods": 1.0}.get(key, float(GI))
    return math.ceil((v * 1.3 + rng_extra * step) / step) * step


def _admin(w: World) -> tuple[datetime, str]:
    """When and by whom the namespace's limits were set up: long ago, by the platform team."""
    at = w.start - timedelta(days=w.rng.uniform(40, 400), minutes=w.rng.randrange(1440))
    return at, w.rng.choice((w.gitops_manager, "kubectl-client-side-apply", "helm"))


def _quota(w: World, name: str, tight: dict[str, float]) -> QuotaObj:
    """A ResourceQuota whose ``tight`` resources are at the given hard values, the rest roomy;
    one on the pod count alone counts nothing else."""
    used = _usage(w)
    if list(tight) == ["pods"]:
        used = {"pods": used["pods"]}
    hard = {k: tight.get(k) or _roomy(k, v, w.rng.uniform(2, 6)) for k, v in used.items()}
    at, manager = _admin(w)
    q = QuotaObj(
        name=name,
        namespace=w.ns,
        created=at,
        manager=manager,
        hard={k: _show(k, v) for k, v in hard.items()},
        used={k: _show(k, v) for k, v in used.items()},
    )
    w.quotas.append(q)
    return q


def _limit_range(w: World, name: str, max_memory: str) -> LimitRangeObj:
    at, manager = _admin(w)
    lr = LimitRangeObj(
        name=name,
        namespace=w.ns,
        created=at,
        manager=manager,
        limits=[
            {
                "type": "Container",
                "max": {"memory": max_memory},
                "min": {"memory": "16Mi"},
                "default": {"memory": "512Mi"},
                "defaultRequest": {"memory": "256Mi"},
            },
            {
                "type": "PersistentVolumeClaim",
                "max": {"storage": "500Gi"},
                "min": {"storage": "1Gi"},
            },
        ],
    )
    w.limit_ranges.append(lr)
    return lr


def quota(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("requests", "limitrange", "pods")[variant % 3]
    t0 = w.onset
    if mode == "pods":
        _pods_quota(w)
        return
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    old = wl.current
    tag = bump(old.tag, rng)
    if mode == "requests":
        name = rng.choice(("compute-resources", f"{w.ns}-compute", f"{w.team}-budget"))
        before = _usage(w)
        # The rollout stops the first old pods; what they held is free again, and still too
        # little for one new pod.
        olds = [p for p in wl.pods if p.alive(t0)]
        freed = olds[: replicas_of(wl.max_unavailable, wl.replicas, up=False)]
        changes: dict[str, Any]
        if rng.random() < 0.5:
            key = "requests.memory"
            hard = math.ceil(before[key] / GI) * GI
            after = before[key] - sum(mib(wl.revision(p.revision).mem_request) for p in freed)
            options = [q for q in ("1Gi", "1536Mi", "2Gi", "3Gi") if mib(q) > hard - after]
            req = rng.choice(options[:2])
            limit = next(q for q in ("2Gi", "3Gi", "4Gi") if mib(q) >= max(mib(req), 1.5 * GI))
            changes = {"mem_request": req, "mem_limit": limit}
            shown = (req, _mem(after), _mem(hard))
        else:
            key = "requests.cpu"
            hard = math.ceil(before[key] / 1000) * 1000
            after = before[key] - sum(_milli(wl.revision(p.revision).cpu_request) for p in freed)
            options = [q for q in ("1", "1500m", "2", "3") if _milli(q) > hard - after]
            req = rng.choice(options[:2])
            limit_now = old.cpu_limit
            cpu_limit = req if limit_now and cores(limit_now) < cores(req) else limit_now
            changes = {"cpu_request": req, "cpu_limit": cpu_limit}
            shown = (req, _cpu(after), _cpu(hard))
        blocked = (
            f"exceeded quota: {name}, requested: {key}={shown[0]}, used: {key}={shown[1]}, "
            f"limited: {key}={shown[2]}"
        )
        rollout(w, wl, t0, healthy=False, tag=tag, blocked=blocked, **changes)
        q = _quota(w, name, {key: hard})
        assert _usage(w)[key] == after, (q.used, after)
        if rng.random() < 0.5:
            _limit_range(w, rng.choice(("container-limits", "default-limits")), "8Gi")
        kind = "ResourceQuota"
    else:
        name = rng.choice(("container-limits", f"{w.ns}-limit-range", "default-limits"))
        biggest = max(
            mib(x.revision(p.revision).mem_limit)
            for x in w.workloads.values()
            if x.namespace == w.ns
            for p in x.pods
            if p.deleted is None
        )
        ceiling = next(q for q in ("2Gi", "4Gi", "8Gi") if mib(q) >= biggest)
        limit = _mem(mib(ceiling) * rng.choice((2, 3)))
        blocked = f"maximum memory usage per Container is {ceiling}, but limit is {limit}"
        req = rng.choice(("1Gi", "1536Mi", "2Gi"))
        rollout(
            w, wl, t0, healthy=False, tag=tag, blocked=blocked, mem_request=req, mem_limit=limit
        )
        _limit_range(w, name, ceiling)
        if rng.random() < 0.5:
            _quota(w, rng.choice(("compute-resources", f"{w.team}-budget")), {})
        kind = "LimitRange"
    path = fewer_pods(w, svc, t0 + sec(rng.uniform(20, 60)))
    w.set_truth(kind, name, name, "quota", mode, propagation=[name, *path], aliases=[w.ns])


def _pods_quota(w: World) -> None:
    """A traffic surge: the HorizontalPodAutoscaler asks for more pods and the namespace's pod
    count quota refuses every one of them."""
    rng = w.rng
    t0 = w.onset
    target = rng.choice((w.entry, w.mids[0]))
    wl = w.workloads[target]
    h = wl.hpa
    assert h is not None
    # Marked as changed, so that no unrelated rollout of it is added: its surge pods would
    # meet the same quota.
    wl.rolled = True
    surge = t0 - sec(rng.uniform(300, 540))
    load = rng.uniform(2.0, 2.8)
    up = w.path_to_entry(target)
    for svc in dict.fromkeys([*up, *w.callees(target)]):
        w.shift(svc, "rps", surge, mul=load, ramp=240)
    w.shift(target, "cpu", surge, mul=1.9, ramp=240)
    have = wl.replicas
    want = min(h.max_replicas - 1, have + rng.randint(2, 3))
    at = surge + sec(rng.uniform(100, 200))
    rs = f"{wl.name}-{wl.current.hash}"
    w.ev(
        "HorizontalPodAutoscaler",
        target,
        "SuccessfulRescale",
        f"New size: {want}; reason: cpu resource utilization (percentage of request) above target",
        at,
        component="horizontal-pod-autoscaler",
    )
    w.ev(
        "Deployment",
        target,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs} to {want} from {have}",
        at + sec(0.1),
        component="deployment-controller",
    )
    wl.replicas, wl.current.desired = want, want
    h.desired, h.last_scale = want, at
    h.utilization = int(h.target_cpu * rng.uniform(1.6, 2.0))
    name = rng.choice(("object-counts", "pod-count", f"{w.ns}-objects"))
    used = int(_usage(w)["pods"])
    for i in range(want - have):
        pod = f"{rs}-" + "".join(rng.choice(SAFE) for _ in range(5))
        t = at + sec(0.2 + 0.05 * i)
        w.ev(
            "ReplicaSet",
            rs,
            "FailedCreate",
            f'Error creating: pods "{pod}" is forbidden: exceeded quota: {name}, requested: '
            f"pods=1, used: pods={used}, limited: pods={used}",
            t,
            last=w.now - sec(rng.uniform(1, 30)),
            count=int((w.now - t).total_seconds() // 25) + 1,
            warning=True,
            component="replicaset-controller",
        )
    _quota(w, name, {"pods": used})
    if rng.random() < 0.5:
        _limit_range(w, rng.choice(("container-limits", "default-limits")), "8Gi")
    start = t0 + sec(rng.uniform(10, 40))
    lat, err = rng.uniform(3.0, 5.0), rng.uniform(0.03, 0.07)
    at_capacity(w, target, up, start, lat, err)
    w.set_truth(
        "ResourceQuota", name, name, "quota", "pods", propagation=[name, *up], aliases=[w.ns]
    )
