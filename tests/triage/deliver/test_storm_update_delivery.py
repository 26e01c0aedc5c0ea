"""Storm updates at the delivery stage, with real incident state (NATS KV), the local Slack and
a JSON Lines file: the thread's first message redrawn with the groups as they stand, once per
update whatever the redeliveries, never a thread of its own, redacted like drafts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from triage_lab.fakes.slack import SlackApi, all_text

from tests.support.drafts import draft, incident
from tests.support.secrets_corpus import ALNUM, fake
from triage.bus.jetstream import Bus
from triage.bus.subjects import DIRECT, PACED
from triage.deliver.delivery import DeliveryStage, JsonlSink
from triage.deliver.routing import Router, parse_routing
from triage.deliver.slack import SlackSink, web_client
from triage.errors import NotReady
from triage.incidents.storm import drafting, storm_update
from triage.models import ChildRef, DeliveryRequest, IncidentState
from triage.settings import SlackSettings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow

ROUTING = 'default: {team: cart, channels: ["#cart-oncall"], mention: S0CART001}\n'
AT = datetime(2025, 1, 1, tzinfo=UTC)


def groups(n: int, title: str = "HighLatency on payments-{i}") -> dict[str, ChildRef]:
    return {
        f"inc-pay-{i}": ChildRef(
            title=title.format(i=i),
            labels={"service": f"payments-{i}"},
            services=[f"payments-{i}"],
            alerts=2,
            reason="same leading suspect: node-7 (node_failure, score 0.76)",
            at=AT,
        )
        for i in range(n)
    }


class Lanes:
    """Both delivery lanes as the notifier runs them: JSON Lines directly, Slack paced."""

    def __init__(self, bus: Bus, slack_api: SlackApi, session: aiohttp.ClientSession, out: Path):
        rules, default = parse_routing(ROUTING)
        assert default is not None
        router = Router(rules, default)
        settings = SlackSettings(base_url=slack_api.url, channel_interval_s=0, graphs=False)
        slack = SlackSink(web_client(settings, slack_api.token, session), settings)
        self.metrics = Metrics()
        self.direct = DeliveryStage(bus, router, [JsonlSink(out)], self.metrics, lane=DIRECT)
        self.paced = DeliveryStage(bus, router, [slack], self.metrics, lane=PACED)

    async def handle(self, request: DeliveryRequest) -> tuple[str, str]:
        return await self.direct.handle(request), await self.paced.handle(request)

    def outcome(self, sink: str, outcome: str) -> float:
        return float(self.metrics.deliveries.labels(sink, outcome)._value.get())


@pytest.fixture
async def lanes(bus: Bus, slack_api: SlackApi, tmp_path: Path) -> AsyncIterator[Lanes]:
    async with aiohttp.ClientSession() as session:
        yield Lanes(bus, slack_api, session, tmp_path / "drafts.jsonl")


async def attach(bus: Bus, children: dict[str, ChildRef]) -> IncidentState:
    def grow(s: IncidentState | None) -> IncidentState | None:
        if s is None:
            s = incident()
        s.children = children
        return s

    state = await bus.mutate_incident("inc-cart", grow)
    assert state is not None
    return state


def update(state: IncidentState, window: int = 0) -> DeliveryRequest:
    request, _ = storm_update(state, datetime.now(UTC) - timedelta(seconds=5), 0.5)
    return request.model_copy(update={"revision": request.revision + window})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_the_first_message_shows_the_storm_once_whatever_the_redeliveries(
    bus: Bus, lanes: Lanes, slack_api: SlackApi, tmp_path: Path
):
    await attach(bus, groups(1))
    assert await lanes.handle(draft()) == ("delivered", "delivered")
    [parent] = slack_api.top_level("#cart-oncall")
    assert parent.text.startswith("<!subteam^S0CART001>")  # the draft paged
    state = await attach(bus, groups(5))
    request = update(state)
    assert await lanes.handle(request) == ("delivered", "delivered")
    assert parent.edits == 1
    shown = "\n".join(all_text(parent.blocks))
    assert "(+5 alert groups in 5 services)" in parent.blocks[0]["text"]["text"]
    # The draft the message showed, its cause and evidence, with the storm as it stands.
    assert "*Probable cause*" in shown and "rollout-cart-7" in shown and "inc-pay-4" in shown
    assert "<!subteam" not in parent.text  # an update pages no one, again or anew

    # The bus redelivers it (its ack lost), and an older window comes late: nothing happens.
    assert await lanes.handle(request) == ("duplicate", "duplicate")
    assert await lanes.handle(update(state, window=-1)) == ("duplicate", "duplicate")
    assert parent.edits == 1 and not slack_api.replies(parent)
    assert len(slack_api.top_level("#cart-oncall")) == 1
    records = lines(tmp_path / "drafts.jsonl")
    assert [r["delivery_id"] for r in records] == [
        "inc-cart.draft.1",
        f"inc-cart.storm_update.{request.revision}",
    ]
    assert len(records[1]["delivery"]["attached"]) == 5
    assert lanes.outcome("slack", "ok") == lanes.outcome("jsonl", "ok") == 2


async def test_an_update_before_the_first_draft_opens_no_thread(
    bus: Bus, lanes: Lanes, slack_api: SlackApi, tmp_path: Path
):
    state = await attach(bus, groups(3))
    assert await lanes.handle(update(state)) == ("no_thread", "no_thread")
    assert not slack_api.calls_to("chat.postMessage") and not slack_api.calls_to("chat.update")
    assert not (tmp_path / "drafts.jsonl").exists()
    assert lanes.outcome("slack", "no_thread") == lanes.outcome("jsonl", "no_thread") == 1
    # The first draft then lists the groups as they stand.
    assert await lanes.handle(draft()) == ("delivered", "delivered")
    [parent] = slack_api.top_level("#cart-oncall")
    assert "(+3 alert groups in 3 services)" in parent.blocks[0]["text"]["text"]


async def test_an_update_waits_for_its_debounce_window_to_close(bus: Bus, lanes: Lanes):
    state = await attach(bus, groups(2))
    # Every change within one window publishes one message id; the window's end is its time.
    start = datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)
    ids = [storm_update(state, start + timedelta(seconds=s), 30)[1] for s in (0, 29.9, 30)]
    assert ids[0] == ids[1] != ids[2]
    first, _ = storm_update(state, start, 30)
    assert first.not_before == start + timedelta(seconds=30)
    request, _ = storm_update(state, datetime.now(UTC), 30)
    with pytest.raises(NotReady, match="debouncing") as waited:
        await lanes.direct.handle(request)
    assert 0 < waited.value.delay_s <= 30
    stored, _ = await bus.get_incident("inc-cart")
    assert stored is not None and not stored.deliveries


async def test_what_an_update_shows_is_redacted(
    bus: Bus, lanes: Lanes, slack_api: SlackApi, tmp_path: Path
):
    secret = "ghp_" + fake(ALNUM, 36, "storm-update-ghp")
    await attach(bus, groups(1))
    await lanes.handle(draft())
    state = await attach(bus, groups(2, title=f"push with {secret} denied {{i}}"))
    assert await lanes.handle(update(state)) == ("delivered", "delivered")
    sent = json.dumps([c.params for c in slack_api.calls], ensure_ascii=False)
    written = (tmp_path / "drafts.jsonl").read_text()
    for out in (sent, written):
        assert secret[4:16] not in out and "[REDACTED:github_token]" in out


def test_only_an_investigation_yet_to_read_the_parent_counts_as_a_draft_on_its_way():
    state = incident()
    assert not drafting(state)  # investigated: nothing on its way
    state.requested_revision = 2
    assert drafting(state)
    state.follow_up_revision = 2  # a follow-up drafts only when the cause changed
    assert not drafting(state)
    state.follow_up_revision = 0
    state.status = "resolved"
    assert not drafting(state)
