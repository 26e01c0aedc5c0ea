"""Limits that agree end to end: what ingest takes, what the worker publishes, what the incident
state and dead letters hold, all under the max_payload the NATS server announces; and a NATS
connection closed for good stops the process instead of leaving it half alive."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from collectors.contracts import Evidence
from tests.support.app import TOKEN, make_settings, serve, stream_messages, wait_for
from tests.support.payloads import alert, webhook
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.bus.limits import DEFAULT_MAX_PAYLOAD, VALUE_CHARS
from triage.incidents.grouping import apply_notification
from triage.investigate.investigation import draft_size, fit_draft
from triage.models import (
    RCA,
    AlertmanagerWebhook,
    DeadLetter,
    DeliveryRequest,
    EvidenceDigest,
    IncidentState,
    MetricSeries,
    RootCause,
)

# A default nats-server announces max_payload 1 MiB; the envelope around the body is 124 bytes
# and its Nats-Msg-Id header 59.
DEFAULT_BODY_LIMIT = DEFAULT_MAX_PAYLOAD - 124 - 59


def sized_body(size: int, n: int) -> bytes:
    """A valid webhook of exactly ``size`` bytes, its own group and content per ``n``."""
    payload = webhook(
        [alert(extra_labels={"n": str(n)})], group_key=f'{{}}:{{alertname="Big", n="{n}"}}'
    )
    payload["alerts"][0]["annotations"]["description"] = ""
    base = len(json.dumps(payload).encode())
    payload["alerts"][0]["annotations"]["description"] = "x" * (size - base)
    body = json.dumps(payload).encode()
    assert len(body) == size
    return body


def assert_cut(value: str, original: int, limit: int = VALUE_CHARS) -> None:
    """``value`` is a text of ``original`` characters cut to ``limit``, saying by how much."""
    found = re.search(r"… \[truncated (\d+) chars\]$", value)
    assert found, value[-80:]
    assert len(value) <= limit
    assert len(value) - len(found.group(0)) + int(found.group(1)) == original


def drafts(app: Any) -> list[dict[str, Any]]:
    return [d for d in app.drafts() if d["delivery"]["kind"] == "draft"]


# -- item 1: ingest ------------------------------------------------------------------------------


async def test_bodies_at_the_broker_limit_get_200_or_413_and_the_connection_lives(
    nats_server: NatsServer, settings
):
    async with serve(settings, nats_server.url, frozenset({"ingest"})) as app:
        async with app.client() as client:
            ready = (await client.get("/readyz")).json()
            assert ready["max_payload"] == DEFAULT_MAX_PAYLOAD
            limit = ready["max_body_bytes"]
            assert limit == DEFAULT_BODY_LIMIT == 1_048_393
            cases = [
                (limit - 1, 200),
                (limit, 200),
                (limit + 1, 413),  # used to close the connection for good (-ERR)
                (1_048_420, 413),
                (1_048_452, 413),
                (1_048_453, 413),  # used to be 500 (MaxPayloadError)
                (1_048_500, 413),
                (settings.ingest.max_body_bytes, 413),
            ]
            for n, (size, expected) in enumerate(cases):
                resp = await client.post(
                    "/api/v1/alertmanager",
                    content=sized_body(size, n),
                    headers={"Content-Type": "application/json"},
                )
                assert resp.status_code == expected, (size, resp.text)
                if expected == 413:
                    error = resp.json()["error"]
                    assert f"body exceeds {limit} bytes" in error and "max_payload" in error
                    assert resp.json()["limit"] == limit
                # The connection is alive after each: a normal webhook is stored.
                normal = webhook([alert(extra_labels={"after": str(n)})])
                assert (await client.post("/api/v1/alertmanager", json=normal)).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
        assert app.runtime.bus.connected
    assert await stream_messages(nats_server.url, "triage.alerts") == 2 + len(cases)


async def test_the_configured_limit_still_applies_when_smaller(nats_server: NatsServer, tmp_path):
    settings = make_settings(tmp_path, ingest={"bearer_token": TOKEN, "max_body_bytes": 5000})
    async with (
        serve(settings, nats_server.url, frozenset({"ingest"})) as app,
        app.client() as client,
    ):
        assert (await client.get("/readyz")).json()["max_body_bytes"] == 5000
        resp = await client.post(
            "/api/v1/alertmanager",
            content=sized_body(5001, 1),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status_code == 413 and "5000" in resp.json()["error"]


# -- item 2: what the worker publishes -----------------------------------------------------------

LONG = "x" * 209_434
# With this description the draft came to 1,048,551 bytes: under max_payload, over it with its
# Nats-Msg-Id header, so nats-server answered -ERR and the worker's connection closed for good.
DESCRIPTION_BYTES = 209_552


async def test_a_huge_label_still_gets_its_draft_truncated_and_later_incidents_too(
    nats_server: NatsServer, settings
):
    async with serve(settings, nats_server.url) as app:
        async with app.client() as client:
            big = webhook(
                [alert("HugeLabel", service=LONG, annotation_bytes=DESCRIPTION_BYTES)],
                group_key='{}:{alertname="HugeLabel"}',
            )
            resp = await client.post("/api/v1/alertmanager", json=big)
            assert resp.status_code == 200
            first = resp.json()["incident_id"]
            for i in range(20):
                later = webhook(
                    [alert(f"Later{i}", service=f"svc-{i}")],
                    group_key=f'{{}}:{{alertname="Later{i}"}}',
                )
                assert (await client.post("/api/v1/alertmanager", json=later)).status_code == 200
        found = await wait_for(lambda: len(drafts(app)) >= 21 and drafts(app), timeout=60)
        assert len(found) == 21
        [huge] = [d["delivery"] for d in found if d["delivery"]["incident_id"] == first]
        assert_cut(huge["labels"]["service"], len(LONG))
        assert_cut(huge["annotations"]["description"], DESCRIPTION_BYTES)
        assert len(json.dumps(huge)) < 100_000
        state, _ = await app.runtime.bus.get_incident(first)
        assert state is not None
        assert_cut(state.common_labels["service"], len(LONG))
        assert app.runtime.bus.connected and app.runtime.fatal is None
    assert await stream_messages(nats_server.url, "triage.deadletter.>") == 0


class HugeAnswers(HeuristicAnalyzer):
    """An analyzer whose answer for alertname=Huge no shrinking can bring under 1 MB."""

    async def analyze(self, incident: IncidentState, evidence: list[Evidence]) -> RCA:
        rca = await super().analyze(incident, evidence)
        if incident.common_labels.get("alertname") == "Huge":
            rca.next_steps = [f"step {i:05d} " + "y" * 40 for i in range(30_000)]
        return rca


async def test_a_draft_that_cannot_be_shrunk_is_dead_lettered_with_its_reason(
    nats_server: NatsServer, settings
):
    async with serve(settings, nats_server.url, analyzer=HugeAnswers()) as app:
        nc = await nats.connect(nats_server.url)
        try:
            sub = await nc.jetstream().subscribe("triage.deadletter.>", durable="dlq-reader")
            async with app.client() as client:
                huge = webhook([alert("Huge")], group_key='{}:{alertname="Huge"}')
                assert (await client.post("/api/v1/alertmanager", json=huge)).status_code == 200
                msg = await sub.next_msg(timeout=20)
                letter = DeadLetter.model_validate_json(msg.data)
                assert msg.subject == "triage.deadletter.investigations"
                assert "does not fit even shrunk" in letter.reason
                assert "max_payload of 1048576 bytes" in letter.reason
                assert letter.deliveries == 1  # not retried: it can never fit
                # The connection lives on: the next incident gets its draft.
                normal = webhook([alert("Normal")], group_key='{}:{alertname="Normal"}')
                assert (await client.post("/api/v1/alertmanager", json=normal)).status_code == 200
            found = await wait_for(lambda: drafts(app), timeout=20)
            assert [d["delivery"]["title"] for d in found] == ["Normal on checkoutservice"]
            assert app.runtime.fatal is None
        finally:
            await nc.close()


def big_draft() -> DeliveryRequest:
    now = datetime.now(UTC)
    return DeliveryRequest(
        kind="draft",
        incident_id="inc-1",
        revision=1,
        title="HighErrorRate on checkoutservice",
        labels={"alertname": "HighErrorRate"},
        rca=RCA(
            incident_id="inc-1",
            revision=1,
            summary="s",
            root_cause=RootCause(component="cartservice", kind="unknown", description="d"),
            confidence=0.5,
            impact="i",
            evidence_ids=["e0"],
            next_steps=["look"],
            analyzer="heuristic",
            label="l",
            created_at=now,
        ),
        evidence=[
            EvidenceDigest(id=f"e{i}", collector="c", summary="s" * 5000, detail="d" * 50_000)
            for i in range(10)
        ],
        created_at=now,
        annotations={"description": "a" * 100_000},
        series=MetricSeries(
            title="t", points=[(float(t), 1.0) for t in range(240)], onset=now - timedelta(1)
        ),
    )


def test_a_draft_is_shrunk_in_order_and_only_as_far_as_needed():
    draft = big_draft()
    assert fit_draft(draft, 10_000_000) is draft  # fits: untouched
    # Evidence details alone are enough.
    fitted = fit_draft(draft, draft_size(draft) - 400_000)
    assert_cut(fitted.evidence[0].detail, 50_000, 100)
    assert fitted.evidence[0].summary == "s" * 5000
    assert fitted.annotations == draft.annotations and fitted.series == draft.series
    # Then summaries, the series, annotations.
    fitted = fit_draft(draft, 50_000)
    assert_cut(fitted.evidence[0].summary, 5000, 80)
    assert fitted.series is not None and len(fitted.series.points) < 240
    assert_cut(fitted.annotations["description"], 100_000, 500)
    assert draft_size(fitted) <= 50_000
    assert draft.evidence[0].detail == "d" * 50_000  # the original is left as it was


def test_incident_state_keeps_long_labels_and_annotations_truncated():
    body = webhook([alert(extra_labels={"note": "v" * 600_000}, annotation_bytes=600_000)])
    body["commonAnnotations"] = {"description": "w" * 600_000}
    hook = AlertmanagerWebhook.model_validate(body)
    state = apply_notification(None, hook, datetime.now(UTC), 0)
    assert state is not None
    assert len(state.model_dump_json()) < 30_000
    [snap] = state.alerts.values()
    for value in (
        snap.labels["note"],
        snap.annotations["description"],
        state.common_labels["note"],
        state.common_annotations["description"],
    ):
        assert_cut(value, 600_000)
    assert snap.labels["alertname"] == "HighErrorRate"  # short values as they were


# -- a connection closed for good ----------------------------------------------------------------


class ErrProxy:
    """A TCP proxy in front of nats-server that can answer every client with -ERR, as the server
    does when it refuses a message: nats-py then closes the connection for good."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.clients: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ErrProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.clients:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.clients.append(writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def refuse_all(self) -> None:
        for writer in self.clients:
            writer.write(b"-ERR 'Maximum Payload Violation'\r\n")
            await writer.drain()


async def test_a_connection_closed_for_good_fails_healthz(nats_server: NatsServer, settings):
    async with (
        ErrProxy(nats_server.port) as proxy,
        serve(settings, proxy.url, frozenset({"ingest"})) as app,
        app.client() as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        await proxy.refuse_all()

        async def unhealthy() -> bool:
            return (await client.get("/healthz")).status_code == 503

        await wait_for(unhealthy, timeout=10)
        body = (await client.get("/healthz")).json()
        assert "closed for good" in body["error"] and proxy.url in body["error"]
        assert (await client.get("/readyz")).status_code == 503


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["ingest", "worker"])
async def test_a_process_whose_connection_is_closed_for_good_exits_non_zero(
    nats_server: NatsServer, tmp_path: Path, stage: str
):
    port = free_port()
    async with ErrProxy(nats_server.port) as proxy:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "triage.cli",
            stage,
            env={
                **os.environ,
                "TRIAGE_NATS_URL": proxy.url,
                "TRIAGE_HTTP_PORT": str(port),
                "TRIAGE_INGEST_BEARER_TOKEN": TOKEN,
                "TRIAGE_LOG_FORMAT": "json",
                "TRIAGE_STATE_DIR": str(tmp_path / "state"),
            },
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def ready() -> bool:
                    try:
                        return (await client.get("/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for(ready, timeout=30)
                await proxy.refuse_all()
                _, stderr = await asyncio.wait_for(proc.communicate(), 15)
            assert proc.returncode == 1
            lines = stderr.decode().splitlines()
            assert any(
                line.startswith(f"triage: TRIAGE_NATS_URL={proxy.url}: ")
                and "closed for good" in line
                for line in lines
            ), stderr.decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
