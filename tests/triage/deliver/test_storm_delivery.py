"""Delivery of a parent incident in a storm: its thread's first message edited with the storm as
it stands, attached groups listed with why, superseded Slack drafts coalesced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from triage_lab.fakes.slack import SlackApi, all_text

from tests.support.drafts import draft, incident, route
from triage.deliver.draft_text import render_text
from triage.deliver.slack import SlackSink, web_client
from triage.deliver.storm import coalesced
from triage.models import ChildRef
from triage.settings import SlackSettings

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


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApi]:
    async with SlackApi() as api:
        yield api


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
