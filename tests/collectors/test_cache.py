"""Incidents opened together share their queries; failures are retried, not remembered."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import kubernetes.client
import pytest
import uvicorn
from triage_lab.fakes.kubernetes import kube_api_app
from triage_lab.fakes.process import free_port
from triage_lab.scenarios import KubeObjects

from collectors.cache import CachedKubeSource, CachedMetricSource, TTLCache
from collectors.sources import ApiKubeSource, FileMetricSource
from triage.errors import CollectorError


@pytest.fixture
def kube_api() -> Iterator[tuple[str, list[str]]]:
    objects = KubeObjects(
        pods=[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a-1", "namespace": "shop"}}]
    )
    app = kube_api_app(objects)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app.state.requests
    server.should_exit = True
    thread.join(5)


async def test_concurrent_and_repeated_lists_hit_the_api_once(kube_api):
    url, requests = kube_api
    config = kubernetes.client.Configuration()
    config.host = url
    with kubernetes.client.ApiClient(config) as api:
        source = CachedKubeSource(ApiKubeSource(api), TTLCache(ttl_s=60))
        results = await asyncio.gather(*(source.list("pods", "shop") for _ in range(10)))
        again = await source.list("pods", "shop")
        other = await source.list("pods", "other")
    assert all(r == results[0] for r in results) and again == results[0]
    assert [r["metadata"]["name"] for r in results[0]] == ["a-1"]
    assert other == []
    assert requests == ["/api/v1/namespaces/shop/pods", "/api/v1/namespaces/other/pods"]


async def test_expired_entries_are_fetched_again(kube_api):
    url, requests = kube_api
    config = kubernetes.client.Configuration()
    config.host = url
    with kubernetes.client.ApiClient(config) as api:
        source = CachedKubeSource(ApiKubeSource(api), TTLCache(ttl_s=0.2))
        await source.list("pods", "shop")
        await asyncio.sleep(0.3)
        await source.list("pods", "shop")
    assert len(requests) == 2


async def test_failures_are_not_cached():
    source = CachedMetricSource(FileMetricSource(""), TTLCache(ttl_s=60))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2):  # a query the source refuses fails every time, it is not remembered
        with pytest.raises(CollectorError):
            await source.query_range("rate(x[5m])", start, start + timedelta(minutes=5), 60)
    assert await source.query_range('x{a="b"}', start, start + timedelta(minutes=5), 60) == []
