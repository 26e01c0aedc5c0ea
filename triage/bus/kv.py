"""Compare-and-set of any model kept in the incident bucket under a key of its own (the
correlation index), as ``Bus.mutate_incident`` does for incidents."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import nats.js.errors
from pydantic import BaseModel

from triage.bus.jetstream import KV_HEADERS, TRANSIENT, WRONG_LAST_SEQUENCE, Bus
from triage.errors import BrokerUnavailable

M = TypeVar("M", bound=BaseModel)


async def mutate_model(
    bus: Bus,
    key: str,
    model: type[M],
    change: Callable[[M | None], M | None],
    *,
    attempts: int = 200,
) -> M | None:
    """Apply ``change`` with compare-and-set, re-reading on conflict; None from ``change``
    leaves the value as it is. Returns the value as stored."""
    for _ in range(attempts):
        try:
            entry = await bus.kv.get(key)
            current = model.model_validate_json(entry.value) if entry.value else None
            revision = entry.revision or 0
        except nats.js.errors.KeyNotFoundError:
            current, revision = None, 0
        except TRANSIENT as exc:
            raise BrokerUnavailable(f"kv get failed: {type(exc).__name__}") from exc
        new = change(current.model_copy(deep=True) if current is not None else None)
        if new is None:
            return current
        data = new.model_dump_json().encode()
        bus.check_size(f"{key} (KV bucket)", data, KV_HEADERS)
        try:
            if revision == 0:
                await bus.kv.create(key, data)
            else:
                await bus.kv.update(key, data, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            continue
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                continue
            raise BrokerUnavailable(f"kv write failed: {exc}") from exc
        except TRANSIENT as exc:
            raise BrokerUnavailable(f"kv write failed: {type(exc).__name__}") from exc
        return new
    raise BrokerUnavailable(f"{key}: too much write contention")
