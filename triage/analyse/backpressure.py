"""Keeping a worker from overrunning or hammering the LLM gateway: an adaptive (AIMD) limit on
in-flight calls and a circuit breaker.

Hand-written rather than a circuit-breaker library: the breaker must be asked *before* a call
queues for a slot (a draft should not wait for a gateway known to be down), count only the
gateway's own failures (not our deadline cancelling a queued call, not 429s from a live
gateway), and run on the monotonic clock; the libraries tried (purgatory, pybreaker) decide
inside their call wrapper, count any exception and use wall time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from triage.telemetry import Metrics

Signal = str  # "ok", "rate_limited", "timeout", "error"


@dataclass
class Slot:
    seq: int
    started: float
    queue_wait: float


class AdaptiveLimiter:
    """Additive increase, multiplicative decrease of the number of in-flight calls.

    A 429 or a timeout (or a call much slower than the fastest seen lately: the backend is
    queueing) shrinks the limit by ``backoff``, and never above the number of our calls the
    gateway was holding when it refused one. Each success while the limit is in use adds
    1/limit, so about one more slot per round trip. Only calls sent under the current limit
    can shrink it again, so a burst of 429s from one round trip counts once.
    """

    def __init__(
        self,
        min_limit: int,
        max_limit: int,
        metrics: Metrics | None = None,
        *,
        backoff: float = 0.9,
        latency_tolerance: float = 3.0,
    ) -> None:
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.limit = float(max_limit)
        self.decreases = 0
        self._backoff = backoff
        self._tolerance = latency_tolerance
        self._metrics = metrics
        self._inflight: dict[int, float] = {}
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._reserved = 0  # slots handed to woken waiters that have not resumed yet
        self._seq = 0
        self._fence = 0  # calls numbered below this were sent before the last decrease
        self._fastest: float | None = None
        self.typical_latency: float | None = None  # moving average of successful calls
        self._publish()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def acquire(self) -> Slot:
        """Waits for a free slot; pair with ``release``."""
        queued = time.monotonic()
        if self._waiters or not self._free():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._reserved -= 1  # a slot handed to us as we were cancelled
                self._wake()
                raise
            self._reserved -= 1
        self._seq += 1
        started = time.monotonic()
        self._inflight[self._seq] = started
        if self._metrics is not None:
            self._metrics.llm_queue_wait.observe(started - queued)
        self._publish()
        return Slot(self._seq, started, started - queued)

    def release(self, slot: Slot) -> None:
        self._inflight.pop(slot.seq, None)
        self._publish()
        self._wake()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        slot = await self.acquire()
        try:
            yield slot
        finally:
            self.release(slot)

    def record(self, slot: Slot, signal: Signal, latency: float | None = None) -> None:
        if signal in ("rate_limited", "timeout"):
            self._decrease(slot, admitted=signal == "rate_limited")
        elif signal == "ok" and latency is not None:
            typical = self.typical_latency
            self.typical_latency = latency if typical is None else typical * 0.8 + latency * 0.2
            fastest = self._fastest
            if fastest is not None and latency > self._tolerance * fastest:
                self._decrease(slot, admitted=False)
            elif self.inflight * 2 >= self.limit:  # only grow a limit that is being used
                self.limit = min(float(self.max_limit), self.limit + 1 / self.limit)
            # The floor drifts up slowly so that a lasting change of the backend is learnt.
            self._fastest = (
                latency if fastest is None else min(latency, fastest + (latency - fastest) * 0.01)
            )
        self._publish()
        self._wake()

    def _decrease(self, slot: Slot, *, admitted: bool) -> None:
        if slot.seq < self._fence:
            return
        new = self.limit * self._backoff
        if admitted:
            # The gateway was holding the calls we sent before this one when it refused it.
            held = sum(1 for s in self._inflight if s < slot.seq)
            new = min(new, float(max(held, 1)))
        self.limit = max(float(self.min_limit), new)
        self._fence = self._seq + 1
        self.decreases += 1

    def _free(self) -> bool:
        return len(self._inflight) + self._reserved < int(self.limit)

    def _wake(self) -> None:
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._reserved += 1  # so that a newcomer does not take it first
                waiter.set_result(None)

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.llm_inflight.set(len(self._inflight))
            self._metrics.llm_limit.set(round(self.limit, 2))


class CircuitBreaker:
    """Opens after ``failures`` consecutive failed calls; while open, ``allow()`` says no for
    ``open_s``; then one probe call at a time is let through and its result closes or
    re-opens it."""

    def __init__(
        self, failures: int, open_s: float, on_change: Callable[[bool], None] | None = None
    ) -> None:
        self._threshold = failures
        self._open_s = open_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._on_change = on_change

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def would_allow(self) -> bool:
        """``allow()`` without taking the probe."""
        if self._opened_at is None:
            return True
        return time.monotonic() - self._opened_at >= self._open_s and not self._probing

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if time.monotonic() - self._opened_at < self._open_s or self._probing:
            return False
        self._probing = True
        return True

    def record(self, ok: bool | None) -> None:
        """``ok``: the call worked; False: it failed; None: it said nothing about the gateway."""
        probing, self._probing = self._probing, False
        if ok is None:
            return
        if ok:
            self._failures = 0
            if self._opened_at is not None:
                self._opened_at = None
                self._changed(False)
            return
        self._failures += 1
        if probing or (self._opened_at is None and self._failures >= self._threshold):
            was_open = self._opened_at is not None
            self._opened_at = time.monotonic()
            if not was_open:
                self._changed(True)

    def _changed(self, is_open: bool) -> None:
        if self._on_change is not None:
            self._on_change(is_open)
