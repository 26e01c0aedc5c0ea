"""Ranking rules an on-call engineer would agree with, on hand-made evidence."""

from __future__ import annotations

from datetime import UTC, datetime

from collectors.base import Evidence, EvidenceItem
from triage.models import AlertSnapshot, IncidentState
from triage.ranking import rank

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def incident(service: str = "web") -> IncidentState:
    labels = {"alertname": "HighErrorRate", "namespace": "shop", "service": service}
    return IncidentState(
        incident_id="inc-1",
        group_key="g",
        status="firing",
        first_seen=NOW,
        updated_at=NOW,
        common_labels=labels,
        alerts={"f": AlertSnapshot(status="firing", labels=labels, starts_at=NOW)},
    )


def item(id: str, kind: str, subject: str, score: float, text: str = "") -> EvidenceItem:
    return EvidenceItem(id=id, kind=kind, summary=text or id, subject=subject, score=score)


def test_what_several_failing_services_name_is_their_common_cause():
    evidence = [
        Evidence(
            collector="logs",
            status="ok",
            items=[
                item(
                    "l1", "log_pattern", "cart", 0.8, "dial tcp orders-db:5432: connection refused"
                ),
                item("l2", "log_pattern", "checkout", 0.8, "orders-db: connection refused"),
                item("m1", "metric_shift", "cart", 0.9),
                item("m2", "metric_shift", "checkout", 0.9),
                item("m3", "metric_shift", "orders-db", 0.4),
            ],
        )
    ]
    suspects = rank(incident("cart"), evidence)
    assert suspects[0].component == "orders-db"
    assert "common_cause" in suspects[0].breakdown
    assert {"l1", "l2"} <= set(suspects[0].evidence_ids)


def test_a_component_that_only_suffers_ranks_below_one_that_changed_and_fails():
    evidence = [
        Evidence(
            collector="k8s",
            status="ok",
            items=[
                item("rollout-api-7", "rollout", "api", 0.8),
                item("logs-api", "log_pattern", "api", 0.6, "panic: nil map"),
                item("metric-web", "metric_shift", "web", 1.0),
            ],
        )
    ]
    suspects = rank(incident("web"), evidence)
    assert [s.component for s in suspects[:2]] == ["api", "web"]
    assert suspects[0].breakdown["change"] > 0 and suspects[0].evidence_ids[0] == "rollout-api-7"


def test_a_lone_change_counts_less_than_a_corroborated_one():
    lone = rank(
        incident(),
        [Evidence(collector="k", status="ok", items=[item("r1", "rollout", "api", 0.8)])],
    )
    corroborated = rank(
        incident(),
        [
            Evidence(
                collector="k",
                status="ok",
                items=[item("r1", "rollout", "api", 0.8), item("p1", "pod_state", "api", 0.5)],
            )
        ],
    )
    assert lone[0].breakdown["change"] < corroborated[0].breakdown["change"]
