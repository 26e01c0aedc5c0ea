"""Faults a Deployment's new revision brings: a broken image, a memory limit too small, a CPU
limit too small, a wrong probe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from triage_lab.corpus.changes import crashloop, rollout, started_events
from triage_lab.corpus.faults._common import (
    caller_logs,
    crash_lines,
    degrade,
    image_pull_backoff,
    oom_killed,
    overloaded,
    refused,
    startup_lines,
    symptoms,
    system_oom,
    timeouts,
)
from triage_lab.corpus.noise import bump
from triage_lab.corpus.world import World, cores, mib, sec
from triage_lab.fakes.kubernetes_objects import ts

CLIENT_NAMES = ("Ledger", "Pricing", "Quota", "Audit", "Billing", "Tenant", "Region")


def bad_rollout(w: World, variant: int) -> None:
    rng = w.rng
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    mode = ("panic", "setting", "image")[variant % 3]
    t0 = w.onset
    tag = bump(wl.current.tag, rng, minor=True)
    rev, pods = rollout(w, wl, t0, healthy=False, tag=tag, via=rng.choice(("gitops", "ci")))
    image = f"{wl.repo}:{tag}"
    if mode == "image":
        for p in pods:
            image_pull_backoff(w, wl, p, image)
        err, lat = rng.uniform(0.07, 0.12), rng.uniform(2.2, 3.0)
        direct: list[str] | Callable[[], str] = [
            *timeouts(w, svc, rng.choice((800, 1000))),
            f"upstream {svc} returned 503 Service Unavailable",
        ]
        overloaded(w, svc, t0 + sec(30))
    else:
        detail = rng.choice(CLIENT_NAMES)
        crash, code = crash_lines(w, wl, "panic" if mode == "panic" else "setting", detail)
        for p in pods:
            crashloop(
                w,
                wl,
                p,
                p.started or p.created,
                startup=startup_lines(wl, tag),
                crash=crash,
                exit_code=code,
            )
            p.over["err"] = lambda i, v: max(v, rng.uniform(0.5, 0.95))
        err, lat = rng.uniform(0.15, 0.3), rng.uniform(1.5, 2.2)
        direct = refused(w, svc)
    start = t0 + sec(rng.uniform(10, 30))
    path = degrade(w, svc, start, err, lat, direct)
    w.set_truth(
        "Deployment",
        svc,
        svc,
        "bad_rollout",
        mode,
        propagation=path,
        aliases=[f"{svc}-{rev.hash}", image],
    )


def resource_exhaustion(w: World, variant: int) -> None:
    """A change that leaves the container less memory than it needs: OOMKilled over and over."""
    rng = w.rng
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    mode = ("limit", "heap", "rightsize")[variant % 3]
    old = wl.current
    need = wl.base["mem"]
    changes: dict[str, Any] = {}
    if mode == "limit" or (mode == "heap" and wl.style == "python" and rng.random() < 0.5):
        mode = "limit"
        limit = max(64.0, (need * rng.uniform(0.6, 0.8)) // mib("1Mi"))
        changes["mem_limit"] = f"{int(limit)}Mi"
    elif mode == "heap":
        env = dict(old.env)
        lim_mi = mib(old.mem_limit) / mib("1Mi")
        if wl.style == "java":
            env["JAVA_TOOL_OPTIONS"] = f"-Xms{int(lim_mi * 1.1)}m -Xmx{int(lim_mi * 1.1)}m"
        elif wl.style == "python":
            env["WEB_CONCURRENCY"] = "12"
        else:
            env["CACHE_MAX_ENTRIES"] = "4000000"
        changes["env"] = env
    else:
        limit = max(64.0, (need * rng.uniform(0.55, 0.75)) // mib("1Mi"))
        changes["mem_limit"] = f"{int(limit)}Mi"
        changes["mem_request"] = f"{int(limit * 0.8)}Mi"
        changes["cpu_request"] = "100m"
        changes["annotations"] = dict(old.annotations) | {
            "resources.example.com/recommendation": f"applied {ts(w.onset - sec(300))}"
        }
    t0 = w.onset
    rev, pods = rollout(w, wl, t0, healthy=True, tag=bump(old.tag, rng), via="gitops", **changes)
    limit_b = mib(rev.mem_limit)
    first_kill = None
    kills: dict[str, list[datetime]] = {}
    for p in pods:
        runs, ends = oom_killed(w, wl, p, kills, run=(140, 320))
        if ends:
            first_kill = min(first_kill or ends[0], ends[0])
        floor = need * rng.uniform(0.35, 0.5)

        def sawtooth(
            i: int, v: float, runs: list[tuple[datetime, datetime]] = runs, floor: float = floor
        ) -> float:
            t = w.times[i]
            for s, e in runs:
                if s <= t < e:
                    return floor + (limit_b * 0.99 - floor) * (t - s) / (e - s)
            return floor * 0.3

        p.over["mem"] = sawtooth
    killed = w.idx(first_kill or w.now)
    for p in pods:
        p.over["err"] = lambda i, v: v + 0.2 if i >= killed else v
    system_oom(w, wl, kills)
    start = first_kill or t0 + sec(200)
    err, lat = rng.uniform(0.12, 0.25), rng.uniform(1.6, 2.5)
    w.shift(svc, "err", start, add=err)
    w.shift(svc, "p99", start, mul=lat)
    path = w.path_to_entry(svc)
    when = w.propagate(path, start, err=err * 0.9, lat=lat)
    caller_logs(w, path, when, refused(w, svc))
    symptoms(w, path, when, "errors")
    w.set_truth(
        "Deployment",
        svc,
        svc,
        "resource_exhaustion",
        mode,
        propagation=path,
        aliases=[f"{svc}-{rev.hash}"],
    )


def cpu_throttling(w: World, variant: int) -> None:
    rng = w.rng
    apps = [*w.mids, *w.leaves]
    mode = ("limit", "workers", "added")[variant % 3]
    limited = [a for a in apps if w.workloads[a].current.cpu_limit]
    unlimited = [a for a in apps if not w.workloads[a].current.cpu_limit]
    if mode == "added" and not unlimited:
        mode = "limit"
    if mode != "added" and not limited:
        mode = "added"
    svc = rng.choice(unlimited if mode == "added" else limited)
    wl = w.workloads[svc]
    old = wl.current
    need = wl.base["cpu"]
    changes: dict[str, Any] = {}
    if mode == "workers":
        limit = cores(old.cpu_limit)
        env = dict(old.env)
        key = {"java": "SERVER_TOMCAT_THREADS_MAX", "python": "WEB_CONCURRENCY"}.get(
            wl.style, "WORKER_POOL_SIZE"
        )
        env[key] = "64"
        changes["env"] = env
        demand = limit * rng.uniform(1.6, 2.4)
    else:
        limit = max(0.1, round(need * rng.uniform(0.45, 0.6), 2))
        changes["cpu_limit"] = f"{int(limit * 1000)}m"
        demand = need
    t0 = w.onset
    rev, pods = rollout(w, wl, t0, healthy=True, tag=bump(old.tag, rng), **changes)
    start = t0 + sec(rng.uniform(20, 60))
    w.shift(svc, "cpu", start, to=limit * 0.93, ramp=60)
    w.shift(svc, "thr", start, to=min(0.9, rng.uniform(0.45, 0.6) * demand / limit), ramp=60)
    lat, err = rng.uniform(3.5, 6.0), rng.uniform(0.01, 0.03)
    w.shift(svc, "p99", start, mul=lat)
    w.shift(svc, "err", start, add=err)
    for p in pods:
        p.over["cpu"] = lambda i, v: min(v, limit * 0.99)
        probe = rev.readiness
        t = p.created + sec(rng.uniform(60, 200))
        w.ev(
            "Pod",
            p.name,
            "Unhealthy",
            f'Readiness probe failed: Get "http://{p.ip}:{probe["port"]}{probe["path"]}": context '
            "deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            t,
            last=w.now - sec(rng.uniform(5, 90)),
            count=rng.randint(4, 14),
            warning=True,
            host=p.node,
            ns=wl.namespace,
        )
    w.repeat(
        svc,
        start,
        [
            f"slow request: GET /api/v1/{rng.choice(w.domain.nouns)} took {{ms}}ms",
            "handler queue depth 128 exceeds soft limit 64",
        ],
        level="warn",
        every=(20, 60),
    )
    path = w.path_to_entry(svc)
    when = w.propagate(path, start, err=err, lat=lat)
    caller_logs(w, path, when, timeouts(w, svc, rng.choice((1000, 1500, 2000))), level="warn")
    symptoms(w, path, when, "latency")
    w.set_truth(
        "Deployment",
        svc,
        svc,
        "cpu_throttling",
        mode,
        propagation=path,
        aliases=[f"{svc}-{rev.hash}"],
    )


def probe_misconfiguration(w: World, variant: int) -> None:
    rng = w.rng
    svc = rng.choice([*w.mids, *w.leaves])
    wl = w.workloads[svc]
    wl.max_unavailable = "50%"
    mode = ("path", "port", "liveness")[variant % 3]
    old = wl.current
    t0 = w.onset
    tag = bump(old.tag, rng)
    if mode == "liveness":
        deep = {"java": "/actuator/health", "python": "/health"}.get(wl.style, "/healthz/deep")
        probe = dict(old.liveness, path=deep, timeout=1, period=5, failures=1, delay=5)
        rev, pods = rollout(w, wl, t0, healthy=True, tag=tag, liveness=probe)
        for p in pods:
            assert p.started is not None
            runs = crashloop(
                w,
                wl,
                p,
                p.started,
                startup=startup_lines(wl, tag),
                crash=[],
                exit_code=143,
                run=(35, 110),
                ready_when_running=True,
            )
            p.quiet = False
            kills = [e for _, e in runs if e <= w.now]
            if kills:
                url = f"http://{p.ip}:{probe['port']}{deep}"
                w.ev(
                    "Pod",
                    p.name,
                    "Unhealthy",
                    f'Liveness probe failed: Get "{url}": context deadline exceeded '
                    "(Client.Timeout exceeded while awaiting headers)",
                    kills[0] - sec(1),
                    last=kills[-1] - sec(1),
                    count=len(kills),
                    warning=True,
                    host=p.node,
                    ns=wl.namespace,
                )
                w.ev(
                    "Pod",
                    p.name,
                    "Killing",
                    f"Container {svc} failed liveness probe, will be restarted",
                    kills[0],
                    last=kills[-1],
                    count=len(kills),
                    host=p.node,
                    ns=wl.namespace,
                )
        start = t0 + sec(rng.uniform(60, 120))
        err, lat = rng.uniform(0.1, 0.2), rng.uniform(1.5, 2.2)
        direct: list[str] | Callable[[], str] = refused(w, svc)
    else:
        probe = dict(old.readiness)
        if mode == "path":
            probe["path"] = rng.choice(("/health/readiness", "/readyz/", "/api/ready", "/status"))
            failure = "HTTP probe failed with statuscode: 404"
        else:
            probe["port"] = rng.choice((9090, 8081, 9000))
            failure = None
        rev, pods = rollout(w, wl, t0, healthy=False, tag=tag, readiness=probe)
        for p in pods:
            started_events(w, wl, p, rev)
            p.ready, p.quiet = False, True  # never in the Service's endpoints: no traffic
            p.ready_changed = p.created
            url = f"http://{p.ip}:{probe['port']}{probe['path']}"
            msg = (
                failure
                or f'Get "{url}": dial tcp {p.ip}:{probe["port"]}: connect: connection refused'
            )
            w.ev(
                "Pod",
                p.name,
                "Unhealthy",
                f"Readiness probe failed: {msg}",
                p.created + sec(8),
                last=w.now - sec(rng.uniform(1, 9)),
                count=int((w.now - p.created).total_seconds() // 10),
                warning=True,
                host=p.node,
                ns=wl.namespace,
            )
            if mode == "path":
                w.repeat(
                    svc,
                    p.created + sec(8),
                    [f"GET {probe['path']} 404 0.2ms"],
                    level="info",
                    every=(20, 40),
                    pods=[p],
                )
        start = t0 + sec(rng.uniform(5, 20))
        overloaded(w, svc, start)
        err, lat = rng.uniform(0.06, 0.12), rng.uniform(2.2, 3.2)
        direct = [
            f"upstream {svc} returned 503 Service Unavailable",
            *timeouts(w, svc, rng.choice((800, 1000))),
        ]
    path = degrade(w, svc, start, err, lat, direct)
    w.set_truth(
        "Deployment",
        svc,
        svc,
        "probe_misconfiguration",
        mode,
        propagation=path,
        aliases=[f"{svc}-{rev.hash}"],
    )
