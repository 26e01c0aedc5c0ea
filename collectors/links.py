"""Slow links: the time a caller waits for a callee is the callee's own handling time plus the
network between them. When the callers' wait grows and the callee's own time does not, the
extra time is on the wire (added delay, packet loss and retransmits), not in the callee's code.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable

from collectors.contracts import EvidenceItem
from collectors.sources import Series

_LATENCY = re.compile(r"latency|duration|p\d\d|mean\(", re.IGNORECASE)
# A call edge as the server reports it (Istio, Linkerd): its own handling time.
_SERVER_SIDE = (("reporter", "destination"), ("direction", "inbound"))
# The callee's own time must have grown less than this share of what its callers wait more.
OWN_SHARE = 0.5


def _seconds(metric: str) -> float:
    """What one unit of a latency series is in seconds, from its name (Istio: milliseconds)."""
    name = metric.lower()
    if "milli" in name or re.search(r"_ms\b|_ms_", name):
        return 1e-3
    if "micro" in name or re.search(r"_us\b|_us_", name):
        return 1e-6
    return 1.0


def _rise(points: list[tuple[float, float]], onset: float, latest: int) -> float:
    before = [v for t, v in points if t < onset and math.isfinite(v)]
    after = [v for t, v in points if t >= onset and math.isfinite(v)][-latest:]
    if len(before) < 3 or not after:
        return 0.0
    return statistics.median(after) - statistics.median(before)


def wire_hints(
    series: list[Series],
    items: list[EvidenceItem],
    onset: float,
    *,
    edge_of: Callable[[dict[str, str]], tuple[str, str] | None],
    subject_of: Callable[[dict[str, str], str], str],
    latest: int = 4,
) -> list[EvidenceItem]:
    """Edge latency shifts whose callee's own latency stayed put get the ``network`` hint
    (``edge_of`` and ``subject_of`` read a series' labels as collectors.metrics does)."""
    own: dict[str, float] = {}
    wire: dict[str, float] = {}
    for s in series:
        metric = s.labels.get("__name__", "")
        if not _LATENCY.search(metric) or metric.startswith("node_"):
            continue
        rise = _rise(s.points, onset, latest) * _seconds(metric)
        ends = edge_of(s.labels)
        if ends and not any(s.labels.get(k) == v for k, v in _SERVER_SIDE):
            wire[ends[1]] = max(wire.get(ends[1], 0.0), rise)
        elif who := subject_of(s.labels, metric):
            own[who] = max(own.get(who, 0.0), rise)
    out = []
    for item in items:
        gained = wire.get(item.subject, 0.0)
        if (
            item.kind == "edge_shift"
            and item.fault_hint is None
            and _LATENCY.search(item.summary.split(" of ", 1)[0])
            and gained > 0
            and item.subject in own  # its own time measured, not merely unknown
            and own[item.subject] < OWN_SHARE * gained
        ):
            item = item.model_copy(update={"fault_hint": "network"})
        out.append(item)
    return out
