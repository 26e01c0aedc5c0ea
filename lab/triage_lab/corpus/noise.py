"""What a real namespace has going on besides the incident: other teams' rollouts (one of them
close to the onset), config edits, transient probe failures, and alerts that fire or flap for
reasons of their own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from triage_lab.corpus.alerts import selector
from triage_lab.corpus.changes import gitops_sync, reloader_rollout, rollout
from triage_lab.corpus.cluster_config import set_config
from triage_lab.corpus.world import MIN, ExtraSeries, World, sec
from triage_lab.fakes.kubernetes_objects import ts


def bump(tag: str, rng: Any, *, minor: bool | None = None) -> str:
    major, mi, patch = (int(x) for x in tag.split("."))
    if minor if minor is not None else rng.random() < 0.4:
        return f"{major}.{mi + 1}.0"
    return f"{major}.{mi}.{patch + 1}"


def add_noise(w: World) -> None:
    assert w.truth is not None
    rng = w.rng
    cause = w.truth.service
    apps = [w.entry, *w.mids, *w.leaves]
    others = [a for a in apps if a != cause and not w.workloads[a].rolled]
    rng.shuffle(others)
    if others and rng.random() < 0.8:
        benign_rollout(w, others.pop(), w.onset + sec(rng.uniform(-480, 150)))
    if others and rng.random() < 0.6:
        span = (w.onset - w.start).total_seconds() - 900
        benign_rollout(w, others.pop(), w.start + sec(rng.uniform(240, span)))
    if others and rng.random() < 0.35:
        hot_reload(w, others.pop())
    _transient_probe(w, cause)
    if rng.random() < 0.3:
        _hpa_at_max(w, cause)
    if rng.random() < 0.3:
        _batch_pod_pending(w)
    if rng.random() < 0.5 and w.workloads[w.entry].hpa is not None:
        t = w.start + sec(rng.uniform(0, 2400))
        w.ev(
            "HorizontalPodAutoscaler",
            w.entry,
            "FailedGetResourceMetric",
            "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics "
            "returned from resource metrics API",
            t,
            last=t + sec(rng.uniform(30, 240)),
            count=rng.randint(2, 6),
            warning=True,
            component="horizontal-pod-autoscaler",
        )
    kinds = ["latency", "throttling", "job", "disk"]
    rng.shuffle(kinds)
    for kind in kinds[: rng.choice((1, 1, 2))]:
        {
            "latency": _flapping_latency,
            "throttling": _throttling,
            "job": _failed_job,
            "disk": _disk,
        }[kind](w)


def benign_rollout(w: World, svc: str, at: Any) -> None:
    """A release, a ``kubectl rollout restart`` or a Secret rotation: all healthy."""
    rng = w.rng
    wl = w.workloads[svc]
    flavor = rng.choice(("release", "release", "release", "restart", "rotation"))
    if flavor == "rotation" and wl.current.env_secrets:
        reloader_rollout(w, svc, rng.choice(wl.current.env_secrets), at)
        return
    if flavor == "restart":
        annotations = dict(wl.current.annotations)
        annotations["kubectl.kubernetes.io/restartedAt"] = ts(at)
        rollout(w, wl, at, via="kubectl", annotations=annotations)
        return
    changes: dict[str, Any] = {}
    env = dict(wl.current.env)
    if rng.random() < 0.5:
        key = rng.choice(
            (
                "FEATURE_BULK_EXPORT",
                "FEATURE_NEW_CHECKOUT_COPY",
                "HTTP_IDLE_TIMEOUT",
                "OTEL_TRACES_SAMPLER_ARG",
                "LOG_LEVEL",
            )
        )
        env[key] = {
            "HTTP_IDLE_TIMEOUT": "90s",
            "OTEL_TRACES_SAMPLER_ARG": "0.05",
            "LOG_LEVEL": "info",
        }.get(key, "true")
        changes["env"] = env
    via = rng.choice(("gitops", "gitops", "ci"))
    if rng.random() < 0.35:
        cfg = w.app_config[svc]
        feature = rng.choice(sorted(cfg["features"]))
        cfg["features"][feature] = not cfg["features"][feature]
        cm = set_config(w, wl, cfg, at - sec(rng.uniform(5, 40)))
        changes["config"] = cm.name
        if via == "gitops":
            gitops_sync(w, at - sec(rng.uniform(5, 40)), [("ConfigMap", w.ns, cm.name)])
    rollout(w, wl, at, tag=bump(wl.current.tag, rng), via=via, **changes)
    w.shift(svc, "p99", at, mul=1.1, ramp=30, until=at + 3 * MIN)  # cold caches, nothing more


def hot_reload(w: World, svc: str) -> None:
    """A ConfigMap edit the service picks up without a restart."""
    rng = w.rng
    wl = w.workloads[svc]
    if w.kustomize:
        return  # hashed ConfigMaps always roll the Deployment; covered by benign_rollout
    cfg = w.app_config[svc]
    cfg.setdefault("limits", {})["max_page_size"] = rng.choice((100, 200, 500))
    at = w.start + sec(rng.uniform(300, (w.now - w.start).total_seconds() - 60))
    set_config(w, wl, cfg, at, manager=rng.choice(("kubectl-edit", w.gitops_manager)))
    w.repeat(
        svc,
        at + sec(rng.uniform(5, 40)),
        ["configuration reloaded from /etc/" + svc],
        t1=at + sec(60),
        level="info",
        every=(100, 120),
    )


def _hpa_at_max(w: World, cause: str) -> None:
    """An autoscaler that sits at maxReplicas all day without anyone noticing."""
    rng = w.rng
    pool = [wl for wl in w.workloads.values() if wl.hpa is not None and wl.name != cause]
    if not pool:
        return
    wl = rng.choice(pool)
    h = wl.hpa
    assert h is not None
    h.max_replicas = h.current
    h.limited = True
    h.utilization = h.target_cpu + rng.randint(3, 12)


def _batch_pod_pending(w: World) -> None:
    """A batch pod that waited for room a few minutes, long before or after the onset."""
    rng = w.rng
    n = len(w.nodes)
    owner = rng.choice([w.entry, *w.mids])
    t = w.start + sec(rng.uniform(60, (w.now - w.start).total_seconds() - 300))
    name = f"{owner}-report-{int(t.timestamp()) // 60}-" + "".join(
        rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
    )
    w.ev(
        "Pod",
        name,
        "FailedScheduling",
        f"0/{n} nodes are available: {n} Insufficient memory. preemption: 0/{n} nodes are "
        f"available: {n} No preemption victims found for incoming pod.",
        t,
        last=t + sec(rng.uniform(60, 240)),
        count=rng.randint(2, 6),
        warning=True,
        component="default-scheduler",
    )


def _transient_probe(w: World, cause: str) -> None:
    rng = w.rng
    candidates = [
        p
        for name, wl in w.workloads.items()
        if name != cause and wl.role in ("entry", "mid", "leaf")
        for p in wl.pods
        if p.deleted is None and p.started is not None
    ]
    if not candidates:
        return
    p = rng.choice(candidates)
    wl = w.workloads[p.workload]
    t = max(p.started or w.start, w.start) + sec(rng.uniform(60, 3000))
    probe = wl.revision(p.revision).readiness
    w.ev(
        "Pod",
        p.name,
        "Unhealthy",
        f'Readiness probe failed: Get "http://{p.ip}:{probe["port"]}{probe["path"]}": context '
        "deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        t,
        last=t + sec(rng.uniform(10, 40)),
        count=rng.randint(1, 3),
        warning=True,
        host=p.node,
        ns=wl.namespace,
    )


def _bystander(w: World, *, cpu_limit: bool = False) -> str | None:
    assert w.truth is not None
    path = set(w.truth.propagation) | {w.truth.service}
    pool = [
        n
        for n, wl in w.workloads.items()
        if n not in path
        and wl.role in ("mid", "leaf", "cache", "db")
        and (not cpu_limit or any(r.cpu_limit for r in wl.revisions))
    ]
    return w.rng.choice(pool) if pool else None


def _flapping_latency(w: World) -> None:
    rng = w.rng
    svc = _bystander(w)
    if svc is None:
        return
    wl = w.workloads[svc]
    t = w.start + sec(rng.uniform(0, 900))
    spikes = []
    while t < w.now:
        length = sec(rng.uniform(180, 420))
        spikes.append((t, t + length))
        w.shift(svc, "p99", t, mul=rng.uniform(2.8, 3.6), ramp=30, until=t + length)
        t += length + sec(rng.uniform(600, 1300))
    shown = [(s, e) for s, e in spikes if s + 2 * MIN < w.now]
    if not shown:
        return
    s, e = shown[-1]
    limit = wl.base["p99"] * 2.5
    lbl = {"namespace": wl.namespace, "service": svc}
    w.noise_alerts.append(
        dict(
            name=rng.choice(("ServiceLatencyHigh", "UpstreamLatencyWarning")),
            labels=lbl,
            expr=selector("service_p99_seconds", {"service": svc}),
            severity="warning",
            summary=f"{svc} p99 latency above {limit:.3g}s",
            description=f"p99 latency of {svc} has been above {limit:.3g}s for 2 minutes.",
            starts=s + 2 * MIN,
            ends=e + MIN if e + MIN <= w.now else None,
        )
    )


def _throttling(w: World) -> None:
    rng = w.rng
    svc = _bystander(w, cpu_limit=True)
    if svc is None:
        return _failed_job(w)
    wl = w.workloads[svc]
    level = rng.uniform(0.28, 0.4)
    starts = w.start + sec(rng.uniform(0, 2000))
    w.shift(svc, "thr", starts, to=level, ramp=120)
    lbl = {"namespace": wl.namespace, "service": svc}
    w.noise_alerts.append(
        dict(
            name="CPUThrottlingHigh",
            labels=lbl,
            expr=selector("service_throttled_ratio", {"service": svc}),
            severity="warning",
            summary=f"Processes in {svc} experience elevated CPU throttling.",
            description=f"{level:.0%} throttling of CPU in namespace {wl.namespace} for {svc}.",
            starts=starts + 15 * MIN if starts + 15 * MIN < w.now else w.now - MIN,
        )
    )


def _failed_job(w: World) -> None:
    rng = w.rng
    owner = rng.choice([w.entry, *w.mids])
    failed = w.start + sec(rng.uniform(0, (w.onset - w.start).total_seconds()))
    kind = rng.choice(("nightly-export", "report-rollup", "cleanup"))
    job = f"{owner}-{kind}-{int(failed.timestamp()) // 60}"
    lbl = {"namespace": w.ns, "job_name": job}
    w.extra.append(
        ExtraSeries(
            "job_failed", "gauge", {"job": job}, [1.0 if t >= failed else 0.0 for t in w.times]
        )
    )
    w.noise_alerts.append(
        dict(
            name="KubeJobFailed",
            labels=lbl,
            expr=selector("job_failed", {"job": job}),
            severity="warning",
            summary="Job failed to complete.",
            description=f"Job {w.ns}/{job} failed to complete. Removing failed job after "
            "investigation should clear this alert.",
            starts=failed + sec(rng.uniform(30, 90)),
        )
    )


def _disk(w: World) -> None:
    rng = w.rng
    node = rng.choice(w.nodes).name
    hi, lo = rng.uniform(0.115, 0.14), rng.uniform(0.07, 0.09)
    n = len(w.times)
    values: list[float | None] = [hi - (hi - lo) * i / n + rng.gauss(0, 0.001) for i in range(n)]
    crossing = next(
        (w.times[i] for i, v in enumerate(values) if v is not None and v < 0.1), w.times[-1]
    )
    lbl = {"node": node}
    w.extra.append(ExtraSeries("node_filesystem_avail_ratio", "gauge", lbl, values))
    w.noise_alerts.append(
        dict(
            name="NodeFilesystemAlmostFull",
            labels=lbl,
            expr=selector("node_filesystem_avail_ratio", lbl),
            severity="warning",
            summary="Filesystem has less than 10% space left.",
            description=f"Filesystem on {node} at / has less than 10% available space left.",
            starts=min(crossing + 5 * MIN, w.now - timedelta(seconds=30)),
        )
    )
