"""Investigation: claim the incident, run the collectors concurrently under deadlines, analyse,
hand the draft to delivery. A collector that fails weakens the draft; it never aborts it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from collectors.contracts import Collector, Evidence, TimeWindow
from triage.analyse.heuristic import Analyzer, ranked_items
from triage.bus.jetstream import Bus, worker_id
from triage.bus.limits import VALUE_CHARS, bound_values, truncate
from triage.bus.subjects import longest_msg_id
from triage.errors import MessageTooLarge, NotReady
from triage.incidents.correlation import with_children
from triage.incidents.grouping import IncidentStage, title_of
from triage.incidents.storm import Correlator
from triage.investigate import attachments
from triage.investigate.fit import draft_size as draft_size
from triage.investigate.fit import fit_draft as fit_draft
from triage.investigate.ranking import rank
from triage.models import (
    RCA,
    Claim,
    CollectorReport,
    DeliveryRequest,
    EvidenceDigest,
    IncidentState,
    InvestigationRequest,
    utcnow,
)
from triage.settings import InvestigationSettings
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

Heartbeat = Callable[[], Awaitable[None]]


class Investigator:
    """Runs every collector at once; each has its own deadline and all share a total one."""

    def __init__(
        self, collectors: list[Collector], settings: InvestigationSettings, metrics: Metrics
    ) -> None:
        self._collectors = collectors
        self._settings = settings
        self._metrics = metrics

    def window(self, incident: IncidentState, now: datetime | None = None) -> TimeWindow:
        """Baseline before the onset, incident window after it, never past ``now``: an
        investigation sees only what existed when it ran (replays must not peek ahead)."""
        onset = incident.onset()
        end = min(onset + timedelta(seconds=self._settings.after_s), now or utcnow())
        return TimeWindow(
            start=onset - timedelta(seconds=self._settings.lookback_s),
            onset=onset,
            end=max(end, onset + timedelta(seconds=1)),  # clocks may disagree a little
        )

    async def collect(self, incident: IncidentState, now: datetime | None = None) -> list[Evidence]:
        window = self.window(incident, now)
        per = min(self._settings.collector_deadline_s, self._settings.total_deadline_s)
        return list(
            await asyncio.gather(*(self._one(c, incident, window, per) for c in self._collectors))
        )

    async def _one(
        self, collector: Collector, incident: IncidentState, window: TimeWindow, deadline: float
    ) -> Evidence:
        started = time.monotonic()
        try:
            evidence = await asyncio.wait_for(collector.collect(incident, window), deadline)
        except TimeoutError:
            evidence = Evidence(
                collector=collector.name,
                status="error",
                error=f"deadline of {deadline:g}s exceeded",
            )
        except Exception as exc:  # a broken collector must not take the investigation down
            log.exception("collector_crashed", collector=collector.name)
            evidence = Evidence(
                collector=collector.name, status="error", error=f"{type(exc).__name__}: {exc}"
            )
        evidence.duration_s = time.monotonic() - started
        self._metrics.collector_duration.labels(collector.name, evidence.status).observe(
            evidence.duration_s
        )
        return evidence


class InvestigationStage:
    def __init__(
        self,
        bus: Bus,
        investigator: Investigator,
        analyzer: Analyzer,
        incidents: IncidentStage,
        settings: InvestigationSettings,
        metrics: Metrics,
        correlator: Correlator | None = None,
    ) -> None:
        self._bus = bus
        self._correlator = correlator
        self._investigator = investigator
        self._analyzer = analyzer
        self._incidents = incidents
        self._settings = settings
        self._metrics = metrics
        self._me = worker_id()

    async def handle(self, request: InvestigationRequest, heartbeat: Heartbeat) -> str:
        """Returns the outcome; raises NotReady when the message should come back later."""
        structlog.contextvars.bind_contextvars(
            incident_id=request.incident_id, revision=request.revision
        )
        wait = (request.not_before - utcnow()).total_seconds()
        if wait > 0:
            raise NotReady("debouncing", delay_s=wait)
        claimed = await self._claim(request)
        if claimed is None:
            return "skipped"
        started = time.monotonic()
        beating = asyncio.create_task(_beat(heartbeat, self._bus.settings.ack_wait_s / 3))
        try:
            async with asyncio.timeout(self._settings.total_deadline_s + 5):
                # A parent's investigation sees its attached groups' alerts too.
                view = with_children(claimed)
                evidence = await self._investigator.collect(view)
                if self._correlator is not None:
                    # Cheap first (ranking, no LLM): a group that shares an open parent's cause
                    # is attached to it and gets no analysis of its own.
                    cheap = await self._correlator.cheap_rca(claimed, evidence)
                    if await self._correlator.place(claimed, cheap) is not None:
                        return await self._finish(request, claimed, None, started, "attached")
                follow_up = request.revision == claimed.follow_up_revision
                if follow_up and _still_points_at(claimed, evidence):
                    # Same suspect on top: spare the gateway an analysis that adds nothing.
                    return await self._finish(request, claimed, None, started, "confirmed")
                rca = await self._analyzer.analyze(view, evidence)
        finally:
            beating.cancel()
        cause = f"{rca.root_cause.component}|{rca.root_cause.kind}"
        if follow_up and cause == claimed.last_cause:
            # The later data says what the draft already says: nothing new for the thread.
            return await self._finish(request, claimed, None, started, "confirmed")
        delivery = draft_request(claimed, request.revision, rca, evidence, request.reason)
        delivery.attached, delivery.notes = claimed.children, claimed.notes
        msg_id = f"{claimed.incident_id}.draft.{request.revision}"
        room = self._bus.room({"Nats-Msg-Id": longest_msg_id(msg_id)})
        delivery = fit_draft(delivery, room)
        # Publish before recording: if we die in between, the redelivered request repeats the
        # work and JetStream drops the second draft by its id.
        try:
            await self._bus.publish_delivery(delivery, msg_id)  # to both delivery lanes
        except MessageTooLarge as exc:
            # Dead-lettered with this reason (a PoisonMessage): retrying cannot make it fit.
            raise MessageTooLarge(
                f"draft {msg_id} does not fit even shrunk: {exc}",
                subject=exc.subject,
                size=exc.size,
                limit=exc.limit,
            ) from exc
        log.info("investigated", confidence=rca.confidence, cause=rca.root_cause.component)
        return await self._finish(request, claimed, cause, started, "investigated")

    async def _finish(
        self,
        request: InvestigationRequest,
        claimed: IncidentState,
        cause: str | None,
        started: float,
        outcome: str,
    ) -> str:
        follow_up = self._settings.follow_up_s
        # Data after the alert keeps arriving: look again once there is some, if that is
        # still ahead (a late first investigation already saw it).
        at = claimed.onset() + timedelta(seconds=follow_up) if follow_up else None
        if at is not None and at <= utcnow():
            at = None  # a late first look already saw that data
        state = await self._bus.mutate_incident(
            request.incident_id, lambda s: _finished(s, request.revision, self._me, cause, at)
        )
        if state is not None:
            await self._incidents.publish_owed(state)
        self._metrics.stage_duration.labels("investigation").observe(time.monotonic() - started)
        if outcome == "confirmed":
            log.info("follow_up_confirmed", cause=claimed.last_cause)
        return outcome

    async def _claim(self, request: InvestigationRequest) -> IncidentState | None:
        now = utcnow()
        lease = timedelta(seconds=self._settings.total_deadline_s + self._bus.settings.ack_wait_s)
        verdict: list[str] = []

        def take(state: IncidentState | None) -> IncidentState | None:
            verdict.clear()
            if state is None or state.requested_revision < request.revision:
                verdict.append("behind")  # the incident stage has not stored it yet
                return None
            if state.investigated_revision >= request.revision:
                verdict.append("done")
                return None
            if state.requested_revision > request.revision:
                verdict.append("superseded")  # a newer request is on its way
                return None
            c = state.claim
            if (
                c
                and c.revision == request.revision
                and c.worker != self._me
                and c.lease_until > now
            ):
                verdict.append("leased")
                return None
            state.claim = Claim(worker=self._me, revision=request.revision, lease_until=now + lease)
            verdict.append("claimed")
            return state

        state = await self._bus.mutate_incident(request.incident_id, take)
        outcome = verdict[0] if verdict else "behind"
        if outcome == "behind":
            raise NotReady("incident state not written yet", delay_s=1)
        if outcome == "leased" and state is not None and state.claim is not None:
            raise NotReady(
                "another worker holds the lease",
                delay_s=(state.claim.lease_until - now).total_seconds(),
            )
        if outcome != "claimed":
            log.info("investigation_skipped", why=outcome)
            return None
        return state


def draft_request(
    incident: IncidentState, revision: int, rca: RCA, evidence: list[Evidence], reason: str
) -> DeliveryRequest:
    """The draft as every sink gets it: the RCA with its evidence, collectors and links."""
    return DeliveryRequest(
        kind="draft",
        incident_id=incident.incident_id,
        revision=revision,
        episode=incident.episode,
        title=truncate(title_of(incident), VALUE_CHARS),
        labels=bound_values(incident.common_labels),
        severity=incident.severity(),
        rca=rca,
        evidence=_digest(evidence, rca.evidence_ids),
        collectors=[
            CollectorReport(
                collector=e.collector,
                status=e.status,
                items=len(e.items),
                duration_s=round(e.duration_s, 3),
                error=e.error,
            )
            for e in evidence
        ],
        created_at=utcnow(),
        annotations=bound_values(attachments.alert_annotations(incident)),
        links=attachments.links(incident),
        series=attachments.series(evidence, incident.onset()),
        reason=reason,
    )


def _still_points_at(incident: IncidentState, evidence: list[Evidence]) -> bool:
    """Whether the ranking's top suspect is the component the delivered draft blamed."""
    top = rank(incident, evidence, limit=1)
    return bool(top) and top[0].component == incident.last_cause.split("|")[0]


def _finished(
    state: IncidentState | None,
    revision: int,
    me: str,
    cause: str | None,
    follow_up_at: datetime | None,
) -> IncidentState | None:
    if state is None:
        return None
    state.investigated_revision = max(state.investigated_revision, revision)
    if cause is not None:
        state.last_cause = cause
        state.drafted_revision = max(state.drafted_revision, revision)
    if state.claim is not None and state.claim.worker == me:
        state.claim = None
    if (
        follow_up_at is not None
        and state.status == "firing"
        and state.follow_up_episode < state.episode
        and state.requested_revision == revision
    ):
        state.requested_revision += 1
        state.follow_up_revision = state.requested_revision
        state.follow_up_episode = state.episode
        state.investigate_after = follow_up_at
    state.updated_at = utcnow()
    return state


# Below this anomaly score an item says "looked, and it is (nearly) normal".
RULED_OUT_SCORE = 0.2
DETAIL_CHARS = 300


def _digest(evidence: list[Evidence], cited: list[str]) -> list[EvidenceDigest]:
    by_id = {i.id: (e.collector, i) for e in evidence for i in e.items}
    order = cited + [i.id for i in ranked_items(evidence) if i.id not in cited]
    out = []
    for i in order[:10]:
        if i not in by_id:
            continue
        collector, item = by_id[i]
        role = "cause" if i in cited else "ruled_out" if item.score < RULED_OUT_SCORE else "context"
        detail = (
            item.detail if len(item.detail) <= DETAIL_CHARS else item.detail[:DETAIL_CHARS] + "…"
        )
        out.append(
            EvidenceDigest(
                id=i, collector=collector, summary=item.summary, detail=detail, role=role
            )
        )
    return out


async def _beat(heartbeat: Heartbeat, every: float) -> None:
    # Tells JetStream we are alive so it does not hand the message to another worker.
    while True:
        await asyncio.sleep(every)
        try:
            await heartbeat()
        except Exception:
            log.warning("heartbeat_failed")
