"""The triage app as tests run it: settings tuned for tests, the real app served under uvicorn
on a free port, and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import uvicorn
from triage_lab.fakes.process import free_port

from triage.app import ALL_STAGES, Stage, create_app
from triage.settings import Settings

TOKEN = "test-token-0123456789"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings as a deployment would set them, tuned so tests do not wait long."""
    base: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "http_port": free_port(),
        "log_format": "console",
        "ingest": {"bearer_token": TOKEN},
        "nats": {"ack_wait_s": 5, "max_deliver": 5},
        "incidents": {"debounce_s": 0.5},
        "investigation": {"total_deadline_s": 5, "collector_deadline_s": 3},
        "delivery": {"console": False, "jsonl_path": str(tmp_path / "drafts.jsonl")},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings.model_validate(base)


class RunningApp:
    def __init__(self, settings: Settings, app: Any) -> None:
        self.settings = settings
        self.app = app
        self.base_url = f"http://127.0.0.1:{settings.http_port}"
        self.webhook_url = f"{self.base_url}/api/v1/alertmanager"

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def client(self, token: str | None = TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    def drafts(self) -> list[dict[str, Any]]:
        path = self.settings.delivery.jsonl_path
        if path is None or not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, nats_url: str, stages: frozenset[Stage] = ALL_STAGES, **kwargs: Any
) -> AsyncIterator[RunningApp]:
    """Run the real app under uvicorn on a free port, in this event loop."""
    app = create_app(settings, nats_url=nats_url, stages=stages, **kwargs)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.http_port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        task.cancel()
        raise RuntimeError("triage app did not start")
    try:
        yield RunningApp(settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def wait_for(predicate: Any, timeout: float = 20, every: float = 0.1) -> Any:
    """Poll until ``predicate()`` (sync or async) is truthy; fail with a clear message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def stream_messages(nats_url: str, subject: str, stream: str = "TRIAGE") -> int:
    """How many messages JetStream holds on ``subject``."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()
