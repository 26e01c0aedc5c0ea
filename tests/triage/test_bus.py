"""Declarations follow the settings, every start, without losing data."""

from __future__ import annotations

import nats

from tests.servers import NatsServer
from triage.bus import CONSUMERS, Bus
from triage.metrics import Metrics
from triage.settings import NatsSettings


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
