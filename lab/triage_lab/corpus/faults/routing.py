"""Traffic that goes nowhere: a Service edited so that its selector matches no pod or its
targetPort no container port, a Deployment scaled to zero, the entry's Ingress or HTTPRoute
pointed at a Service that does not exist or at a port it does not expose. Nothing crashes:
the pods that should serve are idle, and their callers see connections refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from triage_lab.corpus.changes import gitops_sync
from triage_lab.corpus.faults._common import caller_logs, pod_ips, symptoms
from triage_lab.corpus.kube_routing import entry_route
from triage_lab.corpus.model import ServiceEdit
from triage_lab.corpus.world import World, sec

# Selectors a Service was moved to that its pods do not carry (yet): a release track, the
# recommended app.kubernetes.io labels, a tier.
SELECTORS = (
    ("app", "track", "stable"),
    ("app.kubernetes.io/name", "app.kubernetes.io/component", "api"),
    ("app", "tier", "backend"),
)


def routing(w: World, variant: int) -> None:
    {0: _service_edit, 1: _scaled_to_zero, 2: _route_edit}[variant % 3](w)


def _manager(w: World) -> str:
    """Who made the change: the GitOps controller syncing a commit, or a person's kubectl."""
    return w.rng.choice((w.gitops_manager, "kubectl-client-side-apply", "kubectl-edit"))


def _refused(w: World, callee: str, *, ip: Callable[[], str], port: int) -> Callable[[], str]:
    """What a caller prints when nothing accepts its connection, in its own stack's words."""
    noun = w.rng.choice(w.domain.nouns)
    url = f"http://{callee}.{w.ns}.svc.cluster.local:{w.ports[callee]}/api/v1/{noun}"

    def msg() -> str:
        addr = f"{ip()}:{port}"
        return w.rng.choice(
            (
                f'Get "{url}": dial tcp {addr}: connect: connection refused',
                f"call to {callee} failed: upstream connect error or disconnect/reset before "
                "headers. reset reason: connection failure, transport failure reason: delayed "
                "connect error: 111",
                f"request to {callee} failed: java.net.ConnectException: Connection refused",
                f"call to {callee} failed: httpx.ConnectError: [Errno 111] Connection refused",
            )
        )

    return msg


def _callers_fail(w: World, svc: str, at: datetime, direct: Callable[[], str]) -> list[str]:
    """Every call to ``svc`` fails from ``at`` on; its callers and the entry service follow."""
    rng = w.rng
    err = rng.uniform(0.25, 0.45)
    w.shift(svc, "rps", at, mul=0.02, ramp=40)  # nothing reaches its pods any more
    for callee in w.callees(svc):
        w.shift(callee, "rps", at, mul=rng.uniform(0.3, 0.6), ramp=60)
    path = w.path_to_entry(svc)
    start = at + sec(rng.uniform(5, 20))
    for caller in w.callers(svc):
        w.edge(caller, svc, "err", start, to=1.0, ramp=30)
    when = w.propagate(path[1:], start, err=err, lat=1.3, hops=(20, 60))
    when[svc] = at
    w.shift(path[1], "err", start, add=err * 0.2)  # the first caller fails hardest
    caller_logs(w, path, when, direct, every=(6, 25))
    symptoms(w, path, when, "errors")
    return path


def _service_edit(w: World) -> None:
    rng = w.rng
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    t0 = w.onset
    manager = _manager(w)
    if manager == w.gitops_manager:
        gitops_sync(w, t0 - sec(2), [("Service", w.ns, svc)])
    if rng.random() < 0.5:
        key, extra, value = rng.choice(SELECTORS)
        edit = ServiceEdit(t0, manager, selector={key: svc, extra: value})
        ip = w.cluster_ips[svc]
        direct = _refused(w, svc, ip=lambda: ip, port=wl.port)
        mode = "selector"
    else:
        port = rng.choice([p for p in (80, 8000, 8080, 9090, 3000) if p != wl.port])
        edit = ServiceEdit(t0, manager, target_port=port)
        direct = _refused(w, svc, ip=lambda: rng.choice(pod_ips(w, svc)), port=port)
        mode = "target-port"
    w.service_edits[svc] = edit
    path = _callers_fail(w, svc, t0 + sec(rng.uniform(1, 4)), direct)
    w.set_truth("Service", svc, svc, "routing", mode, propagation=path)


def _scaled_to_zero(w: World) -> None:
    rng = w.rng
    svc = rng.choice([s for s in [*w.mids, *w.leaves] if w.workloads[s].hpa is None])
    wl = w.workloads[svc]
    t0 = w.onset
    manager = rng.choice(("kubectl", w.gitops_manager, "kube-downscaler"))
    if manager == w.gitops_manager:
        gitops_sync(w, t0 - sec(2), [("Deployment", w.ns, svc)])
    rs = f"{wl.name}-{wl.current.hash}"
    alive = [p for p in wl.pods if p.alive(t0)]
    w.ev(
        "Deployment",
        svc,
        "ScalingReplicaSet",
        f"Scaled down replica set {rs} to 0 from {wl.replicas}",
        t0,
        component="deployment-controller",
    )
    for p in alive:
        gone = t0 + sec(rng.uniform(2, 25))
        w.ev(
            "ReplicaSet",
            rs,
            "SuccessfulDelete",
            f"Deleted pod: {p.name}",
            t0 + sec(0.2),
            component="replicaset-controller",
        )
        w.ev(
            "Pod",
            p.name,
            "Killing",
            f"Stopping container {wl.name}",
            t0 + sec(0.4),
            host=p.node,
            ns=wl.namespace,
        )
        p.deleted, p.ready, p.ready_changed = gone, False, t0
    w.scaled[svc] = (t0, manager)
    wl.replicas = 0
    ip = w.cluster_ips[svc]
    path = _callers_fail(w, svc, t0 + sec(1), _refused(w, svc, ip=lambda: ip, port=wl.port))
    w.set_truth(
        "Deployment", svc, svc, "routing", f"scaled-{manager}", propagation=path, aliases=[rs]
    )


def _route_edit(w: World) -> None:
    rng = w.rng
    route = entry_route(w)
    entry = w.workloads[w.entry]
    t0 = w.onset
    route.manager, route.changed = _manager(w), t0
    if route.manager == w.gitops_manager:
        gitops_sync(w, t0 - sec(2), [(route.kind, w.ns, route.name)])
    if rng.random() < 0.5:
        route.backend = rng.choice((f"{w.entry}-v2", f"{w.entry}-svc", f"{w.entry}-canary"))
        mode = "missing-service"
    else:
        route.port = rng.choice([p for p in (80, 443, 8443, 3000) if p != entry.port])
        mode = "wrong-port"
    if route.kind == "Ingress":
        for k in range(rng.choice((2, 3))):  # one per ingress-nginx controller replica
            w.ev(
                "Ingress",
                route.name,
                "Sync",
                "Scheduled for sync",
                t0 + sec(0.5 + k * rng.uniform(0.1, 0.6)),
                component="nginx-ingress-controller",
            )
    # Outside requests end at the edge with 503; what reaches the service is internal traffic.
    start = t0 + sec(rng.uniform(3, 10))
    err = rng.uniform(0.5, 0.8)
    keep = rng.uniform(0.05, 0.15)
    for svc in [w.entry, *w.callees(w.entry)]:
        w.shift(svc, "rps", start, mul=keep, ramp=40)
    w.shift(w.entry, "err", start, add=err, ramp=40)
    w.symptom(w.entry, "errors", start)
    w.set_truth(
        route.kind,
        route.name,
        route.name,
        "routing",
        f"{route.kind.lower()}-{mode}",
        propagation=[route.name, w.entry],
    )
