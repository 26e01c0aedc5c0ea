"""Thousands of generated bodies, well-formed and not, against a real `triage ingest` process:
the answer is always 2xx or a clear 4xx, never a 5xx or a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import TOKEN
from tests.support.payloads import alert, webhook

pytestmark = pytest.mark.slow

text = st.text(max_size=30)
labels = st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), text, max_size=6)
timestamps = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
    lambda d: d.isoformat()
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def generated_alert(draw: st.DrawFn) -> dict[str, Any]:
    body = alert(draw(st.from_regex(r"[A-Za-z]{1,20}", fullmatch=True)))
    body["labels"].update(draw(labels))
    body["annotations"] = draw(labels)
    body["startsAt"] = draw(timestamps)
    body["status"] = draw(st.sampled_from(["firing", "resolved"]))
    body["fingerprint"] = draw(st.from_regex(r"[0-9a-f]{16}", fullmatch=True))
    return body


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    body = webhook(draw(st.lists(generated_alert(), min_size=1, max_size=5)))
    body["groupKey"] = draw(text)
    for _ in range(draw(st.integers(0, 3))):
        alerts = body.get("alerts")
        nested = isinstance(alerts, list) and alerts and draw(st.booleans())
        target = draw(st.sampled_from(alerts)) if nested else body
        if not isinstance(target, dict) or not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
    return body


bodies = st.one_of(
    mutated().map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
)
content_types = st.sampled_from(["application/json"] * 8 + ["text/plain", "", "application/xml"])


@pytest.fixture(scope="module")
def ingest_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with NatsServer(workdir=tmp_path_factory.mktemp("nats")) as server:
        port = free_port()
        env = {
            **os.environ,
            "TRIAGE_NATS_URL": server.url,
            "TRIAGE_HTTP_PORT": str(port),
            "TRIAGE_INGEST_BEARER_TOKEN": TOKEN,
            "TRIAGE_LOG_LEVEL": "error",
        }
        proc = subprocess.Popen([sys.executable, "-m", "triage.cli", "ingest"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            yield f"{base}/api/v1/alertmanager"
        finally:
            proc.terminate()
            proc.wait(10)
            # uvicorn re-raises SIGTERM after its graceful shutdown.
            assert proc.returncode in (0, -signal.SIGTERM), "ingest did not shut down cleanly"


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, content_type=content_types)
def test_any_body_gets_2xx_or_clear_4xx(ingest_url: str, body: bytes, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    resp = httpx.post(ingest_url, content=body, headers=headers, timeout=10)
    assert resp.status_code in {200, 400, 413, 415, 422}, resp.text
    if resp.status_code != 200:
        assert resp.json()["error"]
