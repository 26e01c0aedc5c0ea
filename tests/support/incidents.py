"""Incidents as the incident stage holds them, for tests that hand one to a collector or an
analyzer: one alert, firing since a given moment."""

from __future__ import annotations

from datetime import datetime

from triage.models import AlertSnapshot, IncidentState


def firing(
    labels: dict[str, str],
    at: datetime,
    *,
    incident_id: str = "inc-1",
    fingerprint: str = "f1",
) -> IncidentState:
    """An incident of one alert with ``labels``, firing (and first seen) at ``at``."""
    return IncidentState(
        incident_id=incident_id,
        group_key="g",
        status="firing",
        first_seen=at,
        updated_at=at,
        common_labels=labels,
        alerts={fingerprint: AlertSnapshot(status="firing", labels=labels, starts_at=at)},
    )
