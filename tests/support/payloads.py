"""Alertmanager webhook bodies as Alertmanager 0.25+ sends them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any


def alert(
    name: str = "HighErrorRate",
    *,
    status: str = "firing",
    service: str = "checkoutservice",
    started: datetime | None = None,
    extra_labels: dict[str, str] | None = None,
    annotation_bytes: int = 0,
    generator_url: str = "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
) -> dict[str, Any]:
    labels = {"alertname": name, "namespace": "shop", "service": service, "severity": "critical"}
    labels.update(extra_labels or {})
    started = started or datetime.now(UTC) - timedelta(minutes=5)
    fp = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{service} error ratio above 5%",
            "description": "x" * annotation_bytes,
        },
        "startsAt": started.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else (datetime.now(UTC)).isoformat(),
        "generatorURL": generator_url,
        "fingerprint": fp,
    }


def webhook(
    alerts: list[dict[str, Any]] | None = None,
    *,
    group_key: str = '{}:{alertname="HighErrorRate", namespace="shop"}',
    status: str | None = None,
) -> dict[str, Any]:
    alerts = alerts if alerts is not None else [alert()]
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {
        "receiver": "triage",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def many_alerts(n: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [alert(service=f"svc-{i:04d}", **kwargs) for i in range(n)]
