"""What a ChangeRCA case shows an investigation and what it hides: the SLO alert, the CSV samples
as OpenMetrics, and the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest

from triage.models import AlertmanagerWebhook
from triage_lab.fakes.kubernetes_objects import ts
from triage_lab.importers.changerca.dataset import (
    ALERT_EXPR,
    ALERT_NAME,
    ENTRY_SERVICE,
    LABELS,
    METRICS,
    NAMESPACE,
    Answer,
    Case,
    Edge,
    validate,
)
from triage_lab.scenarios import GroundTruth, ScenarioError


def _fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint (Prometheus' LabelSet.Fingerprint, FNV-1a 64)."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for byte in b"".join((name.encode(), b"\xff", labels[name].encode(), b"\xff")):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def webhook(detect: int) -> AlertmanagerWebhook:
    group = {"alertname": ALERT_NAME, "namespace": NAMESPACE}
    labels = {**group, "service": ENTRY_SERVICE, "severity": "critical"}
    annotations = {
        "summary": f"{ENTRY_SERVICE} call success rate is burning its SLO error budget",
        "description": f"Success rate of {ENTRY_SERVICE}'s calls dropped below its SLO.",
    }
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}"
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": ts(detect),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote_plus(ALERT_EXPR)}&g0.tab=1",
        "fingerprint": _fingerprint(labels),
    }
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "triage",
            "groupLabels": group,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager:9093",
            "alerts": [alert],
        }
    )


class _Families:
    """What generate_latest asks of a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def openmetrics(edges: Sequence[Edge]) -> str:
    ordered = sorted(edges, key=lambda e: e.labels)
    families: list[Metric] = []
    for i, (column, name) in enumerate(METRICS):
        family = GaugeMetricFamily(name, f"ChangeRCA CSV column {column}", labels=LABELS)
        for edge in ordered:
            for at, values in edge.samples:
                value = values[i]
                if value is not None:
                    family.add_metric(edge.labels, value, timestamp=at)
        families.append(family)
    text: bytes = generate_latest(_Families(families))  # type: ignore[no-untyped-call]
    return text.decode()


def ground_truth(raw: Any, case: Case, path: Path) -> GroundTruth:
    """The only reader of the answer fields."""
    answer = validate(Answer, raw, path)
    service = answer.fault_release_service
    rollout = case.plan.get(service)
    if rollout is None:
        raise ScenarioError(path, "fault_release_service", f"{service!r} is not in plan")
    return GroundTruth(
        kind="Deployment",
        namespace=NAMESPACE,
        name=service,
        service=service,
        aliases=[],
        category="bad_rollout",
        onset=datetime.fromtimestamp(rollout.release_time, UTC),
        detail=answer.fault or "",
    )
