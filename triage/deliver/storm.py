"""Delivery in a storm: a parent incident's teams, and Slack drafts coalesced."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from triage.deliver.routing import RouteDecision, Router, Target
from triage.models import DeliveryRequest, IncidentState

# How a target added for an attached group's team says so: the Slack sink links its thread to
# the parent's (redaction keeps this prefix: it is our own text).
ATTACHED = "attached group: "


async def with_teams(
    router: Router, route: RouteDecision, state: IncidentState, severity: str
) -> RouteDecision:
    """A parent incident's route, plus one channel of every team owning attached groups: each
    gets one thread of its own in its channel, linking to the parent's."""
    if not state.children:
        return route
    seen = set(route.channels)
    extra: list[Target] = []
    labelsets = {tuple(sorted(c.labels.items())) for c in state.children.values()}
    for labels in sorted(labelsets):
        found = await router.decide({"severity": severity, **dict(labels)})
        for t in found.targets:
            fresh = tuple(c for c in t.channels if c not in seen)
            if fresh:
                seen.update(fresh)
                extra.append(replace(t, channels=fresh, reason=f"{ATTACHED}{t.reason}"))
    return RouteDecision(targets=route.targets + tuple(extra))


def attached_channels(route: RouteDecision) -> frozenset[str]:
    """The channels ``with_teams`` added for attached groups' teams (none the parent's own)."""
    own = {c for t in route.targets if not t.reason.startswith(ATTACHED) for c in t.channels}
    added = {c for t in route.targets if t.reason.startswith(ATTACHED) for c in t.channels}
    return frozenset(added - own)


def coalesced(
    state: IncidentState, request: DeliveryRequest, sink: Any, thread: str | None
) -> bool:
    """Whether a paced sink (Slack) may skip this draft: its thread exists and a newer draft of
    the same episode has been published since, which carries everything this one would."""
    return bool(
        getattr(sink, "paced", False)
        and request.kind == "draft"
        and thread
        and state.drafted_revision > request.revision
        and state.episode == request.episode
    )
