"""Slack's per-channel budget: about one call a second to a channel, in order, other channels
going on; shared by every notifier replica through the bus when there are several."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable


class ChannelPacer:
    """At most one call per ``interval`` to each channel, in order; other channels go on."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next: dict[str, float] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @contextlib.asynccontextmanager
    async def slot(self, channel: str) -> AsyncIterator[None]:
        async with self._locks[channel]:
            wait = self._next.get(channel, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._next[channel] = time.monotonic() + self._interval


class SharedChannelPacer(ChannelPacer):
    """The per-channel budget shared by every notifier replica through the bus: each post takes
    the next free slot of its channel, whichever process sends it."""

    def __init__(self, interval: float, reserve: Callable[[str, float], Awaitable[float]]) -> None:
        super().__init__(interval)
        self._reserve = reserve

    @contextlib.asynccontextmanager
    async def slot(self, channel: str) -> AsyncIterator[None]:
        if self._interval <= 0:
            yield
            return
        async with self._locks[channel]:  # this process's own posts stay in order
            wait = await self._reserve(channel, self._interval)
            if wait > 0:
                await asyncio.sleep(wait)
            yield
