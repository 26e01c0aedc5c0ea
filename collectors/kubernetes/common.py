"""Helpers every Kubernetes evidence family shares: which namespaces to read, object metadata,
the service an object belongs to, and how suspicious a change is from its timing alone. The
logs collectors (pod_logs, loki) read the same scope and names."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import EvidenceItem, IncidentView, Neighbours, TimeWindow
from collectors.identity import helm_name, identify_incident, namespaces_of, pod_owner
from collectors.sources import KubeSource
from triage.errors import CollectorError

# What one namespace listed, by resource kind ("deployments", "pods", ...).
Objects = dict[str, list[dict[str, Any]]]

# Changes up to this long before the baseline window still count as suspects.
CHANGE_LOOKBACK = timedelta(hours=2)
# How fast a change's suspicion fades with its distance before the onset.
CHANGE_DECAY_S = 1800.0
# A signal that began before the window start fades to this weight: ongoing background.
BACKGROUND_WEIGHT = 0.15
# How fast a signal's weight fades with how long before the window it began.
BACKGROUND_DECAY_S = 1800.0
# Cluster add-ons (DNS, CNI, ingress) that every workload depends on.
CLUSTER_NAMESPACES = ("kube-system",)
# The kubelet names the Secret a pod could not mount or read; pod states and events both say so.
MISSING_SECRET = re.compile(r"\bsecrets? \"[^\"]+\" not found", re.IGNORECASE)
# The DaemonSet controller labels its pods with this (Deployments' and StatefulSets' pods lack
# it): one per node, so a cluster namespace's grow with the cluster and are listed per node.
PER_NODE_LABEL = "pod-template-generation"
NODES_IN_QUESTION = 10
# Labels that name a node on alerts (kube-state-metrics' ``node``, and relabelled spellings).
NODE_LABELS = ("node", "kubernetes_node", "nodename", "k8s_node_name")
# The resources that own pods through a pod template.
WORKLOAD_RESOURCES = ("deployments", "statefulsets", "daemonsets")


def scope_namespaces(incident: IncidentView) -> list[str]:
    """The alerts' namespaces, plus the cluster's own, whose failures reach everyone."""
    found: set[str] = set()
    for labels in [incident.common_labels, *(a.labels for a in incident.alerts.values())]:
        found |= namespaces_of(labels)
    return sorted(found | set(CLUSTER_NAMESPACES)) if found else []


async def in_scope(
    incident: IncidentView, window: TimeWindow, neighbours: Neighbours | None
) -> tuple[list[str], list[str], str | None]:
    """The namespaces to read: the alerts' own and the cluster's, then their call-graph
    neighbours (also returned alone). Without a call graph the first stand: that is a weaker
    look, said in the error, not a failed one."""
    own = scope_namespaces(incident)
    if not own or neighbours is None:
        return own, [], None
    try:
        near = await neighbours.of([ns for ns in own if ns not in CLUSTER_NAMESPACES], window)
    except CollectorError as exc:
        return own, [], str(exc)
    return own + near, near, None


def alerting_workloads(incident: IncidentView) -> set[str]:
    """The workloads the alerts are about, by the names ``service_of`` gives their objects."""
    labels = [a.labels for a in incident.alerts.values()]
    return {w.name for w in identify_incident(incident.common_labels, labels)}


def in_trouble(pod: dict[str, Any]) -> bool:
    """Not running as it should: pending or failed, a container waiting, unready or restarted."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Running", "Succeeded"):
        return True
    return any(
        s.get("restartCount") or not s.get("ready", True) or "waiting" in (s.get("state") or {})
        for s in status.get("containerStatuses") or []
    )


def nodes_named(incident: IncidentView) -> set[str]:
    """Nodes the alerts name (kube-state-metrics' ``node``, and its relabelled spellings)."""
    labels = [incident.common_labels, *(a.labels for a in incident.alerts.values())]
    return {v for lbls in labels for k in NODE_LABELS if (v := lbls.get(k))}


def nodes_in_question(
    listed: Iterable[Objects], alerting: set[str], named: Iterable[str] = ()
) -> list[str]:
    """The nodes worth reading, with their per-node agents (kube-proxy, the CNI's, the log
    shipper): those the alerts name, then those of the pods in trouble, of warnings' sources
    and of the alerting workloads' pods; at most NODES_IN_QUESTION, so a namespace spread over
    the whole cluster stays bounded. A dead node is among them: its pods are in trouble."""
    ranked: dict[str, int] = {n: 0 for n in named}
    for objs in listed:
        for pod in objs.get("pods") or []:
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            rank = 1 if in_trouble(pod) else 3 if service_of(pod) in alerting else None
            if node and rank is not None:
                ranked[node] = min(ranked.get(node, rank), rank)
        for ev in objs.get("events") or []:
            host = str((ev.get("source") or {}).get("host") or "")
            if host and ev.get("type") == "Warning":
                ranked[host] = min(ranked.get(host, 2), 2)
    return sorted(ranked, key=lambda n: (ranked[n], n))[:NODES_IN_QUESTION]


async def cluster_pods(source: KubeSource, ns: str) -> list[dict[str, Any]]:
    """A cluster namespace's pods but the DaemonSets': their number does not grow with nodes."""
    return await source.list("pods", ns, f"!{PER_NODE_LABEL}")


async def daemon_pods(source: KubeSource, ns: str, nodes: list[str]) -> list[dict[str, Any]]:
    """A namespace's DaemonSet pods on ``nodes`` only: one field-selected listing per node."""
    found = await asyncio.gather(
        *(
            source.list("pods", ns, PER_NODE_LABEL, field_selector=f"spec.nodeName={node}")
            for node in nodes
        )
    )
    return [pod for batch in found for pod in batch]


def ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = obj.get("metadata") or {}
    return m


def service_of(obj: dict[str, Any]) -> str:
    """The component an object belongs to, as collectors.identity names it: a Helm chart's
    release workload (``<instance>-<name>``), else its ``app`` labels, else its own name."""
    labels = meta(obj).get("labels") or {}
    if chart := labels.get("app.kubernetes.io/name"):
        return helm_name(str(chart), labels.get("app.kubernetes.io/instance"))
    for key in ("app", "k8s-app", "service"):
        if labels.get(key):
            return str(labels[key])
    return str(meta(obj).get("name", "?"))


def change_score(at: datetime, onset: datetime) -> float:
    """Suspicion from timing alone: high just before the onset, fading with distance."""
    lead = (onset - at).total_seconds()
    if lead < -300:  # well after the onset: a reaction, not a cause
        return 0.1
    return 0.2 + 0.75 * math.exp(-max(lead, 0.0) / CHANGE_DECAY_S)


def written_change(
    item_id: str,
    what: str,
    subject: str,
    written: tuple[datetime, str],
    window: TimeWindow,
    *,
    hint: str,
    change: str,
    after: str = "",
) -> EvidenceItem:
    """The last write to an object (``managedFields``: when, and by which manager) as a change
    of its own: a route or Service edited into pointing nowhere is what someone did."""
    at, manager = written
    return EvidenceItem(
        id=item_id,
        kind="config_change",
        summary=f"{what} changed by {manager} {when(at, window)}{after}",
        detail=f"last write by {manager} at {at.isoformat()}",
        subject=subject,
        timestamp=at,
        score=round(change_score(at, window.onset), 4),
        fault_hint=hint,
        change=change,
    )


def recency(began: datetime | None, window: TimeWindow) -> float:
    """How much a signal weighs from when it began: fully from the window start on (the
    baseline before the onset and the incident after it), fading to background the longer
    before the window it began. Unknown beginnings keep their full weight."""
    if began is None:
        return 1.0
    early = (window.start - began).total_seconds()
    if early <= 0:
        return 1.0
    return BACKGROUND_WEIGHT + (1 - BACKGROUND_WEIGHT) * math.exp(-early / BACKGROUND_DECAY_S)


def when(at: datetime, window: TimeWindow) -> str:
    """A time in words relative to the onset, as an engineer reads a timeline."""
    minutes = (window.onset - at).total_seconds() / 60
    if abs(minutes) < 0.5:
        return f"at the onset ({at:%H:%M:%S})"
    if minutes >= 24 * 60:
        return f"{minutes / 1440:.0f} day(s) before the onset ({at:%Y-%m-%d %H:%M})"
    if minutes >= 120:
        return f"{minutes / 60:.1f} h before the onset ({at:%H:%M:%S})"
    side = "before" if minutes > 0 else "after"
    return f"{abs(minutes):.0f} min {side} the onset ({at:%H:%M:%S})"


def changes_of(obj: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    """(time, manager, operation) of every write to an object, oldest first: its managedFields
    (kubectl, Helm, Argo CD, Flux and controllers all leave one per manager; status writes are
    not changes) and its creation."""
    out = []
    fields = meta(obj).get("managedFields") or []
    for f in fields:
        at = ts(f.get("time"))
        if at is not None and f.get("subresource") != "status":
            out.append((at, str(f.get("manager") or "unknown"), str(f.get("operation") or "")))
    created = ts(meta(obj).get("creationTimestamp"))
    if created is not None and not any(t <= created for t, _, _ in out):
        creator = next((str(f.get("manager")) for f in fields if f.get("manager")), "unknown")
        out.append((created, creator, "Create"))
    return sorted(out, key=lambda c: c[0])


def last_change(obj: dict[str, Any]) -> datetime | None:
    found = changes_of(obj)
    return found[-1][0] if found else None


def changed_by(obj: dict[str, Any], at: datetime | None = None) -> tuple[datetime, str] | None:
    """The latest write to an object (at or shortly after ``at``, when given: the write that
    caused something at that time) and the manager that made it."""
    found = changes_of(obj)
    if at is not None:
        found = [c for c in found if c[0] <= at + timedelta(minutes=2)]
    return (found[-1][0], found[-1][1]) if found else None


def pod_subject(pod: dict[str, Any], owners: dict[str, str]) -> str:
    """The workload a pod's evidence belongs to: its owner as listed (pod_services), else its
    own component labels, else its controller's name, else what its name's shape says."""
    name = str(meta(pod).get("name", ""))
    if name in owners:
        return owners[name]
    labels = meta(pod).get("labels") or {}
    if any(labels.get(k) for k in ("app.kubernetes.io/name", "app", "k8s-app", "service")):
        return service_of(pod)
    refs = meta(pod).get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref and ref.get("name"):
        owner = str(ref["name"])
        if ref.get("kind") == "ReplicaSet":  # <deployment>-<pod-template-hash>
            suffix = labels.get("pod-template-hash")
            if suffix and owner.endswith(f"-{suffix}"):
                return owner.removesuffix(f"-{suffix}")
            return owner.rsplit("-", 1)[0] if "-" in owner else owner
        return owner
    return pod_owner(name)[1] if name else "?"


def pod_services(objs: Objects) -> dict[str, str]:
    """Pod name -> service, following ownerReferences pod -> ReplicaSet -> Deployment."""
    rs_owner = {}
    by_name = {meta(d).get("name"): d for k in WORKLOAD_RESOURCES for d in objs[k]}
    for rs in objs["replicasets"]:
        for o in meta(rs).get("ownerReferences") or []:
            if o.get("name") in by_name:
                rs_owner[meta(rs).get("name")] = service_of(by_name[o["name"]])
    out = {}
    for pod in objs["pods"]:
        for o in meta(pod).get("ownerReferences") or []:
            svc = rs_owner.get(o.get("name"))
            if svc is None and o.get("name") in by_name:
                svc = service_of(by_name[o["name"]])
            if svc:
                out[meta(pod).get("name", "")] = svc
    return out


def selector_matches_labels(selector: dict[str, str], labels: dict[str, Any]) -> bool:
    """A Service's equality selector (``spec.selector``) against an object's labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
