"""Request bodies are read under a size limit and a deadline: the Slack interactions endpoint judges
size and signature headers before reading, a chunked body stops at the limit, a client that
stalls mid-body gets 408 and its connection back, on the webhook too. Through the real app under
uvicorn, with requests written by hand on a socket so that a body can be cut short."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.slack import SlackApi

from tests.support.app import TOKEN, RunningApp, serve
from tests.support.slack_case import slack_settings
from triage.deliver.feedback import MAX_BODY
from triage.ingest import body as http_body

SECRET = "test-signing-secret"  # slack_settings'
INTERACTIONS = "/api/v1/slack/interactions"
WEBHOOK = "/api/v1/alertmanager"
TIMEOUT_S = 0.5
HUGE = 500_000_000
MIB = 1024 * 1024


def plausible(body: bytes = b"", secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    """Slack's headers, well formed and fresh: only the body can tell whether they are right."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


WEBHOOK_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Raw:
    """One HTTP/1.1 request written by hand, its body sent piecemeal (or never finished)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sent = 0  # body bytes the kernel took from us

    @classmethod
    async def open(cls, app: RunningApp, path: str, headers: dict[str, str]) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.settings.http_port)
        head = [f"POST {path} HTTP/1.1", "Host: triage"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> bool:
        """False once the server has closed (or reset) the connection."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        self.sent += len(data)
        return True

    async def send_chunked(self, total: int, chunk: int = 16 * 1024) -> None:
        while self.sent < total and await self.send(b"%x\r\n%s\r\n" % (chunk, b" " * chunk)):
            pass

    async def response(self, within: float) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body the server answered with, within ``within`` seconds."""
        async with asyncio.timeout(within):
            status_line = await self.reader.readline()
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self, within: float) -> bool:
        """True if the server closed the connection (EOF or reset) within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self.reader.read(1) == b""
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def app(
    nats_server: NatsServer, tmp_path: Path, slack_api: SlackApi
) -> AsyncIterator[RunningApp]:
    """Webhook and interactions, with a body deadline of TIMEOUT_S (TRIAGE_INGEST_BODY_TIMEOUT_S)."""
    settings = slack_settings(tmp_path, slack_api)
    settings.ingest.body_timeout_s = TIMEOUT_S
    async with serve(settings, nats_server.url, frozenset({"ingest", "notify"})) as running:
        yield running


async def test_huge_unsigned_or_oversized_interaction_is_refused_before_its_body_is_read(
    app: RunningApp,
):
    stale = int(time.time()) - 360
    cases = {
        "unsigned": ({"Content-Type": "application/x-www-form-urlencoded"}, 401, "unsigned"),
        "malformed signature": (
            {**plausible(), "X-Slack-Signature": "v0=forged"},
            401,
            "bad_signature",
        ),
        "stale": (plausible(ts=stale), 401, "bad_signature"),
        "not a number": (
            {**plausible(), "X-Slack-Request-Timestamp": "yesterday"},
            401,
            "bad_signature",
        ),
        "declared over the limit": (plausible(), 413, "too_large"),
    }
    for why, (headers, status, outcome) in cases.items():
        raw = await Raw.open(app, INTERACTIONS, {**headers, "Content-Length": str(HUGE)})
        sending = asyncio.create_task(raw.send(b"x" * MIB))  # 1 MiB of the declared 500 MB
        started = time.monotonic()
        got, resp_headers, body = await raw.response(within=2)
        elapsed = time.monotonic() - started
        assert (got, body) == (status, b'{"outcome":"%s"}' % outcome.encode()), why
        assert resp_headers.get("connection") == "close", why
        assert await raw.closed_by_server(within=2), why
        await sending
        assert raw.sent <= MIB, why  # answered with at most 1 MiB of 500 MB sent
        print(f"{why}: {got} after {elapsed * 1000:.0f} ms, {raw.sent} of {HUGE} bytes sent")
        await raw.aclose()


async def test_chunked_interaction_stops_at_the_limit(app: RunningApp):
    raw = await Raw.open(app, INTERACTIONS, {**plausible(), "Transfer-Encoding": "chunked"})
    # 4 MiB offered and never finished: the answer must come from the count, not the end.
    sending = asyncio.create_task(raw.send_chunked(4 * MIB))
    status, headers, body = await raw.response(within=3)
    sent_by_then = raw.sent  # taken by the kernels' buffers, not necessarily by triage
    assert (status, body) == (413, b'{"outcome":"too_large"}')
    assert headers.get("connection") == "close"
    assert await raw.closed_by_server(within=2)
    await sending
    print(f"413 with {sent_by_then} bytes sent by then (limit {MAX_BODY})")
    await raw.aclose()


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        # Headers made when the test runs: a timestamp taken at collection goes stale.
        (INTERACTIONS, plausible, b'{"outcome":"timeout"}'),
        (WEBHOOK, lambda: WEBHOOK_HEADERS, b'{"error":"body not received within 0.5 s"}'),
    ],
    ids=["interactions", "webhook"],
)
async def test_a_stalled_body_gets_408_and_the_connection_is_closed(
    app: RunningApp, path: str, headers: Callable[[], dict[str, str]], expected: bytes
):
    raw = await Raw.open(app, path, {**headers(), "Content-Length": "2000"})
    assert await raw.send(b"x" * 1000)  # half, then nothing
    started = time.monotonic()
    status, resp_headers, body = await raw.response(within=TIMEOUT_S + 3)
    elapsed = time.monotonic() - started
    assert (status, body) == (408, expected)
    assert resp_headers.get("connection") == "close"
    assert await raw.closed_by_server(within=2)
    assert elapsed < TIMEOUT_S + 1
    print(f"{path}: 408 after {elapsed:.2f} s (deadline {TIMEOUT_S} s)")
    await raw.aclose()


async def test_many_stalled_bodies_are_all_released(app: RunningApp):
    count = 200
    opening = asyncio.Semaphore(50)

    async def stall(i: int) -> tuple[int, bool, float]:
        path, headers = (WEBHOOK, WEBHOOK_HEADERS) if i % 2 else (INTERACTIONS, plausible())
        async with opening:
            raw = await Raw.open(app, path, {**headers, "Content-Length": "4096"})
            await raw.send(b"x" * 2048)
        started = time.monotonic()
        try:
            status, _, _ = await raw.response(within=TIMEOUT_S + 5)
            return status, await raw.closed_by_server(within=2), time.monotonic() - started
        finally:
            await raw.aclose()

    started = time.monotonic()
    results = await asyncio.gather(*(stall(i) for i in range(count)))
    elapsed = time.monotonic() - started
    assert [status for status, _, _ in results] == [408] * count
    assert all(closed for _, closed, _ in results)
    slowest = max(waited for _, _, waited in results)
    assert slowest < TIMEOUT_S + 3
    print(f"{count} stalled bodies: all 408 and closed in {elapsed:.2f} s, slowest {slowest:.2f} s")

    # The server is not left holding anything: a complete request still goes through.
    async with app.client() as client:
        resp = await client.post(WEBHOOK, content=b"{", headers=WEBHOOK_HEADERS)
    assert resp.status_code == 400


# read_body on its own, with a hand-fed ASGI receive.


def request(
    messages: list[Message], headers: dict[str, str] | None = None, stall: bool = False
) -> tuple[Request, list[int]]:
    """A request whose body arrives as ``messages``; then it stalls (or the client leaves)."""
    received: list[int] = []

    async def receive() -> Message:
        if messages:
            message = messages.pop(0)
            received.append(len(message.get("body", b"")))
            return message
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    return Request(scope, receive), received


def part(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


Read = Callable[[Request], Awaitable[bytes]]


def reader(limit: int = 10, timeout_s: float = 1.0) -> Read:
    async def read(req: Request) -> bytes:
        return await http_body.read_body(req, limit=limit, timeout_s=timeout_s)

    return read


async def test_read_body_up_to_the_limit():
    req, _ = request([part(b"12345"), part(b"67890", more=False)])
    assert await reader()(req) == b"1234567890"


async def test_read_body_refuses_a_declared_length_without_reading():
    req, received = request([part(b"1", more=False)], {"Content-Length": "11"})
    with pytest.raises(http_body.BodyTooLarge) as exc:
        await reader()(req)
    assert received == [] and exc.value.status == 413 and str(exc.value) == "body exceeds 10 bytes"


async def test_read_body_stops_counting_at_the_limit():
    req, received = request([part(b"123456"), part(b"78901"), part(b"x" * 100, more=False)])
    with pytest.raises(http_body.BodyTooLarge):
        await reader()(req)
    assert received == [6, 5]  # the third part was never asked for


async def test_read_body_gives_up_on_a_stalled_body():
    req, _ = request([part(b"12345")], stall=True)
    started = time.monotonic()
    with pytest.raises(http_body.BodyTimeout) as exc:
        await reader(timeout_s=0.2)(req)
    assert time.monotonic() - started < 1 and exc.value.status == 408


async def test_read_body_reports_a_client_that_left():
    req, _ = request([part(b"12345")])
    with pytest.raises(http_body.BodyIncomplete):
        await reader()(req)


async def test_release_drops_a_small_rest_and_keeps_the_connection():
    req, received = request([part(b"x" * 1000), part(b"y" * 1000, more=False)])
    assert await http_body.release(req) == {}
    assert received == [1000, 1000]


async def test_release_closes_at_once_when_much_is_declared():
    declared = str(http_body.DRAIN_BYTES + 1)
    req, received = request([part(b"x")], {"Content-Length": declared})
    assert await http_body.release(req) == http_body.CLOSE
    assert received == []


async def test_release_closes_when_the_rest_goes_on_or_stalls(monkeypatch: pytest.MonkeyPatch):
    chunk = b"x" * (256 * 1024)
    req, received = request([part(chunk) for _ in range(10)])
    assert await http_body.release(req) == http_body.CLOSE
    assert sum(received) <= http_body.DRAIN_BYTES + len(chunk)

    monkeypatch.setattr(http_body, "DRAIN_S", 0.2)
    req, _ = request([part(b"x")], stall=True)
    started = time.monotonic()
    assert await http_body.release(req) == http_body.CLOSE
    assert time.monotonic() - started < 1


async def test_release_after_read_body():
    req, received = request([part(b"x" * 11, more=False)])
    with pytest.raises(http_body.BodyTooLarge) as too_large:
        await reader()(req)
    assert await http_body.release(req, too_large.value) == {}  # nothing was left
    assert received == [11]  # and nothing more was asked for
    assert await http_body.release(req, http_body.BodyTimeout(1)) == http_body.CLOSE
