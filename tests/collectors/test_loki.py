"""Loki collector against recorded Loki `query_range` responses, served over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from triage_lab.fakes.process import free_port

from collectors.contracts import TimeWindow
from collectors.loki import LokiCollector
from tests.support.incidents import firing
from triage.models import IncidentState

ONSET = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)


def ns(at: datetime) -> str:
    return str(int(at.timestamp() * 1e9))


def stream(app: str, pod: str, lines: list[tuple[datetime, str]]) -> dict[str, Any]:
    # The shape Loki returns for a log query (resultType "streams"), as recorded.
    return {
        "stream": {"namespace": "shop", "app": app, "pod": pod, "container": app},
        "values": [[ns(t), text] for t, text in lines],
    }


def recorded_success() -> dict[str, Any]:
    baseline = [
        (ONSET - timedelta(minutes=m), f"GET /cart/{m} 200 in 12ms") for m in range(25, 1, -1)
    ]
    broken = [
        (
            ONSET + timedelta(seconds=20 * i),
            f"ERROR dial tcp 10.96.3.{i}:5432: connect: connection refused",
        )
        for i in range(12)
    ]
    return {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [
                stream("cart", "cart-7d9f-abcde", baseline + broken),
                stream("web", "web-55c-xyz12", baseline),
            ],
            "stats": {},
        },
    }


@pytest.fixture
def loki() -> Iterator[tuple[str, list[dict[str, str]], dict[str, Any]]]:
    answers: dict[str, Any] = {"body": recorded_success(), "status": 200}
    seen: list[dict[str, str]] = []

    async def query_range(request: Request) -> JSONResponse:
        seen.append(dict(request.query_params))
        if 'namespace="shop"' not in request.query_params["query"]:  # recorded: nothing there
            return JSONResponse(
                {"status": "success", "data": {"resultType": "streams", "result": []}}
            )
        return JSONResponse(answers["body"], status_code=answers["status"])

    app = Starlette(routes=[Route("/loki/api/v1/query_range", query_range)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", seen, answers
    server.should_exit = True
    thread.join(5)


def incident() -> IncidentState:
    labels = {"alertname": "HighErrorRate", "namespace": "shop", "service": "web"}
    return firing(labels, ONSET, fingerprint="f")


async def test_new_error_template_becomes_evidence_for_its_service(loki):
    url, seen, _ = loki
    async with httpx.AsyncClient() as client:
        evidence = await LokiCollector(url, client).collect(incident(), WINDOW)
    assert evidence.status == "ok"
    (item,) = [i for i in evidence.items if i.subject == "cart"]
    assert item.kind == "log_pattern" and "connection refused" in item.summary
    assert "12x in the incident window (baseline 0x)" in item.summary
    assert not [i for i in evidence.items if i.subject == "web"]  # only healthy lines
    assert sorted(q["query"] for q in seen) == ['{namespace="kube-system"}', '{namespace="shop"}']
    query = next(q for q in seen if "shop" in q["query"])
    assert query["start"] == ns(WINDOW.start) and query["end"] == ns(WINDOW.end)
    assert query["direction"] == "forward"


async def test_loki_errors_are_reported_not_raised(loki):
    url, _, answers = loki
    answers.update(
        status=400,
        body={"status": "error", "errorType": "bad_data", "error": "parse error at line 1, col 2"},
    )
    async with httpx.AsyncClient() as client:
        evidence = await LokiCollector(url, client).collect(incident(), WINDOW)
    assert evidence.status == "error" and "parse error" in (evidence.error or "")


async def test_no_streams_is_no_data(loki):
    url, _, answers = loki
    answers["body"] = {"status": "success", "data": {"resultType": "streams", "result": []}}
    async with httpx.AsyncClient() as client:
        evidence = await LokiCollector(url, client).collect(incident(), WINDOW)
    assert evidence.status == "no_data" and evidence.items == []


async def test_unreachable_loki_is_an_error():
    async with httpx.AsyncClient() as client:
        evidence = await LokiCollector(f"http://127.0.0.1:{free_port()}", client).collect(
            incident(), WINDOW
        )
    assert evidence.status == "error" and "ConnectError" in (evidence.error or "")
