"""`triage dlq list | replay` against a real nats-server, with dead letters made by the real
stages (poison messages, a sink that is down), run as the operator runs it: a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import make_settings, serve, stream_messages, wait_for
from tests.support.payloads import alert, webhook
from tests.support.pipeline import scenario_dir
from triage.cli.dlq import DeadLetters
from triage.deliver.delivery import JsonlSink
from triage.deliver.routing import RouteDecision
from triage.models import DeliveryRequest
from triage.settings import NatsSettings

pytestmark = pytest.mark.slow

POISON = b'{"schema_version": 1, "nonsense": true}'


def dlq(nats_url: str, *argv: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "triage.cli", "dlq", *argv],
        env={**os.environ, "TRIAGE_NATS_URL": nats_url, "TRIAGE_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


async def run_dlq(nats_url: str, *argv: str) -> tuple[int, str]:
    return await asyncio.to_thread(dlq, nats_url, *argv)


async def dead_letters(nats_url: str) -> list[dict[str, Any]]:
    code, out = await run_dlq(nats_url, "list", "--json")
    assert code == 0, out
    letters: list[dict[str, Any]] = json.loads(out)
    return letters


async def make_poison_letters(nats_url: str, settings: Any) -> None:
    """One dead letter from the incident stage, one from the investigation stage."""
    async with serve(settings, nats_url, frozenset({"worker"})):
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await js.publish("triage.alerts", POISON)
            await js.publish("triage.investigate", b'{"schema_version": 1, "incident_id": "x"}')
        finally:
            await nc.close()
        await wait_for(lambda: has_letters(nats_url, 2), timeout=15)


async def has_letters(nats_url: str, n: int) -> bool:
    return await stream_messages(nats_url, "triage.deadletter.>") >= n


async def test_list_shows_stage_reason_deliveries_and_age(nats_server: NatsServer, settings):
    await make_poison_letters(nats_server.url, settings)
    letters = await dead_letters(nats_server.url)
    by_stage = {letter["stage"]: letter for letter in letters}
    assert set(by_stage) == {"incidents", "investigations"}
    assert by_stage["incidents"]["subject"] == "triage.alerts"
    assert "msg_id" in by_stage["incidents"]["reason"]
    assert by_stage["investigations"]["subject"] == "triage.investigate"
    assert all(letter["deliveries"] == 1 for letter in letters)
    assert all(0 <= letter["age_s"] < 120 for letter in letters)

    code, text = await run_dlq(nats_server.url, "list", "--stage", "incidents")
    assert code == 0
    lines = text.strip().splitlines()
    assert lines[0].split()[:5] == ["SEQ", "STAGE", "DELIVERIES", "AGE", "SUBJECT"]
    assert len(lines) == 2 and "incidents" in lines[1] and "triage.alerts" in lines[1]


async def test_dry_run_replays_nothing(nats_server: NatsServer, settings):
    await make_poison_letters(nats_server.url, settings)
    before = await stream_messages(nats_server.url, "triage.alerts")
    code, out = await run_dlq(nats_server.url, "replay", "--all", "--dry-run")
    assert code == 0, out
    assert out.count("would replay") == 2
    assert await stream_messages(nats_server.url, "triage.alerts") == before
    assert len(await dead_letters(nats_server.url)) == 2


async def test_replay_by_sequence_sends_the_original_payload_back_and_removes_only_that_letter(
    nats_server: NatsServer, settings
):
    await make_poison_letters(nats_server.url, settings)
    letters = await dead_letters(nats_server.url)
    incident = next(letter for letter in letters if letter["stage"] == "incidents")
    before = await stream_messages(nats_server.url, "triage.alerts")

    # No worker runs now: what is replayed stays on the subject for us to read.
    code, out = await run_dlq(nats_server.url, "replay", str(incident["seq"]))
    assert code == 0, out
    assert f"replayed {incident['seq']} (incidents) -> triage.alerts" in out
    assert await stream_messages(nats_server.url, "triage.alerts") == before + 1
    remaining = await dead_letters(nats_server.url)
    assert [letter["stage"] for letter in remaining] == ["investigations"]

    nc = await nats.connect(nats_server.url)
    try:
        last = await nc.jetstream().get_last_msg("TRIAGE", "triage.alerts")
        assert last.data == POISON
        assert last.headers and last.headers["Nats-Msg-Id"].startswith("dlq-replay:")
    finally:
        await nc.close()


async def test_replay_needs_a_selection_and_reports_unknown_sequences(
    nats_server: NatsServer, settings
):
    await make_poison_letters(nats_server.url, settings)
    code, out = await run_dlq(nats_server.url, "replay")
    assert code == 2 and "nothing selected" in out
    code, out = await run_dlq(nats_server.url, "replay", "999999")
    assert code == 1 and "not found: 999999" in out
    assert len(await dead_letters(nats_server.url)) == 2


async def test_replay_after_an_interrupted_run_does_not_publish_twice(
    nats_server: NatsServer, settings
):
    await make_poison_letters(nats_server.url, settings)
    letters = await dead_letters(nats_server.url)
    incident = next(letter for letter in letters if letter["stage"] == "incidents")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        # What the first run had done before it died: published, letter not yet deleted.
        (entry,) = await DeadLetters(js, NatsSettings()).list("incidents")
        assert entry.seq == incident["seq"] and entry.letter is not None
        await js.publish(entry.letter.subject, POISON, headers={"Nats-Msg-Id": entry.replay_id()})
        before = await stream_messages(nats_server.url, "triage.alerts")
        code, out = await run_dlq(nats_server.url, "replay", "--stage", "incidents")
        assert code == 0, out
        assert "already replayed" in out
        assert await stream_messages(nats_server.url, "triage.alerts") == before
        assert [x["stage"] for x in await dead_letters(nats_server.url)] == ["investigations"]
    finally:
        await nc.close()


async def test_unreadable_dead_letter_is_listed_and_skipped(nats_server: NatsServer, settings):
    await make_poison_letters(nats_server.url, settings)
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().publish("triage.deadletter.incidents", b"not a dead letter")
    finally:
        await nc.close()
    letters = await dead_letters(nats_server.url)
    broken = [letter for letter in letters if letter["subject"] is None]
    assert len(broken) == 1 and broken[0]["reason"].startswith("unreadable")
    code, out = await run_dlq(nats_server.url, "replay", "--stage", "incidents")
    assert code == 1
    assert f"skip {broken[0]['seq']} (incidents): unreadable" in out
    assert "replayed" in out
    left = await dead_letters(nats_server.url)  # in stream order
    assert [x["subject"] for x in left] == ["triage.investigate", None]


class SlackDown:
    """A sink that fails until it is fixed, as Slack does with a revoked token."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.inner = JsonlSink(path)
        self.down = True

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        if self.down:
            raise RuntimeError("invalid_auth")
        return await self.inner.send(request, route, thread)


async def test_draft_dead_lettered_while_the_sink_was_down_is_delivered_after_replay(
    nats_server: NatsServer, tmp_path: Path
):
    settings = make_settings(
        tmp_path,
        nats={"max_deliver": 2},
        investigation={"scenario_dir": str(scenario_dir(tmp_path))},
    )
    assert settings.delivery.jsonl_path is not None
    sink = SlackDown(settings.delivery.jsonl_path)
    async with serve(settings, nats_server.url, sinks=[sink]) as app:
        async with app.client() as client:
            await client.post(
                "/api/v1/alertmanager",
                json=webhook([alert("HighErrorRate", service="cartservice")]),
            )
        await wait_for(
            lambda: stream_messages(nats_server.url, "triage.deadletter.deliveries"), timeout=30
        )
        letters = await dead_letters(nats_server.url)
        assert [x["stage"] for x in letters] == ["deliveries"]
        assert "invalid_auth" in letters[0]["reason"] and letters[0]["deliveries"] == 2
        assert app.drafts() == []

        sink.down = False  # the token was rotated
        code, out = await run_dlq(nats_server.url, "replay", "--stage", "deliveries")
        assert code == 0, out
        drafts = await wait_for(app.drafts, timeout=20)
        assert drafts[0]["delivery"]["kind"] == "draft"
        assert drafts[0]["delivery"]["rca"]["root_cause"]["component"] == "cartservice"
        assert await dead_letters(nats_server.url) == []


async def test_unreachable_nats_is_one_clear_error():
    code, out = await run_dlq(f"nats://127.0.0.1:{free_port()}", "list")
    assert code == 2
    assert out.startswith("triage: cannot reach NATS at nats://127.0.0.1:")
    assert "Traceback" not in out
