"""The LLM analyzer against a real LiteLLM proxy (tests/support/litellm_proxy.py), built the way the app
builds it: routes with mock_response answering schema-valid and invalid JSON, a route whose
backend is down with LiteLLM's own fallback, and our fallback list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from triage_lab.fakes.nats import NatsServer
from triage_lab.fakes.process import free_port

from tests.support.app import TOKEN, make_settings, serve, wait_for
from tests.support.litellm_proxy import MASTER_KEY, LiteLLMProxy
from tests.support.llm_case import ROLLOUT, SENT_IDS, evidence, incident
from tests.support.payloads import alert, webhook
from triage.analyse.gateway import gateway_client
from triage.analyse.llm import INVALID_LABEL, UNAVAILABLE_LABEL, LLMAnalyzer, llm_analyzer
from triage.settings import Settings
from triage.telemetry import Metrics

pytestmark = pytest.mark.slow

VALID = {
    "summary": "checkoutservice revision 14 broke checkout",
    "root_cause": {
        "component": "checkoutservice",
        "kind": "bad_rollout",
        "change": "deployment/checkoutservice revision 14",
        "description": "payment calls time out since revision 14",
    },
    "confidence": 0.8,
    "impact": "checkout requests fail",
    "evidence_ids": [ROLLOUT.id],
    "next_steps": ["kubectl rollout history deploy/checkoutservice -n shop"],
    "open_questions": [],
    "owner_team": "checkout",
}


def route(name: str, **params: Any) -> dict[str, Any]:
    return {
        "model_name": name,
        "litellm_params": {"model": f"openai/{name}", "api_key": "unused", **params},
    }


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = {
        "model_list": [
            route("rca-good", mock_response=json.dumps(VALID)),
            route("rca-prose", mock_response="The root cause is probably checkoutservice."),
            route("rca-down", api_base=down),
        ],
        "router_settings": {"fallbacks": [{"rca-down": ["rca-good"]}], "num_retries": 0},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    server = LiteLLMProxy(config, workdir=tmp_path_factory.mktemp("litellm"))
    server.start(timeout=120)  # a cold import of litellm takes a while
    try:
        yield server
    finally:
        server.close()


def settings_for(proxy: LiteLLMProxy, tmp_path: Path, **llm: Any) -> Settings:
    values = {"base_url": proxy.url, "api_key": MASTER_KEY}
    return make_settings(tmp_path, llm={**values, **llm})


@pytest.fixture
async def build(proxy: LiteLLMProxy, tmp_path: Path) -> AsyncIterator[Any]:
    made: list[LLMAnalyzer] = []

    def build(**llm: Any) -> LLMAnalyzer:
        settings = settings_for(proxy, tmp_path, **llm)
        client = gateway_client(settings.llm, settings.llm_api_key())
        made.append(llm_analyzer(settings, client, Metrics()))
        return made[-1]

    yield build
    for analyzer in made:
        await analyzer.aclose()


async def test_schema_valid_answer_through_litellm(build: Any):
    rca = await build(model="rca-good").analyze(incident(), evidence())

    assert rca.analyzer == "llm" and rca.model == "rca-good"
    assert rca.root_cause.component == "checkoutservice" and rca.root_cause.kind == "bad_rollout"
    assert rca.evidence_ids == [ROLLOUT.id] and set(rca.evidence_ids) <= SENT_IDS
    assert rca.usage is not None and rca.usage.calls == 1
    assert rca.usage.prompt_tokens > 0 and rca.usage.completion_tokens > 0


async def test_invalid_json_through_litellm_is_repaired_once_then_heuristic(build: Any):
    rca = await build(model="rca-prose").analyze(incident(), evidence())

    assert rca.label == INVALID_LABEL and rca.analyzer == "heuristic"
    assert rca.usage is not None and rca.usage.calls == 2  # the answer and one repair


async def test_litellm_fallback_route_answers_for_a_down_backend(build: Any):
    rca = await build(model="rca-down").analyze(incident(), evidence())

    assert rca.analyzer == "llm" and rca.root_cause.component == "checkoutservice"


async def test_our_fallback_list_takes_over_from_a_model_the_gateway_refuses(build: Any):
    rca = await build(model="rca-unknown", fallback_models=["rca-good"]).analyze(
        incident(), evidence()
    )

    assert rca.model == "rca-good" and rca.analyzer == "llm"


async def test_wrong_key_gives_the_labelled_heuristic_draft(build: Any):
    rca = await build(model="rca-good", api_key="sk-wrong").analyze(incident(), evidence())

    assert rca.label == UNAVAILABLE_LABEL and rca.analyzer == "heuristic"


async def test_pipeline_delivers_the_llm_draft_through_litellm(
    proxy: LiteLLMProxy, nats_server: NatsServer, tmp_path: Path
):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "rollout.json").write_text(
        json.dumps(
            {
                "name": "checkout-rollout",
                "match": {"service": "checkoutservice"},
                "evidence": [ROLLOUT.model_dump(mode="json")],
            }
        )
    )
    settings = make_settings(
        tmp_path,
        investigation={"scenario_dir": str(scenarios)},
        llm={"base_url": proxy.url, "api_key": MASTER_KEY, "model": "rca-good"},
    )
    async with serve(settings, nats_server.url) as app:
        async with app.client(TOKEN) as client:
            response = await client.post("/api/v1/alertmanager", json=webhook([alert()]))
            assert response.status_code == 200
        drafts = await wait_for(app.drafts, timeout=30)
        rca = drafts[0]["delivery"]["rca"]
        assert rca["analyzer"] == "llm" and rca["model"] == "rca-good"
        assert rca["evidence_ids"] == [ROLLOUT.id]
        assert rca["prompt_version"] == "v1" and rca["usage"]["calls"] == 1
