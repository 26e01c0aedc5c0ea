"""Faults a production deployment meets: the broker goes away, a worker dies mid-investigation,
a poison message arrives, a sink fails once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from triage_lab.fakes.alertmanager import Alertmanager
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import TOKEN, make_settings, serve, wait_for
from tests.support.payloads import alert, webhook
from tests.support.pipeline import am_alert, scenario_dir
from triage.deliver.delivery import JsonlSink
from triage.deliver.routing import RouteDecision
from triage.models import DeadLetter, DeliveryRequest

pytestmark = pytest.mark.slow


def drafts(app: Any) -> list[dict[str, Any]]:
    return [d for d in app.drafts() if d["delivery"]["kind"] == "draft"]


async def test_broker_outage_during_ingest_loses_nothing(nats_server: NatsServer, tmp_path: Path):
    settings = make_settings(tmp_path, investigation={"scenario_dir": str(scenario_dir(tmp_path))})
    async with serve(settings, nats_server.url) as app:
        with Alertmanager(app.webhook_url, bearer_token=TOKEN) as am:
            nats_server.stop()
            am.post_alerts([am_alert("cartservice")])
            metrics = app.runtime.metrics
            # Alertmanager is told 503 and keeps retrying while the broker is down.
            await wait_for(lambda: metrics.webhook_requests.labels("unavailable")._value.get() >= 2)
            nats_server.start()
            found = await wait_for(lambda: drafts(app), timeout=40)
        assert found[0]["delivery"]["rca"]["root_cause"]["component"] == "cartservice"
        assert len(drafts(app)) == 1


def start_worker(nats_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        **env,
        "TRIAGE_NATS_URL": nats_url,
        "TRIAGE_HTTP_PORT": str(free_port()),
        "TRIAGE_LOG_FORMAT": "json",
    }
    return subprocess.Popen([sys.executable, "-m", "triage.cli", "worker"], env=full)


async def test_killed_worker_incident_is_investigated_again_and_delivered_once(
    nats_server: NatsServer, tmp_path: Path
):
    scenarios = scenario_dir(tmp_path)
    slow = json.loads((scenarios / "rollout.json").read_text())
    (scenarios / "rollout.json").write_text(json.dumps({**slow, "delay_s": 3}))
    tuning = {"ack_wait_s": 2, "max_deliver": 10}
    settings = make_settings(
        tmp_path, nats=tuning, investigation={"total_deadline_s": 6, "collector_deadline_s": 5}
    )
    env = {
        "TRIAGE_NATS_ACK_WAIT_S": "2",
        "TRIAGE_NATS_MAX_DELIVER": "10",
        "TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S": "6",
        "TRIAGE_INVESTIGATION_COLLECTOR_DEADLINE_S": "5",
        "TRIAGE_INVESTIGATION_SCENARIO_DIR": str(scenarios),
    }
    async with serve(settings, nats_server.url, frozenset({"ingest", "notify"})) as app:
        first = start_worker(nats_server.url, env)
        second = None
        try:
            async with app.client() as client:
                resp = await client.post("/api/v1/alertmanager", json=webhook([am_alert_payload()]))
            incident = resp.json()["incident_id"]

            async def claimed_by_first() -> bool:
                state, _ = await app.runtime.bus.get_incident(incident)
                return bool(state and state.claim and state.claim.worker.endswith(f"-{first.pid}"))

            await wait_for(claimed_by_first, timeout=20)
            first.send_signal(signal.SIGKILL)
            first.wait()
            assert drafts(app) == []
            second = start_worker(nats_server.url, env)
            found = await wait_for(lambda: drafts(app), timeout=40)
            state, _ = await app.runtime.bus.get_incident(incident)
            assert state is not None and state.investigated_revision == 1
            assert state.claim is None
            # Two more ack_waits: a duplicate would have been redelivered and posted by now.
            await asyncio.sleep(5)
            assert len(drafts(app)) == 1
            assert found[0]["delivery"]["rca"]["evidence_ids"] == ["rollout-cart-7"]
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)


def am_alert_payload() -> dict[str, Any]:
    return alert("HighErrorRate", service="cartservice")


async def test_poison_message_goes_to_dead_letter_once(nats_server: NatsServer, settings):
    async with serve(settings, nats_server.url, frozenset({"worker"})):
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe("triage.deadletter.>", durable="dlq-reader")
            await js.publish("triage.alerts", b'{"schema_version": 1, "nonsense": true}')
            msg = await sub.next_msg(timeout=15)
            letter = DeadLetter.model_validate_json(msg.data)
            assert msg.subject == "triage.deadletter.incidents"
            assert letter.deliveries == 1 and "msg_id" in letter.reason
            assert "nonsense" in letter.payload
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=3)  # not redelivered, not dead-lettered twice
        finally:
            await nc.close()


class FailsOnce:
    """A sink whose first send fails, as Slack does when it times out."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.inner = JsonlSink(path)
        self.calls = 0

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        self.calls += 1
        if self.calls == 1:
            raise httpx.ConnectError("sink unreachable")
        return await self.inner.send(request, route, thread)


async def test_transient_delivery_failure_is_retried_not_dropped(
    nats_server: NatsServer, tmp_path: Path
):
    settings = make_settings(tmp_path, investigation={"scenario_dir": str(scenario_dir(tmp_path))})
    assert settings.delivery.jsonl_path is not None
    sink = FailsOnce(settings.delivery.jsonl_path)
    async with serve(settings, nats_server.url, sinks=[sink]) as app:
        async with app.client() as client:
            await client.post("/api/v1/alertmanager", json=webhook([am_alert_payload()]))
            await wait_for(lambda: drafts(app), timeout=20)
            assert sink.calls == 2
            assert len(drafts(app)) == 1
            text = (await client.get("/metrics")).text
        assert 'triage_deliveries_total{outcome="error",sink="jsonl"} 1.0' in text


class AlwaysFails:
    name = "jsonl"

    async def send(self, request: DeliveryRequest, route: RouteDecision, thread: str | None) -> str:
        raise httpx.ConnectError("sink down for good")


async def test_message_that_keeps_failing_is_dead_lettered_not_looped(
    nats_server: NatsServer, tmp_path: Path
):
    settings = make_settings(
        tmp_path,
        nats={"max_deliver": 2},
        investigation={"scenario_dir": str(scenario_dir(tmp_path))},
    )
    async with serve(settings, nats_server.url, sinks=[AlwaysFails()]) as app:
        nc = await nats.connect(nats_server.url)
        try:
            sub = await nc.jetstream().subscribe("triage.deadletter.deliveries", durable="dlq")
            async with app.client() as client:
                await client.post("/api/v1/alertmanager", json=webhook([am_alert_payload()]))
            msg = await sub.next_msg(timeout=20)
            letter = DeadLetter.model_validate_json(msg.data)
            assert letter.deliveries == 2
            assert "sink down for good" in letter.reason
            assert DeliveryRequest.model_validate_json(letter.payload).kind == "draft"
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=3)
        finally:
            await nc.close()
        dead = app.runtime.metrics.dead_letters.labels("deliveries")._value.get()
        assert dead == 1


async def test_long_investigation_keeps_its_message_with_heartbeats(
    nats_server: NatsServer, tmp_path: Path
):
    scenarios = scenario_dir(tmp_path)
    slow = json.loads((scenarios / "rollout.json").read_text())
    (scenarios / "rollout.json").write_text(json.dumps({**slow, "delay_s": 4}))
    settings = make_settings(
        tmp_path,
        nats={"ack_wait_s": 1},
        investigation={
            "scenario_dir": str(scenarios),
            "total_deadline_s": 8,
            "collector_deadline_s": 6,
        },
    )
    async with serve(settings, nats_server.url) as app:
        async with app.client() as client:
            await client.post("/api/v1/alertmanager", json=webhook([am_alert_payload()]))
        await wait_for(lambda: drafts(app), timeout=20)
        messages = app.runtime.metrics.messages
        # Four ack_waits long, yet never handed out again while the worker was alive.
        assert messages.labels("investigations", "investigated")._value.get() == 1
        assert messages.labels("investigations", "deferred")._value.get() == 0
        assert messages.labels("investigations", "retry")._value.get() == 0
