"""Through the real pipeline (webhook -> NATS -> worker -> JSONL sink) with the LLM gateway
configured but down: the heuristic draft is delivered, labelled, within 10 s of the start of the
investigation, with the default LLM settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from triage_lab.fakes.gateway import ScriptedLLM, slow
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import TOKEN, make_settings, serve, wait_for
from tests.support.payloads import alert, webhook
from triage.analyse.llm import UNAVAILABLE_LABEL
from triage.models import utcnow

pytestmark = pytest.mark.slow

DEBOUNCE_S = 0.5


@pytest.fixture(params=["refused", "hanging"])
def down_gateway(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}/v1"
        return
    # Accepts the connection and the request, then never answers.
    with ScriptedLLM(*[slow(120)] * 10) as server:
        yield server.url


def scenario_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "rollout.json").write_text(
        json.dumps(
            {
                "name": "checkout-rollout",
                "match": {"service": "checkoutservice"},
                "evidence": [
                    {
                        "id": "rollout-checkout-14",
                        "kind": "rollout",
                        "summary": "checkoutservice revision 14 rolled out before the onset",
                        "subject": "checkoutservice",
                        "score": 0.9,
                        "change": "deployment/checkoutservice revision 14",
                    }
                ],
            }
        )
    )
    return directory


async def test_gateway_down_heuristic_draft_arrives_labelled_within_10s(
    down_gateway: str, nats_server: NatsServer, tmp_path: Path
):
    settings = make_settings(
        tmp_path,
        incidents={"debounce_s": DEBOUNCE_S},
        investigation={"scenario_dir": str(scenario_dir(tmp_path))},
        llm={"base_url": down_gateway},  # every other LLM setting at its default
    )
    async with serve(settings, nats_server.url) as app:
        posted = utcnow()
        async with app.client(TOKEN) as client:
            response = await client.post("/api/v1/alertmanager", json=webhook([alert()]))
            assert response.status_code == 200
        drafts = await wait_for(app.drafts, timeout=30)

    rca = drafts[0]["delivery"]["rca"]
    assert rca["label"] == UNAVAILABLE_LABEL
    assert rca["analyzer"] == "heuristic" and rca["evidence_ids"] == ["rollout-checkout-14"]
    assert rca["root_cause"]["component"] == "checkoutservice"
    # The investigation cannot start before the debounce has passed.
    started = posted.timestamp() + DEBOUNCE_S
    assert datetime.fromisoformat(rca["created_at"]).timestamp() - started < 10
