"""The adaptive (AIMD) limit on in-flight LLM calls and the circuit breaker, on their own."""

from __future__ import annotations

import asyncio

from triage.analyse.backpressure import AdaptiveLimiter, CircuitBreaker
from triage.telemetry import Metrics


async def test_never_more_in_flight_than_the_limit_and_queue_wait_is_exported():
    metrics = Metrics()
    limiter = AdaptiveLimiter(1, 3, metrics)
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.inflight)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(call() for _ in range(20)))

    assert peak == 3 and limiter.inflight == 0
    assert metrics.registry.get_sample_value("triage_llm_queue_wait_seconds_count") == 20
    assert metrics.registry.get_sample_value("triage_llm_inflight") == 0


async def test_a_burst_of_429s_from_one_round_shrinks_the_limit_once_to_what_was_held():
    limiter = AdaptiveLimiter(1, 10)
    slots = [await limiter.acquire() for _ in range(10)]
    # The gateway held the first 4 and refused the other 6.
    for slot in slots[4:]:
        limiter.record(slot, "rate_limited")
        limiter.release(slot)

    assert limiter.limit == 4 and limiter.decreases == 1
    for slot in slots[:4]:
        limiter.release(slot)


async def test_successes_grow_the_limit_back_one_slot_per_round_up_to_the_max():
    limiter = AdaptiveLimiter(1, 6)
    first = await limiter.acquire()
    limiter.record(first, "timeout")
    limiter.release(first)
    assert limiter.limit < 6

    for _ in range(40):
        slots = [await limiter.acquire() for _ in range(int(limiter.limit))]
        for slot in slots:
            limiter.record(slot, "ok", latency=0.1)
            limiter.release(slot)
    assert limiter.limit == 6


async def test_a_call_far_slower_than_the_fastest_shrinks_the_limit():
    limiter = AdaptiveLimiter(1, 8)
    for latency in (0.1, 0.1, 2.0):
        slot = await limiter.acquire()
        limiter.record(slot, "ok", latency=latency)
        limiter.release(slot)

    assert limiter.limit < 8 and limiter.decreases == 1


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    limiter = AdaptiveLimiter(1, 1)
    held = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    limiter.release(held)
    await asyncio.gather(waiter, return_exceptions=True)

    slot = await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.inflight == 1
    limiter.release(slot)


async def test_breaker_opens_after_consecutive_failures_probes_once_then_closes():
    changes: list[bool] = []
    breaker = CircuitBreaker(3, 0.05, changes.append)
    for _ in range(2):
        breaker.record(False)
    breaker.record(True)  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.is_open and not breaker.allow() and changes == [True]

    await asyncio.sleep(0.06)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record(False)  # the probe failed: open again, for another period
    assert not breaker.allow()

    await asyncio.sleep(0.06)
    assert breaker.allow()
    breaker.record(True)
    assert not breaker.is_open and breaker.allow() and changes == [True, False]


def test_neutral_results_neither_trip_nor_reset_the_breaker():
    breaker = CircuitBreaker(2, 10)
    breaker.record(False)
    breaker.record(None)  # a 429: the gateway is up but busy
    breaker.record(False)
    assert breaker.is_open
