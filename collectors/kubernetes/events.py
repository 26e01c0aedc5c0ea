"""Warning events in the window (scheduling, evictions, probes, mounts, pulls), one item per
subject and reason, named after the workload even when the object is gone. An item's time is
when its series began: a series that began long before the window and merely goes on is
background, and weighs little beside one that began around the onset."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from collectors.contracts import EvidenceItem, TimeWindow
from collectors.kubernetes.common import (
    MISSING_SECRET,
    Objects,
    meta,
    pod_services,
    pod_subject,
    recency,
    ts,
    when,
)

# Warning event reasons and the fault they usually point to.
_EVENTS = {
    "FailedScheduling": (0.75, "scheduling"),
    "FailedCreate": (0.7, "scheduling"),
    "Evicted": (0.7, "node_failure"),
    "NodeNotReady": (0.8, "node_failure"),
    "Unhealthy": (0.6, "probe_misconfiguration"),
    "BackOff": (0.6, "crash_loop"),
    "FailedMount": (0.75, "secret_change"),
    "OOMKilling": (0.8, "resource_exhaustion"),
    "FailedPullImage": (0.8, "bad_rollout"),
    "Failed": (0.55, "bad_rollout"),
}
_SLOW = re.compile(r"deadline exceeded|timeout|timed out", re.IGNORECASE)


def event_span(ev: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """When an event series began and when it was last seen, in either API's spelling
    (core/v1 first/lastTimestamp and count; events.k8s.io eventTime and series)."""
    series = ev.get("series") or {}
    last = ts(
        ev.get("lastTimestamp")
        or series.get("lastObservedTime")
        or ev.get("eventTime")
        or meta(ev).get("creationTimestamp")
    )
    first = ts(ev.get("firstTimestamp") or ev.get("eventTime")) or last
    return first, last


def event_count(ev: dict[str, Any]) -> int:
    return int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)


def warning_events(
    ns: str,
    objs: Objects,
    window: TimeWindow,
    bad_nodes: list[str],
) -> list[EvidenceItem]:
    owners = pod_services(objs)
    pods = objs["pods"]
    pod_svc = {meta(p).get("name"): pod_subject(p, owners) for p in pods}
    pod_node = {meta(p).get("name"): (p.get("spec") or {}).get("nodeName") for p in pods}
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ev in objs["events"]:
        if ev.get("type") != "Warning":
            continue
        first, last = event_span(ev)
        # A repeating event is one object with a count: keep it if its run overlaps the
        # window, however long it went on after.
        if first is None or last is None or not (first <= window.end and last >= window.start):
            continue
        obj = ev.get("involvedObject") or {}
        name = obj.get("name", "")
        subject = pod_svc.get(name) or _event_subject(obj.get("kind", ""), name)
        grouped.setdefault((subject, ev.get("reason", "")), []).append(ev)
    items = []
    for (subject, reason), evs in sorted(grouped.items()):
        base, hint = _EVENTS.get(reason, (0.3, None))
        message = evs[0].get("message", "")
        if reason == "Unhealthy" and _SLOW.search(message):
            hint = None  # a probe that times out says the app is slow, not why
        elif MISSING_SECRET.search(message):
            hint = "secret_change"  # the kubelet names what the pod could not mount or read
        # Series that began in the window say something changed; those that began long
        # before and go on are background, unless new series join them.
        current = [e for e in evs if recency(event_span(e)[0], window) >= 1.0]
        counted = current or evs
        count = sum(event_count(e) for e in counted)
        # A pod's node trouble is the node's: name it, so the ranking can follow. The pod
        # may be gone already; then the nodes that are unwell now are the candidates.
        nodes: set[str] = set()
        for e in evs if hint == "node_failure" else ():
            node = pod_node.get((e.get("involvedObject") or {}).get("name"))
            nodes.update([node] if node else bad_nodes[:3])
        first = min(event_span(e)[0] or window.end for e in counted)
        weight = recency(first, window)
        since = f"since {when(first, window)}"
        if weight < 1.0:
            since += ", before the window: ongoing background"
        items.append(
            EvidenceItem(
                id=f"event-{ns}-{subject}-{reason}",
                kind="k8s_event",
                summary=f"{count}x {reason} on {subject} {since}: "
                + evs[0].get("message", "")[:200],
                detail=f"node {', '.join(sorted(nodes))}" if nodes else "",
                subject=subject,
                timestamp=first,
                score=round(min(1.0, base + 0.05 * math.log1p(count)) * weight, 4),
                fault_hint=hint,
            )
        )
    return items


def _event_subject(kind: str, name: str) -> str:
    """The workload an event is about, from the object's name when the object is gone."""
    if kind in ("Pod", ""):
        return _strip_pod_suffix(name)
    if kind == "ReplicaSet":  # <deployment>-<template hash>
        return name.rsplit("-", 1)[0] if "-" in name else name
    return name  # Deployment, StatefulSet, Node...


def _strip_pod_suffix(name: str) -> str:
    parts = name.split("-")
    if len(parts) > 1 and parts[-1].isdigit():  # a StatefulSet's pod: <name>-<ordinal>
        return "-".join(parts[:-1])
    return "-".join(parts[:-2]) if len(parts) > 2 else name
