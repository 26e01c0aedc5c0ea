"""The correlator's storm updates, with real incident state (NATS KV): a parent whose groups
change when no draft will show them (re-investigations used up) gets one, an attach or a detach
alike; one that a waiting re-investigation will draft gets none, and nor does a redelivery."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from triage_lab.fakes.nats import NatsServer

from tests.support.app import stream_messages
from triage.bus.jetstream import Bus
from triage.incidents import correlation as rule
from triage.incidents.grouping import IncidentStage
from triage.incidents.storm import Correlator
from triage.models import RCA, DeliveryRequest, IncidentState, RootCause, Suspect
from triage.settings import IncidentSettings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC)


def correlator(bus: Bus) -> Correlator:
    # No debounce: every change its own update, so each one can be counted.
    settings = IncidentSettings(storm_reinvestigations=1, storm_debounce_s=0)
    return Correlator(bus, settings, Metrics(), IncidentStage(bus, settings))


def state(incident_id: str, **fields: object) -> IncidentState:
    base: dict[str, object] = {
        "incident_id": incident_id,
        "group_key": incident_id,
        "status": "firing",
        "first_seen": NOW,
        "updated_at": NOW,
        "common_labels": {"alertname": "HighErrorRate", "service": incident_id},
        "requested_revision": 1,
        "investigated_revision": 1,
    }
    return IncidentState.model_validate({**base, **fields})


def cheap(incident_id: str, component: str) -> RCA:
    return RCA(
        incident_id=incident_id,
        revision=1,
        summary=f"{component} failed",
        root_cause=RootCause(component=component, kind="node_failure", description=""),
        confidence=0.8,
        impact="",
        evidence_ids=[],
        next_steps=[],
        analyzer="heuristic",
        label="",
        created_at=NOW,
        suspects=[Suspect(component=component, score=0.8, kind="node_failure")],
    )


async def parent_of_storm(bus: Bus, investigated: int = 2) -> None:
    """A parent whose one re-investigation (revision 2) was asked, and done unless told."""
    parent = state("inc-parent", reinvestigations=1, requested_revision=2)
    parent.investigated_revision = investigated
    await bus.mutate_incident("inc-parent", lambda _: parent)
    index = rule.Index(
        parents=[
            rule.OpenParent(
                incident_id="inc-parent", first_seen=NOW, component="node-7", kind="node_failure",
                confidence=0.8,
            )
        ]
    )  # fmt: skip
    await bus.mutate_model(rule.INDEX_KEY, rule.Index, lambda _: index)


async def updates(bus: Bus, nats_url: str) -> tuple[int, DeliveryRequest | None]:
    subject = bus.subjects.deliver
    count = await stream_messages(nats_url, subject)
    if not count:
        return 0, None
    last = await bus.js.get_last_msg(bus.settings.stream, subject)
    return count, DeliveryRequest.model_validate_json(last.data or b"")


async def test_groups_changing_after_the_cap_are_published_as_storm_updates(
    bus: Bus, nats_server: NatsServer
):
    await parent_of_storm(bus)
    c = correlator(bus)
    child = state("inc-child")
    await bus.mutate_incident("inc-child", lambda _: child)
    assert await c.place(child, cheap("inc-child", "node-7")) == "inc-parent"
    count, request = await updates(bus, nats_server.url)
    assert count == 1 and request is not None
    assert (request.kind, request.incident_id, request.schema_version) == (
        "storm_update",
        "inc-parent",
        1,
    )
    assert request.not_before is not None and request.rca is None
    parent, _ = await bus.get_incident("inc-parent")
    assert parent is not None and parent.reinvestigations == 1  # no investigation asked
    assert parent.requested_revision == parent.investigated_revision == 2

    # Its investigation redelivered: nothing changed, nothing published.
    attached, _ = await bus.get_incident("inc-child")
    assert attached is not None and attached.parent_id == "inc-parent"
    assert await c.place(attached, cheap("inc-child", "node-7")) == "inc-parent"
    assert (await updates(bus, nats_server.url))[0] == 1

    # Its own cause shows: detached, and the parent's storm says so.
    assert await c.place(attached, cheap("inc-child", "checkoutservice")) is None
    count, request = await updates(bus, nats_server.url)
    assert count == 2 and request is not None and request.kind == "storm_update"
    parent, _ = await bus.get_incident("inc-parent")
    assert parent is not None and not parent.children and parent.notes


async def test_no_update_when_a_waiting_reinvestigation_will_draft_the_group(
    bus: Bus, nats_server: NatsServer
):
    await parent_of_storm(bus, investigated=1)  # revision 2 waits to start
    child = state("inc-child")
    await bus.mutate_incident("inc-child", lambda _: child)
    assert await correlator(bus).place(child, cheap("inc-child", "node-7")) == "inc-parent"
    assert (await updates(bus, nats_server.url))[0] == 0
