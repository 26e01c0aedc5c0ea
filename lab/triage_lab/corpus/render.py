"""A :class:`~triage.corpus.world.World` written out as the scenario files' content."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from triage_lab.corpus import (
    kube,
    kube_config,
    kube_control_plane,
    kube_nodes,
    kube_pods,
    kube_routing,
    kube_storage,
    kube_workloads,
)
from triage_lab.corpus import log_lines as L
from triage_lab.corpus.model import Pod, Workload
from triage_lab.corpus.render_pods import POD_FAMILIES, pod_series
from triage_lab.corpus.world import World, sec
from triage_lab.scenarios import KubeObjects, LogStream

# name -> (type, help). Per-service series for every service; per-pod series (``pod``,
# ``version``) for the services that rolled out inside the window; call edges by caller/callee.
FAMILIES = {
    "service_request_rate": ("gauge", "Requests per second served by the service."),
    "service_error_ratio": (
        "gauge",
        "Share of the service's requests that failed (5xx, timeouts).",
    ),
    "service_p99_seconds": ("gauge", "99th percentile of the service's response time."),
    "service_cpu_cores": ("gauge", "CPU used by all of the service's pods."),
    "service_memory_bytes": ("gauge", "Working set of the service's largest pod."),
    "service_throttled_ratio": ("gauge", "Highest share of CFS periods throttled among its pods."),
    "service_restarts": ("counter", "Container restarts of the service's current pods."),
    "pod_error_ratio": ("gauge", "Share of the pod's requests that failed."),
    "edge_error_ratio": (
        "gauge",
        "Share of caller-to-callee requests that failed, seen by the caller.",
    ),
    "edge_request_duration_p99_seconds": (
        "gauge",
        "99th percentile of caller-to-callee request time, seen by the caller.",
    ),
    "node_ready": ("gauge", "1 while the node's Ready condition is True."),
    "hpa_current_replicas": ("gauge", "Replicas the HorizontalPodAutoscaler runs."),
    "tls_cert_not_after_seconds": ("gauge", "notAfter of the certificate in the Secret."),
    "job_failed": ("gauge", "1 when the Job failed."),
    "node_filesystem_avail_ratio": (
        "gauge",
        "Free share of the filesystem mounted at / on the node.",
    ),
}


def kube_objects(w: World) -> KubeObjects:
    seed = w.key
    k = KubeObjects()
    spaces = sorted({wl.namespace for wl in w.workloads.values()})
    for ns in spaces:
        created = min(wl.created for wl in w.workloads.values() if wl.namespace == ns)
        k.namespaces.append(kube.namespace(ns, created - timedelta(hours=1), seed))
    for n in w.nodes:
        k.nodes.append(
            kube_nodes.node(
                n, kubelet=w.cluster.kubelet, itype=w.cluster.instance_type, now=w.now, seed=seed
            )
        )
    for wl in w.workloads.values():
        if wl.kind == "Deployment":
            k.deployments.append(kube_workloads.deployment(wl, w.now, seed))
            k.replicasets += [kube_workloads.replicaset(wl, r, seed) for r in wl.revisions]
        else:
            k.statefulsets.append(kube_workloads.statefulset(wl, w.now, seed))
            k.controllerrevisions += [
                kube_workloads.controllerrevision(wl, r, seed) for r in wl.revisions
            ]
        k.pods += [kube_pods.pod(wl, p, w.now, seed) for p in wl.pods if p.deleted is None]
        if wl.hpa is not None:
            k.horizontalpodautoscalers.append(kube_workloads.hpa(wl, wl.hpa, w.now, seed))
        if wl.name in w.cluster_ips:
            k.services.append(kube_config.service(wl, w.cluster_ips[wl.name], seed))
    for c in w.configs.values():
        target = k.configmaps if c.kind == "ConfigMap" else k.secrets
        target.append(kube_config.config_obj(c, seed))
    k.networkpolicies = [kube_config.network_policy(p, seed) for p in w.policies.values()]
    kube_routing.add_traffic_objects(w, k)
    kube_storage.add_constraint_objects(w, k)
    k.events = sorted(w.events, key=lambda e: (e["lastTimestamp"], e["metadata"]["name"]))
    kube_control_plane.add_objects(w, k)
    for kind in (
        "pods",
        "replicasets",
        "configmaps",
        "secrets",
        "services",
        "deployments",
        "networkpolicies",
    ):
        objs: list[dict[str, Any]] = k.of(kind)
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return k


# -- logs -----------------------------------------------------------------------------------------


def log_streams(w: World) -> list[LogStream]:
    for job in w.pending:
        job()
    w.pending.clear()
    rng = w.rng
    hosts = [f"{n}.{w.ns}.svc.cluster.local" for n in w.cluster_ips if n != "coredns"]
    for wl in w.workloads.values():
        warnings = rng.sample(L.BENIGN_WARNINGS, 2)
        periods = [rng.uniform(360, 1300) for _ in warnings]
        error_every = rng.uniform(900, 2400) if rng.random() < 0.5 else 0.0
        callers = [p for c in w.callers(wl.name) for p in w.workloads[c].pods]
        for p in wl.pods:
            if p.deleted is not None or p.quiet or p.started is None or p.unreachable:
                continue
            since = max(w.start, p.started)
            _baseline(w, wl, p, since, hosts, callers)
            if wl.role in ("db", "cache", "dns", "gitops"):
                continue
            for msg, period in zip(warnings, periods, strict=True):
                t = since + sec(rng.uniform(0, period))
                while t < w.now:
                    p.logs.append((t, L.fmt(wl.style, "warn", L.fill(msg, rng), rng)))
                    t += sec(period * rng.uniform(0.8, 1.2))
            if error_every:
                t = since + sec(rng.uniform(0, error_every))
                while t < w.now:
                    msg = L.fill(rng.choice(L.BENIGN_ERRORS), rng, ip=p.ip)
                    p.logs.append((t, L.fmt(wl.style, "error", msg, rng)))
                    t += sec(error_every * rng.uniform(0.7, 1.3))
    out: list[LogStream] = []
    for wl in w.workloads.values():
        for p in wl.pods:
            if p.deleted is not None or p.unreachable:
                continue
            for previous, lines in ((False, p.logs), (True, p.prev_logs)):
                end = min(w.now, p.dark_since or w.now)
                kept = sorted((t, m) for t, m in lines if t <= end)
                if not kept and (previous or p.started is None):
                    continue
                out.append(
                    LogStream(
                        namespace=wl.namespace,
                        pod=p.name,
                        container=wl.name,
                        previous=previous,
                        lines=[f"{L.stamp(t)} {m}" for t, m in kept],
                    )
                )
    out += kube_control_plane.log_streams(w)
    return sorted(out, key=lambda s: (s.namespace, s.pod, s.previous))


def _baseline(
    w: World, wl: Workload, p: Pod, since: datetime, hosts: list[str], callers: list[Pod]
) -> None:
    rng = w.rng
    if wl.role == "gitops":
        t = since + sec(rng.uniform(0, 180))
        while t < w.now:
            if wl.style == "argocd":
                line = L.fmt(
                    "argocd",
                    "info",
                    "Reconciliation completed",
                    rng,
                    application=f"argocd/{w.ns}-apps",
                    dedup_ms=0,
                    diff_ms=rng.randint(3, 40),
                    git_ms=rng.randint(20, 400),
                )
            else:
                line = L.fmt(
                    "flux",
                    "info",
                    f"Reconciliation finished in {rng.uniform(0.4, 3):.1f}s, next run in 5m0s",
                    rng,
                    name=f"{w.ns}-apps",
                    namespace="flux-system",
                    revision=f"main@sha1:{w.git_sha}",
                )
            p.logs.append((t, line))
            t += sec(rng.uniform(170, 190))
        return
    every, pool = {
        "db": ((150, 330), L.PG_BASELINE),
        "cache": ((200, 420), L.REDIS_BASELINE),
        "dns": ((60, 170), L.COREDNS_BASELINE),
    }.get(wl.role, ((100, 260), ()))
    t = since + sec(rng.uniform(0, every[0]))
    noun = rng.choice(w.domain.nouns)
    while t < w.now:
        if pool:
            src = rng.choice(callers).ip if callers else "10.0.0.1"
            if wl.role == "dns":
                src = rng.choice([q.ip for x in w.workloads.values() for q in x.pods if q.ip])
            msg = L.fill(rng.choice(pool), rng, ip=src, host=rng.choice(hosts))
            line = L.fmt(wl.style, "info", msg, rng)
        else:
            client = (
                rng.choice(callers).ip
                if callers
                else f"10.0.{rng.randrange(1, 9)}.{rng.randrange(2, 250)}"
            )
            line = L.access(wl.style, rng, noun, client)[1]
        p.logs.append((t, line))
        t += sec(rng.uniform(*every))


# -- metrics --------------------------------------------------------------------------------------


def openmetrics(w: World, *, per_pod: bool = False) -> str:
    """The world's series; ``per_pod``: resources per pod and container, as cAdvisor and
    kube-state-metrics publish them, instead of per service."""
    rng = w.rng
    fam: dict[str, list[tuple[dict[str, str], list[float | None]]]] = {
        n: [] for n in (*FAMILIES, *POD_FAMILIES)
    }
    n = len(w.times)
    for wl in w.workloads.values():
        if wl.role == "gitops":
            continue
        # As kube-state-metrics and cAdvisor label them: every series knows its namespace.
        svc = {"namespace": wl.namespace, "service": wl.name}
        fam["service_request_rate"].append((svc, list(wl.m["rps"])))
        fam["service_error_ratio"].append((svc, list(wl.m["err"])))
        fam["service_p99_seconds"].append((svc, list(wl.m["p99"])))
        per_pod_values = {
            m: [_pod_series(w, wl, p, m) for p in wl.pods] for m in ("cpu", "mem", "thr", "err")
        }
        restarts = [_restarts(w, p) for p in wl.pods]
        agg: dict[str, list[float | None]] = {
            "cpu": [_agg(sum, (s[i] for s in per_pod_values["cpu"])) for i in range(n)],
            "mem": [_agg(max, (s[i] for s in per_pod_values["mem"])) for i in range(n)],
            "thr": [_agg(max, (s[i] for s in per_pod_values["thr"])) for i in range(n)],
            "restarts": [_agg(sum, (s[i] for s in restarts)) for i in range(n)],
        }
        if per_pod:
            pod_series(fam, wl, per_pod_values, restarts)
        else:
            if wl.role not in ("db", "cache", "dns"):  # fewer series: CPU of add-ons says little
                fam["service_cpu_cores"].append((svc, agg["cpu"]))
            if wl.role != "dns":
                fam["service_memory_bytes"].append((svc, agg["mem"]))
            if any(r.cpu_limit for r in wl.revisions):  # no CPU limit, no CFS quota to throttle
                fam["service_throttled_ratio"].append((svc, agg["thr"]))
            fam["service_restarts"].append((svc, agg["restarts"]))
        if not wl.rolled:
            continue
        for k, p in enumerate(wl.pods):
            lbl = svc | {"pod": p.name, "version": wl.revision(p.revision).tag}
            fam["pod_error_ratio"].append((lbl, per_pod_values["err"][k]))
    for a, b in w.edges:
        share = (
            rng.uniform(2, 6) if w.workloads[b].role in ("db", "cache") else rng.uniform(0.3, 1.2)
        )
        wa, wb = w.workloads[a], w.workloads[b]
        rps: list[float | None] = [v * share for v in wa.m["rps"]]
        err: list[float | None] = [min(1.0, v * rng.uniform(0.9, 1.1)) for v in wb.m["err"]]
        lat = _edge_latency(w, a, b)
        for caller, callee, metric, t0, fx, ramp in w.edge_fx:
            if (caller, callee) != (a, b):
                continue
            target = rps if metric == "rps" else lat if metric == "p99" else err
            for i, t in enumerate(w.times):
                v = target[i]
                if t >= t0 and v is not None:
                    f = min(1.0, ((t - t0).total_seconds() + 20) / ramp)
                    target[i] = fx(v, f)
        edge = {"namespace": wa.namespace, "caller": a, "callee": b}
        fam["edge_error_ratio"].append((edge, err))
        fam["edge_request_duration_p99_seconds"].append((edge, lat))
    for node in w.nodes:
        down = node.not_ready_since
        fam["node_ready"].append(
            ({"node": node.name}, [0.0 if down and t >= down else 1.0 for t in w.times])
        )
    for wl in w.workloads.values():
        if wl.hpa is None:
            continue
        cur: list[float | None] = [float(_step(wl.hpa.history, t)) for t in w.times]
        hpa = {"namespace": wl.namespace, "service": wl.name}
        fam["hpa_current_replicas"].append((hpa, cur))
    for name, expiry in w.certs.items():
        owner = w.workloads.get(name.removesuffix("-tls"))
        ns = {"namespace": owner.namespace} if owner else {}
        lbl = ns | {"service": name.removesuffix("-tls"), "secret": name}
        fam["tls_cert_not_after_seconds"].append((lbl, [float(int(expiry.timestamp()))] * n))
    for x in w.extra:
        fam[x.name].append((x.labels, x.values))
    return _text(w, fam)


def _edge_latency(w: World, a: str, b: str) -> list[float | None]:
    """What the caller waits for: the callee's own time plus the wire and the client's overhead.
    Its own random stream, so the other series stay as they were."""
    rng = random.Random(f"{w.key}/edge/{a}/{b}")
    wire = rng.uniform(0.0004, 0.002)
    return [v * rng.uniform(1.02, 1.1) + wire for v in w.workloads[b].m["p99"]]


def _step(history: list[tuple[datetime, int]], t: datetime) -> int:
    value = history[0][1]
    for at, v in history:
        if at <= t:
            value = v
    return value


def _agg(fn: Any, values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(fn(present)) if present else None


def _pod_series(w: World, wl: Workload, p: Pod, metric: str) -> list[float | None]:
    out: list[float | None] = []
    ran = p.started is not None or bool(p.restarts) or p.last is not None
    fx = p.over.get(metric)
    for i, t in enumerate(w.times):
        if not p.alive(t) or not ran or (p.dark_since is not None and t >= p.dark_since):
            out.append(None)
            continue
        v = wl.m[metric][i] * (p.jitter if metric in ("cpu", "mem") else 1.0)
        v *= 1 + w.rng.gauss(0, 0.02)
        if fx is not None:
            v = fx(i, v)
        out.append(max(0.0, min(v, 1.0)) if metric in ("err", "thr") else max(0.0, v))
    return out


def _restarts(w: World, p: Pod) -> list[float | None]:
    return [float(sum(1 for r in p.restarts if r <= t)) if p.alive(t) else None for t in w.times]


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def _text(w: World, fam: dict[str, list[tuple[dict[str, str], list[float | None]]]]) -> str:
    stamps = [str(int(t.timestamp())) for t in w.times]
    out: list[str] = []
    for name in sorted(fam):
        series = fam[name]
        if not series:
            continue
        kind, help_text = FAMILIES.get(name) or POD_FAMILIES[name]
        out.append(f"# TYPE {name} {kind}\n# HELP {name} {help_text}\n")
        sample = f"{name}_total" if kind == "counter" else name
        for labels, values in sorted(series, key=lambda s: sorted(s[0].items())):
            body = ",".join(f'{k}="{v}"' for k, v in labels.items())
            prefix = f"{sample}{{{body}}} "
            out += [
                f"{prefix}{_num(v)} {stamps[i]}\n" for i, v in enumerate(values) if v is not None
            ]
    out.append("# EOF\n")
    return "".join(out)
