"""The generic JSON webhook sink against a local receiver: retried on transient failures under a
deadline, refused deliveries reported, repeats recognisable by their idempotency key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from triage_lab.fakes.servers import free_port

from tests.support.drafts import draft, route
from triage.deliver.webhook_sink import WebhookSink
from triage.errors import DeliveryError


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.answers: list[int] = []  # statuses to answer, in order; then 200
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), json.loads(await request.read())))
        status = self.answers.pop(0) if self.answers else 200
        return web.json_response({"status": status}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


async def test_transient_failures_are_retried_and_the_draft_arrives_once_ok(
    receiver: Receiver, client: httpx.AsyncClient
):
    receiver.answers = [503, 429]
    sink = WebhookSink(receiver.url, client, deadline_s=20)
    ref = await sink.send(draft(), route("#cart-oncall", "#shop"), None)
    assert ref == "webhook:inc-cart"
    assert len(receiver.received) == 3
    keys = {headers["Idempotency-Key"] for headers, _ in receiver.received}
    assert keys == {"inc-cart.draft.1"}  # the receiver can drop the repeats
    _, body = receiver.received[-1]
    assert body["team"] == "cart" and body["channels"] == ["#cart-oncall", "#shop"]
    assert body["delivery"]["rca"]["root_cause"]["component"] == "cartservice"


async def test_a_refused_delivery_is_an_error_and_not_retried(
    receiver: Receiver, client: httpx.AsyncClient
):
    receiver.answers = [400]
    sink = WebhookSink(receiver.url, client, deadline_s=20)
    with pytest.raises(DeliveryError, match="HTTP 400"):
        await sink.send(draft(), route(), None)
    assert len(receiver.received) == 1


async def test_retries_stop_at_the_deadline(receiver: Receiver, client: httpx.AsyncClient):
    receiver.answers = [503] * 100
    sink = WebhookSink(receiver.url, client, deadline_s=1)
    with pytest.raises(DeliveryError, match="still failing after 1s"):
        await sink.send(draft(), route(), None)
    assert 1 < len(receiver.received) < 100


async def test_an_unreachable_receiver_is_an_error(client: httpx.AsyncClient):
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", client, deadline_s=0.5)
    with pytest.raises(DeliveryError, match="still failing"):
        await sink.send(draft(), route(), None)
