"""A second look once data after the alert has arrived: the thread hears of it only when it
changes the answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.nats import NatsServer

from collectors.contracts import Evidence
from tests.support.app import RunningApp, make_settings, serve, wait_for
from tests.support.payloads import alert, webhook
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.models import RCA, IncidentState, incident_id_for

pytestmark = pytest.mark.slow

# Generous against a slow start: the first look must come before the late evidence.
FOLLOW_UP_S = 30
LATE_S = 20


def scenario(tmp_path: Path, onset: datetime, *, late_evidence: bool) -> Path:
    """A rollout just before the onset; optionally, an OOM kill elsewhere that only happens
    (is stamped) a few seconds after the first look."""
    items: list[dict[str, Any]] = [
        {
            "id": "rollout-checkout-7",
            "kind": "rollout",
            "summary": "checkoutservice revision 7 rolled out 3 minutes before the onset",
            "subject": "checkoutservice",
            "score": 0.6,
            "fault_hint": "bad_rollout",
            "timestamp": (onset - timedelta(minutes=3)).isoformat(),
        }
    ]
    if late_evidence:
        items.append(
            {
                "id": "podstate-payment-oom",
                "kind": "pod_state",
                "summary": "3 pod(s) of paymentservice in OOMKilled (restarts=4)",
                "subject": "paymentservice",
                "score": 0.95,
                "fault_hint": "resource_exhaustion",
                "timestamp": (onset + timedelta(seconds=LATE_S)).isoformat(),
            }
        )
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "case.json").write_text(
        json.dumps({"name": "case", "match": {"service": "checkoutservice"}, "evidence": items})
    )
    return directory


class CountingAnalyzer(HeuristicAnalyzer):
    """The default analyzer, counting its analyses: each would be a gateway call with an LLM."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def analyze(self, incident: IncidentState, evidence: list[Evidence]) -> RCA:
        self.calls += 1
        return await super().analyze(incident, evidence)


@contextlib.asynccontextmanager
async def alerted(
    nats_server: NatsServer,
    tmp_path: Path,
    *,
    late_evidence: bool,
    follow_up_s: float,
    analyzer: CountingAnalyzer | None = None,
) -> AsyncIterator[tuple[RunningApp, str]]:
    """triage running, and the alert posted: the app and the incident's id."""
    onset = datetime.now(UTC)
    settings = make_settings(
        tmp_path,
        investigation={
            "scenario_dir": str(scenario(tmp_path, onset, late_evidence=late_evidence)),
            "follow_up_s": follow_up_s,
        },
    )
    body = webhook([alert(started=onset)])
    incident = incident_id_for(body["groupKey"])
    async with serve(settings, nats_server.url, analyzer=analyzer) as app:
        async with app.client() as client:
            assert (await client.post("/api/v1/alertmanager", json=body)).status_code == 200
        yield app, incident


async def test_a_follow_up_that_changes_the_answer_is_posted_in_the_thread(
    nats_server: NatsServer, tmp_path: Path
):
    async with alerted(nats_server, tmp_path, late_evidence=True, follow_up_s=FOLLOW_UP_S) as (
        app,
        incident,
    ):
        first = (await wait_for(app.drafts))[0]
        assert first["delivery"]["rca"]["root_cause"]["component"] == "checkoutservice"
        assert "podstate-payment-oom" not in json.dumps(first)  # not yet happened
        drafts = await wait_for(lambda: app.drafts()[1:], timeout=FOLLOW_UP_S + 20)
        follow_up = drafts[0]["delivery"]
        assert follow_up["revision"] == 2 and follow_up["reason"] == "follow-up"
        assert follow_up["rca"]["root_cause"]["component"] == "paymentservice"
        assert follow_up["rca"]["root_cause"]["kind"] == "resource_exhaustion"
        assert drafts[0]["thread"] == f"jsonl:{incident}"  # a reply to the first draft


async def test_a_follow_up_that_confirms_the_draft_stays_quiet(
    nats_server: NatsServer, tmp_path: Path
):
    analyzer = CountingAnalyzer()
    async with alerted(
        nats_server, tmp_path, late_evidence=False, follow_up_s=8, analyzer=analyzer
    ) as (app, incident):
        await wait_for(app.drafts)

        async def followed_up() -> bool:
            state, _ = await app.runtime.bus.get_incident(incident)
            return state.investigated_revision == 2

        await wait_for(followed_up, timeout=30)
        state, _ = await app.runtime.bus.get_incident(incident)
        assert state.follow_up_revision == 2 and state.follow_up_episode == 1
        assert state.last_cause == "checkoutservice|bad_rollout"
        await asyncio.sleep(1)
        assert len(app.drafts()) == 1  # one follow-up per episode, and it said nothing new
        assert state.requested_revision == 2
        # The ranking still pointed at the same suspect: no second analysis was paid for.
        assert analyzer.calls == 1


async def test_alerts_joining_before_the_follow_up_are_investigated_without_waiting(
    nats_server: NatsServer, tmp_path: Path
):
    onset = datetime.now(UTC)
    async with alerted(nats_server, tmp_path, late_evidence=False, follow_up_s=600) as (
        app,
        incident,
    ):
        await wait_for(app.drafts)
        state, _ = await app.runtime.bus.get_incident(incident)
        assert state.follow_up_revision == 2  # waiting, on its own consumer

        grown = webhook([alert(started=onset), alert(service="frontend", started=onset)])
        async with app.client() as client:
            assert (await client.post("/api/v1/alertmanager", json=grown)).status_code == 200
        # Debounce is 0.5 s in tests: far sooner than the ten-minute follow-up.
        drafts = await wait_for(lambda: app.drafts()[1:], timeout=20)
        assert drafts[0]["delivery"]["revision"] == 2
        assert drafts[0]["delivery"]["reason"] == "incident changed"
