"""The feedback buttons through the real app: Slack's signature checked (secret, timestamp within
five minutes), the verdict recorded on the incident, the message updated, accuracy counted."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import Message, SlackApi, all_text

from tests.support.app import make_settings, serve, wait_for
from tests.support.payloads import alert, webhook
from tests.support.slack_case import GROUP_KEY, slack_settings
from triage.models import incident_id_for

pytestmark = pytest.mark.slow

SECRET = "test-signing-secret"
PATH = "/api/v1/slack/interactions"


def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    """Headers as Slack signs a request (v0 HMAC-SHA256 of version:timestamp:body)."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(msg: Message, action_id: str, user: str) -> bytes:
    """The block_actions payload Slack sends when ``user`` clicks a button on ``msg``."""
    actions = next(b for b in msg.blocks if b["type"] == "actions")
    button = next(e for e in actions["elements"] if e["action_id"] == action_id)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": f"U{user.upper()}01", "username": user, "name": user, "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": msg.ts, "channel_id": msg.channel},
        "channel": {"id": msg.channel, "name": "cart-oncall"},
        "message": {"type": "message", "ts": msg.ts, "text": msg.text, "blocks": msg.blocks},
        "response_url": "https://hooks.slack.invalid/actions/T1/1/x",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": actions["block_id"],
                "value": button["value"],
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def metric(text: str, line: str) -> float:
    found = [row for row in text.splitlines() if row.startswith(line + " ")]
    return float(found[0].split()[-1]) if found else 0.0


async def test_a_verdict_is_recorded_shown_and_counted_once(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    settings = slack_settings(tmp_path, slack_api)
    async with serve(settings, nats_server.url) as app, app.client() as client:
        await client.post("/api/v1/alertmanager", json=webhook([alert(service="cartservice")]))
        [msg] = await wait_for(lambda: slack_api.top_level("#cart-oncall"))
        as_bob_saw_it = copy.deepcopy(msg)

        body = click(msg, "triage_cause_correct", "alice")
        resp = await client.post(PATH, content=body, headers=signed(body))
        assert resp.status_code == 200 and resp.json() == {"outcome": "recorded"}

        state, _ = await app.runtime.bus.get_incident(incident_id_for(GROUP_KEY))
        assert state.feedback is not None
        assert (state.feedback.verdict, state.feedback.user_name) == ("correct", "alice")
        assert state.feedback.revision == 1 and state.feedback.analyzer == "heuristic"

        # The buttons give way to who said what.
        await wait_for(lambda: msg.edits == 1)
        assert not any(b["type"] == "actions" for b in msg.blocks)
        assert any("marked *correct* by alice" in t for t in all_text(msg.blocks))

        # A second opinion on the same draft does not change the record or the count.
        body = click(as_bob_saw_it, "triage_cause_wrong", "bob")
        resp = await client.post(PATH, content=body, headers=signed(body))
        assert resp.json() == {"outcome": "already_recorded"}
        state, _ = await app.runtime.bus.get_incident(incident_id_for(GROUP_KEY))
        assert state.feedback.user_name == "alice"

        text = (await client.get("/metrics")).text
        correct = 'triage_feedback_total{analyzer="heuristic",verdict="correct"}'
        wrong = 'triage_feedback_total{analyzer="heuristic",verdict="wrong"}'
        assert metric(text, correct) == 1.0 and metric(text, wrong) == 0.0


async def test_unsigned_stale_or_forged_requests_get_401_and_change_nothing(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
):
    settings = slack_settings(tmp_path, slack_api)
    async with serve(settings, nats_server.url) as app, app.client() as client:
        await client.post("/api/v1/alertmanager", json=webhook([alert(service="cartservice")]))
        [msg] = await wait_for(lambda: slack_api.top_level("#cart-oncall"))
        body = click(msg, "triage_cause_wrong", "mallory")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        attempts = {
            "unsigned": form,
            "no timestamp": {**form, "X-Slack-Signature": signed(body)["X-Slack-Signature"]},
            "stale (6 minutes old)": signed(body, ts=int(time.time()) - 360),
            "from the future": signed(body, ts=int(time.time()) + 360),
            "wrong secret": signed(body, secret="not-the-secret"),
            "not a number": {**signed(body), "X-Slack-Request-Timestamp": "yesterday"},
            "signature of another body": signed(body + b"&x=1"),
        }
        for why, headers in attempts.items():
            resp = await client.post(PATH, content=body, headers=headers)
            assert resp.status_code == 401, why

        # Signed but not a Slack payload: refused without touching anything.
        junk = b"payload=%7Bnot-json"
        resp = await client.post(PATH, content=junk, headers=signed(junk))
        assert resp.status_code == 400

        state, _ = await app.runtime.bus.get_incident(incident_id_for(GROUP_KEY))
        assert state.feedback is None
        assert msg.edits == 0
        text = (await client.get("/metrics")).text
        assert metric(text, 'triage_slack_interactions_total{outcome="bad_signature"}') == 5.0
        assert metric(text, 'triage_slack_interactions_total{outcome="unsigned"}') == 2.0


async def test_no_signing_secret_no_endpoint(nats_server: NatsServer, tmp_path: Path):
    settings = make_settings(tmp_path)
    async with serve(settings, nats_server.url) as app, app.client() as client:
        body = b"payload=%7B%7D"
        resp = await client.post(PATH, content=body, headers=signed(body))
        assert resp.status_code == 404
