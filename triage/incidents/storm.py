"""Correlation across alert groups, the state: placing a group under a parent incident (or
making it one), detaching it, and the parent's re-investigations and resolve.

Every change is a compare-and-set: the correlation index first (which parent, decided once for
all workers), then the group's state, then the parent's; a crash in between is healed by the
redelivered investigation request, which finds its placement in the index and repeats the rest.

A change of a parent's groups that no draft will carry (its re-investigations used up, a
follow-up waiting, its own alerts resolved) is published as a storm update: no investigation, at
most one per ``storm_debounce_s``, delivered with the groups attached by then.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from collectors.contracts import Evidence
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.bus.jetstream import Bus
from triage.bus.limits import VALUE_CHARS, bound_values, truncate
from triage.incidents import correlation as rule
from triage.incidents.grouping import IncidentStage, title_of
from triage.models import RCA, DeliveryRequest, IncidentState, utcnow
from triage.settings import IncidentSettings
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)


class Correlator:
    def __init__(
        self, bus: Bus, settings: IncidentSettings, metrics: Metrics, incidents: IncidentStage
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._metrics = metrics
        self._incidents = incidents
        self._cheap = HeuristicAnalyzer()

    async def cheap_rca(self, state: IncidentState, evidence: list[Evidence]) -> RCA:
        return await self._cheap.analyze(state, evidence)

    async def place(self, state: IncidentState, rca: RCA) -> str | None:
        """The parent this group is part of (it gets no analysis of its own), or None when it
        is a parent: its own cause, or the first of its cause."""
        lead = rule.lead_of(state, rca)
        least = self._settings.correlation_confidence
        if state.parent_id is not None:
            index = await self._index()
            parent = next((p for p in index.parents if p.incident_id == state.parent_id), None)
            why = rule.detach_reason(parent, lead, least) if parent is not None else None
            if why is None:
                await self._update_parent(state, state.parent_id, state.attach_reason)
                return state.parent_id
            await self._detach(state, state.parent_id, why)
        index_key = rule.INDEX_KEY
        placed: list[rule.Placement] = []

        def decide(index: rule.Index | None) -> rule.Index | None:
            placed.clear()
            new, placement = rule.place(
                index or rule.Index(),
                state.incident_id,
                state.first_seen,
                lead,
                window_s=self._settings.correlation_window_s,
                least=least,
            )
            placed.append(placement)
            return new

        await self._bus.mutate_model(index_key, rule.Index, decide)
        placement = placed[0]
        if placement.parent_id is None:
            if placement.new:
                self._metrics.correlations.labels("parent").inc()
                log.info("correlation_parent", lead=lead.describe(), why=placement.reason)
            return None
        reason = state.attach_reason if not placement.new else placement.reason
        await self._attach(state, placement.parent_id, reason)
        if placement.new:
            self._metrics.correlations.labels("attached").inc()
            log.info("correlation_attached", parent=placement.parent_id, why=reason)
        return placement.parent_id

    async def _index(self) -> rule.Index:
        found, _ = await self._bus.get_model(rule.INDEX_KEY, rule.Index)
        return found or rule.Index()

    async def _attach(self, state: IncidentState, parent_id: str, reason: str) -> None:
        def mark(s: IncidentState | None) -> IncidentState | None:
            if s is None or (s.parent_id == parent_id and s.attach_reason == reason):
                return None
            s.parent_id, s.attach_reason = parent_id, reason
            return s

        await self._bus.mutate_incident(state.incident_id, mark)
        await self._update_parent(state, parent_id, reason)

    async def _update_parent(self, child: IncidentState, parent_id: str, reason: str) -> None:
        """The parent's record of ``child``, and its re-investigation once the storm settles."""
        ref = rule.child_ref(child, reason, title_of(child))
        now = utcnow()
        asked: list[bool] = []

        def update(p: IncidentState | None) -> IncidentState | None:
            asked.clear()
            if p is None:
                return None
            known = p.children.get(child.incident_id)
            if known is not None and known.model_dump(exclude={"at"}) == ref.model_dump(
                exclude={"at"}
            ):
                return None
            p.children[child.incident_id] = ref
            asked.append(self._reinvestigate(p, now))
            p.updated_at = now
            return p

        parent = await self._bus.mutate_incident(parent_id, update)
        if asked and asked[0]:
            self._metrics.storm_reinvestigations.inc()
        if parent is not None:
            await self._incidents.publish_owed(parent)
            if asked:  # its groups changed
                await self._tell_storm(parent)

    def _reinvestigate(self, p: IncidentState, now: datetime) -> bool:
        """One more investigation of the parent, unless one is waiting to start (it will see
        this group) or the cap is reached; debounced so a growing storm is looked at once."""
        if p.status != "firing" or waiting(p):
            return False
        if p.reinvestigations >= self._settings.storm_reinvestigations:
            return False
        p.reinvestigations += 1
        p.requested_revision += 1
        p.investigate_after = now + timedelta(seconds=self._settings.storm_debounce_s)
        return True

    async def _detach(self, state: IncidentState, parent_id: str, why: str) -> None:
        note = f"{title_of(state)} ({state.incident_id}) detached: {why}"

        def forget(index: rule.Index | None) -> rule.Index | None:
            return rule.without(index, state.incident_id) if index is not None else None

        await self._bus.mutate_model(rule.INDEX_KEY, rule.Index, forget)
        now = utcnow()

        def unmark(s: IncidentState | None) -> IncidentState | None:
            if s is None or s.parent_id is None:
                return None
            s.parent_id, s.attach_reason = None, ""
            s.notes.append(f"detached from {parent_id}: {why}")
            return s

        dropped: list[bool] = []

        def drop(p: IncidentState | None) -> IncidentState | None:
            dropped.clear()
            if p is None or state.incident_id not in p.children:
                return None
            dropped.append(True)
            del p.children[state.incident_id]
            p.notes.append(note)
            self._reinvestigate(p, now)
            p.updated_at = now
            return p

        await self._bus.mutate_incident(state.incident_id, unmark)
        parent = await self._bus.mutate_incident(parent_id, drop)
        state.parent_id, state.attach_reason = None, ""
        self._metrics.correlations.labels("detached").inc()
        log.info("correlation_detached", parent=parent_id, why=why)
        if parent is not None:
            await self._incidents.publish_owed(parent)
            if dropped:
                await self._tell_storm(parent)

    async def _tell_storm(self, parent: IncidentState) -> None:
        """A storm update of ``parent``, unless a draft on its way will show its groups."""
        if parent.parent_id is not None or drafting(parent):
            return
        request, msg_id = storm_update(parent, utcnow(), self._settings.storm_debounce_s)
        if await self._bus.publish_delivery(request, msg_id):
            log.info("storm_update_requested", groups=len(parent.children), window=msg_id)


def waiting(p: IncidentState) -> bool:
    """Whether an investigation of ``p`` is asked for and no worker has claimed it yet: when it
    starts, it reads the state as it is then."""
    pending = p.requested_revision > p.investigated_revision
    claimed = p.claim is not None and p.claim.revision == p.requested_revision
    return pending and not claimed


def drafting(p: IncidentState) -> bool:
    """Whether an investigation of ``p`` that has not read its state yet will draft it: one
    waiting to start, and not a follow-up (which drafts only when the cause changed)."""
    follow_up = p.requested_revision == p.follow_up_revision
    return p.status == "firing" and waiting(p) and not follow_up


def storm_update(
    parent: IncidentState, now: datetime, window_s: float
) -> tuple[DeliveryRequest, str]:
    """The storm update of ``parent`` for the debounce window ``now`` falls in, and its msg id.
    Every change within one window publishes the same id (JetStream keeps the first); the
    notifier delivers it once the window has closed, with the groups attached by then. ``now``
    is read after the parent was stored, so the window's delivery sees the change."""
    if window_s > 0:
        window = int(now.timestamp() // window_s) + 1
        closes = datetime.fromtimestamp(window * window_s, UTC)
    else:
        window, closes = int(now.timestamp() * 1000), now
    request = DeliveryRequest(
        kind="storm_update",
        incident_id=parent.incident_id,
        revision=window,
        episode=parent.episode,
        title=truncate(title_of(parent), VALUE_CHARS),
        labels=bound_values(parent.common_labels),
        severity=parent.severity(),
        created_at=now,
        not_before=closes,
    )
    return request, f"{parent.incident_id}.storm_update.{window}"
