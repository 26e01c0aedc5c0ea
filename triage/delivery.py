"""Delivery: route a draft or resolve to its team and hand it to every sink, once as people see
it. What was delivered is recorded on the incident, so a redelivered message does nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Protocol, TextIO

import structlog

from triage.bus import Bus
from triage.errors import NotReady, PoisonMessage
from triage.metrics import Metrics
from triage.models import DeliveryRef, DeliveryRequest, IncidentState, utcnow
from triage.routing import RouteDecision, Router

log = structlog.get_logger(__name__)


class Sink(Protocol):
    name: str

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        """Deliver; returns a reference to what was posted (a thread for later updates)."""
        ...


def render_text(request: DeliveryRequest, route: RouteDecision) -> str:
    head = f"[{request.severity}] {request.title}  -> {route.channel} ({route.team})"
    if request.kind == "resolve":
        return f"RESOLVED {head}\nincident {request.incident_id} episode {request.episode}\n"
    rca = request.rca
    if rca is None:
        return f"DRAFT {head}\n(no analysis)\n"
    lines = [
        f"DRAFT for review  {head}",
        f"incident {request.incident_id} revision {request.revision}",
        rca.summary,
        f"Root cause: {rca.root_cause.component} [{rca.root_cause.kind}]"
        + (f" change: {rca.root_cause.change}" if rca.root_cause.change else ""),
        f"Confidence: {rca.confidence:.2f}   Impact: {rca.impact}",
        "Evidence:",
        *(f"  - [{e.id}] {e.summary}" for e in request.evidence[:5]),
        "Next steps:",
        *(f"  - {s}" for s in rca.next_steps),
        "Collectors: " + ", ".join(f"{c.collector}={c.status}" for c in request.collectors),
        rca.label,
    ]
    return "\n".join(lines) + "\n"


class ConsoleSink:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        stream = self._stream or sys.stdout
        stream.write("\n" + render_text(request, route))
        stream.flush()
        return thread or f"console:{request.incident_id}"


class JsonlSink:
    """One JSON object a line: what a script or another chat bridge can tail."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        record = {
            "team": route.team,
            "channel": route.channel,
            "route_reason": route.reason,
            "thread": thread,
            "delivery": request.model_dump(mode="json"),
        }
        line = json.dumps(record, sort_keys=True) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        return thread or f"jsonl:{request.incident_id}"

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()


def already_delivered(state: IncidentState, request: DeliveryRequest) -> bool:
    if request.kind == "draft":
        return any(d.kind == "draft" and d.revision >= request.revision for d in state.deliveries)
    return any(d.kind == "resolve" and d.revision == request.episode for d in state.deliveries)


class DeliveryStage:
    def __init__(self, bus: Bus, router: Router, sinks: list[Sink], metrics: Metrics) -> None:
        self._bus = bus
        self._router = router
        self._sinks = sinks
        self._metrics = metrics

    async def handle(self, request: DeliveryRequest) -> str:
        structlog.contextvars.bind_contextvars(incident_id=request.incident_id)
        state, _ = await self._bus.get_incident(request.incident_id)
        if state is None:
            raise PoisonMessage(f"delivery for unknown incident {request.incident_id}")
        if already_delivered(state, request):
            return "duplicate"
        if request.kind == "resolve" and not any(d.kind == "draft" for d in state.deliveries):
            # The draft is still on its way; a resolve without it would have no thread.
            raise NotReady("draft not delivered yet", delay_s=2)
        route = self._router.route(request.labels)
        refs = []
        for sink in self._sinks:
            thread = next((d.ref for d in state.deliveries if d.sink == sink.name), None)
            try:
                ref = await sink.send(request, route, thread)
            except Exception:
                self._metrics.deliveries.labels(sink.name, "error").inc()
                raise
            self._metrics.deliveries.labels(sink.name, "ok").inc()
            rev = request.revision if request.kind == "draft" else request.episode
            refs.append(
                DeliveryRef(
                    kind=request.kind,
                    revision=rev,
                    sink=sink.name,
                    channel=route.channel,
                    ref=ref,
                    at=utcnow(),
                )
            )

        def record(s: IncidentState | None) -> IncidentState | None:
            if s is None or already_delivered(s, request):
                return None
            s.deliveries.extend(refs)
            return s

        await self._bus.mutate_incident(request.incident_id, record)
        log.info("delivered", kind=request.kind, channel=route.channel, team=route.team)
        return "delivered"
