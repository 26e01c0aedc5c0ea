"""Prometheus ``query_range`` around the onset, starting from the alert's own expression."""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx

from collectors.base import Evidence, EvidenceItem, TimeWindow
from triage.models import IncidentState

MAX_SERIES_PER_QUERY = 20


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


class PrometheusCollector:
    name = "prometheus"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, step_s: float = 60) -> None:
        self._base = base_url.rstrip("/")
        self._client = client
        self._step = step_s

    async def collect(self, incident: IncidentState, window: TimeWindow) -> Evidence:
        started = time.monotonic()
        exprs = sorted(
            {e for a in incident.alerts.values() if (e := expr_from_generator_url(a.generator_url))}
        )
        if not exprs:
            return Evidence(collector=self.name, status="no_data", error="no alert expression")
        items: list[EvidenceItem] = []
        try:
            for expr in exprs:
                items += await self._query(expr, window)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return Evidence(
                collector=self.name,
                status="error",
                items=items,
                error=f"{type(exc).__name__}: {exc}",
                duration_s=time.monotonic() - started,
            )
        return Evidence(
            collector=self.name,
            status="ok" if items else "no_data",
            items=items,
            duration_s=time.monotonic() - started,
        )

    async def _query(self, expr: str, window: TimeWindow) -> list[EvidenceItem]:
        resp = await self._client.get(
            f"{self._base}/api/v1/query_range",
            params={
                "query": expr,
                "start": window.start.timestamp(),
                "end": window.end.timestamp(),
                "step": self._step,
            },
        )
        body = resp.json()
        if resp.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"query_range {expr!r}: {body.get('error', resp.status_code)}")
        onset = window.onset.timestamp()
        items = []
        for series in body["data"]["result"][:MAX_SERIES_PER_QUERY]:
            points = [(float(t), float(v)) for t, v in series["values"]]
            before = [v for t, v in points if t < onset and math.isfinite(v)]
            after = [v for t, v in points if t >= onset and math.isfinite(v)]
            z, score = shift_score(before, after)
            labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
            name = series["metric"].get("__name__", expr)
            subject = labels.get("service") or labels.get("deployment") or labels.get("pod", "")
            key = expr + repr(sorted(labels.items()))
            label_text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            items.append(
                EvidenceItem(
                    id="prom-" + hashlib.sha256(key.encode()).hexdigest()[:10],
                    kind="metric_shift",
                    summary=(
                        f"{name}{{{label_text}}} moved from a baseline median of "
                        f"{_fmt(before)} to {_fmt(after)} after the onset (robust z={z:.1f})"
                    ),
                    detail=f"query: {expr}",
                    subject=subject,
                    timestamp=_first_departure(points, before, onset),
                    score=score,
                    points=points,
                )
            )
        return items


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.4g}" if values else "n/a"


def _first_departure(
    points: list[tuple[float, float]], before: list[float], onset: float
) -> datetime | None:
    """When the series first left its baseline band: who went wrong first matters."""
    if not before:
        return None
    lo, hi = min(before), max(before)
    margin = (hi - lo) * 0.5 + 1e-9
    for t, v in points:
        if t >= onset - 600 and (v > hi + margin or v < lo - margin):
            return datetime.fromtimestamp(t, UTC)
    return None
