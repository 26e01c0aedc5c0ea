"""Results of the same query shared across incidents for a short time: an alert storm opens
many incidents in one namespace, and they must not each list every pod and series again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from collectors.sources import KubeSource, MetricSource, Series


class TTLCache:
    """Concurrent callers of the same key share one in-flight call; failures are not kept."""

    def __init__(self, ttl_s: float, max_entries: int = 2048) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return await asyncio.shield(hit[1])
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + self._ttl, future)
        try:
            value = await load()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        future.set_result(value)
        return value


class CachedMetricSource:
    def __init__(self, inner: MetricSource, cache: TTLCache) -> None:
        self._inner = inner
        self._cache = cache

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: float
    ) -> list[Series]:
        # Windows of nearby incidents differ by seconds; align them so they share the answer.
        key = (
            "query_range",
            query,
            int(start.timestamp() // step),
            int(end.timestamp() // step),
            step,
        )
        result: list[Series] = await self._cache.get(
            key, lambda: self._inner.query_range(query, start, end, step)
        )
        return result


class CachedKubeSource:
    def __init__(self, inner: KubeSource, cache: TTLCache) -> None:
        self._inner = inner
        self._cache = cache

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._cache.get(
            ("list", resource, namespace, label_selector, field_selector),
            lambda: self._inner.list(
                resource, namespace, label_selector, field_selector=field_selector
            ),
        )
        return result

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str:
        result: str = await self._cache.get(
            ("logs", namespace, pod, container, previous, tail_lines),
            lambda: self._inner.logs(
                namespace, pod, container, previous=previous, tail_lines=tail_lines
            ),
        )
        return result
