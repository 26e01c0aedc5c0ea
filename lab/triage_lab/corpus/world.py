"""One generated incident: when it happens, what the namespace holds (built by
:mod:`.cluster`), one-minute metric timelines per service, and the log lines, events, alerts and
ground truth that fault and noise modules add. :mod:`.render` writes it out."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from triage_lab.corpus import log_lines as L
from triage_lab.corpus.cluster import populate
from triage_lab.corpus.kube import event
from triage_lab.corpus.kube_control_plane import ControlPlane
from triage_lab.corpus.model import (
    ClaimObj,
    ConfigObj,
    LimitRangeObj,
    NodeInfo,
    Pod,
    PolicyObj,
    QuotaObj,
    RouteObj,
    ServiceEdit,
    Workload,
)
from triage_lab.corpus.names import REGISTRIES, Domain, cluster
from triage_lab.corpus.units import MIN, cores, mib, sec

__all__ = ["MIN", "World", "cores", "mib", "sec"]


@dataclass
class Symptom:
    service: str
    signal: str  # errors | latency
    departs: datetime


@dataclass
class Truth:
    kind: str
    name: str
    service: str
    category: str
    detail: str
    namespace: str
    aliases: list[str] = field(default_factory=list)
    propagation: list[str] = field(default_factory=list)


@dataclass
class ExtraSeries:
    name: str
    kind: str  # gauge | counter
    labels: dict[str, str]
    values: list[float | None]


EdgeFx = tuple[str, str, str, datetime, Callable[[float, float], float], float]


class World:
    def __init__(self, rng: random.Random, domain: Domain, key: str) -> None:
        self.rng = rng
        self.key = key
        self.domain = domain
        day = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=rng.randrange(175))
        self.onset = day + timedelta(
            hours=rng.randrange(24), minutes=rng.randrange(60), seconds=rng.randrange(60)
        )
        before, after = rng.randint(42, 55), rng.randint(15, 20)
        first = (self.onset - timedelta(minutes=before)).replace(second=rng.randrange(60))
        self.times = [first + i * MIN for i in range(before + after + 1)]
        self.start = self.times[0]
        self.now = self.times[-1] + sec(rng.randint(5, 50))
        self.ns = rng.choice(domain.namespaces)
        self.team = rng.choice(domain.teams)
        self.registry = rng.choice(REGISTRIES)
        self.cluster = cluster(rng, rng.randint(3, 5))
        self.kustomize = rng.random() < 0.5  # ConfigMaps with content-hash name suffixes
        self.group_by_namespace = rng.random() < 0.5
        self.workloads: dict[str, Workload] = {}
        self.edges: list[tuple[str, str]] = []
        self.configs: dict[str, ConfigObj] = {}
        self.policies: dict[str, PolicyObj] = {}
        self.app_config: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.edge_fx: list[EdgeFx] = []
        self.symptoms: list[Symptom] = []
        self.truth: Truth | None = None
        self.extra: list[ExtraSeries] = []
        self.certs: dict[str, datetime] = {}
        self.cluster_ips: dict[str, str] = {}
        # Traffic objects beyond the workloads (kube_routing.py renders them).
        self.service_edits: dict[str, ServiceEdit] = {}
        self.routes: list[RouteObj] = []
        self.scaled: dict[str, tuple[datetime, str]] = {}  # Deployment -> (when, manager)
        # Namespace limits and volumes (kube_storage.py renders them).
        self.quotas: list[QuotaObj] = []
        self.limit_ranges: list[LimitRangeObj] = []
        self.claims: list[ClaimObj] = []
        self.control_plane: ControlPlane | None = None  # the cluster's own components
        self.noise_alerts: list[dict[str, Any]] = []
        self._ips: dict[str, int] = {}
        self.pending: list[Callable[[], None]] = []
        self.nodes: list[NodeInfo] = []
        self.entry, self.db, self.cache = "", "", ""
        self.mids: list[str] = []
        self.leaves: list[str] = []
        self.ports: dict[str, int] = {}
        self.gitops_manager, self.git_sha = "", ""
        populate(self)

    # -- construction ---------------------------------------------------------------------------

    def callees(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def callers(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def path_to_entry(self, name: str) -> list[str]:
        """Services from ``name`` up to the entry service along callers (first caller each hop)."""
        path = [name]
        while path[-1] != self.entry:
            path.append(self.callers(path[-1])[0])
        return path

    # -- metric timelines ----------------------------------------------------------------------

    def _noise(self, sd: float, phi: float = 0.6) -> list[float]:
        x, out = 0.0, []
        for _ in self.times:
            x = phi * x + self.rng.gauss(0, sd)
            out.append(max(0.3, 1 + x))
        return out

    def baseline(self, w: Workload) -> None:
        rng = self.rng
        rev = w.current
        rps = {
            "entry": rng.uniform(80, 600),
            "mid": rng.uniform(40, 300),
            "leaf": rng.uniform(20, 200),
            "db": rng.uniform(300, 2500),
            "cache": rng.uniform(800, 6000),
            "dns": rng.uniform(150, 900),
        }[w.role]
        p99 = {
            "entry": rng.uniform(0.25, 0.6),
            "mid": rng.uniform(0.08, 0.3),
            "leaf": rng.uniform(0.03, 0.15),
            "db": rng.uniform(0.004, 0.03),
            "cache": rng.uniform(0.0008, 0.004),
            "dns": rng.uniform(0.002, 0.01),
        }[w.role]
        limit = cores(rev.cpu_limit)
        w.base = {
            "rps": rps,
            "err": rng.uniform(0.0005, 0.006) if w.role != "cache" else 0.0002,
            "p99": p99,
            "cpu": limit * rng.uniform(0.12, 0.35),
            "mem": mib(rev.mem_limit) * rng.uniform(0.3, 0.55),
            "thr": rng.uniform(0.002, 0.03) if rev.cpu_limit else 0.0,
        }
        drift = rng.uniform(-0.08, 0.08)
        n = len(self.times)
        trend = [1 + drift * i / n for i in range(n)]
        rps_n = self._noise(0.03)
        w.m["rps"] = [rps * t * z for t, z in zip(trend, rps_n, strict=True)]
        err = [w.base["err"] * z for z in self._noise(0.12, 0.3)]
        for i in range(n):
            if rng.random() < 0.04:
                err[i] *= rng.uniform(2, 5)  # the odd bad minute every service has
        w.m["err"] = err
        lat = [p99 * z for z in self._noise(0.06)]
        for i in range(n):
            if rng.random() < 0.03:
                lat[i] *= rng.uniform(1.4, 2.2)
        w.m["p99"] = lat
        w.m["cpu"] = [w.base["cpu"] * z for z in rps_n]
        mem_n = self._noise(0.01, 0.9)
        w.m["mem"] = [w.base["mem"] * (1 + 0.02 * i / n) * z for i, z in enumerate(mem_n)]
        w.m["thr"] = [w.base["thr"] * z for z in self._noise(0.25, 0.3)]

    def idx(self, t: datetime) -> int:
        for i, s in enumerate(self.times):
            if s >= t:
                return i
        return len(self.times)

    def shift(
        self,
        svc: str,
        metric: str,
        t0: datetime,
        *,
        to: float | None = None,
        mul: float | None = None,
        add: float | None = None,
        ramp: float = 90.0,
        until: datetime | None = None,
    ) -> None:
        """Move a service-level timeline from ``t0`` on (linear ramp over ``ramp`` seconds),
        keeping its minute-to-minute wobble."""
        w = self.workloads[svc]
        arr, base = w.m[metric], w.base[metric] or 1e-9
        for i, t in enumerate(self.times):
            if t < t0 or (until is not None and t >= until):
                continue
            f = min(1.0, ((t - t0).total_seconds() + 20) / ramp) if ramp else 1.0
            v = arr[i]
            wobble = min(1.25, max(0.8, v / base))
            if to is not None:
                target = to * wobble
            elif mul is not None:
                target = v * mul
            else:
                target = v + (add or 0.0) * wobble
            value = v + (target - v) * f
            arr[i] = min(value, 1.0) if metric in ("err", "thr") else value

    def edge(
        self,
        caller: str,
        callee: str,
        metric: str,
        t0: datetime,
        *,
        to: float | None = None,
        mul: float | None = None,
        ramp: float = 60.0,
    ) -> None:
        if to is not None:
            self.edge_fx.append((caller, callee, metric, t0, lambda v, f: v + (to - v) * f, ramp))
        else:
            m = mul if mul is not None else 1.0
            self.edge_fx.append(
                (caller, callee, metric, t0, lambda v, f: v * (1 + (m - 1) * f), ramp)
            )

    def propagate(
        self,
        path: Sequence[str],
        t0: datetime,
        *,
        err: float = 0.0,
        lat: float = 1.0,
        hops: tuple[int, int] = (45, 150),
    ) -> dict[str, datetime]:
        """The cause (``path[0]``) is already shifted at ``t0``; each caller up the path follows a
        little later and a little weaker."""
        when = {path[0]: t0}
        t = t0
        for k, svc in enumerate(path[1:], 1):
            t += sec(self.rng.randint(*hops))
            if err:
                self.shift(svc, "err", t, add=err * 0.8**k)
            if lat > 1:
                self.shift(svc, "p99", t, mul=1 + (lat - 1) * 0.85**k)
            when[svc] = t
        return when

    # -- logs ----------------------------------------------------------------------------------

    def say(
        self,
        p: Pod,
        t: datetime,
        level: str,
        msg: str,
        *,
        raw: bool = False,
        previous: bool = False,
        fields: dict[str, object] | None = None,
    ) -> None:
        w = self.workloads[p.workload]
        line = msg if raw else L.fmt(w.style, level, msg, self.rng, **(fields or {}))
        (p.prev_logs if previous else p.logs).append((t, line))

    def repeat(
        self,
        svc: str,
        t0: datetime,
        messages: Sequence[str] | Callable[[], str],
        *,
        t1: datetime | None = None,
        level: str = "error",
        every: tuple[int, int] = (15, 50),
        pods: Sequence[Pod] | None = None,
        **fields: object,
    ) -> None:
        """A message the service's running pods keep printing from ``t0`` on. Runs when the
        scenario is written, so pods that later changes add print it too."""
        self.pending.append(lambda: self._repeat(svc, t0, messages, t1, level, every, pods, fields))

    def _repeat(
        self,
        svc: str,
        t0: datetime,
        messages: Sequence[str] | Callable[[], str],
        t1: datetime | None,
        level: str,
        every: tuple[int, int],
        pods: Sequence[Pod] | None,
        fields: dict[str, object],
    ) -> None:
        w = self.workloads[svc]
        end = t1 or self.now
        for p in pods if pods is not None else w.pods:
            t = t0 + sec(self.rng.uniform(0, every[0]))
            while t < end:
                if p.running(t):
                    if callable(messages):
                        msg = messages()
                    else:
                        msg = L.fill(self.rng.choice(list(messages)), self.rng, ip=p.ip)
                    msg = msg.replace("{now}", t.strftime("%Y-%m-%dT%H:%M:%SZ"))
                    self.say(p, t, level, msg, fields=fields)
                t += sec(self.rng.uniform(*every))

    def ev(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        first: datetime,
        *,
        last: datetime | None = None,
        count: int = 1,
        warning: bool = False,
        component: str = "kubelet",
        host: str | None = None,
        ns: str | None = None,
    ) -> None:
        if first > self.now:
            return
        api = {
            "Deployment": "apps/v1",
            "ReplicaSet": "apps/v1",
            "StatefulSet": "apps/v1",
            "HorizontalPodAutoscaler": "autoscaling/v2",
            "Ingress": "networking.k8s.io/v1",
        }.get(kind, "v1")
        self.events.append(
            event(
                ns=ns or self.ns,
                kind=kind,
                name=name,
                reason=reason,
                message=message,
                first=first,
                last=min(last or first, self.now),
                count=count,
                warning=warning,
                component=component,
                host=host,
                seed=self.key,
                api=api,
            )
        )

    def set_truth(
        self,
        kind: str,
        name: str,
        service: str,
        category: str,
        detail: str,
        *,
        propagation: list[str],
        aliases: list[str] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.truth = Truth(
            kind=kind,
            name=name,
            service=service,
            category=category,
            detail=detail,
            namespace=self.ns if namespace is None else namespace,
            aliases=aliases or [],
            propagation=propagation,
        )

    def symptom(self, svc: str, signal: str, departs: datetime) -> None:
        self.symptoms.append(Symptom(svc, signal, departs))
