"""The contract every evidence source honours: never raise, say ok / error / no_data.

Collectors see an incident only through ``IncidentView``, which triage's ``IncidentState``
satisfies structurally: collectors depend on this module, never on the incident model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

# Alert labels that name the workload an alert is about, as Prometheus rules and
# kube-state-metrics spell them, with the Kubernetes kind of the object each names. `service` is a
# guess at a Deployment of that name; `job` is also Prometheus' scrape job and `app` free-form,
# so neither names an object one can read for certain.
WORKLOAD_LABEL_KINDS: Mapping[str, str | None] = {
    "service": "deployment",
    "deployment": "deployment",
    "statefulset": "statefulset",
    "daemonset": "daemonset",
    "job": None,
    "app": None,
}
WORKLOAD_LABELS = tuple(WORKLOAD_LABEL_KINDS)


class AlertView(Protocol):
    """What a collector reads of one alert."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def generator_url(self) -> str: ...


class IncidentView(Protocol):
    """What a collector reads of an incident: its alerts (by fingerprint) and shared labels."""

    @property
    def alerts(self) -> Mapping[str, AlertView]: ...

    @property
    def common_labels(self) -> Mapping[str, str]: ...


EvidenceStatus = Literal["ok", "error", "no_data"]


class TimeWindow(BaseModel):
    start: datetime
    onset: datetime
    end: datetime


class EvidenceItem(BaseModel):
    id: str = Field(description="Stable: the same fact gets the same id on every run")
    kind: str = Field(description="metric_shift, log_pattern, k8s_event, rollout, pod_state, ...")
    summary: str
    detail: str = ""
    subject: str = Field("", description="Component the item is about (service/workload)")
    timestamp: datetime | None = None
    score: float = Field(0.0, ge=0, le=1, description="How anomalous / suspicious, 0..1")
    fault_hint: str | None = None
    change: str | None = None
    related: list[str] = Field(
        default_factory=list,
        description="Other components the fact involves: the callers whose calls failed",
    )
    points: list[tuple[float, float]] = Field(
        default_factory=list, description="metric items: (unix seconds, value), for the graph"
    )


class Evidence(BaseModel):
    collector: str
    status: EvidenceStatus
    items: list[EvidenceItem] = Field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    edges: list[tuple[str, str]] = Field(
        default_factory=list,
        description="caller -> callee pairs this source observed (service-mesh or RPC metrics)",
    )


class Collector(Protocol):
    name: str

    async def collect(self, incident: IncidentView, window: TimeWindow) -> Evidence:
        """Gather evidence; failures are reported in the result, never raised."""
        ...


class Neighbours(Protocol):
    """Namespaces one call away from the given ones (collectors.topology)."""

    async def of(self, namespaces: list[str], window: TimeWindow) -> list[str]: ...
