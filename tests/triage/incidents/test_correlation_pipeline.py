"""Correlation across alert groups through NATS (a real nats-server): groups sharing a cause are
attached to one parent incident, detached when their own cause shows, and the parent resolves
once every group has; two independent causes at once stay two incidents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.nats import NatsServer

from tests.support.app import RunningApp, make_settings, serve, wait_for
from tests.support.storm import group, node_failure, own_rollout, write_scenarios
from triage.models import IncidentState, incident_id_for

pytestmark = pytest.mark.slow


def inc(service: str) -> str:
    return incident_id_for(group(service)["groupKey"])


def storm_settings(tmp_path: Path, evidence: dict[str, list[dict[str, Any]]]) -> Any:
    return make_settings(
        tmp_path,
        investigation={
            "scenario_dir": str(write_scenarios(tmp_path / "scenarios", evidence)),
            "follow_up_s": 0,
        },
        incidents={"debounce_s": 0.5, "storm_debounce_s": 0.5},
    )


async def post(app: RunningApp, *bodies: dict[str, Any]) -> None:
    async with app.client() as client:
        for body in bodies:
            (await client.post("/api/v1/alertmanager", json=body)).raise_for_status()


async def parent_of(app: RunningApp, incident_id: str) -> str | None:
    found, _ = await app.runtime.bus.get_incident(incident_id)
    return found.parent_id if found is not None else None


async def state(app: RunningApp, incident_id: str) -> IncidentState:
    found, _ = await app.runtime.bus.get_incident(incident_id)
    assert found is not None
    return found


def records(app: RunningApp, incident_id: str, kind: str = "draft") -> list[dict[str, Any]]:
    return [
        d
        for d in app.drafts()
        if d["delivery"]["incident_id"] == incident_id and d["delivery"]["kind"] == kind
    ]


async def test_groups_of_one_cause_attach_and_the_parent_resolves_last(
    nats_server: NatsServer, tmp_path: Path
):
    services = ["cartservice", "checkoutservice", "paymentservice"]
    settings = storm_settings(tmp_path, {s: node_failure(s) for s in services})
    parent, children = inc(services[0]), [inc(s) for s in services[1:]]
    async with serve(settings, nats_server.url) as app:
        await post(app, group(services[0]))
        first = await wait_for(lambda: records(app, parent))
        assert first[0]["delivery"]["rca"]["root_cause"]["component"] == "node-7"

        await post(app, *(group(s, alerts=3) for s in services[1:]))

        async def attached() -> bool:
            return all([await parent_of(app, c) == parent for c in children])

        await wait_for(attached)
        latest = await wait_for(
            lambda: [d for d in records(app, parent) if len(d["delivery"]["attached"]) == 2]
        )
        draft = latest[-1]["delivery"]
        assert set(draft["attached"]) == set(children)
        reasons = {c["reason"] for c in draft["attached"].values()}
        assert len(reasons) == 1
        assert reasons.pop().startswith("same leading suspect: node-7 (node_failure, score 0.")
        # Attached groups have no draft of their own.
        assert all(not records(app, c) for c in children)
        parent_state = await state(app, parent)
        assert parent_state.reinvestigations >= 1
        assert app.runtime.metrics.correlations.labels("attached")._value.get() == 2

        # The parent's own group resolves first: the incident stays open for its groups.
        await post(app, group(services[0], status="resolved"))
        await wait_for(lambda: _status(app, parent, "resolved"))
        await asyncio.sleep(1.5)
        assert not records(app, parent, "resolve")
        await post(app, *(group(s, alerts=3, status="resolved") for s in services[1:]))
        resolves = await wait_for(lambda: records(app, parent, "resolve"))
        assert len(resolves) == 1
        assert all(not records(app, c, "resolve") for c in children)


async def _status(app: RunningApp, incident_id: str, status: str) -> bool:
    return (await state(app, incident_id)).status == status


async def test_two_independent_causes_at_once_stay_two_incidents(
    nats_server: NatsServer, tmp_path: Path
):
    evidence = {
        "cartservice": node_failure("cartservice"),
        "checkoutservice": node_failure("checkoutservice"),
        "searchservice": own_rollout("searchservice"),
        "adservice": own_rollout("searchservice") + node_failure("adservice")[2:],
    }
    settings = storm_settings(tmp_path, evidence)
    async with serve(settings, nats_server.url) as app:
        await post(app, group("cartservice"), group("searchservice"))
        await wait_for(
            lambda: records(app, inc("cartservice")) and records(app, inc("searchservice"))
        )
        await post(app, group("checkoutservice"), group("adservice"))

        async def placed() -> bool:
            ids = (inc("checkoutservice"), inc("adservice"))
            return all([await parent_of(app, i) is not None for i in ids])

        await wait_for(placed)
        assert (await state(app, inc("checkoutservice"))).parent_id == inc("cartservice")
        assert (await state(app, inc("adservice"))).parent_id == inc("searchservice")
        assert (await state(app, inc("cartservice"))).parent_id is None
        assert (await state(app, inc("searchservice"))).parent_id is None
        causes = {
            d["delivery"]["incident_id"]: d["delivery"]["rca"]["root_cause"]["component"]
            for d in app.drafts()
            if d["delivery"]["kind"] == "draft"
        }
        assert causes == {inc("cartservice"): "node-7", inc("searchservice"): "searchservice"}


async def test_a_group_whose_own_cause_shows_later_is_detached_with_a_note(
    nats_server: NatsServer, tmp_path: Path
):
    later = datetime.now(UTC) + timedelta(seconds=4)
    evidence = {
        "cartservice": node_failure("cartservice"),
        "checkoutservice": node_failure("checkoutservice") + own_rollout("checkoutservice", later),
    }
    settings = storm_settings(tmp_path, evidence)
    parent, child = inc("cartservice"), inc("checkoutservice")
    async with serve(settings, nats_server.url) as app:
        await post(app, group("cartservice"))
        await wait_for(lambda: records(app, parent))
        await post(app, group("checkoutservice"))

        async def attached() -> bool:
            return await parent_of(app, child) == parent

        await wait_for(attached)
        assert not records(app, child)
        await asyncio.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.5)
        # The group grows: its re-investigation now sees its own bad rollout.
        await post(app, group("checkoutservice", alerts=2))
        drafts = await wait_for(lambda: records(app, child))
        assert drafts[0]["delivery"]["rca"]["root_cause"]["component"] == "checkoutservice"
        detached = await state(app, child)
        assert detached.parent_id is None
        assert detached.notes and "names checkoutservice (" in detached.notes[0]
        parent_state = await state(app, parent)
        assert child not in parent_state.children
        assert any("detached" in n for n in parent_state.notes)
        notes = await wait_for(lambda: [d for d in records(app, parent) if d["delivery"]["notes"]])
        assert "detached" in notes[-1]["delivery"]["notes"][0]
