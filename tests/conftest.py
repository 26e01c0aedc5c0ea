"""Shared fixtures: a real nats-server per test, the bus connected to it, the Slack-compatible
server, and the triage app served on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi

from tests.support.app import make_settings
from triage.bus.jetstream import Bus
from triage.settings import NatsSettings, Settings
from triage.telemetry import Metrics


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(workdir=tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = Bus(NatsSettings(), nats_server.url, Metrics())
    await b.connect()
    await b.declare()
    yield b
    await b.close()


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApi]:
    async with SlackApi() as api:
        yield api
