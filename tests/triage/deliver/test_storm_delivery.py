"""Delivery of a parent incident in a storm: its thread's first message edited with the storm as
it stands, attached groups listed with why, superseded Slack drafts coalesced, and each team
owning attached groups given one thread in its own channel that links to the parent's."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import aiohttp
import pytest
from triage_lab.fakes.slack import SlackApi, all_text, channel_id, permalink

from tests.support.drafts import draft, incident, resolve, route
from tests.support.secrets_corpus import ALNUM, fake
from triage.analyse.redaction import Redactor
from triage.deliver.draft_text import render_text
from triage.deliver.routing import RouteDecision, Router, Target, parse_routing
from triage.deliver.slack import SlackRef, SlackSink, web_client
from triage.deliver.storm import ATTACHED, attached_channels, coalesced, with_teams
from triage.models import ChildRef, DeliveryRequest
from triage.settings import RedactionSettings, SlackSettings

AT = datetime(2025, 1, 1, tzinfo=UTC)


def attached(n: int) -> dict[str, ChildRef]:
    return {
        f"inc-{i:03d}": ChildRef(
            title=f"HighErrorRate on svc-{i % 3}",
            labels={"service": f"svc-{i % 3}", "team": "cart"},
            services=[f"svc-{i % 3}"],
            alerts=50,
            reason="same leading suspect: node-7 (node_failure, score 0.76)",
            at=AT,
        )
        for i in range(n)
    }


async def test_the_parent_message_is_edited_with_the_storm_not_posted_again(slack_api: SlackApi):
    settings = SlackSettings.model_validate({"base_url": slack_api.url, "channel_interval_s": 0})
    async with aiohttp.ClientSession() as session:
        s = SlackSink(web_client(settings, slack_api.token, session), settings)
        ref = await s.send(draft(revision=1), route(), None)
        grown = draft(revision=2).model_copy(update={"attached": attached(37)})
        await s.send(grown, route(), ref)
    [parent] = slack_api.top_level("#cart-oncall")
    assert len(slack_api.replies(parent)) == 1
    assert parent.edits == 1
    assert "+37 alert groups in 3 services" in parent.blocks[0]["text"]["text"]
    text = "\n".join(all_text(parent.blocks))
    assert "same leading suspect: node-7" in text and "and 27 more" in text


def test_the_text_draft_lists_attached_groups_and_detached_ones():
    request = draft(revision=2).model_copy(
        update={"attached": attached(2), "notes": ["svc-9 detached: its own cause"]}
    )
    text = render_text(request, route())
    assert "Attached: +2 alert groups in 2 services, one cause" in text
    assert "inc-000, 50 alerts): same leading suspect: node-7" in text
    assert "Detached:\n  - svc-9 detached: its own cause" in text


def test_only_a_paced_sink_skips_a_superseded_draft_of_an_existing_thread():
    class Paced:
        paced = True

    state = incident()
    state.drafted_revision = 3
    assert coalesced(state, draft(revision=2), Paced(), "ref")
    assert not coalesced(state, draft(revision=2), Paced(), None)  # no thread yet
    assert not coalesced(state, draft(revision=3), Paced(), "ref")
    assert not coalesced(state, draft(revision=2), object(), "ref")


# --- the thread of an attached group's team, in its own channel, linking to the parent's -------

ROUTING = """\
default: {team: sre, channels: ["#incidents"]}
routes:
  - name: cart
    matchers: ['service="cartservice"']
    team: cart
    channels: ["#cart-oncall"]
  - name: payments
    matchers: [team=payments]
    team: payments
    channels: ["#payments"]
"""


def payments_groups(n: int, **overrides: str) -> dict[str, ChildRef]:
    return {
        f"inc-pay-{i}": ChildRef(
            title=overrides.get("title", f"HighLatency on payments-{i % 2}"),
            labels={"service": f"payments-{i % 2}", "team": "payments"},
            services=[f"payments-{i % 2}"],
            alerts=3,
            reason=overrides.get("reason", "same leading suspect: node-7"),
            at=AT,
        )
        for i in range(n)
    }


async def storm_route(children: dict[str, ChildRef]) -> RouteDecision:
    """The parent's route as the delivery stage makes it: its own, plus the attached teams'."""
    rules, default = parse_routing(ROUTING)
    assert default is not None
    router = Router(rules, default)
    own = await router.decide({"severity": "critical", **draft().labels})
    state = incident()
    state.children = children
    return await with_teams(router, own, state, "critical")


def permalink_of(ref: str) -> str | None:
    parsed = SlackRef.parse(ref)
    assert parsed is not None
    return parsed.permalink


def blocks_text(blocks: list[dict]) -> str:
    return "\n".join(all_text(blocks))


class Slack:
    def __init__(self, api: SlackApi, session: aiohttp.ClientSession) -> None:
        settings = SlackSettings.model_validate(
            {"base_url": api.url, "channel_interval_s": 0, "graphs": False}
        )
        self.sink = SlackSink(web_client(settings, api.token, session), settings)


async def test_an_attached_team_gets_one_thread_that_links_to_the_parents(slack_api: SlackApi):
    groups = payments_groups(4)
    where = await storm_route(groups)
    assert where.channels == ("#cart-oncall", "#payments")  # the parent's own channel first
    assert attached_channels(where) == {"#payments"}
    async with aiohttp.ClientSession() as session:
        s = Slack(slack_api, session).sink
        ref = await s.send(draft(revision=1), await storm_route({}), None)  # no storm yet
        grown = draft(revision=2).model_copy(update={"attached": groups})
        ref = await s.send(grown, where, ref)
        more = draft(revision=3).model_copy(update={"attached": payments_groups(6)})
        ref = await s.send(more, where, ref)
    [parent] = slack_api.top_level("#cart-oncall")
    [team] = slack_api.top_level("#payments")  # one thread, later drafts in it
    assert float(parent.ts) < float(team.ts)
    assert len(slack_api.replies(team)) == 1
    link = permalink(channel_id("#cart-oncall"), parent.ts)
    assert (
        link
        == f"https://triage-test.slack.com/archives/{parent.channel}/p{parent.ts.replace('.', '')}"
    )
    for message in (team, *slack_api.replies(team)):
        shown = blocks_text(message.blocks)
        assert f"<{link}|incident inc-cart> in #cart-oncall" in shown, shown
        assert link in message.text
    # The team thread's first message is kept current with the storm, still linking.
    assert team.edits == 1
    assert "Part of <" in blocks_text(team.blocks)
    assert "6 alert groups in 2 services" in blocks_text(team.blocks)
    # The parent's own channel carries no such line, and Slack was asked once an episode.
    assert "Part of" not in blocks_text(parent.blocks) and link not in parent.text
    [asked] = slack_api.calls_to("chat.getPermalink")
    assert asked.params == {"channel": parent.channel, "message_ts": parent.ts}
    assert permalink_of(ref) == link  # kept with the delivery record: asked once an episode


async def test_the_resolve_keeps_the_link_on_the_team_threads_first_message(slack_api: SlackApi):
    groups = payments_groups(2)
    where = await storm_route(groups)
    async with aiohttp.ClientSession() as session:
        s = Slack(slack_api, session).sink
        ref = await s.send(draft(revision=1).model_copy(update={"attached": groups}), where, None)
        await s.send(resolve().model_copy(update={"attached": groups}), where, ref)
    [parent] = slack_api.top_level("#cart-oncall")
    [team] = slack_api.top_level("#payments")
    shown = blocks_text(team.blocks)
    assert shown.startswith("RESOLVED") and permalink(parent.channel, parent.ts) in shown
    assert len(slack_api.calls_to("chat.getPermalink")) == 1  # the episode's permalink, kept


@pytest.mark.parametrize(
    "fault", [{"error": "missing_scope"}, {"status": 500, "times": 3}], ids=["error", "5xx"]
)
async def test_without_a_permalink_the_team_thread_names_the_channel_and_still_delivers(
    slack_api: SlackApi, fault: dict
):
    groups = payments_groups(3)
    where = await storm_route(groups)
    slack_api.fail("chat.getPermalink", **fault)
    async with aiohttp.ClientSession() as session:
        s = Slack(slack_api, session).sink
        request = draft(revision=1).model_copy(update={"attached": groups})
        ref = await s.send(request, where, None)
    [team] = slack_api.top_level("#payments")
    shown = blocks_text(team.blocks)
    assert "Part of incident `inc-cart` in #cart-oncall: 3 alert groups in 2 services" in shown
    assert "part of incident inc-cart in #cart-oncall" in team.text
    assert "slack.com/archives" not in shown + team.text
    assert permalink_of(ref) is None  # asked again by the next draft


async def test_a_team_routed_by_channel_id_is_linked_to_a_parent_channel_by_id(
    slack_api: SlackApi,
):
    cart, payments = "C0CART0001", "C0PAYS0001"
    theirs = Target("payments", (payments,), None, f"{ATTACHED}rule 2 (line 8: team=payments)")
    where = RouteDecision((*route(cart).targets, theirs))
    async with aiohttp.ClientSession() as session:
        s = Slack(slack_api, session).sink
        slack_api.fail("chat.getPermalink", error="channel_not_found")
        await s.send(draft().model_copy(update={"attached": payments_groups(1)}), where, None)
    [team] = slack_api.top_level(payments)
    assert f"Part of incident `inc-cart` in <#{cart}>: 1 alert group in 1 service" in (
        blocks_text(team.blocks)
    )


async def test_what_reaches_the_team_channel_is_redacted_and_the_permalink_kept(
    slack_api: SlackApi,
):
    secret = "ghp_" + fake(ALNUM, 36, "storm-team-ghp")
    groups = payments_groups(2, title=f"git push with {secret} denied", reason=f"token {secret}")
    where = await storm_route(groups)
    request: DeliveryRequest = draft().model_copy(update={"attached": groups})
    request, where = Redactor.from_settings(RedactionSettings()).redact_delivery(request, where)
    assert attached_channels(where) == {"#payments"}  # the marker survives redaction
    async with aiohttp.ClientSession() as session:
        await Slack(slack_api, session).sink.send(request, where, None)
    sent = json.dumps([c.params for c in slack_api.calls], ensure_ascii=False)
    assert secret[4:16] not in sent and "[REDACTED:github_token]" in sent
    [parent] = slack_api.top_level("#cart-oncall")
    [team] = slack_api.top_level("#payments")
    assert permalink(parent.channel, parent.ts) in blocks_text(team.blocks)


async def test_without_the_draft_at_hand_an_update_redraws_the_kept_cause_and_the_storm(
    slack_api: SlackApi,
):
    update = DeliveryRequest(
        kind="storm_update",
        incident_id="inc-cart",
        revision=7,
        title="HighErrorRate on cartservice",
        labels=draft().labels,
        severity="critical",
        created_at=AT,
        attached=attached(4),
    )
    async with aiohttp.ClientSession() as session:
        s = Slack(slack_api, session).sink
        ref = await s.send(draft(revision=1), route(), None)
        assert await s.send(update, route("#cart-oncall", "#elsewhere"), ref) == ref
        await s.send(resolve().model_copy(update={"attached": attached(5)}), route(), ref)
    [parent] = slack_api.top_level("#cart-oncall")
    assert not slack_api.top_level("#elsewhere")  # no thread there: none opened by an update
    before, after = parent.history[-1]["blocks"], parent.blocks
    shown = blocks_text(before)
    assert "(+4 alert groups in 3 services)" in before[0]["text"]["text"]
    assert "cartservice (bad rollout): Deployment shop/cartservice rolled out" in shown
    assert "inc-003" in shown and "*draft for review*" in shown
    assert parent.history[-1]["text"].endswith(": +4 alert groups in 3 services")
    # The resolve redraws it with the final count.
    assert after[0]["text"]["text"].startswith("RESOLVED · CRITICAL")
    assert "(+5 alert groups in 3 services)" in after[0]["text"]["text"]
    assert "*Attached:* +5 alert groups in 3 services, all resolved" in blocks_text(after)
    assert len(slack_api.replies(parent)) == 1  # the resolve's reply, nothing for the update
