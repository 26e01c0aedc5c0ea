"""Delivery: route a draft or resolve to its team and hand it to every sink, once as people see
it. What was delivered is recorded on the incident, so a redelivered message does nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

import structlog

from triage.analyse.redaction import Redactor
from triage.bus.jetstream import Bus, worker_id
from triage.bus.subjects import DIRECT, Lane
from triage.deliver.draft_text import render_text
from triage.deliver.records import already_delivered, attempt_of, orphan_of
from triage.deliver.routing import RouteDecision, Router
from triage.deliver.storm import coalesced, with_teams
from triage.deliver.storm_update import as_it_stands, deliver_update, remember_draft
from triage.errors import NotReady, PartialDelivery, PoisonMessage
from triage.models import Claim, DeliveryRef, DeliveryRequest, IncidentState, utcnow
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

# How often a replica looks whether another one has released the incident it waits for.
CLAIM_POLL_S = 0.2


class Sink(Protocol):
    name: str

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        """Deliver; returns a reference to what was posted (a thread for later updates)."""
        ...


@runtime_checkable
class Recoverable(Protocol):
    """A sink that can find what an interrupted attempt delivered (a crash between sending and
    recording): the stage records its intent before each send, and a retry asks it first."""

    async def recover(
        self, request: DeliveryRequest, route: RouteDecision, thread: str | None, since: datetime
    ) -> tuple[str, bool] | None:
        """(reference to continue from, nothing left to send), or None when nothing was found."""
        ...


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
        line = json.dumps(delivery_record(request, route, thread), sort_keys=True) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        return thread or f"jsonl:{request.incident_id}"

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()

    async def recover(
        self, request: DeliveryRequest, route: RouteDecision, thread: str | None, since: datetime
    ) -> tuple[str, bool] | None:
        """Whether an interrupted attempt wrote this delivery's line already (by its id)."""
        async with self._lock:
            found = await asyncio.to_thread(self._has, delivery_id(request))
        return (thread or f"jsonl:{request.incident_id}", True) if found else None

    def _has(self, wanted: str) -> bool:
        key = json.dumps(wanted)
        try:
            with self._path.open(encoding="utf-8") as f:
                # Only after a crash, and only this id's lines are parsed.
                for line in f:
                    if key in line and json.loads(line).get("delivery_id") == wanted:
                        return True
        except FileNotFoundError:
            return False
        return False


def owned(request: DeliveryRequest, route: RouteDecision) -> DeliveryRequest:
    """Every draft names its owner: the team the routing found, whoever wrote the draft."""
    if request.rca is None or request.rca.owner_team:
        return request
    rca = request.rca.model_copy(update={"owner_team": route.team})
    return request.model_copy(update={"rca": rca})


def delivery_id(request: DeliveryRequest) -> str:
    """One id per delivery (the webhook's Idempotency-Key): incident, kind, revision (a resolve's
    episode, a storm update's window)."""
    rev = request.episode if request.kind == "resolve" else request.revision
    return f"{request.incident_id}.{request.kind}.{rev}"


def delivery_record(
    request: DeliveryRequest, route: RouteDecision, thread: str | None
) -> dict[str, object]:
    """What the JSONL and webhook sinks write: the delivery and where it was routed."""
    return {
        "delivery_id": delivery_id(request),
        "team": route.team,
        "channel": route.channel,
        "channels": list(route.channels),
        "teams": [t.team for t in route.targets],
        "route_reason": route.reason,
        "thread": thread,
        "delivery": request.model_dump(mode="json"),
    }


def lane_sinks(lane: Lane, sinks: list[Sink]) -> list[Sink]:
    """A lane's share of the sinks: those waiting for a budget (``paced``: Slack) or the rest."""
    return [s for s in sinks if bool(getattr(s, "paced", False)) == lane.paced]


class DeliveryStage:
    """One delivery lane's stage: its sinks, under the lane's own claim on each incident, so a
    lane waiting on Slack's budget never holds up another lane's sinks."""

    def __init__(
        self,
        bus: Bus,
        router: Router,
        sinks: list[Sink],
        metrics: Metrics,
        redactor: Redactor | None = None,
        lane: Lane = DIRECT,
    ) -> None:
        self._bus = bus
        self._redactor = redactor or Redactor.from_settings()
        self._router = router
        self._sinks = sinks
        self._paced = {s.name for s in sinks if getattr(s, "paced", False)}
        self._metrics = metrics
        self._lane = lane.name
        self._me = f"notify-{worker_id()}-{id(self):x}"
        # One delivery per incident at a time here: two drafts racing would open two threads.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def handle(
        self, request: DeliveryRequest, heartbeat: Callable[[], Awaitable[None]] | None = None
    ) -> str:
        """``heartbeat`` keeps the message ours while a sink waits (pacing, Retry-After)."""
        structlog.contextvars.bind_contextvars(incident_id=request.incident_id)
        if not self._sinks:
            return "no_sinks"  # this deployment has none of this lane's sinks
        if request.not_before is not None and (wait := _until(request.not_before)) > 0:
            raise NotReady("storm update debouncing", delay_s=wait)
        lock = self._locks.get(request.incident_id)
        if lock is None:
            lock = self._locks[request.incident_id] = asyncio.Lock()
        # Heartbeats from receipt: a message waiting its turn here must not be handed to another
        # replica meanwhile.
        async with (
            _beating(heartbeat, self._bus.settings.ack_wait_s / 3),
            lock,
            self._claimed(request.incident_id),
        ):
            return await self._deliver(request)

    @contextlib.asynccontextmanager
    async def _claimed(self, incident_id: str) -> AsyncIterator[None]:
        """This replica's claim on delivering the incident, taken by compare-and-set before
        anything is posted and renewed while sinks wait (pacing, Retry-After); another replica
        holding a live claim makes this message wait. A crash lets the claim expire."""
        lease = timedelta(seconds=self._bus.settings.ack_wait_s)
        held: list[datetime] = []

        def take(state: IncidentState | None) -> IncidentState | None:
            held.clear()
            if state is None:
                return None
            now = utcnow()
            # A live claim of a notifier older than the lanes (notify_claim) holds every lane.
            for c in (state.notify_claims.get(self._lane), state.notify_claim):
                if c is not None and c.worker != self._me and c.lease_until > now:
                    held.append(c.lease_until)
                    return None
            claim = Claim(worker=self._me, revision=0, lease_until=now + lease)
            state.notify_claims[self._lane] = claim
            return state

        await self._bus.mutate_incident(incident_id, take)
        # The other replica is usually done in moments (a revision and the resolve of one
        # incident often arrive together): wait for its release here, the message kept by the
        # heartbeats, rather than be redelivered only when its whole lease has run out. A claim
        # that outlasts this (a crashed holder) makes the message come back after its lease.
        patience = utcnow() + lease / 3
        while held and utcnow() < patience:
            await asyncio.sleep(CLAIM_POLL_S)
            await self._bus.mutate_incident(incident_id, take)
        if held:
            wait = (held[0] - utcnow()).total_seconds()
            raise NotReady("another notifier delivers this incident", delay_s=max(0.5, wait))

        async def renew() -> None:
            await self._bus.mutate_incident(incident_id, take)

        # Renewed like a heartbeat: a missed renewal risks a wait elsewhere, not a duplicate.
        try:
            async with _beating(renew, lease.total_seconds() / 3):
                yield
        finally:

            def release(state: IncidentState | None) -> IncidentState | None:
                c = state.notify_claims.get(self._lane) if state is not None else None
                if state is None or c is None or c.worker != self._me:
                    return None
                del state.notify_claims[self._lane]
                return state

            try:
                await self._bus.mutate_incident(incident_id, release)
            except Exception:  # it expires by itself; the delivery's outcome stands
                log.warning("notify_claim_release_failed")

    async def _deliver(self, request: DeliveryRequest) -> str:
        state, _ = await self._bus.get_incident(request.incident_id)
        if state is None:
            raise PoisonMessage(f"delivery for unknown incident {request.incident_id}")
        request = as_it_stands(request, state)
        # Each sink is recorded as soon as it is done, so a retry repeats only the ones that failed.
        # (A storm update's are kept apart: triage.deliver.storm_update.)
        pending = [
            s
            for s in self._sinks
            if request.kind == "storm_update" or not self._delivered(state, request, s.name)
        ]
        if not pending:
            return "duplicate"
        mine = {s.name for s in self._sinks}
        if request.kind == "resolve" and not any(
            d.kind == "draft" and d.sink in mine and (d.complete or d.ref) for d in state.deliveries
        ):
            # The draft is still on its way in this lane; a resolve without it would have no
            # thread. (The other lane's drafts do not count: it may be far behind or ahead.)
            raise NotReady("draft not delivered yet", delay_s=2)
        route = await self._router.decide({"severity": request.severity, **request.labels})
        request = owned(request, route)
        route = await with_teams(self._router, route, state, request.severity)
        # Redacted once, here: no sink sees a secret (labels, annotations, links, RCA, evidence).
        request, route = self._redactor.redact_delivery(request, route)
        if request.kind == "storm_update":
            return await deliver_update(self._bus, pending, self._metrics, state, request, route)
        for sink in pending:
            # The latest reference says where this incident's thread is (and how far a failed
            # attempt at this very request got).
            thread = next((d.ref for d in reversed(state.deliveries) if d.sink == sink.name), None)
            if coalesced(state, request, sink, thread):
                # A paced sink whose channel budget is spent skips a draft a newer one of the
                # same thread supersedes: that one carries everything this one would.
                self._metrics.deliveries.labels(sink.name, "coalesced").inc()
                await self._record(request, sink.name, route, thread or "", complete=True)
                continue
            if isinstance(sink, Recoverable):
                attempt = attempt_of(state, request, sink.name)
                orphan = orphan_of(state, request, sink.name) if attempt is None else None
                if orphan is not None:
                    # An earlier request may have posted and not recorded it (the first draft,
                    # the thread's parent): found first, so this one goes into that thread.
                    earlier, record = orphan
                    found = await sink.recover(earlier, route, record.ref or None, record.at)
                    if found is not None:
                        await self._record(earlier, sink.name, route, found[0], complete=found[1])
                        thread = found[0]
                if attempt is None:
                    # The intent first: a crash after posting leaves a trace to look for.
                    await self._record(request, sink.name, route, thread or "", complete=False)
                else:
                    found = await sink.recover(request, route, thread, attempt.at)
                    if found is not None and found[1]:
                        await self._record(request, sink.name, route, found[0], complete=True)
                        continue
                    thread = found[0] if found is not None else thread
            try:
                ref = await sink.send(request, route, thread)
            except PartialDelivery as exc:
                self._metrics.deliveries.labels(sink.name, "error").inc()
                await self._record(request, sink.name, route, exc.ref, complete=False)
                raise
            except Exception:
                self._metrics.deliveries.labels(sink.name, "error").inc()
                raise
            self._metrics.deliveries.labels(sink.name, "ok").inc()
            await self._record(request, sink.name, route, ref, complete=True)
            if request.kind == "draft" and sink.name in self._paced:
                await remember_draft(self._bus, request)  # what a storm update redraws
        log.info("delivered", kind=request.kind, channels=route.channels, team=route.team)
        return "delivered"

    def _delivered(self, state: IncidentState, request: DeliveryRequest, sink: str) -> bool:
        return already_delivered(state, request, sink, paced=sink in self._paced)

    async def _record(
        self, request: DeliveryRequest, sink: str, route: RouteDecision, ref: str, *, complete: bool
    ) -> None:
        rev = request.revision if request.kind == "draft" else request.episode
        entry = DeliveryRef(
            kind=request.kind,
            revision=rev,
            sink=sink,
            channel=route.channel,
            ref=ref,
            at=utcnow(),
            complete=complete,
            episode=request.episode,
        )

        def record(s: IncidentState | None) -> IncidentState | None:
            if s is None or self._delivered(s, request, sink):
                return None
            # A partial record of this request is superseded by the newer one.
            s.deliveries = [
                d
                for d in s.deliveries
                if d.complete or not (d.sink == sink and d.kind == entry.kind and d.revision == rev)
            ]
            s.deliveries.append(entry)
            return s

        await self._bus.mutate_incident(request.incident_id, record)


def _until(at: datetime) -> float:
    return (at - utcnow()).total_seconds()


@contextlib.asynccontextmanager
async def _beating(
    heartbeat: Callable[[], Awaitable[None]] | None, every: float
) -> AsyncIterator[None]:
    if heartbeat is None:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await heartbeat()
            except Exception:  # a missed beat only risks a redelivery, which is harmless
                log.warning("heartbeat_failed")

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
