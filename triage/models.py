"""Everything that crosses a process boundary: the webhook, bus messages, incident state, the RCA.

Every bus message and the RCA carry ``schema_version`` so that consumers can refuse what they
do not understand instead of misreading it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION: Literal[1] = 1

AlertStatus = Literal["firing", "resolved"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Tolerant(BaseModel):
    # Alertmanager adds fields over time; unknown ones must not break ingest.
    model_config = ConfigDict(extra="ignore")


# Alert times an investigation can do arithmetic on (windows of hours around them).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """A time without a zone is read as UTC (Alertmanager always sends one)."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 has no UTC time
        raise ValueError(f"{value.isoformat()} has no UTC equivalent") from exc


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


class Alert(_Tolerant):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str

    @field_validator("startsAt")
    @classmethod
    def _starts(cls, value: datetime) -> datetime:
        return _in_range(_utc(value))

    @field_validator("endsAt")
    @classmethod
    def _ends(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        # Alertmanager's zero time (0001-01-01) on a firing alert means "no end yet": kept as
        # sent (content ids, recorded scenarios), read as no end (``ends``).
        return value if value.year == 1 else _in_range(value)

    def ends(self) -> datetime | None:
        return None if self.endsAt is None or self.endsAt.year == 1 else self.endsAt


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
    complete: bool = Field(True, description="False: the sink failed part way; ref says how far")
    episode: int | None = Field(
        None, description="The request's episode (None: recorded before this was kept)"
    )


class Feedback(BaseModel):
    """A reader's verdict on the probable cause of one draft."""

    verdict: Literal["correct", "wrong"]
    revision: int
    analyzer: str
    user_id: str
    user_name: str
    at: datetime


class ChildRef(BaseModel):
    """An Alertmanager group attached to a parent incident: what the parent's draft says of it."""

    title: str
    labels: dict[str, str] = Field(default_factory=dict, description="Its common labels")
    services: list[str] = Field(default_factory=list)
    alerts: int = 0
    status: AlertStatus = "firing"
    reason: str = Field("", description="Why it was attached (the correlation rule that held)")
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
    feedback: Feedback | None = Field(None, description="First verdict on the latest draft")
    notify_claim: Claim | None = Field(
        None,
        description="Written only by notifiers older than the delivery lanes; a live one still "
        "holds every lane",
    )
    notify_claims: dict[str, Claim] = Field(
        default_factory=dict,
        description="By delivery lane: the notifier replica delivering this incident there now, "
        "and until when",
    )
    follow_up_episode: int = Field(0, description="Last episode a follow-up was scheduled for")
    follow_up_revision: int = Field(0, description="The revision that is that follow-up")
    last_cause: str = Field("", description="component|kind of the last delivered draft")
    # Correlation across groups (triage.incidents.correlation).
    parent_id: str | None = Field(None, description="The parent incident this group is part of")
    attach_reason: str = ""
    children: dict[str, ChildRef] = Field(default_factory=dict, description="by incident id")
    notes: list[str] = Field(default_factory=list, description="Detached groups, and why")
    lead: str = Field("", description="Leading suspect of its own cheap investigation")
    reinvestigations: int = Field(0, description="Re-investigations owed to attached groups")
    drafted_revision: int = Field(0, description="Latest revision whose draft was published")

    def firing(self) -> dict[str, AlertSnapshot]:
        return {fp: a for fp, a in self.alerts.items() if a.status == "firing"}

    def onset(self) -> datetime:
        """When the trouble began: the earliest start among the most severe alerts. A group can
        hold a long-firing minor alert that has nothing to do with what just broke."""
        if not self.alerts:
            return self.first_seen
        top = max(_severity_rank(a.labels) for a in self.alerts.values())
        return min(a.starts_at for a in self.alerts.values() if _severity_rank(a.labels) == top)

    def severity(self) -> str:
        """The most severe of the group's alerts: Alertmanager groups mix severities (group_by
        alertname, namespace), and the shared labels then carry none."""
        found = [a.labels["severity"] for a in self.alerts.values() if a.labels.get("severity")]
        if self.common_labels.get("severity"):
            found.append(self.common_labels["severity"])
        if not found:
            return "unknown"
        return max(found, key=lambda s: _SEVERITY.get(s.lower(), 2)).lower()


_SEVERITY = {"critical": 4, "page": 4, "error": 3, "high": 3, "warning": 2, "info": 1, "none": 0}


def _severity_rank(labels: dict[str, str]) -> int:
    return _SEVERITY.get(labels.get("severity", "").lower(), 2)


# One vocabulary for analyzers' answers and scenarios' ground truth.
FaultKind = Literal[
    "bad_rollout",  # a new image/version misbehaves (crash loop, errors, regressions)
    "config_change",  # ConfigMap / env / flags changed
    "secret_change",  # missing or rotated Secret
    "resource_exhaustion",  # OOMKilled, memory limit
    "cpu_throttling",
    "probe_misconfiguration",  # readiness / liveness probe wrong
    "dependency_failure",  # database, cache, downstream service outage
    "node_failure",  # NotReady, eviction wave
    "scheduling",  # FailedScheduling: requests, affinity, taints no node satisfies
    "capacity",  # HPA at max replicas under load
    "certificate_expiry",
    "dns_failure",
    "network_policy",
    "crash_loop",  # crash loop with no change to blame
    "network",  # added latency or loss on one service's or node's network
    "quota",  # a namespace ResourceQuota / LimitRange refuses pods
    "storage",  # a PersistentVolumeClaim that never binds, a volume that cannot mount
    "routing",  # a Service / Ingress / Gateway route that reaches no ready pod
    "control_plane",  # scheduler, controller-manager, CNI or another cluster component
    "unknown",
]


class RootCause(BaseModel):
    component: str = Field(description="Service or workload believed to be the cause, or 'unknown'")
    kind: FaultKind
    change: str | None = Field(None, description="The change (rollout, config) blamed, if any")
    description: str


class Suspect(BaseModel):
    """One ranked candidate cause, with why it ranks where it does."""

    component: str
    score: float = Field(ge=0, le=1)
    kind: FaultKind = "unknown"
    change: str | None = None
    breakdown: dict[str, float] = Field(default_factory=dict, description="signal -> score")
    evidence_ids: list[str] = Field(default_factory=list)


class LLMUsage(BaseModel):
    """What one RCA cost at the LLM gateway, repair call and retries included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = Field(0.0, description="From the configured price per 1k tokens")
    calls: int = Field(0, description="Completed gateway calls")


# A draft names its leading suspect as the cause only from this confidence on (more likely
# right than wrong); below it says "no confident cause" and lists the leading suspects.
CONFIDENT = 0.5


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
    suspects: list[Suspect] = Field(default_factory=list, description="Ranked, best first")
    # Set by the LLM analyzer; the heuristic leaves them unset.
    model: str | None = Field(None, description="Model that wrote the answer")
    prompt_version: str | None = None
    prompt_hash: str | None = Field(None, description="Content hash of the prompt templates")
    usage: LLMUsage | None = None
    owner_team: str | None = Field(None, description="Owning team, if known")


class EvidenceDigest(BaseModel):
    """What readers of the draft see of one evidence item."""

    id: str
    collector: str
    summary: str
    detail: str = Field("", description="The decisive specifics (a diff, a log line), clipped")
    role: Literal["cause", "context", "ruled_out"] = Field(
        "context",
        description="cause: what the probable cause rests on; ruled_out: looked at and found "
        "(nearly) normal",
    )


class CollectorReport(BaseModel):
    collector: str
    status: Literal["ok", "error", "no_data"]
    items: int
    duration_s: float
    error: str | None = None


class Link(BaseModel):
    kind: Literal["graph", "runbook"]
    title: str
    url: str


class ChangeMark(BaseModel):
    at: datetime
    label: str


class MetricSeries(BaseModel):
    """The alerting series around the onset, for the graph people see with the draft."""

    title: str
    points: list[tuple[float, float]] = Field(description="(unix seconds, value)")
    onset: datetime
    changes: list[ChangeMark] = Field(default_factory=list, description="Rollouts and the like")


class DeliveryRequest(BaseModel):
    """Published by workers (drafts), by the incident stage (resolves) and by the correlator
    (storm updates: a parent's attached groups changed and no draft of it will say so)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["draft", "resolve", "storm_update"]
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
    annotations: dict[str, str] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list, description="Graphs and runbooks of alerts")
    series: MetricSeries | None = None
    reason: str = Field("", description="Why this revision was investigated")
    attached: dict[str, ChildRef] = Field(
        default_factory=dict, description="Alert groups attached to this parent incident"
    )
    notes: list[str] = Field(default_factory=list, description="Groups detached, and why")
    not_before: datetime | None = Field(
        None, description="A storm update waits for its debounce window to close"
    )


class DeadLetter(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    subject: str
    reason: str
    deliveries: int
    payload: str
    at: datetime
