"""Two delivery lanes (issue 15): the console, JSONL and webhook sinks never wait on Slack's
pacing. Each lane is its own durable consumer with its own claim on the incident; a dead letter
in one lane leaves the other's delivery done."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi

from tests.support.app import RunningApp, serve, wait_for
from tests.support.drafts import draft, incident, resolve
from tests.support.payloads import alert, webhook
from tests.support.slack_case import slack_settings
from triage.bus.jetstream import Bus
from triage.bus.subjects import DIRECT, PACED
from triage.cli.dlq import DeadLetters
from triage.deliver.delivery import DeliveryStage, JsonlSink, Sink
from triage.deliver.routing import Router, parse_routing
from triage.deliver.slack import SlackSink, web_client
from triage.errors import NotReady
from triage.models import Claim, IncidentState, incident_id_for, utcnow
from triage.settings import NatsSettings, SlackSettings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow

ROUTING = 'default: {team: sre, channels: ["#incidents"]}\n'


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = Bus(NatsSettings(ack_wait_s=3), nats_server.url, Metrics())
    await b.connect()
    await b.declare()
    yield b
    await b.close()


def stages(bus: Bus, direct: list[Sink], paced: list[Sink]) -> tuple[DeliveryStage, DeliveryStage]:
    rules, default = parse_routing(ROUTING)
    assert default is not None
    router = Router(rules, default)
    return (
        DeliveryStage(bus, router, direct, Metrics(), lane=DIRECT),
        DeliveryStage(bus, router, paced, Metrics(), lane=PACED),
    )


async def stored(bus: Bus, state: IncidentState) -> None:
    await bus.mutate_incident(state.incident_id, lambda s: state if s is None else None)


def slack_sink(slack_api: SlackApi, session: aiohttp.ClientSession) -> SlackSink:
    settings = SlackSettings(base_url=slack_api.url, channel_interval_s=0)
    return SlackSink(web_client(settings, slack_api.token, session), settings)


async def test_publish_delivery_reaches_both_lanes_once_each(bus: Bus):
    request = draft()
    assert await bus.publish_delivery(request, "inc-cart.draft.1") is True
    assert await bus.publish_delivery(request, "inc-cart.draft.1") is False  # de-duplicated
    for durable in (DIRECT.durable, PACED.durable):
        info = await bus.js.consumer_info(bus.settings.stream, durable)
        assert info.num_pending == 1, durable


async def test_each_lane_has_its_own_claim_and_resolves_after_its_own_draft(
    bus: Bus, slack_api: SlackApi, tmp_path: Path
):
    await stored(bus, incident())
    out = tmp_path / "drafts.jsonl"
    async with aiohttp.ClientSession() as session:
        direct, paced = stages(bus, [JsonlSink(out)], [slack_sink(slack_api, session)])
        # Another replica's paced lane holds the incident (waiting for Slack's budget).
        until = utcnow() + timedelta(seconds=3)

        def held(state: IncidentState | None) -> IncidentState | None:
            assert state is not None
            state.notify_claims["paced"] = Claim(
                worker="notify-other", revision=0, lease_until=until
            )
            return state

        await bus.mutate_incident("inc-cart", held)
        assert await direct.handle(draft()) == "delivered"
        # The resolve needs only this lane's draft: Slack's, still on its way, does not count.
        assert await direct.handle(resolve()) == "delivered"
        with pytest.raises(NotReady):
            await paced.handle(draft())
        state, _ = await bus.get_incident("inc-cart")
        assert state is not None and set(state.notify_claims) == {"paced"}

        await bus.mutate_incident("inc-cart", lambda s: s.model_copy(update={"notify_claims": {}}))
        with pytest.raises(NotReady, match="draft not delivered yet"):
            await paced.handle(resolve())
        assert await paced.handle(draft()) == "delivered"
        assert await paced.handle(resolve()) == "delivered"
    assert [json.loads(line)["delivery_id"] for line in out.read_text().splitlines()] == [
        "inc-cart.draft.1",
        "inc-cart.resolve.1",
    ]
    [parent] = slack_api.top_level("#incidents")
    assert len(slack_api.replies(parent)) == 1


async def test_the_direct_lane_writes_a_draft_that_comes_after_a_newer_one(
    bus: Bus, tmp_path: Path
):
    # Its message was held by a notifier that died, and came back after ack_wait: in Slack the
    # thread already says more, but the JSON Lines file and the webhook get every draft.
    await stored(bus, incident())
    out = tmp_path / "drafts.jsonl"
    direct, _ = stages(bus, [JsonlSink(out)], [])
    assert await direct.handle(draft(revision=2)) == "delivered"
    assert await direct.handle(draft(revision=1)) == "delivered"
    assert await direct.handle(draft(revision=1)) == "duplicate"
    lines = [json.loads(line)["delivery_id"] for line in out.read_text().splitlines()]
    assert lines == ["inc-cart.draft.2", "inc-cart.draft.1"]


async def test_a_claim_of_a_notifier_older_than_the_lanes_still_holds_both(
    bus: Bus, tmp_path: Path
):
    old = incident().model_dump(mode="json")
    old.pop("notify_claims")
    until = utcnow() + timedelta(seconds=2)
    old["notify_claim"] = {"worker": "notify-old", "revision": 0, "lease_until": until.isoformat()}
    # State as an older version wrote it loads.
    await stored(bus, IncidentState.model_validate_json(json.dumps(old)))
    direct, _ = stages(bus, [JsonlSink(tmp_path / "drafts.jsonl")], [])
    with pytest.raises(NotReady, match="another notifier"):
        await direct.handle(draft())
    assert not (tmp_path / "drafts.jsonl").exists()


async def test_a_lane_without_sinks_acks_without_touching_the_incident(bus: Bus):
    _, paced = stages(bus, [JsonlSink(Path("/nonexistent/drafts.jsonl"))], [])
    assert await paced.handle(draft("inc-unknown")) == "no_sinks"
    assert await bus.get_incident("inc-unknown") == (None, 0)


# -- through the pipeline -----------------------------------------------------------------------


def group(n: int, status: str = "firing") -> dict[str, Any]:
    body = webhook(
        [alert(f"CartErrors{n}", service="cartservice", status=status)],
        group_key=f'{{}}:{{alertname="CartErrors{n}", namespace="shop"}}',
    )
    return body


def lanes_settings(tmp_path: Path, slack_api: SlackApi, **overrides: Any) -> Any:
    # One incident per group: what is measured is delivery, not folding.
    return slack_settings(
        tmp_path, slack_api, incidents={"debounce_s": 0.5, "correlation": False}, **overrides
    )


def ids(app: RunningApp) -> list[str]:
    return [d["delivery_id"] for d in app.drafts()]


async def test_jsonl_lands_at_once_while_slack_waits_out_a_long_retry_after(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    n = 4
    # Slack says "come back in 10 s" to the first post: its channel's budget is spent.
    slack_api.rate_limit("chat.postMessage", retry_after=10)
    settings = lanes_settings(tmp_path, slack_api)
    async with serve(settings, nats_server.url) as app, app.client() as client:
        for i in range(n):
            assert (await client.post("/api/v1/alertmanager", json=group(i))).status_code == 200
        await wait_for(lambda: len(ids(app)) == n, timeout=20)
        for i in range(n):
            body = group(i, status="resolved")
            assert (await client.post("/api/v1/alertmanager", json=body)).status_code == 200
        # Every draft and every resolve is written while Slack's first post still waits.
        await wait_for(lambda: len(ids(app)) == 2 * n, timeout=8)
        assert slack_api.posted() == []
        assert len(slack_api.calls_to("chat.postMessage")) == 1  # the one told to wait

        async def all_delivered() -> bool:
            for i in range(n):
                state, _ = await app.runtime.bus.get_incident(incident_id_for(group(i)["groupKey"]))
                assert state is not None
                done = {(d.sink, d.kind) for d in state.deliveries if d.complete}
                if state.notify_claims or done != {
                    (s, k) for s in ("jsonl", "slack") for k in ("draft", "resolve")
                }:
                    return False
            return True

        await wait_for(all_delivered, timeout=40)  # the Slack posts follow
        for parent in slack_api.top_level("#cart-oncall"):
            assert len(slack_api.replies(parent)) == 1
    assert sorted(ids(app)) == sorted(set(ids(app))) and len(ids(app)) == 2 * n
    assert len(slack_api.top_level("#cart-oncall")) == n


async def test_a_dead_letter_in_the_paced_lane_leaves_the_direct_lane_done(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    settings = lanes_settings(tmp_path, slack_api, nats={"max_deliver": 2, "ack_wait_s": 5})
    token = slack_api.token
    async with serve(settings, nats_server.url) as app, app.client() as client:
        slack_api.token = "rotated"  # every Slack call now answers invalid_auth
        await client.post("/api/v1/alertmanager", json=group(0))
        await wait_for(lambda: ids(app) == [f"{incident_id_for(group(0)['groupKey'])}.draft.1"])
        await client.post("/api/v1/alertmanager", json=group(0, status="resolved"))
        await wait_for(lambda: len(ids(app)) == 2)  # the resolve needs no Slack draft here

        nc = await nats.connect(nats_server.url)
        try:
            letters = DeadLetters(nc.jetstream(), settings.nats)

            async def both_dead() -> bool:
                return len(await letters.list("paced_deliveries")) == 2

            await wait_for(both_dead, timeout=30)  # the draft, then its resolve gave up
            assert await letters.list("deliveries") == []
            assert slack_api.posted() == []

            slack_api.token = token  # rotated back: replay the Slack lane's letters in order
            draft_letter, resolve_letter = await letters.list("paced_deliveries")
            assert draft_letter.letter is not None
            assert draft_letter.letter.subject == "triage.deliver.paced"
            await letters.replay(draft_letter)
            [parent] = await wait_for(lambda: slack_api.top_level("#cart-oncall"))
            await letters.replay(resolve_letter)
            await wait_for(lambda: slack_api.replies(parent))
            assert await letters.list() == []
        finally:
            await nc.close()
    assert len(ids(app)) == 2  # the direct lane wrote each once
    assert len(slack_api.top_level("#cart-oncall")) == 1
