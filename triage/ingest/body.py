"""Reading a request body under a size limit and a deadline, for every endpoint that reads one.

``read_body``: a declared Content-Length over the limit is refused before a byte is read; a body
without one (chunked) is refused as soon as the running count passes the limit; a body that has
not fully arrived within the deadline (a client that stalls mid-body) is refused too.

``release``: what to do with the connection when the answer goes out before the body was read to
its end. A small remainder that arrives soon is read and dropped, so that a client still writing
its body hears the answer instead of a reset, and may reuse the connection; anything else (a
stalled client, hundreds of MB declared, a chunked body that goes on) gets ``Connection: close``
and the connection is released after the answer. Go's net/http server does the same (256 KiB).
Without this, uvicorn would keep reading and dropping what the client sends, for as long as it
sends it.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

BODY_TIMEOUT_S = 10.0
"""How long a client has to send the whole body once the endpoint starts reading it."""

DRAIN_BYTES = 1024 * 1024
"""At most this much of an unread body is read and dropped to keep the connection usable."""

DRAIN_S = 1.0
"""Within this long."""

CLOSE = {"Connection": "close"}


class BodyError(Exception):
    """A body that was not read; ``status`` and ``outcome`` say how to answer and count it."""

    status = 400
    outcome = "bad_body"


class BodyTooLarge(BodyError):
    status = 413
    outcome = "too_large"

    def __init__(self, limit: int, *, complete: bool = False) -> None:
        super().__init__(f"body exceeds {limit} bytes")
        self.limit = limit
        self.complete = complete  # the chunk that went over was the last: nothing is left


class BodyTimeout(BodyError):
    status = 408
    outcome = "timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"body not received within {timeout_s:g} s")
        self.timeout_s = timeout_s


class BodyIncomplete(BodyError):
    """The client went away mid-body: nobody hears the answer, but it is counted."""

    status = 400
    outcome = "disconnected"

    def __init__(self) -> None:
        super().__init__("client disconnected before the body was complete")


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def _next_chunk(request: Request) -> tuple[bytes, bool]:
    """The next piece of the body, and whether more follows."""
    message = await request.receive()
    if message["type"] == "http.disconnect":
        raise BodyIncomplete()
    return message.get("body", b""), message.get("more_body", False)


async def read_body(request: Request, *, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most ``limit`` bytes, fully received within ``timeout_s``.

    Raises BodyTooLarge (413), BodyTimeout (408) or BodyIncomplete; never holds more than
    ``limit`` bytes plus one chunk. Answer any of them with the headers ``release`` gives.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        async with asyncio.timeout(timeout_s):
            while more:
                chunk, more = await _next_chunk(request)
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit, complete=not more)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(timeout_s) from None
    return b"".join(chunks)


async def release(request: Request, error: BodyError | None = None) -> dict[str, str]:
    """Headers for an answer given before the body was read to its end (``error``: why, if
    ``read_body`` said so; None: it was never read): {} once the rest, at most DRAIN_BYTES, was
    read and dropped within DRAIN_S; ``CLOSE`` otherwise."""
    if isinstance(error, BodyTooLarge) and error.complete:
        return {}
    if isinstance(error, (BodyTimeout, BodyIncomplete)):
        return CLOSE
    declared = declared_length(request)
    if declared is not None and declared > DRAIN_BYTES:
        return CLOSE  # not worth waiting for
    drained = 0
    more = True
    try:
        async with asyncio.timeout(DRAIN_S):
            while more:
                chunk, more = await _next_chunk(request)
                drained += len(chunk)
                if drained > DRAIN_BYTES:
                    return CLOSE
    except (TimeoutError, BodyIncomplete):
        return CLOSE
    return {}
