"""What an incident records of each sink's deliveries: done, attempted, or left unfinished."""

from __future__ import annotations

from triage.models import DeliveryRef, DeliveryRequest, IncidentState


def attempt_of(state: IncidentState, request: DeliveryRequest, sink: str) -> DeliveryRef | None:
    """The unfinished record of this very request at this sink: an attempt began."""
    rev = request.revision if request.kind == "draft" else request.episode
    return next(
        (
            d
            for d in state.deliveries
            if d.sink == sink and not d.complete and d.kind == request.kind and d.revision == rev
        ),
        None,
    )


def orphan_of(
    state: IncidentState, request: DeliveryRequest, sink: str
) -> tuple[DeliveryRequest, DeliveryRef] | None:
    """The latest record at this sink when it is the unfinished attempt of an earlier request of
    the same episode (its notifier died, or it failed, before recording what it posted): that
    request, as it was, and its record."""
    latest = next((d for d in reversed(state.deliveries) if d.sink == sink), None)
    if latest is None or latest.complete or latest.episode != request.episode:
        return None
    rev = request.revision if request.kind == "draft" else request.episode
    if (latest.kind, latest.revision) == (request.kind, rev):
        return None  # this very request's attempt
    earlier = request.model_copy(update={"kind": latest.kind, "revision": latest.revision})
    return earlier, latest


def already_delivered(
    state: IncidentState, request: DeliveryRequest, sink: str, *, paced: bool = True
) -> bool:
    """A thread's sink (``paced``: Slack) counts a newer draft as this one's; the others get
    every draft, also one that comes late (its lane's message held by a notifier that died)."""
    for d in state.deliveries:
        if d.sink != sink or not d.complete or d.kind != request.kind:
            continue
        if request.kind == "draft" and (
            d.revision >= request.revision if paced else d.revision == request.revision
        ):
            return True
        if request.kind == "resolve" and d.revision == request.episode:
            return True
    return False
