"""Helpers every Kubernetes evidence family shares: which namespaces to read, object metadata,
the service an object belongs to, and how suspicious a change is from its timing alone. The
logs collectors (pod_logs, loki) read the same scope and names."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from collectors.contracts import IncidentView
from collectors.identity import helm_name, namespaces_of

# What one namespace listed, by resource kind ("deployments", "pods", ...).
Objects = dict[str, list[dict[str, Any]]]

# Changes up to this long before the baseline window still count as suspects.
CHANGE_LOOKBACK = timedelta(hours=2)
# How fast a change's suspicion fades with its distance before the onset.
CHANGE_DECAY_S = 1800.0
# Cluster add-ons (DNS, CNI, ingress) that every workload depends on.
CLUSTER_NAMESPACES = ("kube-system",)
# The kubelet names the Secret a pod could not mount or read; pod states and events both say so.
MISSING_SECRET = re.compile(r"\bsecrets? \"[^\"]+\" not found", re.IGNORECASE)
# The resources that own pods through a pod template.
WORKLOAD_RESOURCES = ("deployments", "statefulsets", "daemonsets")


def scope_namespaces(incident: IncidentView) -> list[str]:
    """The alerts' namespaces, plus the cluster's own, whose failures reach everyone."""
    found: set[str] = set()
    for labels in [incident.common_labels, *(a.labels for a in incident.alerts.values())]:
        found |= namespaces_of(labels)
    return sorted(found | set(CLUSTER_NAMESPACES)) if found else []


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


def last_change(obj: dict[str, Any]) -> datetime | None:
    times = [ts(f.get("time")) for f in meta(obj).get("managedFields") or []]
    known = [t for t in times if t is not None]
    return max(known) if known else ts(meta(obj).get("creationTimestamp"))


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
