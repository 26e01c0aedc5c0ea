"""The contract every evidence source honours: never raise, say ok / error / no_data."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from triage.models import IncidentState

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

    async def collect(self, incident: IncidentState, window: TimeWindow) -> Evidence:
        """Gather evidence; failures are reported in the result, never raised."""
        ...
