"""Changes over time: rollouts (healthy or stuck), crash-looping containers, GitOps syncs,
with the events and log lines the cluster records for them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from triage_lab.corpus.cluster_apps import new_pod
from triage_lab.corpus.kube import SAFE, uid
from triage_lab.corpus.kube_templates import template_hash
from triage_lab.corpus.kube_workloads import replicas_of
from triage_lab.corpus.model import Pod, Revision, Workload
from triage_lab.corpus.units import sec

if TYPE_CHECKING:
    from triage_lab.corpus.world import World


def gitops_sync(w: World, at: datetime, objects: list[tuple[str, str, str]]) -> None:
    """The GitOps controller applying a commit: (kind, namespace, name) per object."""
    gw = next(wl for wl in w.workloads.values() if wl.role == "gitops")
    p = gw.pods[0]
    sha = "".join(w.rng.choice("0123456789abcdef") for _ in range(40))
    if gw.style == "argocd":
        app: dict[str, object] = {"application": f"argocd/{w.ns}-apps"}
        w.say(p, at - sec(3), "info", "Initiated automated sync to '" + sha + "'", fields=app)
        for kind, ns, name in objects:
            w.say(
                p,
                at,
                "info",
                f"Applying resource {kind}/{name} in cluster: "
                f"https://kubernetes.default.svc, namespace: {ns}",
                fields=app,
            )
        w.say(p, at + sec(2), "info", "Updated sync status: OutOfSync -> Synced", fields=app)
    else:
        output = {f"{kind}/{ns}/{name}": "configured" for kind, ns, name in objects}
        w.say(
            p,
            at,
            "info",
            "server-side apply completed",
            fields={
                "name": f"{w.ns}-apps",
                "namespace": "flux-system",
                "revision": f"main@sha1:{sha}",
                "output": output,
            },
        )


def rollout(
    w: World,
    wl: Workload,
    at: datetime,
    *,
    healthy: bool = True,
    via: str = "gitops",
    tag: str | None = None,
    blocked: str | None = None,
    pending: str | None = None,
    **changes: Any,
) -> tuple[Revision, list[Pod]]:
    """A new Deployment revision. Healthy ones replace every pod; broken ones stop after the
    first surge, as the RollingUpdate strategy does."""
    rng = w.rng
    old = wl.current
    fields: dict[str, Any] = {"env": dict(old.env), "annotations": dict(old.annotations)}
    new = replace(old, number=old.number + 1, created=at, desired=None, **(fields | changes))
    if tag is not None:
        new.tag = tag
    new.hash = template_hash(wl, new)
    wl.revisions.append(new)
    if at >= w.start:
        wl.rolled = True
    if via == "gitops":
        gitops_sync(w, at - sec(rng.uniform(2, 6)), [("Deployment", wl.namespace, wl.name)])
    old_rs, new_rs = f"{wl.name}-{old.hash}", f"{wl.name}-{new.hash}"
    olds = [p for p in wl.pods if p.alive(at) and p.revision != new.number]
    nodes = [n.name for n in w.nodes if n.ready]
    made: list[Pod] = []

    def spawn(t: datetime) -> Pod | None:
        if blocked is not None:  # admission refused it: no pod object at all
            name = f"{new_rs}-" + "".join(rng.choice(SAFE) for _ in range(5))
            w.ev(
                "ReplicaSet",
                new_rs,
                "FailedCreate",
                f'Error creating: pods "{name}" is forbidden: {blocked}',
                t,
                last=w.now - sec(rng.uniform(1, 30)),
                count=int((w.now - t).total_seconds() // 25) + 1,
                warning=True,
                component="replicaset-controller",
                ns=wl.namespace,
            )
            new.desired = (new.desired or 0) + 1
            return None
        if pending is not None:
            p = new_pod(w, wl, new, t, None)
            p.started, p.ready, p.quiet, p.phase = None, False, True, "Pending"
            p.unschedulable = pending
            w.ev(
                "ReplicaSet",
                new_rs,
                "SuccessfulCreate",
                f"Created pod: {p.name}",
                t,
                component="replicaset-controller",
                ns=wl.namespace,
            )
            w.ev(
                "Pod",
                p.name,
                "FailedScheduling",
                pending,
                t + sec(0.5),
                last=w.now - sec(rng.uniform(1, 60)),
                count=int((w.now - t).total_seconds() // 60) + 1,
                warning=True,
                component="default-scheduler",
                ns=wl.namespace,
            )
            made.append(p)
            return p
        p = new_pod(w, wl, new, t, rng.choice(nodes))
        if p.started is not None:
            w.say(p, p.started, "info", f"starting {wl.name} {new.tag}")
            w.say(p, p.started + sec(rng.uniform(0.5, 3)), "info", f"listening on :{wl.port}")
        created_events(w, wl, new_rs, p, t, 0.5)
        made.append(p)
        return p

    def kill(p: Pod, t: datetime) -> None:
        p.deleted = t + sec(rng.uniform(2, 25))  # terminationGracePeriod
        w.ev(
            "Pod",
            p.name,
            "Killing",
            f"Stopping container {wl.name}",
            t,
            host=p.node,
            ns=wl.namespace,
        )
        w.ev(
            "ReplicaSet",
            f"{wl.name}-{wl.revision(p.revision).hash}",
            "SuccessfulDelete",
            f"Deleted pod: {p.name}",
            t,
            component="replicaset-controller",
            ns=wl.namespace,
        )

    if healthy:
        t = at
        for i, o in enumerate(olds):
            p = spawn(t)
            assert p is not None
            started_events(w, wl, p, new)
            ready = p.ready_changed or p.created
            w.ev(
                "Deployment",
                wl.name,
                "ScalingReplicaSet",
                f"Scaled up replica set {new_rs} to {i + 1} from {i}",
                t,
                component="deployment-controller",
                ns=wl.namespace,
            )
            kill(o, ready + sec(1))
            w.ev(
                "Deployment",
                wl.name,
                "ScalingReplicaSet",
                f"Scaled down replica set {old_rs} to {len(olds) - i - 1} from {len(olds) - i}",
                ready + sec(1),
                component="deployment-controller",
                ns=wl.namespace,
            )
            t = ready + sec(rng.uniform(1, 4))
    else:
        surge = replicas_of(wl.max_surge, wl.replicas, up=True)
        down = replicas_of(wl.max_unavailable, wl.replicas, up=False)
        w.ev(
            "Deployment",
            wl.name,
            "ScalingReplicaSet",
            f"Scaled up replica set {new_rs} to {surge} from 0",
            at,
            component="deployment-controller",
            ns=wl.namespace,
        )
        for i in range(surge):
            spawn(at + sec(0.3 * i))
        if down:
            w.ev(
                "Deployment",
                wl.name,
                "ScalingReplicaSet",
                f"Scaled down replica set {old_rs} to {len(olds) - down} from {len(olds)}",
                at + sec(1),
                component="deployment-controller",
                ns=wl.namespace,
            )
            w.ev(
                "Deployment",
                wl.name,
                "ScalingReplicaSet",
                f"Scaled up replica set {new_rs} to {surge + down} from {surge}",
                at + sec(1.2),
                component="deployment-controller",
                ns=wl.namespace,
            )
            for i, o in enumerate(olds[:down]):
                kill(o, at + sec(1 + i * 0.2))
                spawn(at + sec(1.3 + i * 0.2))
        wl.stalled_since = at
    return new, made


def reloader_rollout(
    w: World, svc: str, secret: str, at: datetime, *, changed: datetime | None = None
) -> None:
    """The Secret changes (``changed``, by default just before ``at``) and Stakater Reloader
    rolls the Deployments that use it at ``at``, by setting an env var with the Secret's hash."""
    wl = w.workloads[svc]
    w.configs[secret].changed = changed or at - sec(w.rng.uniform(3, 12))
    env = dict(wl.current.env)
    key = "STAKATER_" + secret.upper().replace("-", "_") + "_SECRET"
    env[key] = hashlib.sha1(f"{w.key}{secret}{at}".encode()).hexdigest()
    rollout(w, wl, at, healthy=True, via="reloader", env=env)


def created_events(w: World, wl: Workload, rs: str, p: Pod, at: datetime, scheduled: float) -> None:
    """The ReplicaSet creating a pod, and the scheduler placing it ``scheduled`` s later."""
    w.ev(
        "ReplicaSet",
        rs,
        "SuccessfulCreate",
        f"Created pod: {p.name}",
        at,
        component="replicaset-controller",
        ns=wl.namespace,
    )
    w.ev(
        "Pod",
        p.name,
        "Scheduled",
        f"Successfully assigned {wl.namespace}/{p.name} to {p.node}",
        at + sec(scheduled),
        component="default-scheduler",
        ns=wl.namespace,
    )


def started_events(w: World, wl: Workload, p: Pod, rev: Revision) -> None:
    image = f"{wl.repo}:{rev.tag}"
    t = p.created + sec(3)
    pulled = f'Successfully pulled image "{image}" in {w.rng.uniform(0.8, 6):.3f}s'
    for reason, message, after in (
        ("Pulled", pulled, 0.0),
        ("Created", f"Created container {wl.name}", 0.2),
        ("Started", f"Started container {wl.name}", 0.5),
    ):
        w.ev("Pod", p.name, reason, message, t + sec(after), host=p.node, ns=wl.namespace)


def crashloop(
    w: World,
    wl: Workload,
    p: Pod,
    t0: datetime,
    *,
    startup: Sequence[str],
    crash: Sequence[str],
    reason: str = "Error",
    exit_code: int = 1,
    run: tuple[float, float] = (2, 12),
    raw_crash: bool = True,
    message: str = "",
    ready_when_running: bool = False,
    first_end: datetime | None = None,
) -> list[tuple[datetime, datetime]]:
    """Container starts, prints ``startup``, dies with ``crash``; kubelet backs off 10s,
    20s, ... up to 5m, as it does."""
    rng = w.rng
    runs: list[tuple[datetime, datetime]] = []
    t, delay = t0, 10.0
    if first_end is not None:  # the container that was running dies at first_end
        runs.append((t0, first_end))
        t = first_end + sec(delay + rng.uniform(0, 3))
        delay *= 2
    while t <= w.now:
        end = t + sec(rng.uniform(*run))
        runs.append((t, end))
        if end > w.now:
            break
        t = end + sec(delay + rng.uniform(0, 3))
        delay = min(delay * 2, 300.0)
    running_now = runs[-1][1] > w.now
    pod_uid = uid(w.key, "Pod", wl.namespace, p.name)
    finished = runs[:-1] if running_now else runs
    p.restarts = [s for s, _ in runs[1:]]
    p.started = runs[-1][0] if running_now else None
    p.ready = running_now and ready_when_running
    p.ready_changed = t0
    p.quiet = True
    p.logs, p.prev_logs = [], []
    if finished:
        s, e = finished[-1]
        p.last = {
            "reason": reason,
            "exitCode": exit_code,
            "startedAt": s,
            "finishedAt": e,
            "message": message,
        }
    if not running_now:
        p.waiting = (
            "CrashLoopBackOff",
            f"back-off {_dur(delay / 2)} restarting failed container={wl.name} "
            f"pod={p.name}_{wl.namespace}({pod_uid})",
        )

    def one_run(s: datetime, e: datetime | None, previous: bool) -> None:
        for k, msg in enumerate(startup):
            w.say(p, s + sec(0.2 + 0.3 * k), "info", msg, previous=previous)
        if e is not None:
            for k, msg in enumerate(crash):
                w.say(
                    p,
                    e - sec(0.01 * (len(crash) - k)),
                    "error",
                    msg,
                    raw=raw_crash,
                    previous=previous,
                )

    cur = runs[-1]
    one_run(cur[0], None if running_now else cur[1], previous=False)
    if len(runs) > 1:
        prev = runs[-2]
        one_run(prev[0], prev[1], previous=True)
    backoffs = max(1, len(runs) - 1)
    w.ev(
        "Pod",
        p.name,
        "Pulled",
        f'Container image "{wl.repo}:{wl.revision(p.revision).tag}" already present on machine',
        runs[min(1, len(runs) - 1)][0],
        last=runs[-1][0],
        count=len(runs),
        host=p.node,
        ns=wl.namespace,
    )
    w.ev(
        "Pod",
        p.name,
        "Created",
        f"Created container {wl.name}",
        runs[0][0] - sec(0.3),
        last=runs[-1][0],
        count=len(runs),
        host=p.node,
        ns=wl.namespace,
    )
    w.ev(
        "Pod",
        p.name,
        "Started",
        f"Started container {wl.name}",
        runs[0][0],
        last=runs[-1][0],
        count=len(runs),
        host=p.node,
        ns=wl.namespace,
    )
    w.ev(
        "Pod",
        p.name,
        "BackOff",
        f"Back-off restarting failed container {wl.name} in pod {p.name}_{wl.namespace}({pod_uid})",
        runs[0][1] + sec(1),
        last=w.now - sec(rng.uniform(1, 20)),
        count=backoffs * rng.randint(2, 5),
        warning=True,
        host=p.node,
        ns=wl.namespace,
    )
    ups = list(runs)

    def low(i: int, v: float) -> float:
        t = w.times[i]
        up = any(s <= t < e for s, e in ups)
        return v * (rng.uniform(0.3, 0.9) if up else 0.02)

    p.over["cpu"] = low
    p.over["mem"] = lambda i, v: v * 0.25
    return runs


def _dur(seconds: float) -> str:
    s = int(min(seconds, 300))
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"
