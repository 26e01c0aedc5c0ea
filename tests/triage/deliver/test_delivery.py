"""The delivery stage with real incident state (NATS KV) and the Slack sink: exactly once as people
see it, across redeliveries, failures part way and sinks that fail on their own."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi

from tests.support.drafts import draft, incident, resolve, route
from triage.bus.jetstream import Bus
from triage.deliver.delivery import DeliveryStage, JsonlSink, Sink
from triage.deliver.routing import RouteDecision, Router, parse_routing
from triage.deliver.slack import SharedChannelPacer, SlackRef, SlackSink, web_client
from triage.errors import NotReady, PartialDelivery
from triage.models import Claim, DeliveryRequest, IncidentState, utcnow
from triage.settings import NatsSettings, SlackSettings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow

ROUTING = """\
default: {team: sre, channels: ["#incidents"]}
routes:
  - {team: cart, channels: ["#cart-oncall", "#shop"], matchers: ['service=~"cart.*"']}
"""


@pytest.fixture
async def slack(slack_api: SlackApi) -> AsyncIterator[SlackSink]:
    settings = SlackSettings(base_url=slack_api.url, channel_interval_s=0)
    async with aiohttp.ClientSession() as session:
        yield SlackSink(web_client(settings, slack_api.token, session), settings)


def stage(bus: Bus, sinks: list[Sink]) -> DeliveryStage:
    rules, default = parse_routing(ROUTING)
    assert default is not None
    return DeliveryStage(bus, Router(rules, default), sinks, Metrics())


async def stored(bus: Bus, state: IncidentState) -> None:
    await bus.mutate_incident(state.incident_id, lambda s: state if s is None else None)


async def state_of(bus: Bus) -> IncidentState:
    state, _ = await bus.get_incident("inc-cart")
    assert state is not None
    return state


async def test_a_redelivered_draft_posts_nothing_twice(
    bus: Bus, slack: SlackSink, slack_api: SlackApi
):
    await stored(bus, incident())
    delivery = stage(bus, [slack])
    assert await delivery.handle(draft()) == "delivered"
    assert await delivery.handle(draft()) == "duplicate"
    assert len(slack_api.top_level("#cart-oncall")) == 1
    assert len(slack_api.top_level("#shop")) == 1
    [ref] = (await state_of(bus)).deliveries
    assert ref.sink == "slack" and ref.complete
    parsed = SlackRef.parse(ref.ref)
    assert parsed is not None and set(parsed.parents) == {"#cart-oncall", "#shop"}


async def test_failure_part_way_is_recorded_and_the_retry_updates_instead_of_reposting(
    bus: Bus, slack: SlackSink, slack_api: SlackApi
):
    await stored(bus, incident())
    delivery = stage(bus, [slack])
    slack_api.fail("chat.postMessage", error="not_in_channel", channel="#shop")
    with pytest.raises(PartialDelivery):
        await delivery.handle(draft())
    [partial] = (await state_of(bus)).deliveries
    assert not partial.complete

    assert await delivery.handle(draft()) == "delivered"  # the bus's redelivery
    [cart] = slack_api.top_level("#cart-oncall")
    assert cart.edits == 1  # refreshed, not posted again
    assert len(slack_api.top_level("#shop")) == 1
    [ref] = (await state_of(bus)).deliveries
    assert ref.complete


class FailsOnce:
    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.inner = JsonlSink(path)
        self.calls = 0

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        self.calls += 1
        if self.calls == 1:
            raise httpx.ConnectError("disk bridge down")
        return await self.inner.send(request, route, thread)


async def test_another_sink_failing_does_not_make_slack_post_again(
    bus: Bus, slack: SlackSink, slack_api: SlackApi, tmp_path: Path
):
    await stored(bus, incident())
    other = FailsOnce(tmp_path / "drafts.jsonl")
    delivery = stage(bus, [slack, other])
    with pytest.raises(httpx.ConnectError):
        await delivery.handle(draft())
    assert await delivery.handle(draft()) == "delivered"
    assert len(slack_api.top_level("#cart-oncall")) == 1
    assert other.calls == 2
    assert sorted(d.sink for d in (await state_of(bus)).deliveries) == ["jsonl", "slack"]


async def test_drafts_and_resolve_share_one_thread_per_channel(
    bus: Bus, slack: SlackSink, slack_api: SlackApi
):
    await stored(bus, incident())
    delivery = stage(bus, [slack])
    await delivery.handle(draft(revision=1))
    await delivery.handle(draft(revision=2))
    await delivery.handle(resolve())
    assert await delivery.handle(resolve()) == "duplicate"
    for channel in ("#cart-oncall", "#shop"):
        [parent] = slack_api.top_level(channel)
        assert len(slack_api.replies(parent)) == 2
        assert parent.edits == 1 and parent.blocks[0]["text"]["text"].startswith("RESOLVED")


async def test_concurrent_drafts_of_one_incident_open_one_thread(
    bus: Bus, slack: SlackSink, slack_api: SlackApi
):
    await stored(bus, incident())
    delivery = stage(bus, [slack])
    await asyncio.gather(delivery.handle(draft(revision=1)), delivery.handle(draft(revision=2)))
    for channel in ("#cart-oncall", "#shop"):
        [parent] = slack_api.top_level(channel)
        assert len(slack_api.replies(parent)) == 1


async def test_every_delivered_draft_names_its_owning_team(bus: Bus, tmp_path: Path):
    await stored(bus, incident())
    out = tmp_path / "drafts.jsonl"
    assert draft().rca is not None and draft().rca.owner_team is None  # as the heuristic writes it
    assert await stage(bus, [JsonlSink(out)]).handle(draft()) == "delivered"
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["team"] == "cart"
    assert record["delivery"]["rca"]["owner_team"] == "cart"


class Crash(Exception):
    """The notifier dies between posting and recording (kill -9 as the stage sees it)."""


class CrashesBeforeRecording(DeliveryStage):
    async def _record(self, request, sink, route, ref, *, complete):  # type: ignore[no-untyped-def]
        if complete:
            raise Crash(sink)
        await super()._record(request, sink, route, ref, complete=complete)


def crashing(bus: Bus, sinks: list[Sink]) -> DeliveryStage:
    rules, default = parse_routing(ROUTING)
    assert default is not None
    return CrashesBeforeRecording(bus, Router(rules, default), sinks, Metrics())


def fresh_slack(slack_api: SlackApi, session: aiohttp.ClientSession) -> SlackSink:
    # A new process: nothing remembered but what the incident recorded.
    settings = SlackSettings(base_url=slack_api.url, channel_interval_s=0)
    return SlackSink(web_client(settings, slack_api.token, session), settings)


async def test_a_crash_between_posting_and_recording_posts_nothing_twice(
    bus: Bus, slack_api: SlackApi, tmp_path: Path
):
    await stored(bus, incident())
    out = tmp_path / "drafts.jsonl"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(Crash):
            await crashing(bus, [fresh_slack(slack_api, session)]).handle(draft())
        with pytest.raises(Crash):
            await crashing(bus, [JsonlSink(out)]).handle(draft())
        assert len(slack_api.top_level("#cart-oncall")) == 1  # posted, never recorded

        # The bus redelivers to a notifier that starts afresh.
        again = stage(bus, [fresh_slack(slack_api, session), JsonlSink(out)])
        assert await again.handle(draft()) == "delivered"
        assert len(slack_api.top_level("#cart-oncall")) == 1
        assert len(slack_api.top_level("#shop")) == 1
        assert len(out.read_text().splitlines()) == 1
        refs = (await state_of(bus)).deliveries
        assert sorted(d.sink for d in refs) == ["jsonl", "slack"] and all(d.complete for d in refs)

        # A reply in the thread (revision 2), interrupted the same way, is not doubled either.
        with pytest.raises(Crash):
            await crashing(bus, [fresh_slack(slack_api, session)]).handle(draft(revision=2))
        assert (
            await stage(bus, [fresh_slack(slack_api, session)]).handle(draft(revision=2))
            == "delivered"
        )
        [parent] = slack_api.top_level("#cart-oncall")
        assert len(slack_api.replies(parent)) == 1
        assert len(slack_api.top_level("#cart-oncall")) == 1


async def test_a_later_revision_finds_the_thread_an_interrupted_first_draft_opened(
    bus: Bus, slack_api: SlackApi
):
    # Found by tests/reliability/test_notify_replicas.py: the notifier posting the first draft
    # dies before recording it, and revision 2 reaches the other replica before the first
    # draft's redelivery does. Revision 2 opened a second thread (the record it continued from
    # named no thread), and the first draft, superseded, was never recovered.
    await stored(bus, incident())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(Crash):
            await crashing(bus, [fresh_slack(slack_api, session)]).handle(draft())
        other = stage(bus, [fresh_slack(slack_api, session)])
        assert await other.handle(draft(revision=2)) == "delivered"
        assert await other.handle(draft()) == "duplicate"  # the first draft's redelivery
        assert await other.handle(resolve()) == "delivered"
    for channel in ("#cart-oncall", "#shop"):
        [parent] = slack_api.top_level(channel)
        assert parent.metadata is not None
        assert parent.metadata["event_payload"]["revision"] == 1
        replies = [(m.metadata or {}).get("event_payload", {}) for m in slack_api.replies(parent)]
        assert [(r["kind"], r["revision"]) for r in replies] == [("draft", 2), ("resolve", 1)]
    assert all(d.episode == 1 for d in (await state_of(bus)).deliveries)


async def test_two_notifier_replicas_post_one_thread_and_the_second_waits_its_turn(
    bus: Bus, slack_api: SlackApi, tmp_path: Path
):
    await stored(bus, incident())
    async with aiohttp.ClientSession() as session:
        one = stage(bus, [fresh_slack(slack_api, session)])
        two = stage(bus, [fresh_slack(slack_api, session)])
        outcomes = await asyncio.gather(
            one.handle(draft()), two.handle(draft()), return_exceptions=True
        )
        waited = [o for o in outcomes if isinstance(o, NotReady)]
        assert sorted(str(o) for o in outcomes if not isinstance(o, NotReady)) in (
            ["delivered"],
            ["delivered", "duplicate"],
        )
        # The one that waited comes back (the bus's delay) and finds the work done.
        for _ in waited:
            assert await two.handle(draft()) == "duplicate"
        assert len(slack_api.top_level("#cart-oncall")) == 1
        assert len(slack_api.top_level("#shop")) == 1
        state = await state_of(bus)
        assert state.notify_claims == {}  # released once delivered

        # A resolve racing on both replicas is posted once in the thread.
        outcomes = await asyncio.gather(
            one.handle(resolve()), two.handle(resolve()), return_exceptions=True
        )
        for o in outcomes:
            if isinstance(o, NotReady):
                assert await one.handle(resolve()) == "duplicate"
        [parent] = slack_api.top_level("#cart-oncall")
        assert len(slack_api.replies(parent)) == 1


def held_by(worker: str, seconds: float) -> Callable[[IncidentState | None], IncidentState | None]:
    def hold(state: IncidentState | None) -> IncidentState | None:
        assert state is not None
        until = utcnow() + timedelta(seconds=seconds)
        state.notify_claims["direct"] = Claim(worker=worker, revision=0, lease_until=until)
        return state

    return hold


def released(state: IncidentState | None) -> IncidentState | None:
    assert state is not None
    state.notify_claims.pop("direct", None)
    return state


async def test_a_replica_waits_briefly_for_anothers_claim_then_leaves_it_to_the_bus(
    nats_server: NatsServer, slack_api: SlackApi
):
    # Found by bench/notify.py: with two replicas, a revision and the resolve of one incident
    # on different replicas made the second wait a whole lease (ack_wait, 30 s by default)
    # although the first was done within a second.
    b = Bus(NatsSettings(ack_wait_s=3), nats_server.url, Metrics())
    await b.connect()
    await b.declare()
    try:
        await stored(b, incident())
        async with aiohttp.ClientSession() as session:
            s = stage(b, [fresh_slack(slack_api, session)])
            # Another replica holds the incident and is done in a moment: this one delivers.
            await b.mutate_incident("inc-cart", held_by("notify-other", 3))

            async def release_soon() -> None:
                await asyncio.sleep(0.3)
                await b.mutate_incident("inc-cart", released)

            releasing = asyncio.create_task(release_soon())
            assert await s.handle(draft()) == "delivered"
            await releasing
            # A holder that died: after a third of the lease the bus brings the message back
            # once the claim has run out.
            await b.mutate_incident("inc-cart", held_by("notify-dead", 3))
            started = time.monotonic()
            with pytest.raises(NotReady) as waited:
                await s.handle(draft(revision=2))
            assert 0.9 <= time.monotonic() - started < 2.5
            assert 1.0 <= waited.value.delay_s <= 2.5
        assert len(slack_api.top_level("#cart-oncall")) == 1
    finally:
        await b.close()


async def test_replicas_share_each_channels_slack_budget(bus: Bus, slack_api: SlackApi):
    interval = 0.3
    settings = SlackSettings(base_url=slack_api.url, channel_interval_s=interval)
    async with aiohttp.ClientSession() as session:
        replicas = []
        for _ in range(2):
            sink = SlackSink(web_client(settings, slack_api.token, session), settings)
            sink.pacer = SharedChannelPacer(interval, bus.reserve_slot)
            replicas.append(sink)
        await asyncio.gather(
            *(
                sink.send(draft(f"inc-{n}-{i}"), route("#busy"), None)
                for n, sink in enumerate(replicas)
                for i in range(3)
            )
        )
    times = sorted(c.at for c in slack_api.calls_to("chat.postMessage"))
    assert len(times) == 6
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # One budget for the channel, whichever replica posts: no two posts closer than it allows.
    assert min(gaps) >= interval * 0.8, gaps


async def test_a_replicas_first_post_shares_the_slots_of_replicas_that_know_the_channel_id(
    bus: Bus, slack_api: SlackApi
):
    # Found by tests/reliability/test_notify_replicas.py: a replica paced its first post to a
    # channel under the name, and later calls under the id Slack answered, while a fresh replica
    # still used the name: two keys, two budgets for one channel.
    interval = 0.3
    settings = SlackSettings(base_url=slack_api.url, channel_interval_s=interval)
    async with aiohttp.ClientSession() as session:
        replicas = []
        for _ in range(2):
            sink = SlackSink(web_client(settings, slack_api.token, session), settings)
            sink.pacer = SharedChannelPacer(interval, bus.reserve_slot)
            replicas.append(sink)
        await replicas[0].send(draft("inc-known"), route("#busy"), None)  # learns the id
        await asyncio.gather(
            *(
                sink.send(draft(f"inc-{n}-{i}"), route("#busy"), None)
                for n, sink in enumerate(replicas)
                for i in range(2)
            )
        )
    times = sorted(c.at for c in slack_api.calls_to("chat.postMessage"))
    assert len(times) == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval * 0.8, gaps
