"""Pod logs mined into templates (drain3): templates that are new, or spiking, in the incident
window compared with the baseline window become evidence with counts and examples."""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from collectors.contracts import Evidence, EvidenceItem, IncidentView, Neighbours, TimeWindow
from collectors.kubernetes.common import (
    CLUSTER_NAMESPACES,
    alerting_workloads,
    cluster_pods,
    daemon_pods,
    in_scope,
    in_trouble,
    meta,
    nodes_in_question,
    nodes_named,
    service_of,
    ts,
)
from collectors.sources import KubeSource
from triage.errors import CollectorError

_ERRORISH = re.compile(
    r"\b(error|err|exception|panic|fatal|fail(ed|ure)?|refused|timeout|timed out|denied|"
    r"unavailable|expired|no such host|oom|killed|invalid|cannot|unable)\b",
    re.IGNORECASE,
)
# Resolver errors as Go, glibc, Python, Java and Node print them.
_NAME_RESOLUTION = re.compile(
    r"no such host|name resolution|name or service not known|nodename nor servname|"
    r"unknownhostexception|enotfound|eai_again|server misbehaving|nxdomain|"
    r"could not resolve|lookup \S+ on \S+|\bdns\b",
    re.IGNORECASE,
)
# The Service every pod's resolv.conf points at, on kubeadm, GKE, EKS and AKS alike.
DNS_SERVICE = ("kube-system", "kube-dns")
_HINTS = [
    (re.compile(r"x509|certificate", re.I), "certificate_expiry"),
    (_NAME_RESOLUTION, "dns_failure"),
    (re.compile(r"out of memory|oom", re.I), "resource_exhaustion"),
    (re.compile(r"config|yaml|parse|missing (key|setting)", re.I), "config_change"),
    (
        re.compile(r"secret|credential|password|unauthori[sz]ed|permission denied", re.I),
        "secret_change",
    ),
    (
        re.compile(r"connection refused|i/o timeout|dial tcp|unavailable|upstream", re.I),
        "dependency_failure",
    ),
]


@dataclass
class _Template:
    baseline: int = 0
    incident: int = 0
    example: str = ""
    first: datetime | None = None
    pods: set[str] = field(default_factory=set)


def _miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.5
    return TemplateMiner(config=config)


def split_line(line: str) -> tuple[datetime | None, str]:
    stamp, _, message = line.partition(" ")
    try:
        return ts(stamp), message
    except ValueError:
        return None, line


class LogsCollector:
    name = "logs"

    def __init__(
        self,
        source: KubeSource,
        *,
        max_pods_per_service: int = 3,
        max_services_per_namespace: int = 12,
        tail_lines: int = 2000,
        neighbours: Neighbours | None = None,
    ) -> None:
        self._source = source
        self._max_pods = max_pods_per_service
        self._max_services = max_services_per_namespace
        self._tail = tail_lines
        self._neighbours = neighbours

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        namespaces, _, scope_error = await in_scope(incident, window, self._neighbours)
        if not namespaces:
            return Evidence(collector=self.name, status="no_data", error="alert has no namespace")
        alerting = alerting_workloads(incident)
        try:
            listed = await asyncio.gather(
                *(
                    cluster_pods(self._source, ns)
                    if ns in CLUSTER_NAMESPACES
                    else self._source.list("pods", ns)
                    for ns in namespaces
                )
            )
            pods = [(ns, p) for ns, found in zip(namespaces, listed, strict=True) for p in found]
            # The cluster's per-node agents only on the nodes the pods say matter.
            near = nodes_in_question(
                [{"pods": [p for _, p in pods]}], alerting, nodes_named(incident)
            )
            for ns in namespaces:
                if ns in CLUSTER_NAMESPACES:
                    pods += [(ns, p) for p in await daemon_pods(self._source, ns, near)]
        except CollectorError as exc:
            return Evidence(collector=self.name, status="error", error=str(exc))
        fetches = []
        for svc, ns, pod in chosen_pods(pods, alerting, self._max_services, self._max_pods):
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            for c in (pod.get("spec") or {}).get("containers") or []:
                cname = c.get("name", "")
                restarted = any(s.get("name") == cname and s.get("restartCount") for s in statuses)
                for previous in (False, True) if restarted else (False,):
                    fetches.append((svc, ns, str(meta(pod).get("name")), cname, previous))
        texts = await asyncio.gather(
            *(
                self._source.logs(ns, pod, c, previous=prev, tail_lines=self._tail)
                for _, ns, pod, c, prev in fetches
            ),
            return_exceptions=True,
        )
        per_service: dict[str, list[tuple[str, str]]] = {}
        failures = 0
        for (svc, _, pod_name, _, _), text in zip(fetches, texts, strict=True):
            if isinstance(text, BaseException):
                failures += 1
                continue
            per_service.setdefault(svc, []).extend((pod_name, ln) for ln in text.splitlines() if ln)
        by_ip, resolver = await self._service_ips(namespaces, pods)
        items = []
        for svc in sorted(per_service):
            for item in self.mine(svc, per_service[svc], window):
                item = _name_ips(item, by_ip)
                if item.fault_hint == "dns_failure" and resolver and resolver != svc:
                    # Failed lookups are the resolver's to explain, whatever name they asked.
                    detail = f"{item.detail} (name resolution is served by {resolver})"
                    item = item.model_copy(update={"detail": detail})
                items.append(item)
        status = "ok" if items else ("error" if failures and not per_service else "no_data")
        said = [f"{failures} log stream(s) unavailable"] if failures else []
        if not items and not failures:
            said.append(f"no unusual log patterns in {len(fetches)} container log(s)")
        return Evidence(
            collector=self.name,
            status=status,
            items=items,
            error="; ".join(said + ([scope_error] if scope_error else [])) or None,
            duration_s=time.monotonic() - started,
        )

    async def _service_ips(
        self, namespaces: list[str], pods: list[tuple[str, dict[str, Any]]]
    ) -> tuple[dict[str, str], str | None]:
        """ClusterIP -> the workload behind that Service: errors often name an address
        (``lookup x on 10.96.0.10:53``), and the Service's selector says whose pods answer.
        Also the cluster DNS workload, when its namespace is in scope."""
        found: dict[str, str] = {}
        resolver = None
        for ns in namespaces:
            try:
                services = await self._source.list("services", ns)
            except CollectorError:
                continue
            for svc in services:
                spec = svc.get("spec") or {}
                ip = spec.get("clusterIP")
                if not ip or ip == "None":
                    continue
                selector = spec.get("selector") or {}
                backing = [
                    service_of(p)
                    for pns, p in pods
                    if pns == ns
                    and selector
                    and selector.items() <= (meta(p).get("labels") or {}).items()
                ]
                found[ip] = backing[0] if backing else str(meta(svc).get("name", ""))
                if (ns, meta(svc).get("name")) == DNS_SERVICE:
                    resolver = found[ip]
        return found, resolver

    @staticmethod
    def mine(svc: str, lines: list[tuple[str, str]], window: TimeWindow) -> list[EvidenceItem]:
        """(pod, timestamped line) pairs of one service -> new or spiking error templates."""
        miner = _miner()
        templates: dict[int, _Template] = {}
        base_s = max((window.onset - window.start).total_seconds(), 1)
        inc_s = max((window.end - window.onset).total_seconds(), 1)
        for pod, line in sorted(lines, key=lambda pl: pl[1]):
            at, message = split_line(line)
            if at is None or not window.start <= at <= window.end:
                continue
            result = miner.add_log_message(message)
            t = templates.setdefault(result["cluster_id"], _Template())
            if at < window.onset:
                t.baseline += 1
            else:
                t.incident += 1
                t.pods.add(pod)
                if t.first is None or at < t.first:
                    t.first = at
                    t.example = message[:300]
        items = []
        for cid, t in templates.items():
            if t.incident == 0:
                continue
            rate_ratio = (t.incident / inc_s) / ((t.baseline + 0.5) / base_s)
            errorish = bool(_ERRORISH.search(t.example))
            new = t.baseline == 0
            if not (new or rate_ratio >= 3) or (not errorish and not new):
                continue
            score = (0.45 if new else 0.3) + (0.3 if errorish else 0.0)
            score += 0.15 * (1 - math.exp(-t.incident / 20))
            template = miner.drain.id_to_cluster[cid].get_template()
            hint = next((h for rx, h in _HINTS if rx.search(template)), None)
            items.append(
                EvidenceItem(
                    id=f"logs-{svc}-{_slug(template)}",
                    kind="log_pattern",
                    summary=(
                        f"{'New' if new else 'Spiking'} log template in {svc}: "
                        f"'{template[:160]}' {t.incident}x in the incident window"
                        f" (baseline {t.baseline}x)"
                    ),
                    detail=f"example: {t.example}",
                    subject=svc,
                    timestamp=t.first,
                    score=min(score, 0.95),
                    fault_hint=hint,
                )
            )
        return sorted(items, key=lambda i: (-i.score, i.id))[:5]


def chosen_pods(
    pods: list[tuple[str, dict[str, Any]]],
    alerting: set[str],
    max_services: int,
    max_pods: int,
) -> list[tuple[str, str, dict[str, Any]]]:
    """(service, namespace, pod) whose logs to read: per namespace at most ``max_services``
    services, those the alerts name first, then those with pods in trouble, then the rest by
    name; per service at most ``max_pods`` pods, the troubled first. A namespace of 500
    workloads costs what one of 12 does, and the ones that matter are never the ones left out."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ns, pod in sorted(pods, key=lambda x: str(meta(x[1]).get("name"))):
        by_service.setdefault((ns, service_of(pod)), []).append(pod)
    per_ns: dict[str, list[tuple[tuple[bool, bool, str], str, list[dict[str, Any]]]]] = {}
    for (ns, svc), members in by_service.items():
        troubled = any(in_trouble(p) for p in members)
        rank = (svc not in alerting, not troubled, svc)
        per_ns.setdefault(ns, []).append((rank, svc, members))
    out = []
    for ns in sorted(per_ns):
        for _, svc, members in sorted(per_ns[ns])[:max_services]:
            members = sorted(members, key=lambda p: not in_trouble(p))  # stable: by name within
            out += [(svc, ns, pod) for pod in members[:max_pods]]
    return sorted(out, key=lambda x: (x[0], x[1], str(meta(x[2]).get("name"))))


def _slug(template: str) -> str:
    import hashlib

    return hashlib.sha256(template.encode()).hexdigest()[:10]


_IP = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?\b")


def _name_ips(item: EvidenceItem, by_ip: dict[str, str]) -> EvidenceItem:
    named = sorted(
        {by_ip[ip] for ip in _IP.findall(f"{item.summary} {item.detail}") if ip in by_ip}
    )
    if not named:
        return item
    return item.model_copy(update={"detail": f"{item.detail} (addresses of: {', '.join(named)})"})
