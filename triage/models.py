"""Everything that crosses a process boundary: the webhook, bus messages, incident state, the RCA.

Every bus message and the RCA carry ``schema_version`` so that consumers can refuse what they
do not understand instead of misreading it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

AlertStatus = Literal["firing", "resolved"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Tolerant(BaseModel):
    # Alertmanager adds fields over time; unknown ones must not break ingest.
    model_config = ConfigDict(extra="ignore")


class Alert(_Tolerant):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str


class AlertmanagerWebhook(_Tolerant):
    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = Field(0, ge=0)
    status: AlertStatus
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)

    def content_id(self) -> str:
        """Same notification content, same id: JetStream drops Alertmanager's resends."""
        parts = [self.groupKey, self.status]
        for a in sorted(self.alerts, key=lambda a: a.fingerprint):
            ends = a.endsAt.isoformat() if a.endsAt else ""
            parts += [a.fingerprint, a.status, a.startsAt.isoformat(), ends]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def incident_id_for(group_key: str) -> str:
    return "inc-" + hashlib.sha256(group_key.encode()).hexdigest()[:16]


class AlertNotification(BaseModel):
    """Published by ingest: one Alertmanager notification, as received."""

    schema_version: Literal[1] = SCHEMA_VERSION
    msg_id: str
    received_at: datetime
    webhook: AlertmanagerWebhook


class InvestigationRequest(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    incident_id: str
    revision: int = Field(ge=1)
    not_before: datetime
    reason: str


class AlertSnapshot(BaseModel):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""


class Claim(BaseModel):
    worker: str
    revision: int
    lease_until: datetime


class DeliveryRef(BaseModel):
    kind: Literal["draft", "resolve"]
    revision: int
    sink: str
    channel: str
    ref: str
    at: datetime


class IncidentState(BaseModel):
    """The incident as stored in the KV bucket; every change is a compare-and-set."""

    schema_version: Literal[1] = SCHEMA_VERSION
    incident_id: str
    group_key: str
    status: AlertStatus
    first_seen: datetime
    updated_at: datetime
    group_labels: dict[str, str] = Field(default_factory=dict)
    common_labels: dict[str, str] = Field(default_factory=dict)
    common_annotations: dict[str, str] = Field(default_factory=dict)
    external_url: str = ""
    alerts: dict[str, AlertSnapshot] = Field(default_factory=dict, description="by fingerprint")
    episode: int = Field(1, description="Bumped when a resolved incident fires again")
    requested_revision: int = 0
    investigate_after: datetime | None = None
    investigated_revision: int = 0
    claim: Claim | None = None
    resolved_at: datetime | None = None
    deliveries: list[DeliveryRef] = Field(default_factory=list)

    def firing(self) -> dict[str, AlertSnapshot]:
        return {fp: a for fp, a in self.alerts.items() if a.status == "firing"}

    def onset(self) -> datetime:
        starts = [a.starts_at for a in self.alerts.values()]
        return min(starts) if starts else self.first_seen


FaultKind = Literal[
    "bad_rollout",
    "config_change",
    "resource_exhaustion",
    "crash_loop",
    "dependency_failure",
    "capacity",
    "node_failure",
    "network",
    "unknown",
]


class RootCause(BaseModel):
    component: str = Field(description="Service or workload believed to be the cause, or 'unknown'")
    kind: FaultKind
    change: str | None = Field(None, description="The change (rollout, config) blamed, if any")
    description: str


class RCA(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    incident_id: str
    revision: int
    summary: str
    root_cause: RootCause
    confidence: float = Field(ge=0, le=1)
    impact: str
    evidence_ids: list[str]
    next_steps: list[str]
    open_questions: list[str] = Field(default_factory=list)
    analyzer: str
    label: str = Field(description="How the draft was made, shown to readers")
    created_at: datetime


class EvidenceDigest(BaseModel):
    """What readers of the draft see of one cited evidence item."""

    id: str
    collector: str
    summary: str


class CollectorReport(BaseModel):
    collector: str
    status: Literal["ok", "error", "no_data"]
    items: int
    duration_s: float
    error: str | None = None


class DeliveryRequest(BaseModel):
    """Published by workers (drafts) and by the incident stage (resolves) for the notifier."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["draft", "resolve"]
    incident_id: str
    revision: int
    episode: int = 1
    title: str
    labels: dict[str, str]
    severity: str = "unknown"
    rca: RCA | None = None
    evidence: list[EvidenceDigest] = Field(default_factory=list)
    collectors: list[CollectorReport] = Field(default_factory=list)
    created_at: datetime


class DeadLetter(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    subject: str
    reason: str
    deliveries: int
    payload: str
    at: datetime
