"""Declarations follow the settings, every start, without losing data."""

from __future__ import annotations

import time

import nats
import pytest
from triage_lab.fakes.nats import NatsServer

from triage.bus.jetstream import CONSUMERS, Bus
from triage.errors import BrokerUnavailable, MessageTooLarge
from triage.models import DeadLetter
from triage.settings import NatsSettings
from triage.telemetry import Metrics


async def declared(url: str, settings: NatsSettings) -> Bus:
    bus = Bus(settings, url, Metrics())
    await bus.connect()
    await bus.declare()
    return bus


async def test_declare_is_idempotent_and_applies_changed_settings(nats_server: NatsServer):
    first = await declared(nats_server.url, NatsSettings(max_age_s=3600, ack_wait_s=30))
    await first.publish(first.subjects.alerts, b"{}", "one")
    await first.close()

    changed = NatsSettings(max_age_s=7200, duplicate_window_s=120, ack_wait_s=12, max_deliver=7)
    again = await declared(nats_server.url, changed)
    try:
        info = await again.js.stream_info(changed.stream)
        assert info.config.max_age == 7200
        assert info.config.duplicate_window == 120
        assert info.config.subjects == ["triage.>"]
        assert info.state.messages == 1  # re-declaring kept the data
        for durable in CONSUMERS:
            consumer = await again.js.consumer_info(changed.stream, durable)
            assert consumer.config.ack_wait == 12 and consumer.config.max_deliver == 7
        assert await again.ready()
    finally:
        await again.close()


async def test_publish_ids_deduplicate_within_the_window(nats_server: NatsServer):
    bus = await declared(nats_server.url, NatsSettings())
    try:
        assert await bus.publish(bus.subjects.alerts, b"{}", "same") is True
        assert await bus.publish(bus.subjects.alerts, b"{}", "same") is False
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().stream_info("TRIAGE")
        await nc.close()
        assert info.state.messages == 1
    finally:
        await bus.close()


async def test_a_message_over_max_payload_is_refused_and_the_connection_lives(
    nats_server: NatsServer,
):
    bus = await declared(nats_server.url, NatsSettings())
    try:
        assert bus.max_payload == 1024 * 1024  # what a default nats-server announces
        # Under max_payload on its own, over it with its Nats-Msg-Id header: the server would
        # answer -ERR and nats-py would close the connection for good.
        for size in (bus.max_payload - 10, bus.max_payload + 10):
            with pytest.raises(MessageTooLarge) as refused:
                await bus.publish(bus.subjects.alerts, b"x" * size, "big")
            assert refused.value.limit == bus.max_payload
            assert "max_payload of 1048576 bytes" in str(refused.value)
        room = bus.room({"Nats-Msg-Id": "fits"})
        assert await bus.publish(bus.subjects.alerts, b"x" * room, "fits") is True
        assert bus.connected
        assert await bus.publish(bus.subjects.alerts, b"{}", "after") is True
    finally:
        await bus.close()


async def test_a_dead_letter_too_large_for_the_broker_keeps_what_fits_and_says_so(
    nats_server: NatsServer,
):
    bus = await declared(nats_server.url, NatsSettings())
    nc = await nats.connect(nats_server.url)
    try:
        sub = await nc.jetstream().subscribe("triage.deadletter.>", durable="reader")
        # JSON doubles every quote: the letter would be twice the size of the message.
        payload = b'"' * (bus.max_payload - 1000)
        await bus.dead_letter(
            "incidents", "triage.alerts", payload, "invalid AlertNotification", 1, stream_seq=7
        )
        msg = await sub.next_msg(timeout=5)
        assert len(msg.data) <= bus.max_payload
        letter = DeadLetter.model_validate_json(msg.data)
        assert letter.reason.startswith("invalid AlertNotification [payload of 1047576 bytes")
        assert "truncated to fit the broker's max_payload of 1048576 bytes" in letter.reason
        assert "stream TRIAGE sequence 7" in letter.reason
        assert 400_000 < len(letter.payload) < len(payload) and set(letter.payload) == {'"'}
        assert bus.connected
    finally:
        await nc.close()
        await bus.close()


async def test_connecting_to_nothing_fails_within_the_deadline_naming_the_url():
    bus = Bus(NatsSettings(), "nats://127.0.0.1:1", Metrics(), name="TRIAGE_NATS_URL=x")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failed:
        await bus.connect(deadline_s=1)
    assert time.monotonic() - started < 3
    assert str(failed.value).startswith("TRIAGE_NATS_URL=x: cannot connect within 1s: ")
    assert "Connection" in str(failed.value)
