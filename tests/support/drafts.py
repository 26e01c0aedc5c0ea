"""Delivery requests as workers and the incident stage publish them, for sink tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from triage.deliver.routing import RouteDecision, Target
from triage.models import (
    RCA,
    ChangeMark,
    CollectorReport,
    DeliveryRequest,
    EvidenceDigest,
    IncidentState,
    Link,
    MetricSeries,
    RootCause,
)

ONSET = datetime.now(UTC) - timedelta(minutes=10)
LABELS = {
    "alertname": "HighErrorRate",
    "namespace": "shop",
    "service": "cartservice",
    "severity": "critical",
}
GRAPH_URL = "http://prometheus:9090/graph?g0.expr=rate(errors[5m])+%3E+0.05&g0.tab=1"
RUNBOOK_URL = "https://runbooks.example.com/cart/high-error-rate"


def route(*channels: str, team: str = "cart", mention: str | None = None) -> RouteDecision:
    return RouteDecision(
        (Target(team, channels or ("#cart-oncall",), mention, 'rule 1 (line 3: team="cart")'),)
    )


def rca(incident_id: str = "inc-cart", revision: int = 1, **overrides: Any) -> RCA:
    base: dict[str, Any] = {
        "incident_id": incident_id,
        "revision": revision,
        "summary": "Deployment shop/cartservice rolled out revision 7 before the onset",
        "root_cause": RootCause(
            component="cartservice",
            kind="bad_rollout",
            change="deployment/cartservice revision 7",
            description="rolled out 3 minutes before the onset",
        ),
        "confidence": 0.72,
        "impact": "1 firing alert(s): HighErrorRate",
        "evidence_ids": ["rollout-cart-7"],
        "next_steps": [
            "kubectl rollout history deploy/cartservice",
            "Compare error rate by version",
        ],
        "analyzer": "heuristic",
        "label": "Deterministic draft (heuristic analyzer), for review",
        "created_at": datetime.now(UTC),
    }
    base.update(overrides)
    return RCA(**base)


def series() -> MetricSeries:
    start = ONSET.timestamp() - 1800
    points = [(start + 60 * i, 0.01 if i < 30 else 0.2) for i in range(40)]
    return MetricSeries(
        title="rate(errors[5m]) > 0.05",
        points=points,
        onset=ONSET,
        changes=[ChangeMark(at=ONSET - timedelta(minutes=3), label="cartservice revision 7")],
    )


def draft(
    incident_id: str = "inc-cart",
    revision: int = 1,
    *,
    labels: dict[str, str] | None = None,
    with_series: bool = False,
    **overrides: Any,
) -> DeliveryRequest:
    labels = labels or dict(LABELS)
    base: dict[str, Any] = {
        "kind": "draft",
        "incident_id": incident_id,
        "revision": revision,
        "episode": 1,
        "title": f"{labels.get('alertname', 'alert')} on {labels.get('service', '?')}",
        "labels": labels,
        "severity": labels.get("severity", "unknown"),
        "rca": rca(incident_id, revision),
        "evidence": [
            EvidenceDigest(
                id="rollout-cart-7",
                collector="scenario",
                summary="cartservice revision 7 rolled out 3 minutes before the onset",
            )
        ],
        "collectors": [
            CollectorReport(collector="scenario", status="ok", items=1, duration_s=0.01)
        ],
        "created_at": datetime.now(UTC),
        "annotations": {"summary": "cartservice error ratio above 5%"},
        "links": [
            Link(kind="graph", title="HighErrorRate", url=GRAPH_URL),
            Link(kind="runbook", title="HighErrorRate", url=RUNBOOK_URL),
        ],
        "series": series() if with_series else None,
    }
    base.update(overrides)
    return DeliveryRequest(**base)


def resolve(incident_id: str = "inc-cart", episode: int = 1) -> DeliveryRequest:
    return DeliveryRequest(
        kind="resolve",
        incident_id=incident_id,
        revision=episode,
        episode=episode,
        title="HighErrorRate on cartservice",
        labels=dict(LABELS),
        severity="critical",
        created_at=datetime.now(UTC),
    )


def incident(incident_id: str = "inc-cart") -> IncidentState:
    now = datetime.now(UTC)
    return IncidentState(
        incident_id=incident_id,
        group_key=f'{{}}:{{alertname="HighErrorRate", id="{incident_id}"}}',
        status="firing",
        first_seen=now,
        updated_at=now,
        common_labels=dict(LABELS),
        requested_revision=1,
        investigated_revision=1,
    )


def unique_id() -> str:
    return f"inc-{time.monotonic_ns()}"
