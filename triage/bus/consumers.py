"""How every bus message is settled: parse, run, then ack, redeliver later, or dead-letter.

Subscribers use FastStream's manual ack policy: its NATS default would terminate a message on
any error, and a transient fault must be retried instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from faststream.nats import NatsMessage
from pydantic import BaseModel, ValidationError

from triage.bus.jetstream import Bus
from triage.errors import NotReady, PoisonMessage
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


async def settle(
    msg: NatsMessage,
    stage: str,
    model: type[M],
    work: Callable[[M], Awaitable[str]],
    bus: Bus,
    metrics: Metrics,
) -> None:
    structlog.contextvars.clear_contextvars()
    raw = msg.raw_message
    deliveries = raw.metadata.num_delivered if raw.metadata else 1
    structlog.contextvars.bind_contextvars(stage=stage, delivery=deliveries)
    started = time.monotonic()
    try:
        parsed = model.model_validate_json(msg.body)
    except ValidationError as exc:
        await _dead(
            msg,
            stage,
            f"invalid {model.__name__}: {exc.errors()[0]['msg']} at "
            f"{'.'.join(map(str, exc.errors()[0]['loc']))}",
            deliveries,
            bus,
            metrics,
        )
        return
    try:
        outcome = await work(parsed)
    except PoisonMessage as exc:
        await _dead(msg, stage, str(exc), deliveries, bus, metrics)
        return
    except NotReady as exc:
        # Waiting is not failing: it does not count towards dead-lettering as long as the
        # server still has deliveries left.
        if deliveries >= bus.settings.max_deliver:
            await _dead(msg, stage, f"gave up waiting: {exc}", deliveries, bus, metrics)
        else:
            metrics.messages.labels(stage, "deferred").inc()
            await msg.nack(delay=max(exc.delay_s, 0.1))
        return
    except Exception as exc:
        if deliveries >= bus.settings.max_deliver:
            await _dead(
                msg,
                stage,
                f"failed {deliveries} times, last: {type(exc).__name__}: {exc}",
                deliveries,
                bus,
                metrics,
            )
            return
        delay = BACKOFF_S[min(deliveries, len(BACKOFF_S)) - 1]
        log.warning(
            "message_failed_will_retry",
            error=f"{type(exc).__name__}: {exc}",
            retry_in_s=delay,
            exc_info=not isinstance(exc, OSError),
        )
        metrics.messages.labels(stage, "retry").inc()
        await msg.nack(delay=delay)
        return
    await msg.ack()
    metrics.messages.labels(stage, outcome).inc()
    metrics.stage_duration.labels(stage).observe(time.monotonic() - started)


async def _dead(
    msg: NatsMessage, stage: str, reason: str, deliveries: int, bus: Bus, metrics: Metrics
) -> None:
    meta = msg.raw_message.metadata if msg.raw_message.reply else None
    seq = meta.sequence.stream if meta is not None and meta.sequence is not None else None
    await bus.dead_letter(
        stage, msg.raw_message.subject, msg.body, reason, deliveries, stream_seq=seq
    )
    metrics.messages.labels(stage, "dead_letter").inc()
    await msg.reject()
