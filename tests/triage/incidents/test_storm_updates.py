"""Storm updates through NATS (a real nats-server) into the local Slack and JSON Lines: once a
parent's re-investigations are used up, groups that attach still reach its thread's first
message and the JSONL file, with no investigation; its resolve shows the final count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi, all_text

from tests.support.app import RunningApp, make_settings, serve, wait_for
from tests.support.storm import group, node_failure, write_scenarios
from triage.models import incident_id_for

pytestmark = pytest.mark.slow

SERVICES = ["cartservice", "checkoutservice", "paymentservice", "shippingservice", "adservice"]
PARENT = "frontend"


def inc(service: str) -> str:
    return incident_id_for(group(service)["groupKey"])


def settings_for(tmp_path: Path, slack_api: SlackApi) -> Any:
    routing = tmp_path / "routing.yaml"
    routing.write_text('default: {team: sre, channels: ["#incidents"]}\n')
    evidence = {s: node_failure(s) for s in [PARENT, *SERVICES]}
    return make_settings(
        tmp_path,
        investigation={
            "scenario_dir": str(write_scenarios(tmp_path / "scenarios", evidence)),
            "follow_up_s": 0,
        },
        incidents={"debounce_s": 0.5, "storm_debounce_s": 0.5, "storm_reinvestigations": 1},
        routing={"file": str(routing)},
        slack={
            "bot_token": slack_api.token,
            "signing_secret": "test-signing-secret",
            "base_url": slack_api.url,
            "channel_interval_s": 0,
            "graphs": False,
        },
    )


async def post(app: RunningApp, *bodies: dict[str, Any]) -> None:
    async with app.client() as client:
        for body in bodies:
            (await client.post("/api/v1/alertmanager", json=body)).raise_for_status()


def records(app: RunningApp, kind: str) -> list[dict[str, Any]]:
    return [
        d["delivery"]
        for d in app.drafts()
        if d["delivery"]["incident_id"] == inc(PARENT) and d["delivery"]["kind"] == kind
    ]


def header(slack_api: SlackApi) -> str:
    [parent] = slack_api.top_level("#incidents")
    return str(parent.blocks[0]["text"]["text"])


async def test_groups_attached_after_the_cap_reach_the_parent_message_without_investigating(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    async with serve(settings_for(tmp_path, slack_api), nats_server.url) as app:
        metrics = app.runtime.metrics
        await post(app, group(PARENT))
        await wait_for(lambda: slack_api.top_level("#incidents"))
        # The first group to attach uses the one re-investigation: its draft says +1.
        await post(app, group(SERVICES[0]))
        await wait_for(lambda: [d for d in records(app, "draft") if len(d["attached"]) == 1])
        await wait_for(lambda: "+1 alert group" in header(slack_api))
        investigated = metrics.investigations.labels("investigated")._value.get()
        assert investigated == 2

        await post(app, *(group(s) for s in SERVICES[1:]))
        await wait_for(lambda: "+5 alert groups in 5 services" in header(slack_api))
        [parent] = slack_api.top_level("#incidents")
        shown = "\n".join(all_text(parent.blocks))
        # Redrawn as the latest draft with the storm as it stands: its cause and evidence kept.
        assert "*Component:* node-7" in shown and "rev 2" in shown
        assert all(inc(s) in shown for s in SERVICES)
        updates = await wait_for(
            lambda: [u for u in records(app, "storm_update") if len(u["attached"]) == 5]
        )
        assert updates[-1]["rca"] is None  # a small record: the groups, not the draft again
        assert metrics.investigations.labels("investigated")._value.get() == investigated
        assert metrics.storm_reinvestigations._value.get() == 1
        assert len(records(app, "draft")) == 2
        assert len(slack_api.replies(parent)) == 1  # the one re-investigation's draft
        assert metrics.deliveries.labels("slack", "ok")._value.get() >= 3

        # The parent resolves once every group has: its first message shows the final count.
        await post(app, *(group(s, status="resolved") for s in [PARENT, *SERVICES]))
        await wait_for(lambda: header(slack_api).startswith("RESOLVED"))
        assert "+5 alert groups in 5 services" in header(slack_api)
        assert "*Attached:* +5 alert groups in 5 services, all resolved" in "\n".join(
            all_text(parent.blocks)
        )
        [resolve] = await wait_for(lambda: records(app, "resolve"))
        assert len(resolve["attached"]) == 5
        assert all(c["status"] == "resolved" for c in resolve["attached"].values())
    assert len(slack_api.top_level("#incidents")) == 1
    assert slack_api.calls_to("chat.postMessage")  # the drafts and the resolve, nothing else
    assert len(slack_api.calls_to("chat.postMessage")) == 3
