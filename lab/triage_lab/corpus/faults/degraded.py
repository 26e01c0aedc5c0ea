"""Faults that slow a service without breaking it, and one that hides in a crowd: added delay or
packet loss on one service's network (tc netem, a chaos experiment, a bad link), and a container
OOMKilled right after a release that rolled out every workload of the app at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from triage_lab.corpus.changes import gitops_sync, rollout
from triage_lab.corpus.faults._common import (
    caller_logs,
    oom_killed,
    symptoms,
    system_oom,
    timeouts,
)
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import MIN, World, mib, sec


def _style(style: str, go: str, java: str, python: str) -> str:
    return {"java": java, "python": python}.get(style, go)


def _slow_edges(w: World, target: str, t0: datetime, add: float, err: float) -> None:
    """Every caller's calls to ``target`` take ``add`` seconds longer (and fail ``err`` more):
    the packets, not the handler, are slow."""
    for c in w.callers(target):
        w.edge_fx.append((c, target, "p99", t0, lambda v, f: v + add * f, 60.0))
        if err:
            w.edge_fx.append((c, target, "err", t0, lambda v, f: min(1.0, v + err * f), 60.0))


def network(w: World, variant: int) -> None:
    rng = w.rng
    mode = ("delay", "loss", "dependency")[variant % 3]
    t0 = w.onset
    if mode == "dependency":
        # the datastore the most services use, else either
        stores = sorted((w.db, w.cache), key=lambda s: (-len(w.callers(s)), rng.random()))
        target = stores[0]
    else:
        apps = [*w.mids, *w.leaves]
        shared = [a for a in apps if len(w.callers(a)) > 1]
        target = rng.choice(shared or apps)
    wl = w.workloads[target]
    callers = w.callers(target)
    ip, port = w.cluster_ips[target], w.ports[target]
    if mode == "loss":
        # Retransmissions (200 ms minimum RTO) stretch the tail; some calls time out or reset.
        add, err = rng.uniform(0.25, 0.7), rng.uniform(0.03, 0.08)
    elif mode == "dependency":
        add, err = rng.uniform(0.04, 0.15), 0.0
    else:
        add, err = rng.uniform(0.15, 0.5), 0.0
    _slow_edges(w, target, t0, add, err)
    if mode == "delay":
        # netem delays the pod's egress: its own calls out wait too, its handler barely notices
        for callee in w.callees(target):
            w.edge_fx.append((target, callee, "p99", t0, lambda v, f: v + add * f, 60.0))
        if w.callees(target):
            w.shift(target, "p99", t0, add=add * rng.uniform(0.2, 0.4), ramp=60)
    w.shift(target, "rps", t0, mul=rng.uniform(0.9, 0.97), ramp=60)
    when: dict[str, datetime] = {target: t0}
    for k, c in enumerate(callers):
        t = t0 + sec(rng.uniform(5, 40))
        when[c] = t
        calls = rng.uniform(1.2, 3.0) if mode == "dependency" else rng.uniform(1.0, 1.5)
        w.shift(c, "p99", t, add=add * calls, ramp=60)
        if err:
            w.shift(c, "err", t, add=err * rng.uniform(0.6, 0.9), ramp=60)
        w.repeat(
            c,
            t,
            _caller_says(w, c, target, mode, ip, port),
            level="warn" if not err else "error",
            every=(8, 35) if k == 0 else (15, 60),
        )
    if mode == "loss":
        w.repeat(target, t0 + sec(20), _server_says(w, target), level="warn", every=(40, 140))
    path = w.path_to_entry(target)
    up = w.propagate(path[1:], when[path[1]], err=err * 0.7, lat=1.0 + add * 2, hops=(5, 40))
    when |= up
    caller_logs(
        w, path[1:], when, timeouts(w, path[1], rng.choice((1000, 1500, 2000))), level="warn"
    )
    symptoms(w, path, when, "errors" if mode == "loss" else "latency")
    w.set_truth(
        wl.kind,
        target,
        target,
        "network",
        mode,
        propagation=path,
        aliases=[f"{target}-0"] if wl.kind == "StatefulSet" else [],
    )


def _caller_says(w: World, caller: str, target: str, mode: str, ip: str, port: int) -> list[str]:
    style = w.workloads[caller].style
    if target == w.db:
        return [
            _style(
                style,
                f"slow query: SELECT took {{ms}}ms (host={target}.{w.ns}.svc.cluster.local)",
                "HikariPool-1 - Connection is not available, request timed out after 3000ms.",
                "sqlalchemy.exc.TimeoutError: QueuePool limit of size 20 overflow 10 reached, "
                "connection timed out, timeout 3.00",
            )
        ]
    if target == w.cache:
        return [
            _style(
                style,
                f"redis: read tcp {{ip}}:{{n}}->{ip}:{port}: i/o timeout",
                "io.lettuce.core.RedisCommandTimeoutException: Command timed out after "
                "200 millisecond(s)",
                "redis.exceptions.TimeoutError: Timeout reading from socket",
            )
        ]
    if mode == "loss":
        return [
            f"request to {target} failed: read tcp {{ip}}:{{n}}->{ip}:{port}: read: connection "
            "reset by peer",
            *timeouts(w, target, w.rng.choice((800, 1000, 1500))),
        ]
    return [f"slow upstream: {target} took {{ms}}ms", f"call to {target} exceeded 250ms budget"]


def _server_says(w: World, svc: str) -> Callable[[], str]:
    """The server writing a response the client already gave up on."""
    wl = w.workloads[svc]
    peers = [p.ip for c in w.callers(svc) for p in w.workloads[c].pods if p.ip]

    def msg() -> str:
        peer = f"{w.rng.choice(peers)}:{w.rng.randint(32768, 60999)}"
        return _style(
            wl.style,
            f"write tcp {{ip}}:{wl.port}->{peer}: write: broken pipe",
            "org.apache.catalina.connector.ClientAbortException: java.io.IOException: Broken pipe",
            "ConnectionResetError: [Errno 104] Connection reset by peer",
        )

    return msg


def mass_redeploy_oom(w: World, variant: int) -> None:
    """A release of the whole app (Helm upgrade, Argo CD sync): every workload gets a new
    ReplicaSet within seconds, all healthy but one, whose containers get OOMKilled."""
    rng = w.rng
    apps = [w.entry, *w.mids, *w.leaves]
    victim = rng.choice([*w.mids, *w.leaves])
    mode = ("image", "same-image", "resources")[variant % 3]
    release = w.onset - sec(rng.uniform(60, 120))
    via_git = rng.random() < 0.5
    if via_git:
        gitops_sync(w, release - sec(3), [("Deployment", w.ns, a) for a in apps])
    chart = f"{rng.randint(1, 3)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
    for a in apps:
        wl = w.workloads[a]
        old = wl.current
        at = release + sec(rng.uniform(0, 25))
        annotations = dict(old.annotations) | {"app.example.com/chart-version": chart}
        changes: dict[str, Any] = {"annotations": annotations}
        same = a == victim and mode == "same-image"
        tag = old.tag if same or (a != victim and rng.random() < 0.3) else bump(old.tag, rng)
        if a == victim and mode == "resources":
            need = wl.base["mem"]
            limit = max(64.0, (need * rng.uniform(0.6, 0.8)) // mib("1Mi"))
            changes |= {"mem_limit": f"{int(limit)}Mi", "mem_request": f"{int(limit * 0.8)}Mi"}
        rollout(w, wl, at, healthy=True, tag=tag, via="helm", **changes)
        if a != victim:
            w.shift(a, "p99", at, mul=1.15, ramp=30, until=at + 3 * MIN)  # cold caches
    wl = w.workloads[victim]
    rev = wl.current
    limit_b = mib(rev.mem_limit)
    need = wl.base["mem"]
    first_kill: datetime | None = None
    kills: dict[str, list[datetime]] = {}
    for p in [p for p in wl.pods if p.revision == rev.number]:
        assert p.started is not None
        end = max(w.onset + sec(rng.uniform(-20, 40)), p.started + sec(30))
        runs, ends = oom_killed(w, wl, p, kills, run=(90, 240), first_end=end)
        first_kill = min(first_kill or ends[0], ends[0])
        floor = need * rng.uniform(0.3, 0.5)

        def sawtooth(
            i: int, v: float, runs: list[tuple[datetime, datetime]] = runs, floor: float = floor
        ) -> float:
            t = w.times[i]
            for s, e in runs:
                if s <= t < e:
                    share = float(((t - s) / (e - s)) ** 0.7)  # fast, then slower
                    return floor + (limit_b * 0.99 - floor) * share
            return floor * 0.3

        p.over["mem"] = sawtooth
    assert first_kill is not None
    if mode == "same-image":
        # its own code did not change: its callers' new versions send it more work
        w.shift(victim, "rps", release + sec(30), mul=rng.uniform(1.4, 1.8), ramp=120)
    system_oom(w, wl, kills)
    killed = w.idx(first_kill)
    for p in wl.pods:
        p.over["err"] = lambda i, v: v + 0.2 if i >= killed else v
    err, lat = rng.uniform(0.12, 0.25), rng.uniform(1.6, 2.5)
    w.shift(victim, "err", first_kill, add=err)
    w.shift(victim, "p99", first_kill, mul=lat)
    path = w.path_to_entry(victim)
    when = w.propagate(path, first_kill, err=err * 0.9, lat=lat)
    refused = [
        f"call to {victim} failed: dial tcp {{ip}}:{wl.port}: connect: connection refused",
        f"upstream {victim} returned 503 Service Unavailable",
    ]
    caller_logs(w, path, when, refused)
    symptoms(w, path, when, "errors")
    w.set_truth(
        "Deployment",
        victim,
        victim,
        "resource_exhaustion",
        mode,
        propagation=path,
        aliases=[f"{victim}-{rev.hash}"],
    )
