"""PromQL helpers shared by the metrics collector: the alert's own expression from its link,
and a robust score of how far a series moved."""

from __future__ import annotations

import math
import statistics
from urllib.parse import parse_qs, urlsplit


def expr_from_generator_url(url: str) -> str | None:
    """Alertmanager alerts link back to Prometheus' graph page with the rule's expression."""
    if not url:
        return None
    query = parse_qs(urlsplit(url).query)
    values = query.get("g0.expr")
    return values[0] if values else None


def shift_score(before: list[float], after: list[float]) -> tuple[float, float]:
    """Robust z-score of the incident window against the baseline, and its 0..1 score."""
    if not before or not after:
        return 0.0, 0.0
    base = statistics.median(before)
    mad = statistics.median([abs(v - base) for v in before]) * 1.4826
    # A flat baseline has no spread; scale by the level so a jump from 0 still counts.
    spread = max(mad, abs(base) * 0.05, 1e-9)
    z = (statistics.median(after) - base) / spread
    return z, 1 - math.exp(-abs(z) / 5)
