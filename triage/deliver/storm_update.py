"""Storm updates: a parent incident's attached groups changed and no draft will say so (its
re-investigations used up, a follow-up waiting, its own alerts resolved). No investigation: each
sink gets one small delivery of the groups as they stand when the update's debounce window
closes. Slack redraws the first message of each thread the episode has (never a new post); the
console, JSON Lines and webhook write one record each. A sink that has no draft of the episode
yet is skipped: that draft will list the groups.

What each sink got is kept under a key of its own in the incident bucket (the incident's delivery
records are its drafts' and resolves'), so a redelivered update is not applied twice, and an
update older than one already shown is not shown over it. The same key keeps the latest draft
Slack delivered, redacted: the first message is then redrawn as that draft with the storm as it
stands, as a re-investigation's draft would redraw it, and not as a bare summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, Field

from triage.bus.jetstream import Bus
from triage.deliver.routing import RouteDecision
from triage.errors import BrokerUnavailable, MessageTooLarge
from triage.models import SCHEMA_VERSION, DeliveryRequest, IncidentState
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)


class _Sink(Protocol):
    name: str

    async def send(
        self, request: DeliveryRequest, route: RouteDecision, thread: str | None
    ) -> str: ...


class StormView(BaseModel):
    """What the sinks show of a parent's storm, under ``view_key``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    applied: dict[str, int] = Field(
        default_factory=dict, description="By sink: the latest storm update (window) delivered"
    )
    draft: DeliveryRequest | None = Field(
        None, description="The latest draft Slack delivered, redacted, without graph and groups"
    )


def view_key(incident_id: str) -> str:
    return f"storm-view.{incident_id}"


def as_it_stands(request: DeliveryRequest, state: IncidentState) -> DeliveryRequest:
    """A parent's delivery with its groups as they stand now: a draft investigated before the
    last group attached says no less than the storm update before it, and a resolve gives the
    final count."""
    if not (state.children or state.notes):
        return request
    return request.model_copy(update={"attached": state.children, "notes": state.notes})


def has_thread(state: IncidentState, request: DeliveryRequest, sink: str) -> bool:
    """Whether ``sink`` shows this episode: a draft of it delivered there, and no resolve yet."""
    done = [
        d
        for d in state.deliveries
        if d.sink == sink and d.complete and d.episode in (None, request.episode)
    ]
    resolved = any(d.kind == "resolve" and d.revision == request.episode for d in done)
    return not resolved and any(d.kind == "draft" for d in done)


async def remember_draft(bus: Bus, request: DeliveryRequest) -> None:
    """After Slack delivered a draft (redacted): what its threads' first messages show."""
    kept = request.model_copy(update={"series": None, "attached": {}, "notes": []})

    def keep(view: StormView | None) -> StormView | None:
        view = view or StormView()
        shown = view.draft
        if shown is not None and (shown.episode, shown.revision) > (kept.episode, kept.revision):
            return None
        view.draft = kept
        return view

    try:
        await bus.mutate_model(view_key(request.incident_id), StormView, keep)
    except (MessageTooLarge, BrokerUnavailable) as exc:
        # An extra, never a reason to deliver the draft again: without it a storm update
        # redraws the first message from the cause kept with the thread.
        log.warning("storm_view_not_kept", revision=request.revision, error=str(exc))


async def deliver_update(
    bus: Bus,
    sinks: Sequence[_Sink],
    metrics: Metrics,
    state: IncidentState,
    request: DeliveryRequest,
    route: RouteDecision,
) -> str:
    """One storm update (redacted, its groups as they stand) to each of ``sinks``."""
    if request.episode != state.episode:
        return "superseded"
    key = view_key(request.incident_id)
    view = (await bus.get_model(key, StormView))[0] or StormView()
    outcome = "duplicate"
    for sink in sinks:
        if view.applied.get(sink.name, 0) >= request.revision:
            continue  # this update (a redelivery), or a later one, is shown there already
        if not has_thread(state, request, sink.name):
            metrics.deliveries.labels(sink.name, "no_thread").inc()
            outcome = "no_thread" if outcome == "duplicate" else outcome
            continue
        refs = (d.ref for d in reversed(state.deliveries) if d.sink == sink.name and d.ref)
        thread = next(refs, None)
        try:
            await sink.send(_shown(request, view, sink), route, thread)
        except Exception:
            metrics.deliveries.labels(sink.name, "error").inc()
            raise
        metrics.deliveries.labels(sink.name, "ok").inc()
        outcome = "delivered"

        def applied(v: StormView | None, name: str = sink.name) -> StormView | None:
            v = v or StormView()
            if v.applied.get(name, 0) >= request.revision:
                return None
            v.applied[name] = request.revision
            return v

        await bus.mutate_model(key, StormView, applied)
    log.info("storm_update", outcome=outcome, groups=len(request.attached))
    return outcome


def _shown(request: DeliveryRequest, view: StormView, sink: _Sink) -> DeliveryRequest:
    """For Slack, the draft its first message shows with the storm as it stands."""
    kept = view.draft
    if not getattr(sink, "paced", False) or kept is None or kept.episode != request.episode:
        return request
    return kept.model_copy(
        update={
            "kind": "storm_update",
            "attached": request.attached,
            "notes": request.notes,
            "created_at": request.created_at,
        }
    )
