"""The Slack sink against a local Slack Web API: threads, resolves, graphs, pacing, 429s,
failures part way, escaping of injected mentions and markup, and Block Kit's limits."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from triage_lab.fakes.slack import SlackApi, all_text, channel_id

from tests.support.drafts import GRAPH_URL, RUNBOOK_URL, draft, rca, resolve, route
from triage.deliver import slack_blocks as kit
from triage.deliver.graph import PNG_MAGIC
from triage.deliver.slack import SlackRef, SlackSink, web_client
from triage.errors import DeliveryError, PartialDelivery
from triage.models import EvidenceDigest, Link, LLMUsage
from triage.settings import SlackSettings


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def sink(api: SlackApi, session: aiohttp.ClientSession, **overrides: Any) -> SlackSink:
    settings = SlackSettings.model_validate(
        {"base_url": api.url, "channel_interval_s": 0, **overrides}
    )
    return SlackSink(web_client(settings, api.token, session), settings)


def texts(api: SlackApi) -> list[str]:
    """Everything people could read, in every message as posted and as last edited."""
    found: list[str] = []
    for call in api.calls:
        if call.method in ("chat.postMessage", "chat.update"):
            found.append(str(call.params.get("text", "")))
            found += all_text(call.params.get("blocks") or [])
    return found


async def test_first_draft_is_a_new_message_with_the_draft_in_block_kit(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    ref = await sink(slack_api, session).send(draft(), route("#cart-oncall"), None)

    [msg] = slack_api.top_level("#cart-oncall")
    blocks = msg.blocks
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "CRITICAL · cartservice: HighErrorRate on cartservice"
    body = "\n".join(all_text(blocks))
    assert "*Probable cause* (72% confidence)" in body
    assert "deployment/cartservice revision 7" in body
    assert "• `rollout-cart-7` cartservice revision 7 rolled out" in body
    graph = GRAPH_URL.replace("&", "&amp;")
    assert f"<{graph}|Prometheus graph: HighErrorRate>" in body
    assert f"<{RUNBOOK_URL}|Runbook: HighErrorRate>" in body
    assert "1. kubectl rollout history deploy/cartservice" in body
    context = blocks[-1]
    assert context["type"] == "context"
    assert "analyzer: heuristic" in context["elements"][0]["text"]
    assert "*draft for review*" in context["elements"][0]["text"]
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [e["text"]["text"] for e in actions["elements"]] == ["Correct cause", "Wrong cause"]
    assert json.loads(actions["elements"][0]["value"]) == {
        "i": "inc-cart",
        "r": 1,
        "a": "heuristic",
    }
    # The reference names the channel id and ts, for the thread and later updates.
    parsed = SlackRef.parse(ref)
    assert parsed is not None
    assert parsed.parents["#cart-oncall"].ts == msg.ts
    assert parsed.parents["#cart-oncall"].channel_id == channel_id("#cart-oncall")


async def test_the_context_line_names_the_model_and_its_tokens(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    usage = LLMUsage(prompt_tokens=3100, completion_tokens=420, calls=1)
    request = draft(rca=rca(analyzer="llm", model="triage-rca", usage=usage, label="LLM draft"))
    await sink(slack_api, session).send(request, route(), None)
    [msg] = slack_api.top_level("#cart-oncall")
    context = msg.blocks[-1]["elements"][0]["text"]
    assert context.startswith("model: triage-rca · tokens: 3,520 · LLM draft · *draft for review*")


async def test_later_drafts_go_into_the_thread_and_the_resolve_updates_the_parent(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    s = sink(slack_api, session)
    ref = await s.send(draft(revision=1), route(), None)
    ref = await s.send(draft(revision=2), route(), ref)
    ref = await s.send(draft(revision=3, reason="follow-up"), route(), ref)
    ref = await s.send(resolve(), route(), ref)

    [parent] = slack_api.top_level("#cart-oncall")
    replies = slack_api.replies(parent)
    assert len(replies) == 3
    assert replies[0].blocks[0]["text"]["text"].startswith("Re-investigated (revision 2)")
    assert replies[1].blocks[0]["text"]["text"].startswith("Follow-up with later data (revision 3)")
    assert "*Resolved*" in all_text(replies[2].blocks)[0]
    # The parent now says it is resolved, and still carries the cause and the buttons.
    assert parent.edits == 1
    assert parent.blocks[0]["text"]["text"].startswith("RESOLVED · CRITICAL · cartservice")
    assert "bad rollout" in "\n".join(all_text(parent.blocks))
    assert any(b["type"] == "actions" for b in parent.blocks)


async def test_a_new_episode_starts_a_new_thread(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    s = sink(slack_api, session)
    ref = await s.send(draft(revision=1), route(), None)
    ref = await s.send(resolve(), route(), ref)
    await s.send(draft(revision=2, episode=2), route(), ref)
    assert len(slack_api.top_level("#cart-oncall")) == 2


async def test_a_retried_request_updates_what_it_posted_instead_of_posting_again(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    s = sink(slack_api, session)
    both = route("#cart-oncall", "#shop")
    first = await s.send(draft(revision=1), both, None)
    # Revision 2: the reply in #cart-oncall goes out, the one in #shop fails...
    slack_api.fail("chat.postMessage", error="not_in_channel", channel="#shop")
    with pytest.raises(PartialDelivery) as caught:
        await s.send(draft(revision=2), both, first)
    # ...and the retry, given what was recorded, updates the first instead of repeating it.
    await s.send(draft(revision=2), both, caught.value.ref)
    [cart] = slack_api.top_level("#cart-oncall")
    [cart_reply] = slack_api.replies(cart)
    assert cart_reply.edits == 1
    [shop] = slack_api.top_level("#shop")
    assert len(slack_api.replies(shop)) == 1
    assert len(slack_api.posted()) == 4  # two parents, two replies: nothing twice


async def test_failure_before_anything_was_posted_is_an_error_for_the_bus_to_retry(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    slack_api.fail("chat.postMessage", status=500, times=3)  # beyond the client's own retries
    with pytest.raises(DeliveryError) as caught:
        await sink(slack_api, session).send(draft(), route(), None)
    assert not isinstance(caught.value, PartialDelivery)
    assert "500" in str(caught.value)
    assert slack_api.top_level("#cart-oncall") == []


async def test_the_graph_is_uploaded_into_the_thread(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    await sink(slack_api, session).send(draft(with_series=True), route(), None)
    [parent] = slack_api.top_level("#cart-oncall")
    [share] = slack_api.shares
    assert share["channel"] == parent.channel and share["thread_ts"] == parent.ts
    assert share["bytes"].startswith(PNG_MAGIC)
    assert [
        c.method for c in slack_api.calls if c.method.startswith("files") or c.method == "upload"
    ] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


async def test_a_failed_upload_does_not_fail_or_repeat_the_draft(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    slack_api.fail("files.getUploadURLExternal", error="not_allowed_token_type")
    ref = await sink(slack_api, session).send(draft(with_series=True), route(), None)
    assert SlackRef.parse(ref) is not None
    assert len(slack_api.top_level("#cart-oncall")) == 1 and slack_api.shares == []


async def test_no_series_no_graph(slack_api: SlackApi, session: aiohttp.ClientSession):
    await sink(slack_api, session).send(draft(), route(), None)
    assert slack_api.shares == [] and slack_api.calls_to("files.getUploadURLExternal") == []


async def test_messages_to_one_channel_are_paced(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    s = sink(slack_api, session, channel_interval_s=0.3)
    await asyncio.gather(*(s.send(draft(f"inc-{n}"), route(), None) for n in range(3)))
    times = [c.at for c in slack_api.calls_to("chat.postMessage")]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.29


async def test_429_waits_for_retry_after_and_posts_once(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    slack_api.rate_limit("chat.postMessage", retry_after=1)
    await sink(slack_api, session).send(draft(), route(), None)
    calls = slack_api.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert len(slack_api.top_level("#cart-oncall")) == 1


async def test_429_beyond_the_retries_is_not_dropped_but_raised_for_redelivery(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    slack_api.rate_limit("chat.postMessage", retry_after=1, times=2)
    s = sink(slack_api, session, rate_limit_retries=1)
    with pytest.raises(DeliveryError, match="429"):
        await s.send(draft(), route(), None)
    await s.send(draft(), route(), None)  # the bus's redelivery
    assert len(slack_api.top_level("#cart-oncall")) == 1


INJECTIONS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<!channel|@channel> wake up",
    "<@U012ABCDEF>",
    "<@W0123ABCD|boss>",
    "<!subteam^S0123ABCD>",
    "<!subteam^S0123ABCD|@oncall>",
    "<#C0123ABCD>",
    "<#C0123ABCD|general>",
    "<http://evil.example/login|Reset your password>",
    "<https://evil.example>",
    "<mailto:ceo@example.com|mail the CEO>",
    "<tel:+15555550100|call>",
    "<slack://open?team=T1|open>",
    "<!date^1392734382^{date}|Feb 18>",
    "&lt;!channel&gt;",
    "<<!here>>",
    "<!here",
    "!here>",
    "@channel",
    "ping @here now",
    "@everyone",
    "`<!channel>` ```<!here>```",
    "*bold* _it_ ~strike~ > quote <!channel>",
    "line\n<!here>\nline",
]


@pytest.mark.parametrize("payload", INJECTIONS)
async def test_injected_mentions_and_markup_are_escaped_everywhere(
    slack_api: SlackApi, session: aiohttp.ClientSession, payload: str
):
    labels = {"alertname": f"Alert{payload}", "service": f"svc{payload}",
              "namespace": "shop", "severity": "critical"}  # fmt: skip
    request = draft(
        labels=labels,
        annotations={"summary": payload, "description": f"logs: {payload}"},
        evidence=[EvidenceDigest(id=f"ev{payload}", collector="logs", summary=f"log: {payload}")],
        links=[
            Link(kind="runbook", title=payload, url=f"https://runbooks.example.com/x?q={payload}"),
            Link(kind="graph", title="g", url=f"javascript:{payload}"),
        ],
        rca=rca(
            summary=f"LLM says {payload}",
            impact=payload,
            next_steps=[f"run {payload}"],
            open_questions=[payload],
            label=payload,
            analyzer=f"llm{payload}",
        ),
    )
    s = sink(slack_api, session)
    ref = await s.send(request, route("#cart-oncall", mention="S0ROUTING1"), None)
    await s.send(resolve(), route("#cart-oncall", mention="S0ROUTING1"), ref)

    for text in texts(slack_api):
        # Our own links and the routing file's group are the only control sequences left.
        rest = re.sub(r"<https://runbooks\.example\.com/[^<>|\s]+\|[^<>]*>", "", text)
        rest = rest.replace("<!subteam^S0ROUTING1>", "")
        assert "<" not in rest and ">" not in rest, text
        assert not re.search(r"@(channel|here|everyone)\b", rest), text
    assert not any("javascript:" in t for t in texts(slack_api))  # not a link: dropped


async def test_the_routing_files_group_is_paged_once_and_only_for_critical(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    s = sink(slack_api, session)
    ref = await s.send(draft("inc-crit"), route(mention="S0CART0001"), None)
    warning = draft("inc-warn", labels={"service": "cartservice", "severity": "warning"})
    await s.send(warning, route(mention="S0CART0001"), None)
    crit, warn = slack_api.top_level("#cart-oncall")
    assert crit.text.startswith("<!subteam^S0CART0001> ")
    assert "<!subteam^S0CART0001>" in all_text(crit.blocks)[1]
    assert not any("subteam" in t for t in [warn.text, *all_text(warn.blocks)])
    # A re-investigation in the thread does not page the group again.
    await s.send(draft("inc-crit", revision=2), route(mention="S0CART0001"), ref)
    [reply] = slack_api.replies(crit)
    assert not any("subteam" in t for t in [reply.text, *all_text(reply.blocks)])


async def test_oversized_drafts_are_truncated_within_slacks_limits_and_say_so(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    huge = draft(
        title="T" * 400,
        evidence=[
            EvidenceDigest(id=f"ev{n}", collector="logs", summary=f"{n}: " + "x & y < z " * 300)
            for n in range(120)
        ],
        rca=rca(summary="cause " * 1000, next_steps=[f"step {n} " * 50 for n in range(200)]),
    )
    await sink(slack_api, session).send(huge, route(), None)
    [msg] = slack_api.top_level("#cart-oncall")  # the local API refuses what Slack refuses
    blocks = msg.blocks
    assert len(blocks) == 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["text"].endswith("(truncated)")
    cause = blocks[1]["text"]["text"]
    assert len(cause) <= 3000 and cause.endswith("(truncated)")
    assert "more sections not shown (Slack allows 50 blocks)" in blocks[-3]["elements"][0]["text"]
    # The buttons and the context line survive the cut.
    assert [b["type"] for b in blocks[-2:]] == ["actions", "context"]
    for text in all_text(blocks):
        assert not re.search(
            r"&[a-z]{0,4}(?![a-z;])",
            text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", ""),
        ), "an entity was cut in half"


async def test_what_was_ruled_out_is_apart_and_no_evidence_names_no_cause(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    evidence = [
        EvidenceDigest(
            id="rollout-cart-7",
            collector="kubernetes",
            summary="cartservice revision 7 rolled out",
            detail="env CART_TIMEOUT_MS 3000 -> 300",
            role="cause",
        ),
        EvidenceDigest(
            id="redis-latency",
            collector="metrics",
            summary="redis latency unchanged",
            role="ruled_out",
        ),
    ]
    await sink(slack_api, session).send(
        draft().model_copy(update={"evidence": evidence}), route("#cart-oncall"), None
    )
    body = "\n".join(all_text(slack_api.top_level("#cart-oncall")[0].blocks))
    support, ruled_out = body.split("*Ruled out* (looked, found normal)")
    assert "env CART_TIMEOUT_MS 3000 -&gt; 300" in support.split("*Evidence*")[1]
    assert "redis latency unchanged" in ruled_out and "redis latency" not in support

    unknown = rca(
        summary="Insufficient evidence: no collector found anything about cartservice",
        confidence=0.0,
        root_cause={"component": "unknown", "kind": "unknown", "description": "x"},
    )
    await sink(slack_api, session).send(
        draft("inc-2").model_copy(update={"rca": unknown, "evidence": []}), route("#other"), None
    )
    body = "\n".join(all_text(slack_api.top_level("#other")[0].blocks))
    assert "*No confident cause* (0% confidence)" in body and "*Probable cause*" not in body


MARKED = "*bold* _ital_ ~strike~ `code` ```block``` (*x*)"
LOOKALIKES = str.maketrans("*_~`", "\u2217\u02cd\u223c\u02cb")


def shown(text: str) -> str:
    """``text`` with every formatting mark as the look-alike Slack shows instead."""
    return text.translate(LOOKALIKES)


async def test_formatting_marks_in_alert_text_show_as_written_and_ours_still_format(
    slack_api: SlackApi, session: aiohttp.ClientSession
):
    request = draft(
        labels={"alertname": "HighErrorRate", "service": "cart_service", "severity": "critical"},
        annotations={"summary": MARKED, "description": "rate(http_requests_total[5m]) * 100"},
        evidence=[
            EvidenceDigest(
                id="log-`x`",
                collector="logs",
                summary=f"log: {MARKED}",
                detail=MARKED,
                role="cause",
            )
        ],
        rca=rca(summary=f"LLM says {MARKED}", next_steps=[MARKED], open_questions=[MARKED]),
    )
    await sink(slack_api, session).send(request, route(), None)
    [msg] = slack_api.top_level("#cart-oncall")
    body = "\n".join(all_text(msg.blocks))
    # Ours: headings, the evidence id in code, the draft's status.
    for own in ("*Probable cause*", "*Alert*", "*Evidence*", "*Next steps*", "*draft for review*"):
        assert own in body
    assert f"• `{shown('log-`x`')}` log: " in body
    for text in texts(slack_api):
        for mark in ("*bold*", "_ital_", "~strike~", "`code`", "```", "(*x*)"):
            assert mark not in text, text
    assert shown(MARKED) in body
    # Marks inside words and spaced operators cannot format and stay as written.
    assert "rate(http_requests_total[5m]) * 100" in body
    assert msg.blocks[0]["text"]["text"] == "CRITICAL · cart_service: HighErrorRate on cart_service"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("*bold* _it_ ~gone~ `code`", shown("*bold* _it_ ~gone~ `code`")),
        ("http_requests_total DB_PASSWORD=[REDACTED:aws_access_key]", None),
        ("2*3 and rate(x[5m]) * 100", None),
        ("a & b <!here> @channel", "a &amp; b &lt;!here&gt; @\u200bchannel"),
    ],
)
def test_esc_neutralises_only_marks_that_could_format(text: str, shown: str | None):
    assert kit.esc(text) == (shown or text)
    if "&" not in text:  # plain_text (headers) forms no markup: the marks stay
        assert kit.esc(text, markup=False) == text
