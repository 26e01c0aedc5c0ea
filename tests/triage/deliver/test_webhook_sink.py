"""The generic JSON webhook sink against a local receiver: retried on transient failures under a
deadline, refused deliveries reported, repeats recognisable by their idempotency key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from triage_lab.fakes.process import free_port

from tests.support.drafts import draft, route
from tests.support.receivers import Receiver
from triage.deliver.webhook_sink import WebhookSink
from triage.errors import DeliveryError


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
