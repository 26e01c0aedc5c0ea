"""What a draft carries for people besides the analysis: links to the alerts' graphs and runbooks,
and the alerting series with the changes around it, so the notifier can draw it."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from collectors.contracts import Evidence, EvidenceItem
from triage.models import ChangeMark, IncidentState, Link, MetricSeries

MAX_POINTS = 240
MAX_LINKS = 6
RUNBOOK_KEYS = ("runbook_url", "runbook")
CHANGE_KINDS = ("rollout", "config_change", "deployment", "change")


def alert_annotations(incident: IncidentState) -> dict[str, str]:
    """The group's common annotations, or the alert's own when it is alone."""
    if incident.common_annotations:
        return incident.common_annotations
    firing = list(incident.firing().values()) or list(incident.alerts.values())
    return dict(firing[0].annotations) if len(firing) == 1 else {}


def links(incident: IncidentState) -> list[Link]:
    found: list[Link] = []
    seen: set[str] = set()
    alerts = sorted(incident.alerts.values(), key=lambda a: (a.status != "firing", a.starts_at))
    for a in alerts:
        name = a.labels.get("alertname", "alert")
        candidates: list[tuple[Literal["graph", "runbook"], str]] = [("graph", a.generator_url)]
        candidates += [("runbook", a.annotations.get(k, "")) for k in RUNBOOK_KEYS]
        for kind, url in candidates:
            if url and url not in seen and _web_url(url):
                seen.add(url)
                found.append(Link(kind=kind, title=name, url=url))
    return found[:MAX_LINKS]


def series(evidence: list[Evidence], onset: datetime) -> MetricSeries | None:
    """The most anomalous metric item that has points, and the changes with a time."""
    items = [i for e in evidence for i in e.items]
    metric = max(
        (i for i in items if i.kind == "metric_shift" and i.points),
        key=lambda i: (i.score, i.id),
        default=None,
    )
    if metric is None:
        return None
    points = [(t, v) for t, v in metric.points if math.isfinite(t) and math.isfinite(v)]
    if not points:
        return None
    return MetricSeries(
        title=_title(metric),
        points=_thin(sorted(points), MAX_POINTS),
        onset=onset,
        changes=[
            ChangeMark(at=i.timestamp, label=(i.change or i.summary)[:80])
            for i in items
            if i.timestamp is not None and (i.change or i.kind in CHANGE_KINDS)
        ][:10],
    )


def _title(item: EvidenceItem) -> str:
    query = item.detail.removeprefix("query: ")
    return (query or item.summary)[:120]


def _thin(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return points
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]


def _web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
