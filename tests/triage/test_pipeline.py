"""End to end with a real Alertmanager: alerts in, routed drafts out, updated on resolve."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from triage_lab.fakes.alertmanager import Alertmanager
from triage_lab.fakes.nats import NatsServer

from tests.support.app import TOKEN, make_settings, serve, wait_for
from tests.support.pipeline import am_alert, scenario_dir
from triage.models import incident_id_for

pytestmark = pytest.mark.slow


async def test_alert_to_routed_draft_then_growth_then_resolve(
    nats_server: NatsServer, tmp_path: Path
):
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        'routes:\n  - {matchers: [team="cart"], team: cart, channel: "#cart-oncall"}\n'
    )
    settings = make_settings(
        tmp_path,
        investigation={"scenario_dir": str(scenario_dir(tmp_path))},
        routing={"file": str(routing)},
        incidents={"debounce_s": 1},
    )
    async with serve(settings, nats_server.url) as app:
        with Alertmanager(app.webhook_url, bearer_token=TOKEN) as am:
            am.post_alerts([am_alert("cartservice")])
            drafts = await wait_for(
                lambda: [d for d in app.drafts() if d["delivery"]["kind"] == "draft"]
            )
            draft = drafts[0]
            rca = draft["delivery"]["rca"]
            assert draft["channel"] == "#cart-oncall" and draft["team"] == "cart"
            assert rca["root_cause"]["component"] == "cartservice"
            assert rca["root_cause"]["kind"] == "bad_rollout"
            assert rca["evidence_ids"] == ["rollout-cart-7"]
            incident = draft["delivery"]["incident_id"]
            assert incident.startswith("inc-")

            # A second alert joins the group: one more investigation, in the same thread.
            am.post_alerts([am_alert("cartservice"), am_alert("frontend")])
            drafts = await wait_for(
                lambda: [d for d in app.drafts() if d["delivery"]["kind"] == "draft"][1:]
            )
            assert drafts[0]["delivery"]["revision"] == 2
            assert drafts[0]["thread"] == f"jsonl:{incident}"

            ended = datetime.now(UTC) - timedelta(seconds=1)
            am.post_alerts([am_alert("cartservice", ends=ended), am_alert("frontend", ends=ended)])
            resolves = await wait_for(
                lambda: [d for d in app.drafts() if d["delivery"]["kind"] == "resolve"]
            )
            assert resolves[0]["delivery"]["incident_id"] == incident
            assert resolves[0]["thread"] == f"jsonl:{incident}"

            async def delivered() -> list[tuple[str, int]]:
                state, _ = await app.runtime.bus.get_incident(incident)
                kinds = sorted((d.kind, d.revision) for d in state.deliveries)
                return kinds if len(kinds) == 3 else []

            # The incident records what was posted once the sink has it.
            assert await wait_for(delivered) == [("draft", 1), ("draft", 2), ("resolve", 1)]
            state, _ = await app.runtime.bus.get_incident(incident)
            assert state.status == "resolved" and len(state.alerts) == 2

        # Nothing else arrives later: every notification was delivered exactly once.
        await asyncio.sleep(2)
        assert len(app.drafts()) == 3
        assert incident == incident_id_for(state.group_key)
