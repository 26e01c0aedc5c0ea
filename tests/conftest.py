"""Shared fixtures: a real nats-server per test, and the triage app served on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from triage_lab.fakes.nats import NatsServer

from tests.support.app import make_settings
from triage.settings import Settings


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(workdir=tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
